package collectors

import (
	"context"
	"errors"
	"fmt"
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

	mu      sync.Mutex
	entries []*entry
	reg     metric.Registration
	closed  bool
	usesCtx bool // some collector takes a context

	// collecting serializes collections (several readers may collect at
	// once) and guards what one collection reuses from the last.
	collecting sync.Mutex
	results    chan result // capacity MaxFields: each entry has at most one result outstanding
	budget     *time.Timer
	round      uint64

	// started, when set (by tests), is called once a collection has
	// started its collectors and decided which running ones to wait for.
	started func(round uint64)

	running  atomic.Int64
	drained  chan struct{}
	drainOne sync.Once
}

type entry struct {
	name  string
	c     Collector
	inst  metric.Observable
	busy  atomic.Bool
	round atomic.Uint64 // the collection it was last started for
	// abandoned: the collection that started it was given up on by its
	// reader before the result came; the next collection waits for it.
	abandoned atomic.Bool

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
	budget.Stop()
	return &Fields{
		cfg:      cfg,
		meter:    cfg.meter(),
		reporter: &report.Reporter{Handle: cfg.handle},
		ctx:      ctx,
		cancel:   cancel,
		drained:  make(chan struct{}),
		results:  make(chan result, MaxFields),
		budget:   budget,
	}
}

// Add registers the service field name, observed by c on every collection.
// name must be a valid field name: an ASCII letter, then letters, digits and
// underscores, at most 64 bytes, and none of the documented heartbeat keys.
// Adding a name twice, or more than MaxFields names, is an error.
func (f *Fields) Add(name string, c Collector) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrUnregistered
	}
	names := make([]string, len(f.entries))
	for i, e := range f.entries {
		names[i] = e.name
	}
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
	// heartbeat run concurrently under one budget, then drop the old one.
	insts := make([]metric.Observable, 0, len(f.entries)+1)
	for _, old := range f.entries {
		insts = append(insts, old.inst)
	}
	insts = append(insts, e.inst)
	reg, err := f.meter.RegisterCallback(f.observe, insts...)
	if err != nil {
		return fmt.Errorf("collectors: field %q: %w", name, err)
	}
	if f.reg != nil {
		_ = f.reg.Unregister()
	}
	f.reg = reg
	f.entries = append(f.entries, e)
	f.usesCtx = f.usesCtx || c.usesCtx
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

type result struct {
	e     *entry
	round uint64
	v     wire.Value
	err   error
}

// observe runs every idle collector concurrently and observes those that
// return within the budget. It never returns an error: that would make the
// SDK drop the whole heartbeat.
func (f *Fields) observe(ctx context.Context, o metric.Observer) error {
	defer func() {
		if r := recover(); r != nil {
			f.reporter.Fail("observe", fmt.Errorf("collectors: observing service fields panicked: %v", r))
		}
	}()
	f.collecting.Lock()
	defer f.collecting.Unlock()

	budget := f.cfg.timeout
	if deadline, ok := ctx.Deadline(); ok {
		budget = min(budget, time.Until(deadline))
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
	pending := 0
	var late map[*entry]bool // running for a collection that was given up on
	for _, e := range f.entries {
		if !e.busy.CompareAndSwap(false, true) {
			if e.abandoned.Load() {
				// Its result is due any moment and is as fresh as a new one.
				if late == nil {
					late = make(map[*entry]bool)
				}
				late[e] = true
				pending++
			}
			// Otherwise still running past an earlier budget: already reported.
			continue
		}
		e.abandoned.Store(false)
		e.round.Store(round)
		pending++
		f.running.Add(1)
		go f.run(cctx, e, round)
	}
	entries := f.entries
	f.mu.Unlock()
	if f.started != nil {
		f.started(round)
	}
	if pending == 0 {
		return nil
	}

	f.budget.Reset(budget)
	defer f.budget.Stop()
	for pending > 0 {
		select {
		case r := <-f.results:
			if r.round != round {
				if late[r.e] {
					delete(late, r.e)
					r.e.abandoned.Store(false)
					pending--
					f.record(o, r)
				}
				continue // a late result from an earlier collection
			}
			pending--
			f.record(o, r)
		case <-f.budget.C:
			for _, e := range entries {
				if (e.round.Load() == round || late[e]) && e.busy.Load() {
					e.abandoned.Store(false) // stuck, not abandoned: not waited for again
					f.reporter.Fail(e.name, fmt.Errorf("collectors: field %s: collector did not return within %v; left out until it does", e.name, f.cfg.timeout))
				}
			}
			return nil
		case <-ctx.Done():
			// The reader gave up on this collection; the next one waits for
			// the collectors still running rather than leave their fields out.
			for _, e := range entries {
				if (e.round.Load() == round || late[e]) && e.busy.Load() {
					e.abandoned.Store(true)
				}
			}
			return nil
		case <-f.ctx.Done():
			return nil // unregistered
		}
	}
	return nil
}

func (f *Fields) run(ctx context.Context, e *entry, round uint64) {
	defer func() {
		e.busy.Store(false)
		if f.running.Add(-1) == 0 && f.isClosed() {
			f.drainOne.Do(func() { close(f.drained) })
		}
	}()
	r := result{e: e, round: round}
	func() {
		defer func() {
			if p := recover(); p != nil {
				r.err = fmt.Errorf("panicked: %v", p)
			}
		}()
		r.v, r.err = e.c.fn(ctx)
	}()
	f.results <- r // never blocks: one outstanding result per entry at most
}

// record observes one result; f.collecting is held.
func (f *Fields) record(o metric.Observer, r result) {
	e := r.e
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
