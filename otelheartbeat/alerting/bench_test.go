package alerting

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
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

// What the rules read of the tracker is what a walk of every instance
// would tell, ignored services left out, through a fleet that changes:
// instances heard, degraded and well again, stale, dead, stopped and
// forgotten.
func TestTheRulesReadWhatAWalkWould(t *testing.T) {
	walk := func(tr *watch.Tracker, now time.Time, c *config) *view {
		v := &view{fine: map[string]int{}, tracked: map[string]bool{}}
		tr.Range(func(in *watch.Instance) bool {
			if c.ignores(in.Service) {
				return true
			}
			v.n++
			v.tracked[in.Service] = true
			v.longest = max(v.longest, in.Interval)
			if in.State == watch.Alive && !in.Degraded(now) {
				v.fine[in.Service]++
				return true
			}
			v.few = append(v.few, *in)
			return true
		})
		return v
	}
	byKey := func(a, b watch.Instance) int {
		return cmp.Or(strings.Compare(a.Service, b.Service), strings.Compare(a.Instance, b.Instance))
	}
	for seed := range 20 {
		r := rand.New(rand.NewPCG(uint64(seed), 9))
		clock := &clock{now: time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)}
		tr := watch.NewTracker(watch.WithClock(clock), watch.WithRetention(time.Minute),
			watch.WithHealthRules(watch.HealthRule{Service: "s1", Field: "q", Op: watch.Greater, Number: 100}))
		c := &config{ignored: []string{"s2"}}
		for step := range 500 {
			if r.IntN(4) == 0 {
				clock.now = clock.now.Add(time.Duration(r.IntN(30)) * time.Second)
				tr.Tick()
			} else {
				m := &wire.Message{ServiceName: fmt.Sprintf("s%d", r.IntN(4)), InstanceID: fmt.Sprint(r.IntN(30)), Timestamp: clock.now,
					IntervalSeconds: float64(10 * (1 + r.IntN(3))), Has: wire.HasInterval,
					Fields: []wire.Field{{Key: "q", Value: wire.Int(int64(r.IntN(200)))}}}
				if r.IntN(30) == 0 {
					m.Status = wire.StatusStopping
				}
				tr.ObserveAt(m, clock.now)
			}
			got, want := look(tr, clock.now, c), walk(tr, clock.now, c)
			slices.SortFunc(got.few, byKey)
			slices.SortFunc(want.few, byKey)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d step %d: read\n%+v\nwant\n%+v", seed, step, got, want)
			}
		}
	}
}
