package collectors

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/otel-heartbeat/heartbeat/internal/testing/poll"
)

// goid returns the id of the calling goroutine, from its stack header.
func goid() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	return string(bytes.Fields(buf)[1])
}

// Collectors that answer promptly run on one goroutine that outlives the
// collection, the same one every heartbeat: no goroutine is started per
// collector per heartbeat.
func TestPromptCollectorsShareOneLastingGoroutine(t *testing.T) {
	mp, r := newProvider(t)
	// A long budget, so that a loaded machine that delays the worker past
	// the stall time (an eighth of it) cannot start a second one.
	f := NewFields(WithMeterProvider(mp), WithTimeout(time.Minute))
	defer f.Unregister(context.Background())
	var mu sync.Mutex
	seen := map[string]int{}
	note := func() { mu.Lock(); seen[goid()]++; mu.Unlock() }
	must(t, f.Add("queue_size", Int(func() int64 { note(); return 1 })))
	must(t, f.Add("api_status", String(func() string { note(); return "ok" })))
	must(t, f.Add("last_ok", Timestamp(func() time.Time { note(); return time.Now() })))
	for range 5 {
		if ms := collect(t, r); len(ms) != 3 {
			t.Fatalf("%d fields collected, want 3", len(ms))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 {
		t.Fatalf("15 collector calls ran on %d goroutines, want 1: %v", len(seen), seen)
	}
}

// A collector that blocks, first in line, costs only its own field from the
// very heartbeat in which it blocks: those after it are handed to a new
// goroutine once it has held the worker past the stall time, and the
// goroutines it holds do not grow while it stays stuck.
func TestABlockingCollectorFirstInLineCostsOnlyItsField(t *testing.T) {
	mp, r := newProvider(t)
	f := NewFields(WithMeterProvider(mp), WithTimeout(400*time.Millisecond), WithErrorHandler(func(error) {}))
	release := make(chan struct{})
	var starts atomic.Int32
	must(t, f.Add("blocks", Int(func() int64 { starts.Add(1); <-release; return 1 })))
	must(t, f.Add("queue_size", Int(func() int64 { return 7 })))
	must(t, f.Add("api_status", String(func() string { return "ok" })))
	var goroutines []int
	for beat := range 4 {
		ms := collect(t, r)
		if dps := ms["heartbeat.queue_size"].Data.(metricdata.Gauge[int64]).DataPoints; len(dps) != 1 || dps[0].Value != 7 {
			t.Fatalf("beat %d: queue_size is missing", beat)
		}
		if dataPoints(ms["heartbeat.api_status.info"]) != 1 {
			t.Fatalf("beat %d: api_status is missing", beat)
		}
		if dataPoints(ms["heartbeat.blocks"]) != 0 {
			t.Fatalf("beat %d: the blocked field was observed", beat)
		}
		goroutines = append(goroutines, runtime.NumGoroutine())
	}
	if n := starts.Load(); n != 1 {
		t.Errorf("the blocked collector was started %d times", n)
	}
	// A worker retired on a loaded machine may still be on its way out.
	if !poll.Within(5*time.Second, func() bool { return runtime.NumGoroutine() <= goroutines[1] }) {
		t.Errorf("goroutines grew while the collector stayed stuck: %v, now %d", goroutines, runtime.NumGoroutine())
	}
	close(release)
	if err := f.Unregister(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A worker retired while it waits for its next collection ends at once, not
// at Unregister: a collection that gives up while its own collectors are
// done but an earlier one's are not retires an idle worker, and each such
// worker left waiting would be a goroutine lost until the service stops.
func TestARetiredIdleWorkerEnds(t *testing.T) {
	mp, r := newProvider(t)
	f := NewFields(WithMeterProvider(mp), WithTimeout(time.Second))
	defer f.Unregister(context.Background())
	must(t, f.Add("queue_size", Int(func() int64 { return 1 })))
	collect(t, r)
	if n := f.running.Load(); n != 1 {
		t.Fatalf("%d workers after a collection, want 1", n)
	}
	f.collecting <- struct{}{}
	f.retire()
	<-f.collecting
	poll.Until(t, 5*time.Second, "the retired idle worker to end", func() bool { return f.running.Load() == 0 })
	collect(t, r) // and the next collection starts another
	if n := f.running.Load(); n != 1 {
		t.Fatalf("%d workers after the next collection, want 1", n)
	}
}

// On one processor, a collector that computes past the budget without
// blocking is left out and reported, as on many: the collection gets the
// processor back when its budget ends (within the runtime's preemption,
// some 10 ms), not when the collector is done.
func TestABusyCollectorOnOneProcessorIsLeftOutAtTheBudget(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	mp, r := newProvider(t)
	var mu sync.Mutex
	var reports []string
	f := NewFields(WithMeterProvider(mp), WithTimeout(50*time.Millisecond), WithErrorHandler(func(err error) {
		mu.Lock()
		reports = append(reports, err.Error())
		mu.Unlock()
	}))
	busy := make(chan struct{}, 1)
	must(t, f.Add("busy", Int(func() int64 {
		busy <- struct{}{}
		for end := time.Now().Add(250 * time.Millisecond); time.Now().Before(end); {
		}
		return 1
	})))
	must(t, f.Add("queue_size", Int(func() int64 { return 7 })))
	ms := collect(t, r)
	<-busy
	mu.Lock()
	defer mu.Unlock()
	// The prompt collector shares the one processor with the busy one, so
	// on a loaded machine it may miss the budget too, and be reported.
	var busyReported bool
	for _, rep := range reports {
		busyReported = busyReported || strings.Contains(rep, "field busy:")
		if !strings.Contains(rep, "field busy:") && !strings.Contains(rep, "field queue_size:") {
			t.Errorf("reported %q", rep)
		}
	}
	if dataPoints(ms["heartbeat.busy"]) != 0 || !busyReported {
		t.Errorf("a collector busy for five budgets: observed %d times, reported %q; want left out and reported", dataPoints(ms["heartbeat.busy"]), reports)
	}
	if err := f.Unregister(context.Background()); err != nil {
		t.Fatal(err)
	}
}
