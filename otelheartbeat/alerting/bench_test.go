package alerting

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// BenchmarkEvaluateAtOneHundredThousand measures one evaluation of the
// rules, as the panel runs every second, over 100,000 instances of 50
// services, ten of them dead, against a real redis-server. Beside it, in
// the same run, what a copy of every instance costs (Tracker.Snapshot),
// which each evaluation paid before it read the tracker in place.
func BenchmarkEvaluateAtOneHundredThousand(b *testing.B) {
	c := &clock{now: time.Date(2025, 1, 16, 8, 0, 0, 0, time.UTC)}
	tr := watch.NewTracker(watch.WithClock(c), watch.WithHeartbeats())
	for i := range 100_000 {
		interval := 60.0
		if i%10_000 == 0 {
			interval = 1 // dead by the time it is evaluated
		}
		tr.Observe(&wire.Message{ServiceName: fmt.Sprintf("service_%02d", i%50), InstanceID: fmt.Sprintf("i-%06d", i), Timestamp: c.now,
			HeartbeatCount: 1, IntervalSeconds: interval, Has: wire.HasHeartbeatCount | wire.HasInterval})
	}
	c.now = c.now.Add(5 * time.Second)
	tr.Tick()
	e, err := New(tr, redistest.Start(b).Client(b))
	if err != nil {
		b.Fatal(err)
	}
	// Ten instances dead, of one service of 2,000 (still up): ten alerts.
	if fired := e.Evaluate(context.Background(), c.now, true); len(fired) != 10 {
		b.Fatalf("%d alerts fired, want the ten dead instances'", len(fired))
	}
	start := time.Now()
	const copies = 5
	for range copies {
		_ = tr.Snapshot()
	}
	snapshot := time.Since(start) / copies
	b.ReportAllocs()
	for b.Loop() {
		e.Evaluate(context.Background(), c.now, true)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/evaluation")
	b.ReportMetric(float64(snapshot.Microseconds())/1000, "snapshot-ms")
}
