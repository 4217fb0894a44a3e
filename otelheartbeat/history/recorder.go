package history

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// RecorderConfig tunes a Recorder; zero values are the defaults.
type RecorderConfig struct {
	// ReconcileEvery is how often the recorder compares the recorded states
	// with the tracker's and records what differs: transitions it could
	// not write, lost heartbeats, instances forgotten. Default 30 s.
	ReconcileEvery time.Duration
	// ForgetAfter is how long the tracker must have been watching before
	// a recorded instance it does not hold is recorded as forgotten: a
	// sender in the seed's format writes no latest-state key and is heard
	// only at its next heartbeat. Default: two default intervals (2 min).
	ForgetAfter time.Duration
	// Queue bounds the events waiting to be written. Default 10,000; an
	// event that finds it full is counted, and the next reconciliation
	// records its change.
	Queue int
	// Errorf reports failures (nil: none), once per kind until it recovers.
	Errorf func(format string, args ...any)
}

// RecorderStats counts what a recorder did.
type RecorderStats struct {
	Recorded   int64 // entries and gaps written
	Dropped    int64 // events the queue had no room for
	Takeovers  int64 // times this replica acquired the lease
	Fenced     int64 // writes refused because a newer recorder had written
	Failures   int64 // writes that failed
	Reconciled int64 // entries written by reconciliation
}

// Recorder writes a monitor's transitions to the store while it holds the
// lease. Every replica of the panel runs one; only the holder writes.
type Recorder struct {
	s       *Store
	l       *Lease
	tracker *watch.Tracker
	cfg     RecorderConfig

	events  chan watch.Event
	leading atomic.Bool
	loaded  atomic.Int64 // unix ns when the monitor first loaded; 0 before
	stats   struct{ recorded, dropped, takeovers, fenced, failures, reconciled atomic.Int64 }

	mu     sync.Mutex
	failed map[string]bool // kinds of failure reported and not yet recovered

	reconcileSoon bool // on Run's goroutine: a write was refused and repaired
}

// NewRecorder returns a recorder of tracker's transitions into s under l.
func NewRecorder(s *Store, l *Lease, tracker *watch.Tracker, cfg RecorderConfig) *Recorder {
	if cfg.ReconcileEvery <= 0 {
		cfg.ReconcileEvery = 30 * time.Second
	}
	if cfg.ForgetAfter <= 0 {
		cfg.ForgetAfter = 2 * wire.DefaultInterval
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 10_000
	}
	return &Recorder{s: s, l: l, tracker: tracker, cfg: cfg, events: make(chan watch.Event, cfg.Queue), failed: map[string]bool{}}
}

// Observe takes one event from the monitor's callback. It never blocks.
func (r *Recorder) Observe(e watch.Event) {
	switch e.Kind {
	case watch.KindLoaded:
		r.loaded.CompareAndSwap(0, e.At.UnixNano())
	case watch.KindTransition, watch.KindCaughtUp, watch.KindReconnected:
	default:
		return
	}
	select {
	case r.events <- e:
	default:
		r.stats.dropped.Add(1)
	}
}

// Leading reports whether this replica is the recorder now.
func (r *Recorder) Leading() bool { return r.leading.Load() }

// Stats returns the recorder's counts.
func (r *Recorder) Stats() RecorderStats {
	return RecorderStats{Recorded: r.stats.recorded.Load(), Dropped: r.stats.dropped.Load(), Takeovers: r.stats.takeovers.Load(),
		Fenced: r.stats.fenced.Load(), Failures: r.stats.failures.Load(), Reconciled: r.stats.reconciled.Load()}
}

// Run competes for the lease and records while it holds it, until ctx is
// done; then it gives the lease up so that a standby takes over at once.
func (r *Recorder) Run(ctx context.Context) error {
	tick := time.NewTicker(r.l.Period() / 3)
	defer tick.Stop()
	reconcile := time.NewTicker(r.cfg.ReconcileEvery)
	defer reconcile.Stop()
	r.step(ctx)
	for {
		select {
		case <-ctx.Done():
			if r.leading.Load() {
				rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_ = r.l.Renew(rctx, time.Now()) // watched up to now
				_ = r.l.Release(rctx)
				cancel()
				r.leading.Store(false)
			}
			return nil
		case <-tick.C:
			r.step(ctx)
			if r.reconcileSoon && r.leading.Load() {
				r.reconcileSoon = false
				r.reconcile(ctx, time.Time{})
			}
		case <-reconcile.C:
			if r.leading.Load() {
				r.reconcile(ctx, time.Time{})
			}
		case e := <-r.events:
			if r.leading.Load() {
				r.write(ctx, e)
			}
		}
	}
}

// step renews the lease, or tries to take it.
func (r *Recorder) step(ctx context.Context) {
	now := time.Now()
	if r.leading.Load() {
		err := r.l.Renew(ctx, now)
		switch {
		case errors.Is(err, ErrLeaseLost):
			r.leading.Store(false)
			r.report("lease", "history: lost the recorder lease; standing by")
		case err != nil:
			r.report("renew", "%v", err)
		default:
			r.recovered("renew")
		}
		return
	}
	if r.loaded.Load() == 0 {
		return // the tracker knows nothing yet: nothing to reconcile from
	}
	ok, lastWatched, err := r.l.TryAcquire(ctx)
	if err != nil {
		r.report("acquire", "%v", err)
		return
	}
	r.recovered("acquire")
	if !ok {
		return
	}
	r.leading.Store(true)
	r.stats.takeovers.Add(1)
	r.recovered("lease")
	// Drain what queued while standing by: the tracker's state, which
	// reconciliation reads, already holds it.
	for len(r.events) > 0 {
		<-r.events
	}
	if !lastWatched.IsZero() {
		r.gap(ctx, Gap{lastWatched, now})
	}
	r.reconcile(ctx, lastWatched)
}

// write records one event.
func (r *Recorder) write(ctx context.Context, e watch.Event) {
	switch e.Kind {
	case watch.KindTransition:
		t := e.Transition
		in, _ := r.tracker.Get(t.Key)
		r.apply(ctx, []Record{{Service: t.Service, Instance: t.Instance, To: t.To, At: t.At, Count: in.Count}}, false)
	case watch.KindCaughtUp, watch.KindReconnected:
		// The monitor could not see: that time is unknown, not up or down.
		r.gap(ctx, Gap{e.At.Add(-e.Downtime), e.At})
	}
}

func (r *Recorder) gap(ctx context.Context, g Gap) {
	if err := r.s.AddGap(ctx, g); err != nil {
		r.stats.failures.Add(1)
		r.report("gap", "%v", err)
		return
	}
	r.stats.recorded.Add(1)
}

func (r *Recorder) apply(ctx context.Context, recs []Record, reconciling bool) {
	n, err := r.s.Apply(ctx, r.l.Epoch(), recs)
	r.stats.recorded.Add(int64(n))
	if reconciling {
		r.stats.reconciled.Add(int64(n))
	}
	var fe *FencedError
	switch {
	case errors.As(err, &fe) && r.l.Renew(ctx, time.Now()) == nil:
		// Still the holder of the lease, whose epoch is the newest any
		// lease gave: the epoch that refused it is not a recorder's.
		r.stats.fenced.Add(1)
		for _, svc := range fe.Services {
			r.report("epoch:"+svc, "history: %q holds a recorded epoch no lease gave (written by hand, or corrupt); reset to this recorder's", svc)
			if rerr := r.s.RepairEpoch(ctx, svc, r.l.Epoch()); rerr != nil {
				r.report("write", "%v", rerr)
			}
		}
		r.reconcileSoon = true
	case errors.Is(err, ErrFenced):
		r.stats.fenced.Add(1)
		r.leading.Store(false)
		var names []string
		if fe != nil {
			names = fe.Services
		}
		r.report("lease", "history: another recorder has written to %s since this one; standing by", strings.Join(names, ", "))
	case err != nil:
		r.stats.failures.Add(1)
		r.report("write", "%v", err)
	default:
		r.recovered("write")
	}
}

// reconcile records whatever differs between the recorded states and the
// tracker's: changes while nobody recorded (at a takeover, from the end of
// the gap), writes that failed or were dropped, lost heartbeats, and
// instances the tracker no longer holds.
func (r *Recorder) reconcile(ctx context.Context, floor time.Time) {
	recorded, err := r.s.Recorded(ctx)
	if err != nil {
		r.report("reconcile", "%v", err)
		return
	}
	now := time.Now()
	var recs []Record
	seen := map[watch.Key]bool{}
	for _, in := range r.tracker.Snapshot() {
		seen[in.Key] = true
		rec, ok := recorded[in.Service][in.Instance]
		at := in.Since
		if at.Before(floor) {
			at = floor // it may have changed at any time while nobody watched
		}
		if ok && at.Before(rec.At) {
			at = rec.At
		}
		if !ok || rec.State != in.State {
			recs = append(recs, Record{Service: in.Service, Instance: in.Instance, To: in.State, At: at, Count: in.Count})
		}
		if in.Lost > rec.Lost {
			recs = append(recs, Record{Service: in.Service, Instance: in.Instance, Event: LostHeartbeats, At: now, Count: in.Count, Lost: in.Lost})
		}
	}
	if loaded := r.loaded.Load(); loaded != 0 && now.Sub(time.Unix(0, loaded)) >= r.cfg.ForgetAfter {
		for svc, insts := range recorded {
			for inst := range insts {
				if !seen[watch.Key{Service: svc, Instance: inst}] {
					recs = append(recs, Record{Service: svc, Instance: inst, Event: Forgotten, At: now})
				}
			}
		}
	}
	for len(recs) > 0 {
		n := min(len(recs), 1000)
		r.apply(ctx, recs[:n], true)
		recs = recs[n:]
	}
}

func (r *Recorder) report(kind, format string, args ...any) {
	r.mu.Lock()
	already := r.failed[kind]
	r.failed[kind] = true
	r.mu.Unlock()
	if !already && r.cfg.Errorf != nil {
		r.cfg.Errorf(format, args...)
	}
}

func (r *Recorder) recovered(kind string) {
	r.mu.Lock()
	delete(r.failed, kind)
	r.mu.Unlock()
}
