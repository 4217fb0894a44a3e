package history

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/report"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// recorderConfig is what the options set; NewRecorder fills the defaults.
type recorderConfig struct {
	reconcileEvery time.Duration
	forgetAfter    time.Duration
	queue          int
	errorf         func(format string, args ...any)
}

// RecorderOption configures a Recorder.
type RecorderOption interface{ applyRecorder(*recorderConfig) }

type recorderOptionFunc func(*recorderConfig)

func (f recorderOptionFunc) applyRecorder(c *recorderConfig) { f(c) }

// WithReconcileEvery sets how often the recorder compares the recorded
// states with the tracker's and records what differs: transitions it
// could not write, lost heartbeats, instances forgotten. Default 30 s.
func WithReconcileEvery(d time.Duration) RecorderOption {
	return recorderOptionFunc(func(c *recorderConfig) { c.reconcileEvery = d })
}

// WithForgetAfter sets how long the tracker must have been watching before
// a recorded instance it does not hold is recorded as forgotten: a sender
// in the original design's format writes no latest-state key and is heard only at its
// next heartbeat. Default: two default intervals (2 min).
func WithForgetAfter(d time.Duration) RecorderOption {
	return recorderOptionFunc(func(c *recorderConfig) { c.forgetAfter = d })
}

// WithQueue bounds the events waiting to be written. An event that finds
// it full is counted, and the next reconciliation records its change.
// Default 10,000.
func WithQueue(n int) RecorderOption {
	return recorderOptionFunc(func(c *recorderConfig) { c.queue = n })
}

// WithErrorf reports failures, once per kind until they recover. Default:
// nowhere.
func WithErrorf(f func(format string, args ...any)) RecorderOption {
	return recorderOptionFunc(func(c *recorderConfig) { c.errorf = f })
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
	cfg     recorderConfig

	events  *eventQueue
	leading atomic.Bool
	loaded  atomic.Int64 // unix ns when the monitor first loaded; 0 before
	stats   struct{ recorded, dropped, takeovers, fenced, failures, reconciled atomic.Int64 }

	failed report.Reporter // each kind of failure said once until it recovers

	reconcileSoon bool // on Run's goroutine: a write was refused and repaired
}

// NewRecorder returns a recorder of tracker's transitions into s under l.
func NewRecorder(s *Store, l *Lease, tracker *watch.Tracker, opts ...RecorderOption) *Recorder {
	var cfg recorderConfig
	for _, o := range opts {
		o.applyRecorder(&cfg)
	}
	if cfg.reconcileEvery <= 0 {
		cfg.reconcileEvery = 30 * time.Second
	}
	if cfg.forgetAfter <= 0 {
		cfg.forgetAfter = 2 * wire.DefaultInterval
	}
	if cfg.queue <= 0 {
		cfg.queue = 10_000
	}
	r := &Recorder{s: s, l: l, tracker: tracker, cfg: cfg, events: newEventQueue(cfg.queue)}
	r.failed.Handle = func(err error) {
		if cfg.errorf != nil {
			cfg.errorf("%v", err)
		}
	}
	return r
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
	if !r.events.push(e) {
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
	reconcile := time.NewTicker(r.cfg.reconcileEvery)
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
		case <-r.events.ready:
			// One at a time, so that the lease's renewal waits for one
			// write at most, however many wait.
			if e, ok := r.events.pop(); ok && r.leading.Load() {
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
			r.report("lease", "history: lost the recorder lease (another replica took it, or this one did not renew it within the lease); standing by")
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
	if r.l.garbage.Swap(false) {
		r.report("epoch", "history: the fencing counter %s held no epoch, or one at its limit (written by hand, or corrupt); it was set anew from Valkey's clock", r.s.epochKey())
	}
	r.leading.Store(true)
	r.stats.takeovers.Add(1)
	// Said as the loss was: the last word must not be "standing by".
	r.failed.Resolve("lease", fmt.Errorf("history: took the recorder lease again (epoch %d); recording", r.l.Epoch()))
	// Drain what queued while standing by: the tracker's state, which
	// reconciliation reads, already holds it.
	r.events.drop()
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
		if t.To == watch.Replaced {
			r.apply(ctx, []Record{{Service: t.Service, Instance: t.Instance, Event: Replaced, At: t.At, By: t.By}}, false)
			return
		}
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
	var refused *refusedError
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
	case errors.As(err, &refused):
		// One service's keys, not Valkey: reported, and said again,
		// for that service alone.
		r.stats.failures.Add(1)
		for svc, e := range refused.services {
			r.report("write:"+svc, "history: recording %q: %v", svc, e)
		}
		r.wrote(recs, refused.services)
	case err != nil:
		r.stats.failures.Add(1)
		r.report("write", "%v", err)
	default:
		r.wrote(recs, nil)
	}
}

// wrote ends the failures to write that recs' services, but those
// refused, had.
func (r *Recorder) wrote(recs []Record, refused map[string]error) {
	r.recovered("write")
	var last string
	for _, rec := range recs {
		if rec.Service != last && refused[rec.Service] == nil {
			r.recovered("write:" + rec.Service)
		}
		last = rec.Service
	}
}

// reconcile records whatever differs between the recorded states and the
// tracker's: changes while nobody recorded (at a takeover, from the end of
// the gap), writes that failed or were dropped, lost heartbeats, and
// instances the tracker no longer holds.
func (r *Recorder) reconcile(ctx context.Context, floor time.Time) {
	svcs, err := r.s.Services(ctx)
	if err != nil {
		r.report("reconcile", "%v", err)
		return
	}
	names := map[string]bool{}
	for _, svc := range append(svcs, r.tracker.ServiceNames()...) {
		names[svc] = true
	}
	now := time.Now()
	loaded := r.loaded.Load()
	forget := loaded != 0 && now.Sub(time.Unix(0, loaded)) >= r.cfg.forgetAfter
	var (
		failed []error
		ids    []string // a service's tracked instances' ids (the tracker's own strings)
		values []string // a page of their recorded states
		recs   []Record
		found  []string // a page of the instances the state hash holds
		slots  []watch.Slot
	)
	// send writes recs, a thousand at a time at most.
	send := func() {
		for from := 0; from < len(recs); from += 1000 {
			r.apply(ctx, recs[from:min(from+1000, len(recs))], true)
		}
		clear(recs) // their names
		recs = recs[:0]
	}
	// A service at a time, and a page of its instances at a time: a large
	// fleet's recorded states, held at once, would cost as much as the
	// tracker, and so would a large service's.
	for _, svc := range slices.Sorted(maps.Keys(names)) {
		ids = ids[:0]
		r.tracker.RangeService(svc, func(in *watch.Instance) bool {
			ids = append(ids, in.Instance)
			return true
		})
		var err error
		for page := range slices.Chunk(ids, recordedPage) {
			if !r.leading.Load() {
				return // fenced by a write: another recorder reconciles now
			}
			if values, err = r.s.recordedOf(ctx, svc, page, values[:0]); err != nil {
				break
			}
			for i, id := range page {
				in, tracked := r.tracker.Get(watch.Key{Service: svc, Instance: id})
				if !tracked {
					continue // forgotten since: a scan finds it recorded, in this round or a later one
				}
				rec, ok := parseRecorded(values[i]) // "" when it has none, and rec zero
				// Every record is sent no earlier than the recorded state's
				// time, which the script would take it for late news: another
				// replica's clock may have run ahead of this one's. A change
				// is no earlier than floor either: it may have come at any
				// time while nobody watched.
				if !ok || rec.State != in.State {
					at := laterOf(laterOf(in.Since, floor), rec.At)
					recs = append(recs, Record{Service: in.Service, Instance: in.Instance, To: in.State, At: at, Count: in.Count})
				}
				if in.Lost > rec.Lost {
					recs = append(recs, Record{Service: in.Service, Instance: in.Instance, Event: LostHeartbeats, At: laterOf(now, rec.At), Count: in.Count, Lost: in.Lost})
				}
			}
			send()
		}
		if err == nil && len(ids) == 0 && !forget {
			// Nothing read of it: is it readable?
			_, err = r.s.recordedCount(ctx, svc)
		}
		if err == nil && forget {
			// What is recorded of an instance the tracker no longer holds
			// is forgotten. One the scan brings twice is sent twice: the
			// script writes nothing for an instance it has forgotten.
			err = r.s.scanRecorded(ctx, svc, func(kv []string) bool {
				if !r.leading.Load() {
					return false
				}
				found = found[:0]
				for i := 0; i+1 < len(kv); i += 2 {
					found = append(found, kv[i])
				}
				slots = r.tracker.SlotsOf(svc, found, slots[:0])
				for i, id := range found {
					if slots[i].Valid() {
						continue
					}
					if rec, ok := parseRecorded(kv[2*i+1]); ok { // an unreadable field is no instance's
						recs = append(recs, Record{Service: svc, Instance: id, Event: Forgotten, At: laterOf(now, rec.At)})
					}
				}
				send()
				return true
			})
		}
		if err != nil {
			if ctx.Err() != nil || !isDataError(errors.Unwrap(err)) {
				r.report("reconcile", "%v", err)
				return
			}
			failed = append(failed, fmt.Errorf("%w (that service is skipped)", err))
		}
	}
	if len(failed) > 0 {
		r.report("reconcile", "%v", errors.Join(failed...))
	} else {
		r.recovered("reconcile")
	}
}

// laterOf is the later of a and b.
func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (r *Recorder) report(kind, format string, args ...any) {
	r.failed.Fail(kind, fmt.Errorf(format, args...))
}

func (r *Recorder) recovered(kind string) { r.failed.OK(kind) }
