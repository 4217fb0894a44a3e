package collectors

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/otel-heartbeat/heartbeat/internal/convention"
	"github.com/otel-heartbeat/heartbeat/internal/report"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// MaxFields bounds the service fields of one heartbeat: 64. It is the one
// public name of the limit; the exporter enforces it again for gauges
// registered by hand.
const MaxFields = wire.MaxFields

// ErrUnregistered is returned by Fields.Add after Unregister.
var ErrUnregistered = errors.New("collectors: fields are unregistered")

// Fields is a set of named service values observed together, each in
// isolation from the others (see the package documentation). Its methods
// are safe for concurrent use.
type Fields struct {
	cfg      config
	meter    metric.Meter
	reporter *report.Reporter
	ctx      context.Context // cancelled by Unregister
	cancel   context.CancelFunc

	// adding serializes Add and Unregister's end of the registration.
	// Registering a callback needs the SDK's pipeline lock, which a
	// collection holds while it calls observe: so f.mu, which observe
	// takes, is never held while registering.
	adding sync.Mutex

	mu      sync.Mutex // held briefly, never across a call into the SDK
	entries []*entry
	reg     metric.Registration
	closed  bool
	usesCtx bool // some collector takes a context

	// collecting (room for one) serializes collections, as several readers
	// may collect at once, and guards what one collection reuses from the
	// last: the timers, the round and the worker. A channel, so that
	// waiting for it ends with the collection's context and budget.
	collecting chan struct{}
	ready      chan struct{} // room for one: some collector has a result
	budget     *time.Timer
	tick       *time.Timer
	round      uint64
	worker     *worker // runs the collectors; nil until the first collection or after it was retired

	// started, when set (by tests), is called once a collection has
	// started its collectors and decided which running ones to wait for.
	started func(round uint64)
	// freeing, when set (by tests), is called by a run between publishing
	// its result and freeing its field.
	freeing func(*entry)

	// running counts the goroutines running collectors (workers and those
	// started for the rest of a stalled collection), so that Unregister
	// can wait for the last to end.
	running  atomic.Int64
	drained  chan struct{}
	drainOne sync.Once
}

// A worker is the goroutine that runs the collectors of a collection one
// after the other. It lives from one collection to the next, so that
// collectors that answer promptly cost no goroutine of their own. Should
// one collector hold it for a whole tick (an eighth of the budget), or
// should half the budget pass with collectors not yet started, the
// collection starts each collector not yet started on a goroutine of its
// own and retires the worker, which ends as soon as its collector returns:
// a blocking or slow collector costs only its own field, and holds one
// goroutine while it runs.
type worker struct {
	jobs    chan *job // room for one: collections are serialized
	retired atomic.Bool
}

// A job is one collection's collectors; workers claim them in order.
type job struct {
	ctx     context.Context
	round   uint64
	entries []*entry
	next    atomic.Int32
}

// claim returns the next collector of j not yet started, or nil.
func (j *job) claim() *entry {
	i := int(j.next.Add(1)) - 1
	if i >= len(j.entries) {
		return nil
	}
	return j.entries[i]
}

// unclaimed reports whether some collector of j is not started yet.
func (j *job) unclaimed() bool { return int(j.next.Load()) < len(j.entries) }

type entry struct {
	name  string
	c     Collector
	inst  metric.Observable
	busy  atomic.Bool
	round atomic.Uint64 // the collection it was last started for
	// abandoned: the collection that started it was given up on by its
	// reader before the result came; the next collection waits for it.
	abandoned atomic.Bool

	// The result of its last run: written by the goroutine that ran it,
	// then published by storing the collection it was started for in done;
	// read by a collection once done holds the round it waits for. No other
	// run can start before busy is cleared, after done is stored.
	v    wire.Value
	err  error
	done atomic.Uint64

	// The last string state and its attribute option, so that an unchanged
	// state costs no allocation. Guarded by Fields.collecting.
	state     string
	stateOpts []metric.ObserveOption
}

// CheckField applies the rules Add applies to field name with collector c,
// given the names already registered: a valid field name (an ASCII letter,
// then letters, digits and underscores, at most 64 bytes, none of the
// documented heartbeat keys), not registered yet, no more than MaxFields,
// and a collector built with Int, Float, String or Timestamp. It is for
// callers that gather fields before they have a Fields, so that the rules
// and their errors are the same either way.
func CheckField(name string, c Collector, registered []string) error {
	if err := wire.ValidateFieldName(name); err != nil {
		return fmt.Errorf("collectors: %w", err)
	}
	if slices.Contains(registered, name) {
		return fmt.Errorf("collectors: field %q is already registered", name)
	}
	if len(registered) >= MaxFields {
		return fmt.Errorf("collectors: field %q: a heartbeat holds at most %d service fields", name, MaxFields)
	}
	if c.fn == nil {
		return fmt.Errorf("collectors: field %q: the collector is empty; build it with Int, Float, String or Timestamp", name)
	}
	return nil
}

// NewFields returns an empty set of service fields on the heartbeat scope of
// the configured MeterProvider.
func NewFields(opts ...Option) *Fields {
	cfg := newConfig(opts)
	ctx, cancel := context.WithCancel(context.Background())
	budget := time.NewTimer(time.Hour)
	stopTimer(budget)
	tick := time.NewTimer(time.Hour)
	stopTimer(tick)
	return &Fields{
		cfg:        cfg,
		meter:      cfg.meter(),
		reporter:   &report.Reporter{Handle: cfg.handle},
		ctx:        ctx,
		cancel:     cancel,
		drained:    make(chan struct{}),
		collecting: make(chan struct{}, 1),
		ready:      make(chan struct{}, 1),
		budget:     budget,
		tick:       tick,
	}
}

// stopTimer stops t and empties its channel, so that a Reset after it
// never sees a stale tick, whatever the GODEBUG asynctimerchan setting.
func stopTimer(t *time.Timer) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
}

// Add registers the service field name, observed by c on every collection.
// name must be a valid field name: an ASCII letter, then letters, digits and
// underscores, at most 64 bytes, and none of the documented heartbeat keys.
// Adding a name twice, or more than MaxFields names, is an error.
func (f *Fields) Add(name string, c Collector) error {
	f.adding.Lock()
	defer f.adding.Unlock()
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return ErrUnregistered
	}
	names := make([]string, len(f.entries))
	insts := make([]metric.Observable, 0, len(f.entries)+1)
	for i, e := range f.entries {
		names[i] = e.name
		insts = append(insts, e.inst)
	}
	f.mu.Unlock()
	if err := CheckField(name, c, names); err != nil {
		return err
	}

	e := &entry{name: name, c: c}
	var err error
	switch {
	case c.kind == convention.FieldString:
		e.inst, err = f.meter.Int64ObservableGauge(c.instrumentName(name),
			metric.WithDescription("Heartbeat state "+name+": 1 for the current value, in attribute "+convention.ValueKey+"."))
	case c.kind == convention.FieldTimestamp:
		e.inst, err = f.meter.Float64ObservableGauge(c.instrumentName(name), metric.WithUnit(convention.UnitSeconds),
			metric.WithDescription("Heartbeat time "+name+", in seconds since the Unix epoch."))
	case c.isFloat:
		e.inst, err = f.meter.Float64ObservableGauge(c.instrumentName(name), metric.WithDescription("Heartbeat value "+name+"."))
	default:
		e.inst, err = f.meter.Int64ObservableGauge(c.instrumentName(name), metric.WithDescription("Heartbeat value "+name+"."))
	}
	if err != nil {
		return fmt.Errorf("collectors: field %q: %w", name, err)
	}

	// Register one callback over every field, so that all collectors of a
	// heartbeat run under one budget, then drop the old one. Neither call
	// holds f.mu (see adding); f.adding keeps the entries as read above.
	insts = append(insts, e.inst)
	// Each callback observes the fields it was registered with: while the
	// new one is registered and the old one not yet dropped, a collection
	// may call both, and the old one must not observe the new instrument.
	n := len(insts)
	reg, err := f.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		return f.observe(ctx, o, n)
	}, insts...)
	if err != nil {
		return fmt.Errorf("collectors: field %q: %w", name, err)
	}
	f.mu.Lock()
	old := f.reg
	f.reg = reg
	f.entries = append(f.entries, e)
	f.usesCtx = f.usesCtx || c.usesCtx
	f.mu.Unlock()
	if old != nil {
		_ = old.Unregister()
	}
	return nil
}

// Names returns the registered field names, sorted.
func (f *Fields) Names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	names := make([]string, len(f.entries))
	for i, e := range f.entries {
		names[i] = e.name
	}
	sort.Strings(names)
	return names
}

// observe runs the idle collectors of the first fields fields and observes
// those that return within the budget. It never returns an error: that would make the SDK drop the
// whole heartbeat.
func (f *Fields) observe(ctx context.Context, o metric.Observer, fields int) error {
	defer func() {
		if r := recover(); r != nil {
			f.reporter.Fail("observe", fmt.Errorf("collectors: observing service fields panicked: %v", r))
		}
	}()
	budget := f.cfg.timeout
	if deadline, ok := ctx.Deadline(); ok {
		budget = min(budget, time.Until(deadline))
	}
	// Another reader's collection may be running: wait for it within this
	// collection's own budget and context, not after them.
	end := time.Now().Add(budget)
	if !f.lock(ctx, budget) {
		return nil
	}
	defer func() { <-f.collecting }()
	if budget = time.Until(end); budget <= 0 {
		return nil
	}

	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.round++
	round := f.round
	// Collectors built from plain functions ignore their context; only the
	// ...Func forms get one with the budget as its deadline.
	cctx := f.ctx
	if f.usesCtx {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(f.ctx, budget)
		defer cancel()
	}
	// The collectors whose results this collection takes, each with the
	// collection its run was started for.
	var wait []waited
	j := &job{ctx: cctx, round: round}
	for _, e := range f.entries[:min(fields, len(f.entries))] {
		if !e.busy.CompareAndSwap(false, true) {
			// Running for a collection that was given up on: its result is
			// due any moment and is as fresh as a new one. Or its run has
			// published its result and is about to free it: that result is
			// fresh too. Only a collection starts runs, so busy with the
			// result of its own round means the run has returned.
			if r := e.round.Load(); e.abandoned.Load() || e.done.Load() == r {
				wait = append(wait, waited{e, r})
			}
			// Otherwise still running past an earlier budget: already reported.
			continue
		}
		e.abandoned.Store(false)
		e.round.Store(round)
		j.entries = append(j.entries, e)
		wait = append(wait, waited{e, round})
	}
	f.mu.Unlock()
	if len(j.entries) > 0 {
		f.dispatch(j)
	}
	if f.started != nil {
		f.started(round)
	}
	pending := len(wait)
	take := func() {
		for i := range wait {
			w := &wait[i]
			if w.e == nil || w.e.done.Load() != w.round {
				continue
			}
			w.e.abandoned.Store(false)
			f.record(o, w.e)
			w.e = nil
			pending--
		}
	}
	take()
	if pending == 0 {
		return nil
	}
	// The worker was just made ready on this goroutine's processor: give
	// it the processor once, so that prompt collectors are done before
	// anything is armed. Arming the timers below wakes the runtime's
	// network poller, two or three system calls a heartbeat. Not on a
	// single processor: a collector that computes without blocking would
	// hold it until the runtime preempts it, and the budget would start
	// late.
	if runtime.GOMAXPROCS(0) > 1 {
		runtime.Gosched()
		take()
		if pending == 0 {
			return nil
		}
		budget = max(time.Until(end), 0)
	}

	tick := max(budget/8, time.Millisecond)
	half := time.Now().Add(budget / 2)
	f.budget.Reset(budget)
	defer stopTimer(f.budget)
	f.tick.Reset(tick)
	defer stopTimer(f.tick)
	lastClaimed := int32(-1)
	for pending > 0 {
		select {
		case <-f.ready:
			take()
		case <-f.tick.C:
			// One collector has held the worker for a whole tick, or half
			// the budget is gone: the rest run each on their own.
			if claimed := j.next.Load(); j.unclaimed() && (claimed == lastClaimed || time.Now().After(half)) {
				f.retire()
				f.fanOut(j)
			} else {
				lastClaimed = claimed
			}
			f.tick.Reset(tick)
		case <-f.budget.C:
			f.giveUp(j)
			// A field whose result comes as this looks is recorded; every
			// other field still waited for is reported, none left out in
			// silence.
			take()
			for _, w := range wait {
				if w.e == nil {
					continue
				}
				if w.e.done.Load() == w.round {
					w.e.abandoned.Store(false)
					f.record(o, w.e)
					continue
				}
				w.e.abandoned.Store(false) // stuck, not abandoned: not waited for again
				f.reporter.Fail(w.e.name, fmt.Errorf("collectors: field %s: collector did not return within %v; left out until it does", w.e.name, f.cfg.timeout))
			}
			return nil
		case <-ctx.Done():
			// The reader gave up on this collection; the next one waits for
			// the collectors still running rather than leave their fields out.
			f.giveUp(j)
			for _, w := range wait {
				if w.e != nil && w.e.busy.Load() {
					w.e.abandoned.Store(true)
				}
			}
			return nil
		case <-f.ctx.Done():
			f.release(j)
			return nil // unregistered
		}
	}
	return nil
}

// waited is a collector whose result a collection takes, and the round
// its run was started for.
type waited struct {
	e     *entry
	round uint64
}

// lock waits for the collection another reader is making, until ctx ends or
// budget passes; false if it gave up.
func (f *Fields) lock(ctx context.Context, budget time.Duration) bool {
	select {
	case f.collecting <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(budget)
	defer t.Stop()
	select {
	case f.collecting <- struct{}{}:
		return true
	case <-t.C:
	case <-ctx.Done():
	case <-f.ctx.Done():
	}
	return false
}

// dispatch gives j to the worker, starting one when there is none; it
// never blocks, as a worker without a job is waiting for one. f.collecting
// is held.
func (f *Fields) dispatch(j *job) {
	if f.worker == nil {
		f.worker = &worker{jobs: make(chan *job, 1)}
		f.running.Add(1)
		go f.work(f.worker)
	}
	f.worker.jobs <- j
}

// fanOut starts each collector of j not yet started on a goroutine of its
// own. f.collecting is held.
func (f *Fields) fanOut(j *job) {
	for e := j.claim(); e != nil; e = j.claim() {
		f.running.Add(1)
		go func() {
			defer f.ended()
			f.run(j.ctx, e, j.round)
		}()
	}
}

// giveUp ends a collection before all its results came: a worker still
// busy with it is retired, and collectors it did not start are freed for
// the next collection. f.collecting is held.
func (f *Fields) giveUp(j *job) {
	if j.unclaimed() || f.busyWith(j) {
		f.retire()
	}
	f.release(j)
}

// busyWith reports whether a collector of j is still running.
func (f *Fields) busyWith(j *job) bool {
	for _, e := range j.entries {
		if e.busy.Load() && e.round.Load() == j.round {
			return true
		}
	}
	return false
}

// retire lets the worker end once its collector returns, or at once when
// it is waiting for a job; the next dispatch starts another. f.collecting
// is held, and nothing sends to a retired worker's jobs, so closing them is
// safe.
func (f *Fields) retire() {
	if f.worker != nil {
		f.worker.retired.Store(true)
		close(f.worker.jobs)
		f.worker = nil
	}
}

// release frees the collectors of j that no worker started, so that the
// next collection runs them.
func (f *Fields) release(j *job) {
	for e := j.claim(); e != nil; e = j.claim() {
		e.busy.Store(false)
	}
}

// work runs the collectors of each job it is given, in order, until it is
// retired or the fields are unregistered.
func (f *Fields) work(w *worker) {
	defer f.ended()
	for {
		var j *job
		select {
		case j = <-w.jobs:
			if j == nil {
				return // retired while waiting
			}
		case <-f.ctx.Done():
			return
		}
		// A retired worker ends after the collector it is running; its
		// closed jobs end it should it have none.
		for e := j.claim(); e != nil; e = j.claim() {
			f.run(j.ctx, e, j.round)
			if w.retired.Load() || f.ctx.Err() != nil {
				return
			}
		}
	}
}

// ended counts a goroutine that ran collectors out.
func (f *Fields) ended() {
	if f.running.Add(-1) == 0 && f.isClosed() {
		f.drainOne.Do(func() { close(f.drained) })
	}
}

// run runs the collector of e, publishes its result and tells the
// collection. It never blocks.
func (f *Fields) run(ctx context.Context, e *entry, round uint64) {
	func() {
		defer func() {
			if p := recover(); p != nil {
				e.v, e.err = wire.Value{}, fmt.Errorf("panicked: %v", p)
			}
		}()
		e.v, e.err = e.c.fn(ctx)
	}()
	e.done.Store(round)
	if f.freeing != nil {
		f.freeing(e)
	}
	// Free the entry only now: the next run may start after this.
	e.busy.Store(false)
	select {
	case f.ready <- struct{}{}:
	default: // the collection has a signal waiting already
	}
}

// record observes the result of e's last run; f.collecting is held.
func (f *Fields) record(o metric.Observer, e *entry) {
	r := struct {
		v   wire.Value
		err error
	}{e.v, e.err}
	switch {
	case errors.Is(r.err, errNoValue):
		f.reporter.OK(e.name)
		return
	case r.err != nil:
		f.reporter.Fail(e.name, fmt.Errorf("collectors: field %s: %w; left out", e.name, r.err))
		return
	}
	f.reporter.OK(e.name)
	switch inst := e.inst.(type) {
	case metric.Int64Observable:
		if e.c.kind == convention.FieldString {
			state := truncate(r.v.Str, MaxStringLength)
			if e.stateOpts == nil || state != e.state {
				e.state = state
				e.stateOpts = []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(attribute.String(convention.ValueKey, state)))}
			}
			o.ObserveInt64(inst, 1, e.stateOpts...)
			return
		}
		o.ObserveInt64(inst, r.v.Int)
	case metric.Float64Observable:
		if e.c.kind == convention.FieldTimestamp {
			o.ObserveFloat64(inst, float64(r.v.Time.UnixMicro())/1e6)
			return
		}
		o.ObserveFloat64(inst, r.v.Float)
	}
}

func (f *Fields) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

// Unregister stops observing the fields, cancels the context of collectors
// still running and waits, until ctx is done, for them to return. It is safe
// to call more than once. The error names collectors that ignored their
// context and are still running; each holds one goroutine until it returns.
func (f *Fields) Unregister(ctx context.Context) error {
	f.adding.Lock() // an Add in progress registers before this unregisters
	f.mu.Lock()
	first := !f.closed
	f.closed = true
	reg := f.reg
	f.mu.Unlock()
	var err error
	if first {
		f.cancel()
		if reg != nil {
			err = reg.Unregister()
		}
		if f.running.Load() == 0 {
			f.drainOne.Do(func() { close(f.drained) })
		}
	}
	f.adding.Unlock()
	select {
	case <-f.drained:
		return err
	case <-ctx.Done():
		var busy []string
		f.mu.Lock()
		for _, e := range f.entries {
			if e.busy.Load() {
				busy = append(busy, e.name)
			}
		}
		f.mu.Unlock()
		return errors.Join(err, fmt.Errorf("collectors: still running after their context was cancelled: %s", strings.Join(busy, ", ")))
	}
}

func truncate(s string, n int) string { return wire.Truncate(s, n) }
