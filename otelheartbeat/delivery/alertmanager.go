package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// alertmanager posts alerts to every Alertmanager of a list.
type alertmanager struct {
	cfg     config
	queue   chan Alert
	targets []*amTarget
	dropped atomic.Int64
	fenced  atomic.Int64
	flog    fenceLog         // reports fenced sends of every URL, once per epoch
	active  map[string]Alert // Run's own
}

// amTarget is one Alertmanager: the alerts waiting for it, newest state
// per fingerprint, and its worker's counts.
type amTarget struct {
	endpoint string // {url}/api/v2/alerts
	shown    string // the URL to print
	max      int    // bound of pending

	mu      sync.Mutex
	pending map[string]Alert
	wake    chan struct{}

	sent, failed, dropped, fenced atomic.Int64
	inflight                      atomic.Int64 // alerts of the POST under way
	ep                            episode
}

// NewAlertmanager returns a Receiver that posts every alert to every
// Alertmanager in urls (the base URLs, such as http://am-0:9093, of an HA
// pair or more), each independently.
func NewAlertmanager(urls []string, opts ...Option) (Receiver, error) {
	if len(urls) == 0 {
		return nil, fmt.Errorf("delivery: no Alertmanager URL")
	}
	cfg := newConfig(opts)
	if cfg.resendEvery >= 5*time.Minute {
		return nil, fmt.Errorf("delivery: WithResendEvery(%v) must stay below Alertmanager's resolve_timeout (5m by default)", cfg.resendEvery)
	}
	am := &alertmanager{cfg: cfg, queue: make(chan Alert, cfg.queueSize), active: map[string]Alert{}, flog: fenceLog{errorf: cfg.errorf}}
	seen := map[string]bool{}
	for _, raw := range urls {
		u, shown, err := checkURL(raw)
		if err != nil {
			return nil, err
		}
		u.Path = strings.TrimSuffix(u.Path, "/") + "/api/v2/alerts"
		if seen[u.String()] {
			return nil, fmt.Errorf("delivery: %s is listed twice", shown)
		}
		seen[u.String()] = true
		am.targets = append(am.targets, &amTarget{
			endpoint: u.String(), shown: shown,
			max:     cfg.maxActive + cfg.queueSize,
			pending: map[string]Alert{}, wake: make(chan struct{}, 1),
			ep: episode{errorf: cfg.errorf},
		})
	}
	return am, nil
}

func (am *alertmanager) Name() string { return "alertmanager" }

// Notify queues a; it never blocks, and counts a drop when the queue is full.
func (am *alertmanager) Notify(a Alert) {
	select {
	case am.queue <- a:
	default:
		am.dropped.Add(1)
	}
}

// Stats sums the URLs' counts; Queued counts the queue and each URL's
// pending and in-flight alerts.
func (am *alertmanager) Stats() Stats {
	s := Stats{Dropped: am.dropped.Load(), Queued: int64(len(am.queue)), Fenced: am.fenced.Load()}
	for _, t := range am.targets {
		s.Sent += t.sent.Load()
		s.Failed += t.failed.Load()
		s.Dropped += t.dropped.Load()
		s.Fenced += t.fenced.Load()
		s.Queued += t.inflight.Load()
		t.mu.Lock()
		s.Queued += int64(len(t.pending))
		t.mu.Unlock()
	}
	return s
}

// Run delivers until ctx is done: one worker per URL, and this goroutine
// keeping the active alerts and re-sending them. It is called once.
func (am *alertmanager) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, t := range am.targets {
		wg.Go(func() { t.run(ctx, am.cfg, &am.flog) })
	}
	defer wg.Wait()
	tick := time.NewTicker(am.cfg.resendEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case a := <-am.queue:
			am.take(a)
		case <-tick.C:
			am.resend(ctx)
		}
	}
}

// resend hands every active alert to every URL again, but those the fence
// refuses: they are forgotten, for the replica that holds the lease now.
func (am *alertmanager) resend(ctx context.Context) {
	verdict := map[int64]bool{}
	for fp, a := range am.active {
		ok, asked := verdict[a.Epoch]
		if !asked {
			ok = allowed(ctx, am.cfg.fence, a.Epoch, &am.fenced, &am.flog, "alertmanager")
			verdict[a.Epoch] = ok
		} else if !ok {
			am.fenced.Add(1)
		}
		if !ok {
			delete(am.active, fp)
			continue
		}
		for _, t := range am.targets {
			t.put(a, false)
		}
	}
}

// take records a in the active alerts and hands it to every URL.
func (am *alertmanager) take(a Alert) {
	fp := a.Fingerprint()
	old, ok := am.active[fp]
	if a.Firing() {
		switch {
		case ok:
			a.StartsAt = old.StartsAt // the same startsAt on every re-send
		case len(am.active) >= am.cfg.maxActive:
			am.dropped.Add(1)
			return
		case a.StartsAt.IsZero():
			a.StartsAt = am.cfg.now()
		}
		am.active[fp] = a
	} else {
		if ok && a.StartsAt.IsZero() {
			a.StartsAt = old.StartsAt
		}
		delete(am.active, fp) // sent with its end, then forgotten
	}
	for _, t := range am.targets {
		t.put(a, true)
	}
}

// put makes a pending for t: replacing what is pending for its
// fingerprint when newer, else only when nothing is.
func (t *amTarget) put(a Alert, newer bool) {
	fp := a.Fingerprint()
	t.mu.Lock()
	_, ok := t.pending[fp]
	switch {
	case ok && !newer:
	case !ok && len(t.pending) >= t.max:
		t.dropped.Add(1)
	default:
		t.pending[fp] = a
	}
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *amTarget) takeBatch(n int) []Alert {
	t.mu.Lock()
	defer t.mu.Unlock()
	batch := make([]Alert, 0, min(n, len(t.pending)))
	for fp, a := range t.pending {
		if len(batch) == n {
			break
		}
		batch = append(batch, a)
		delete(t.pending, fp)
	}
	return batch
}

func (t *amTarget) run(ctx context.Context, cfg config, flog *fenceLog) {
	attempt := 0
	for {
		batch := t.fence(ctx, cfg.fence, flog, t.takeBatch(cfg.maxBatch))
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-t.wake:
				continue
			}
		}
		t.inflight.Store(int64(len(batch)))
		retry, err := t.post(ctx, cfg, batch)
		t.inflight.Store(0)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			attempt = 0
			t.sent.Add(int64(len(batch)))
			t.ep.ok("delivery: alertmanager %s: delivering again", t.shown)
			continue
		}
		t.failed.Add(int64(len(batch)))
		if !retry {
			t.ep.fail("delivery: alertmanager %s: %v; %d alerts given up", t.shown, err, len(batch))
			continue
		}
		t.ep.fail("delivery: alertmanager %s: %v; retrying", t.shown, err)
		for _, a := range batch {
			t.put(a, false) // a newer state queued meanwhile wins
		}
		if cfg.sleep(ctx, cfg.backoff.Delay(attempt)) != nil {
			return
		}
		attempt++
	}
}

// fence drops from batch the alerts the fence refuses, asking once per
// epoch, and counts them.
func (t *amTarget) fence(ctx context.Context, fence Fence, flog *fenceLog, batch []Alert) []Alert {
	if fence == nil || len(batch) == 0 {
		return batch
	}
	verdict := map[int64]bool{}
	kept := batch[:0]
	for _, a := range batch {
		ok, asked := verdict[a.Epoch]
		if !asked {
			ok = allowed(ctx, fence, a.Epoch, &t.fenced, flog, "alertmanager")
			verdict[a.Epoch] = ok
		} else if !ok {
			t.fenced.Add(1)
		}
		if ok {
			kept = append(kept, a)
		}
	}
	return kept
}

// postable is an alert as Alertmanager's API v2 takes it.
type postable struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// post sends batch; retry says whether a failure is worth retrying.
func (t *amTarget) post(ctx context.Context, cfg config, batch []Alert) (retry bool, err error) {
	body := make([]postable, len(batch))
	for i, a := range batch {
		body[i] = postable{Labels: a.Labels, Annotations: a.Annotations, StartsAt: a.StartsAt.UTC(),
			EndsAt: a.EndsAt.UTC(), GeneratorURL: a.GeneratorURL}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.endpoint, bytes.NewReader(b))
	if err != nil {
		return false, cause(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return do(cfg.client, req)
}
