package collectors

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/otel-heartbeat/heartbeat/internal/convention"
)

// Adding fields while a reader collects: the collection holds the SDK's
// pipeline lock while it observes, and registering a callback needs it, so
// Add must not hold what observe takes.
func TestAddDuringACollectionDoesNotDeadlock(t *testing.T) {
	mp, r := newProvider(t)
	f := NewFields(WithMeterProvider(mp), WithTimeout(time.Second))
	defer f.Unregister(context.Background())
	must(t, f.Add("f0", Int(func() int64 { return 1 })))
	stopCollecting := collectOverAndOver(r)
	done := make(chan error, 1)
	go func() {
		for i := 1; i < MaxFields; i++ {
			if err := f.Add(fmt.Sprintf("f%d", i), Int(func() int64 { return 1 })); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		stopCollecting()
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Add and a collection deadlocked")
	}
	if ms := collect(t, r); len(ms) != MaxFields {
		t.Errorf("%d fields collected after the adds, want %d", len(ms), MaxFields)
	}
}

// Readers that give up on collection after collection, right after the
// collectors started, leave nothing behind: no goroutine waits to hand over
// a result nobody reads, and Unregister ends every one.
func TestGivenUpCollectionsLeaveNoGoroutineBehind(t *testing.T) {
	mp, r := newProvider(t)
	f := NewFields(WithMeterProvider(mp), WithTimeout(time.Second), WithErrorHandler(func(error) {}))
	for i := range MaxFields {
		must(t, f.Add(fmt.Sprintf("f%d", i), Int(func() int64 { return 1 })))
	}
	var cancel context.CancelFunc
	// The reader gives up while the worker runs: as a reader delayed
	// between starting the collectors and waiting for them would.
	f.started = func(uint64) { runtime.Gosched(); cancel() }
	for range 2000 {
		var ctx context.Context
		ctx, cancel = context.WithCancel(context.Background())
		var rm metricdata.ResourceMetrics
		_ = r.Collect(ctx, &rm)
		cancel()
	}
	f.started = nil
	if ms := collect(t, r); len(ms) != MaxFields {
		t.Errorf("%d fields in a collection after 2000 given up, want %d", len(ms), MaxFields)
	}
	ctx, cancelU := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelU()
	if err := f.Unregister(ctx); err != nil || f.running.Load() != 0 {
		t.Fatalf("Unregister: %v; goroutines running collectors: %d", err, f.running.Load())
	}
}

// A collection waiting for the run an earlier collection gave up on records
// that run's value, not an older one's.
func TestAnAbandonedRunsResultIsItsOwn(t *testing.T) {
	mp, r := newProvider(t)
	f := NewFields(WithMeterProvider(mp), WithTimeout(5*time.Second), WithErrorHandler(func(error) {}))
	defer f.Unregister(context.Background())
	var calls atomic.Int64
	release := make(chan struct{})
	must(t, f.Add("v", Int(func() int64 {
		n := calls.Add(1)
		if n == 2 {
			<-release // the second run is slow
		}
		return n // the value says which run it came from
	})))
	var cancel context.CancelFunc
	f.started = func(round uint64) {
		switch round {
		case 1: // given up on once run 1 has its result
			for f.entries[0].done.Load() != 1 {
				runtime.Gosched()
			}
			cancel()
		case 2: // given up on while run 2 is running
			for calls.Load() < 2 {
				runtime.Gosched()
			}
			cancel()
		case 3:
			time.AfterFunc(50*time.Millisecond, func() { close(release) })
		}
	}
	for range 2 {
		var ctx context.Context
		ctx, cancel = context.WithCancel(context.Background())
		var rm metricdata.ResourceMetrics
		_ = r.Collect(ctx, &rm)
		cancel()
	}
	ms := collect(t, r) // waits for run 2, the abandoned one
	m, ok := ms[convention.NumberName("v")]
	if !ok {
		t.Fatal("the abandoned run's field is missing")
	}
	if v := m.Data.(metricdata.Gauge[int64]).DataPoints[0].Value; v != 2 {
		t.Errorf("recorded the value of run %d, want run 2, the one waited for", v)
	}
}

// Many collectors that block, or that are slow but within the budget, in a
// row before a prompt one: none of them costs the others their fields, and
// each that is left out is reported.
func TestManySlowCollectorsInARowCostOnlyTheirOwnFields(t *testing.T) {
	t.Run("blocking", func(t *testing.T) {
		mp, r := newProvider(t)
		f := NewFields(WithMeterProvider(mp), WithTimeout(400*time.Millisecond), WithErrorHandler(func(error) {}))
		release := make(chan struct{})
		defer func() { close(release); f.Unregister(context.Background()) }()
		for i := range 9 {
			must(t, f.Add(fmt.Sprintf("blocks%d", i), Int(func() int64 { <-release; return 1 })))
		}
		must(t, f.Add("prompt", Int(func() int64 { return 7 })))
		if ms := collect(t, r); len(ms) != 1 {
			t.Fatalf("%d fields collected, want the prompt one alone", len(ms))
		}
	})
	t.Run("slow but within the budget", func(t *testing.T) {
		mp, r := newProvider(t)
		var mu sync.Mutex
		var errs []error
		f := NewFields(WithMeterProvider(mp), WithTimeout(400*time.Millisecond),
			WithErrorHandler(func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }))
		defer f.Unregister(context.Background())
		for i := range 9 {
			must(t, f.Add(fmt.Sprintf("slow%d", i), Int(func() int64 { time.Sleep(60 * time.Millisecond); return 1 })))
		}
		must(t, f.Add("prompt", Int(func() int64 { return 7 })))
		if ms := collect(t, r); len(ms) != 10 {
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("%d of 10 fields collected; each collector takes 60ms of a 400ms budget; reported: %v", len(ms), errs)
		}
	})
}

// Collectors that each answer well within a tick keep one worker, however
// many ticks the whole collection takes.
func TestPromptCollectorsKeepOneWorkerAcrossTicks(t *testing.T) {
	mp, r := newProvider(t)
	// 32 collectors of 2ms: 64ms a collection, across ticks of 50ms and
	// under half the 400ms budget, with room for a slow, loaded machine.
	f := NewFields(WithMeterProvider(mp), WithTimeout(400*time.Millisecond), WithErrorHandler(func(error) {}))
	defer f.Unregister(context.Background())
	var mu sync.Mutex
	seen := map[string]bool{}
	for i := range 32 {
		must(t, f.Add(fmt.Sprintf("f%d", i), Int(func() int64 {
			mu.Lock()
			seen[goid()] = true
			mu.Unlock()
			time.Sleep(2 * time.Millisecond) // the collector's own work
			return 1
		})))
	}
	for range 5 {
		collect(t, r)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) > 1 {
		t.Errorf("160 collector calls of 2ms (ticks of 50ms) ran on %d goroutines, want 1", len(seen))
	}
}

// A reader that collects while another does waits for it only within its
// own context and budget.
func TestASecondReaderWaitsWithinItsOwnContextAndBudget(t *testing.T) {
	r1, r2 := sdkmetric.NewManualReader(), sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r1), sdkmetric.WithReader(r2))
	defer mp.Shutdown(context.Background())
	f := NewFields(WithMeterProvider(mp), WithTimeout(400*time.Millisecond), WithErrorHandler(func(error) {}))
	defer f.Unregister(context.Background())
	started := make(chan struct{}, 1)
	must(t, f.Add("slowish", Int(func() int64 {
		select {
		case started <- struct{}{}:
		default:
		}
		time.Sleep(300 * time.Millisecond)
		return 1
	})))
	for _, c := range []struct {
		name    string
		timeout time.Duration // 0: none
		within  time.Duration
	}{{"ctx ends at 100ms", 100 * time.Millisecond, 250 * time.Millisecond}, {"no deadline", 0, 400*time.Millisecond + 150*time.Millisecond}} {
		first := make(chan struct{})
		go func() {
			defer close(first)
			var rm metricdata.ResourceMetrics
			_ = r1.Collect(context.Background(), &rm)
		}()
		<-started // the first reader's collection is running
		ctx := context.Background()
		if c.timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, c.timeout)
			defer cancel()
		}
		t0 := time.Now()
		var rm metricdata.ResourceMetrics
		_ = r2.Collect(ctx, &rm)
		if took := time.Since(t0); took > c.within {
			t.Errorf("%s: the second reader returned after %v, want within %v", c.name, took, c.within)
		}
		<-first
		// Let the slow collector end before the next case starts it again.
		for f.entries[0].busy.Load() {
			runtime.Gosched()
		}
	}
}

// While Add swaps the callback, a collection may call the old and the new
// one; the old one observes only the fields it was registered with, so the
// SDK has nothing to complain of.
func TestAddingDuringCollectionsObservesOnlyRegisteredFields(t *testing.T) {
	var mu sync.Mutex
	var complaints []string
	otel.SetLogger(funcr.New(func(prefix, args string) {
		mu.Lock()
		complaints = append(complaints, prefix+" "+args)
		mu.Unlock()
	}, funcr.Options{}))
	defer otel.SetLogger(logr.Discard())
	mp, r := newProvider(t)
	f := NewFields(WithMeterProvider(mp), WithTimeout(time.Second))
	defer f.Unregister(context.Background())
	must(t, f.Add("f0", Int(func() int64 { return 1 })))
	stopCollecting := collectOverAndOver(r)
	for i := 1; i < MaxFields; i++ {
		must(t, f.Add(fmt.Sprintf("f%d", i), Int(func() int64 { return 1 })))
	}
	stopCollecting()
	mu.Lock()
	defer mu.Unlock()
	for _, c := range complaints {
		if strings.Contains(c, "not registered") || strings.Contains(c, "unregistered") {
			t.Fatalf("the SDK complained while fields were added: %s", c)
		}
	}
}

// collectOverAndOver collects from r in a loop on a goroutine of its own
// until the returned stop, which waits for it to end.
func collectOverAndOver(r *sdkmetric.ManualReader) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			default:
			}
			var rm metricdata.ResourceMetrics
			_ = r.Collect(context.Background(), &rm)
		}
	}()
	return func() { close(quit); <-done }
}

// A collection that starts while the run the last one recorded has
// published its result but not yet freed its field takes that result: the
// field is not left out as if its collector were stuck.
func TestAFieldBetweenItsResultAndItsFreeingIsCollected(t *testing.T) {
	mp, r := newProvider(t)
	f := NewFields(WithMeterProvider(mp), WithTimeout(300*time.Millisecond), WithErrorHandler(func(error) {}))
	defer f.Unregister(context.Background())
	must(t, f.Add("v", Int(func() int64 { return 7 })))
	published, freed := make(chan struct{}), make(chan struct{})
	release := sync.OnceFunc(func() { close(freed) })
	defer release() // before Unregister, which waits for the run
	var once sync.Once
	f.freeing = func(*entry) {
		once.Do(func() { close(published); <-freed })
	}
	first := collect(t, r) // its run stops between publishing and freeing
	<-published
	second := collect(t, r)
	release()
	if len(first) != 1 || len(second) != 1 {
		t.Errorf("fields collected: %d, then %d while the run was freeing its field; want 1 and 1", len(first), len(second))
	}
}
