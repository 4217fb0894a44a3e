package delivery

import (
	"context"
	"net/http"
	"time"
)

// Option configures a receiver (NewAlertmanager, NewWebhook). Each says
// which receivers it applies to; the others ignore it.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	queueSize int
	timeout   time.Duration
	backoff   Backoff
	client    *http.Client
	errorf    func(format string, args ...any)
	sleep     func(ctx context.Context, d time.Duration) error
	now       func() time.Time
	fence     Fence
	// Alertmanager's
	resendEvery time.Duration
	maxActive   int
	maxBatch    int
	// the webhook's
	delivered func(Alert)
}

// newConfig applies opts, then the defaults both receivers share: a queue
// of 10,000, a 10 s timeout, a back-off of 500 ms doubling to 30 s, a
// client that follows no redirect (Go would follow a 302 with a GET
// without the body and count the notification sent, and a 307 would
// carry the signed body to whatever host it names), a timer, and the wall
// clock; and Alertmanager's: a re-send every minute, 10,000 active alerts
// and batches of 1,000.
func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		o.apply(&c)
	}
	if c.queueSize <= 0 {
		c.queueSize = 10_000
	}
	if c.timeout <= 0 {
		c.timeout = 10 * time.Second
	}
	if c.backoff.Base <= 0 {
		c.backoff.Base = 500 * time.Millisecond
	}
	if c.backoff.Cap < c.backoff.Base {
		c.backoff.Cap = max(30*time.Second, c.backoff.Base)
	}
	if c.client == nil {
		c.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if c.sleep == nil {
		c.sleep = sleep
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.resendEvery <= 0 {
		c.resendEvery = time.Minute
	}
	if c.maxActive <= 0 {
		c.maxActive = 10_000
	}
	if c.maxBatch <= 0 {
		c.maxBatch = 1000
	}
	return c
}

// sleep waits d or until ctx is done, and says which.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WithQueueSize bounds the notifications waiting; beyond it Notify drops
// and counts. Both receivers; default 10,000.
func WithQueueSize(n int) Option { return optionFunc(func(c *config) { c.queueSize = n }) }

// WithTimeout bounds every request. Both receivers; default 10 s.
func WithTimeout(d time.Duration) Option { return optionFunc(func(c *config) { c.timeout = d }) }

// WithBackoff spaces the retries. Both receivers; default 500 ms doubling
// up to 30 s, with jitter.
func WithBackoff(b Backoff) Option { return optionFunc(func(c *config) { c.backoff = b }) }

// WithHTTPClient makes the requests. Both receivers; default: a client of
// the receiver's own that follows no redirect.
func WithHTTPClient(h *http.Client) Option { return optionFunc(func(c *config) { c.client = h }) }

// WithErrorf hears of each destination's failures once per episode, and of
// its recovery. Both receivers; default: nowhere.
func WithErrorf(f func(format string, args ...any)) Option {
	return optionFunc(func(c *config) { c.errorf = f })
}

// WithSleep replaces the timer between retries, for tests. Both receivers.
func WithSleep(f func(ctx context.Context, d time.Duration) error) Option {
	return optionFunc(func(c *config) { c.sleep = f })
}

// WithClock sets the clock: the webhook's X-Heartbeat-Timestamp, and the
// startsAt Alertmanager is given for an alert without one. Both
// receivers; default time.Now.
func WithClock(now func() time.Time) Option { return optionFunc(func(c *config) { c.now = now }) }

// WithFence is asked before every send whether an alert's Epoch may still
// be sent; what it refuses is dropped (counted in Stats.Fenced), for the
// replica that now holds the lease. Both receivers; default: none.
func WithFence(f Fence) Option { return optionFunc(func(c *config) { c.fence = f }) }

// WithResendEvery sets how often an active alert is posted again. It must
// stay below Alertmanager's resolve_timeout (5 min by default), after which
// Alertmanager resolves an alert not re-sent. Alertmanager; default 1 min.
func WithResendEvery(d time.Duration) Option {
	return optionFunc(func(c *config) { c.resendEvery = d })
}

// WithMaxActive bounds the active alerts kept for re-sending; a new alert
// beyond it is dropped and counted. Alertmanager; default 10,000.
func WithMaxActive(n int) Option { return optionFunc(func(c *config) { c.maxActive = n }) }

// WithMaxBatch bounds the alerts in one POST. Alertmanager; default 1,000.
func WithMaxBatch(n int) Option { return optionFunc(func(c *config) { c.maxBatch = n }) }

// WithDelivered hears of each notification the receiver acknowledged, on
// the delivering goroutine: a caller that keeps that in Valkey lets
// another replica deliver what this one could not. Webhook; default: none.
func WithDelivered(f func(Alert)) Option { return optionFunc(func(c *config) { c.delivered = f }) }
