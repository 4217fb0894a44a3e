package collectors

import (
	"context"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/otel-heartbeat/heartbeat/internal/convention"
)

// A collection the reader gives up on (a graceful stop cancels the
// periodic one in flight) must not cost the next collection, the stopping
// heartbeat, the fields whose collectors were still running: it waits for
// them within its own budget instead of leaving them out.
func TestACollectionThatWasGivenUpOnDoesNotCostTheNextOne(t *testing.T) {
	mp, r := newProvider(t)
	var errs []error
	f := NewFields(WithMeterProvider(mp), WithTimeout(5e9), WithErrorHandler(func(err error) { errs = append(errs, err) }))
	defer f.Unregister(context.Background())

	entered := make(chan struct{})
	release := make(chan struct{})
	var slowCalls atomic.Int64
	must(t, f.Add("slow", Int(func() int64 {
		if slowCalls.Add(1) == 1 {
			close(entered)
			<-release
		}
		return 7
	})))
	// Once the second collection has decided what to wait for, "slow"
	// may return.
	f.started = func(round uint64) {
		if round == 2 {
			close(release)
		}
	}
	defer func() {
		if slowCalls.Load() == 1 && f.round < 2 {
			close(release) // the test failed before the second collection
		}
	}()

	// The first collection is given up on while "slow" runs.
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan struct{})
	go func() {
		defer close(first)
		var rm metricdata.ResourceMetrics
		_ = r.Collect(ctx, &rm)
	}()
	<-entered
	cancel()
	<-first

	// The second starts while "slow" still runs.
	got := collect(t, r)
	v, ok := got[convention.NumberName("slow")]
	if !ok {
		t.Fatalf("the field whose collector the given-up collection left running is missing: %v", got)
	}
	if dp := v.Data.(metricdata.Gauge[int64]).DataPoints; len(dp) != 1 || dp[0].Value != 7 {
		t.Errorf("slow = %v", dp)
	}
	if len(errs) != 0 {
		t.Errorf("reported: %v", errs)
	}
}
