// Package delivery delivers the admin panel's alerts: to Prometheus
// Alertmanager (API v2, every replica of an HA pair independently) and to a
// generic webhook with a signed JSON body. The rule engine decides when an
// alert fires and resolves; a Receiver only carries it, without ever
// blocking the caller: Notify queues into a bounded queue and counts what it
// has to drop, and Run delivers, retrying failures with capped exponential
// back-off and jitter, until its context is done.
//
// # Alertmanager
//
// NewAlertmanager posts to {url}/api/v2/alerts a JSON array of
// {labels, annotations, startsAt, endsAt, generatorURL} (Alertmanager's
// postableAlerts). Each URL has its own worker, so an Alertmanager that is
// down or slow delays none of the others. An active alert is re-sent every
// WithResendEvery (1 min; keep it below Alertmanager's resolve_timeout, 5 min
// by default, or Alertmanager resolves it by itself) with its first
// startsAt; a resolved alert is sent once with its endsAt, then forgotten.
//
// # Webhook
//
// NewWebhook posts one JSON object per notification, in the order Notify
// was called (one worker retries the head of a FIFO queue), so the
// notifications of an alert arrive in order. The body:
//
//	{
//	  "version": "1",
//	  "delivery": "5f0c…",                 // the same as X-Heartbeat-Delivery
//	  "status": "firing",                  // or "resolved"
//	  "alertname": "HeartbeatInstanceDead",
//	  "service": "geofence_service",
//	  "instance": "01287bb6-…",            // null for a service-level alert
//	  "state": "dead",                     // the instance's or service's state
//	  "since": "2026-11-27T20:27:49.947000+00:00",
//	  "starts_at": "2026-11-27T20:27:49.947000+00:00",
//	  "ends_at": null,                     // the resolution time once resolved
//	  "summary": "geofence_service instance 01287bb6-… is dead",
//	  "description": "…",
//	  "generator_url": "http://panel:8080/…",
//	  "labels": {"alertname": "…", "service": "…", "instance": "…", "severity": "page"},
//	  "annotations": {"summary": "…", "description": "…"},
//	  "last_heartbeat": {…}                // the last heartbeat as received, or null
//	}
//
// Times are UTC with microseconds, as everywhere in the panel's API. Every
// request carries
//
//	X-Heartbeat-Timestamp: <Unix seconds of this attempt>
//	X-Heartbeat-Signature: sha256=<hex HMAC-SHA256, keyed with the shared secret, of the timestamp, '.', and the raw body>
//	X-Heartbeat-Delivery:  <the notification's id, the same on every resend>
//
// A receiver verifies the signature over the timestamp and the bytes it
// read, before parsing them, with a constant-time comparison, refuses a
// timestamp far from its clock (Verify: DefaultTolerance), so that a
// captured notification cannot be replayed, and may drop a delivery id it has
// already acknowledged: a retry follows a response that was lost. The id
// is derived from the alert's labels, its start and its status
// (DeliveryID), not drawn at random, so a notification sent again by
// another replica, or after Valkey lost its data, carries it too. Any 2xx
// acknowledges; 408, 425, 429 and 5xx (and no response) are retried; any
// other status is a permanent failure, counted and reported, and the
// notification is given up so that it does not hold up those behind it.
//
// # Fencing
//
// An alert carries the epoch of the lease it was made under (Alert.Epoch),
// and a receiver given a Fence asks it before every send whether that
// epoch may still send: a replica that lost the lease while paused must
// not deliver what it queued, nor go on re-sending what its successor
// has resolved. A notification the fence refuses is dropped and counted
// (Stats.Fenced).
//
// The secret and any credentials in a URL are never printed: errors name a
// URL without its userinfo and query.
package delivery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Alert is one alert's state: firing while EndsAt is zero, resolved once set.
type Alert struct {
	Labels        map[string]string // alertname, service, instance (absent for service-level alerts), plus extra
	Annotations   map[string]string // summary, description
	StartsAt      time.Time
	EndsAt        time.Time
	GeneratorURL  string
	State         string          // the instance's or service's state: dead, down, ...
	Since         time.Time       // when it entered State
	LastHeartbeat json.RawMessage // the last heartbeat, when there is one
	// Epoch is the fencing epoch of the lease under which the alert was
	// made, for the receivers' Fence; 0 when there is none. It is not part
	// of the alert as kept or sent.
	Epoch int64 `json:"-"`
}

// A Fence decides, at the moment of sending, whether an alert made under
// an epoch may still be sent: whether the replica that made it still
// holds the lease that gave the epoch. A replica paused past its lease (a
// GC pause, a frozen VM) resumes with alerts queued and alerts it re-sends;
// its successor owns them now, and they must not go out.
type Fence interface {
	// Allow returns nil when alerts of epoch may be sent now, else an
	// error saying why not. It may ask Valkey, within ctx.
	Allow(ctx context.Context, epoch int64) error
}

// FenceFunc adapts a function to Fence.
type FenceFunc func(ctx context.Context, epoch int64) error

// Allow calls f.
func (f FenceFunc) Allow(ctx context.Context, epoch int64) error { return f(ctx, epoch) }

// fenceCheck is how long one Fence check may take.
const fenceCheck = time.Second

// allowed asks fence about epoch, and counts a refusal, reporting it once
// per epoch: a replica that lost its lease says so once, however many
// alerts it had queued or was re-sending.
func allowed(ctx context.Context, fence Fence, epoch int64, fenced *atomic.Int64, log *fenceLog, what string) bool {
	if fence == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, fenceCheck)
	defer cancel()
	if err := fence.Allow(ctx, epoch); err != nil {
		fenced.Add(1)
		log.refused(epoch, "delivery: %s: not sent: %v", what, err)
		return false
	}
	return true
}

// fenceLog reports fenced sends once per epoch.
type fenceLog struct {
	mu       sync.Mutex
	reported int64 // the epoch last reported; epochs only grow
	any      bool
	errorf   func(format string, args ...any)
}

func (l *fenceLog) refused(epoch int64, format string, args ...any) {
	l.mu.Lock()
	first := !l.any || epoch > l.reported
	if first {
		l.any, l.reported = true, epoch
	}
	l.mu.Unlock()
	if first && l.errorf != nil {
		l.errorf(format, args...)
	}
}

// Fingerprint identifies the alert by its labels: the same labels give the
// same fingerprint, in any order, whatever the state.
func (a Alert) Fingerprint() string {
	keys := make([]string, 0, len(a.Labels))
	for k := range a.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := sha256.New()
	for _, k := range keys {
		// Length-prefixed, so that no choice of names and values can
		// collide with another by moving a separator.
		fmt.Fprintf(h, "%d:%s%d:%s", len(k), k, len(a.Labels[k]), a.Labels[k])
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// Firing reports whether the alert is firing: it has no end yet.
func (a Alert) Firing() bool { return a.EndsAt.IsZero() }

// Stats counts a receiver's work. For Alertmanager, Sent and Failed count
// alerts per URL (an alert posted to two Alertmanagers is sent twice).
type Stats struct {
	Sent    int64 // delivered and acknowledged
	Failed  int64 // attempts that failed (each retry counts), and notifications given up
	Dropped int64 // not queued, or not kept, because a bound was reached
	Queued  int64 // waiting now, in flight included
	Fenced  int64 // not sent because the replica no longer holds the lease they were made under
}

// Receiver delivers alerts to one destination.
type Receiver interface {
	Name() string            // e.g. "alertmanager", "webhook"
	Notify(a Alert)          // never blocks: queues (bounded), counts a drop when full
	Run(ctx context.Context) // delivers until ctx is done; returns when every goroutine it started has ended
	Stats() Stats
}

// Backoff is a capped exponential back-off with jitter.
type Backoff struct {
	Base time.Duration // the first delay
	Cap  time.Duration // no delay is longer
}

// Delay is the delay before retry number attempt (0 for the first retry):
// Base·2^attempt capped at Cap, then a random part of it, between half and
// all of it, so that senders that failed together do not retry together.
func (b Backoff) Delay(attempt int) time.Duration {
	d := b.Base
	for i := 0; i < attempt && d < b.Cap; i++ {
		d *= 2
	}
	if d > b.Cap {
		d = b.Cap
	}
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// do sends req and says whether a failure is worth retrying. A 2xx
// acknowledges by its status alone: a body trickled byte by byte must not
// hold the queue. Any other status is a failure, with the start of its
// body; a network error is retried.
func do(c *http.Client, req *http.Request) (retry bool, err error) {
	resp, err := c.Do(req)
	if err != nil {
		return true, cause(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return false, nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return retryable(resp.StatusCode), fmt.Errorf("%s: %s", resp.Status, snippet(msg))
}

// checkURL parses a receiver URL and returns it with the form to print:
// without userinfo and query, which may hold credentials.
func checkURL(raw string) (*url.URL, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url's own error repeats the input: keep it out.
		return nil, "", errors.New("delivery: a receiver URL does not parse")
	}
	shown := redact(u)
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, "", fmt.Errorf("delivery: %s: the scheme must be http or https", shown)
	}
	if u.Host == "" {
		return nil, "", fmt.Errorf("delivery: %s: no host", shown)
	}
	return u, shown, nil
}

func redact(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery = ""
	c.ForceQuery = false
	c.Fragment = ""
	c.RawFragment = ""
	return c.String()
}

// cause is err without the URL an *url.Error repeats (it may hold a
// username; Go masks only the password).
func cause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// retryable reports whether a response status is worth retrying.
func retryable(code int) bool {
	return code >= 500 || code == 408 || code == 425 || code == 429
}

// episode reports a destination's failures once per episode: the first
// failure after a success (or at start), and the first success after it.
type episode struct {
	mu      sync.Mutex
	failing bool
	errorf  func(format string, args ...any)
}

func (e *episode) fail(format string, args ...any) {
	e.mu.Lock()
	first := !e.failing
	e.failing = true
	e.mu.Unlock()
	if first && e.errorf != nil {
		e.errorf(format, args...)
	}
}

func (e *episode) ok(format string, args ...any) {
	e.mu.Lock()
	was := e.failing
	e.failing = false
	e.mu.Unlock()
	if was && e.errorf != nil {
		e.errorf(format, args...)
	}
}

// snippet is the start of a response body, for an error message, on one line.
func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
