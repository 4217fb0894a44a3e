package watch

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

var t0 = time.Date(2025, 1, 16, 8, 30, 0, 0, time.UTC)

func beat(service, id string, count int64) *wire.Message {
	return &wire.Message{ServiceName: service, InstanceID: id, Timestamp: t0, HeartbeatCount: count, Has: wire.HasHeartbeatCount}
}

func withInterval(m *wire.Message, d time.Duration) *wire.Message {
	m.IntervalSeconds, m.Has = d.Seconds(), m.Has|wire.HasInterval
	return m
}

func TestClassifyAtTheSeedsEdges(t *testing.T) {
	for _, tt := range []struct {
		age  time.Duration
		want State
	}{
		{0, Alive},
		{89900 * time.Millisecond, Alive},
		{90 * time.Second, Stale},
		{179900 * time.Millisecond, Stale},
		{180 * time.Second, Dead},
		{time.Hour, Dead},
	} {
		if got := Classify(tt.age, wire.DefaultInterval); got != tt.want {
			t.Errorf("age %v: %v, want %v", tt.age, got, tt.want)
		}
	}
	// Scaled by the instance's interval.
	if got := Classify(1499*time.Millisecond, time.Second); got != Alive {
		t.Errorf("1.499s at 1s: %v", got)
	}
	if got := Classify(1500*time.Millisecond, time.Second); got != Stale {
		t.Errorf("1.5s at 1s: %v", got)
	}
	if got := Classify(3*time.Second, time.Second); got != Dead {
		t.Errorf("3s at 1s: %v", got)
	}
}

func TestSilenceIsDetectedByTheTrackersOwnTiming(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock))
	k := Key{"tracker_fetcher", "a1b2c3d4"}
	got := tr.Observe(beat(k.Service, k.Instance, 1)) // no interval_seconds: 60 s
	if len(got) != 1 || got[0].From != Unknown || got[0].To != Alive {
		t.Fatalf("first heartbeat: %+v", got)
	}
	if d, _ := tr.NextDeadline(); !d.Equal(t0.Add(90 * time.Second)) {
		t.Errorf("next deadline %v", d)
	}

	steps := []struct {
		at   time.Duration
		want string
	}{
		{89900 * time.Millisecond, ""},
		{90 * time.Second, "alive->stale@1m30s"},
		{100 * time.Second, ""},
		{179900 * time.Millisecond, ""},
		{180 * time.Second, "stale->dead@3m0s"},
		{10 * time.Minute, ""},
	}
	for _, s := range steps {
		clock.t = t0.Add(s.at)
		if got := describe(tr.Tick()); got != s.want {
			t.Errorf("at %v: %q, want %q", s.at, got, s.want)
		}
		if inst, _ := tr.Get(k); s.at < 90*time.Second && inst.State != Alive {
			t.Errorf("at %v: %v", s.at, inst.State)
		}
	}

	// It comes back: recovered.
	got = tr.Observe(beat(k.Service, k.Instance, 12))
	if len(got) != 1 || !got[0].Recovered() {
		t.Fatalf("recovery: %+v", got)
	}
	if inst, _ := tr.Get(k); inst.Lost != 10 {
		t.Errorf("lost %d heartbeats, want 10 (count went 1 -> 12)", inst.Lost)
	}
}

func describe(ts []Transition) string {
	s := ""
	for _, tr := range ts {
		if s != "" {
			s += ","
		}
		s += fmt.Sprintf("%v->%v@%v", tr.From, tr.To, tr.Age)
	}
	return s
}

func TestLateTickReportsEveryStepOnce(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock))
	tr.Observe(withInterval(beat("s", "i", 1), time.Second))
	clock.Advance(10 * time.Second)
	if got := describe(tr.Tick()); got != "alive->stale@1.5s,stale->dead@3s" {
		t.Errorf("late tick: %q", got)
	}
	if got := tr.Tick(); len(got) != 0 {
		t.Errorf("reported twice: %+v", got)
	}
}

func TestHeartbeatsKeepAnInstanceAlive(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock))
	for i := int64(1); i <= 100; i++ {
		tr.Observe(withInterval(beat("s", "i", i), time.Second))
		clock.Advance(time.Second)
		if got := tr.Tick(); len(got) != 0 {
			t.Fatalf("beat %d: %+v", i, got)
		}
	}
}

func TestGracefulStopIsStoppedNotDeadAndIsForgotten(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock), WithRetention(time.Minute))
	tr.Observe(beat("s", "i", 1))
	clock.Advance(30 * time.Second)
	m := beat("s", "i", 2)
	m.Status = wire.StatusStopping
	got := tr.Observe(m)
	if len(got) != 1 || got[0].To != Stopped {
		t.Fatalf("stop: %+v", got)
	}
	clock.Advance(59 * time.Second)
	if got := tr.Tick(); len(got) != 0 || tr.Len() != 1 {
		t.Fatalf("a stopped instance changed state: %+v", got)
	}
	clock.Advance(time.Second)
	tr.Tick()
	if tr.Len() != 0 {
		t.Error("not forgotten after the retention period")
	}
}

func TestDeadInstancesAreForgottenAfterRetention(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock), WithRetention(5*time.Minute))
	tr.Observe(beat("s", "i", 1))
	clock.Advance(3 * time.Minute)
	tr.Tick() // dead at 180 s
	clock.Advance(5*time.Minute - time.Second)
	tr.Tick()
	if tr.Len() != 1 {
		t.Fatal("forgotten too early")
	}
	clock.Advance(time.Second)
	tr.Tick()
	if tr.Len() != 0 {
		t.Error("still remembered")
	}
}

// A service's instances are listed from its own index of them, which
// must follow every instance forgotten, from wherever in the index, and
// give its room back when the service shrinks.
func TestAServiceListsItsInstancesAfterMostAreForgotten(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock), WithRetention(time.Minute), WithHeartbeats())
	for i := range 1000 {
		tr.Observe(beat("s", fmt.Sprintf("%04d", i), 1))
		tr.Observe(beat("other", fmt.Sprintf("%04d", i), 1))
	}
	clock.Advance(3 * time.Minute)
	kept := map[string]bool{}
	for i := 0; i < 1000; i += 37 { // heard again, from all over the index
		id := fmt.Sprintf("%04d", i)
		tr.Observe(beat("s", id, 2))
		kept[id] = true
	}
	tr.Tick() // the others dead
	clock.Advance(time.Minute)
	tr.Tick() // and forgotten
	got := tr.ServiceInstances("s")
	if len(got) != len(kept) {
		t.Fatalf("%d instances listed, want %d", len(got), len(kept))
	}
	for i, in := range got {
		if !kept[in.Instance] || (i > 0 && got[i-1].Instance >= in.Instance) {
			t.Fatalf("listed %q at %d: want each instance heard again once, in order", in.Instance, i)
		}
	}
	if alive := tr.Alive("s"); len(alive) != len(kept) {
		t.Errorf("%d alive, want %d", len(alive), len(kept))
	}
	n := 0
	tr.RangeService("s", func(in *Instance) bool { n++; return true })
	if n != len(kept) {
		t.Errorf("RangeService visited %d, want %d", n, len(kept))
	}
	if got := tr.ServiceInstances("other"); len(got) != 0 {
		t.Errorf("a forgotten service lists %d instances", len(got))
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	svc := tr.services["s"]
	if c := cap(svc.members); c > 4*len(kept) {
		t.Errorf("the index of %d instances holds room for %d", len(kept), c)
	}
	for i, e := range svc.members {
		if int(e.member) != i {
			t.Fatalf("member %d says it is at %d", i, e.member)
		}
	}
}

func TestObserveAtAnOlderReceiveTime(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock))
	// A latest-state key 100 s old at a 60 s interval: stale at once.
	got := tr.ObserveAt(beat("s", "i", 5), t0.Add(-100*time.Second))
	if len(got) != 1 || got[0].To != Stale {
		t.Fatalf("%+v", got)
	}
	// An older observation than what is known changes nothing.
	tr.Observe(beat("s", "i", 6))
	if got := tr.ObserveAt(beat("s", "i", 4), t0.Add(-time.Second)); got != nil {
		t.Errorf("%+v", got)
	}
	if inst, _ := tr.Get(Key{"s", "i"}); inst.Count != 6 {
		t.Errorf("count %d", inst.Count)
	}
}

func TestServicesAndBounds(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock), WithMaxInstances(3))
	tr.Observe(beat("a", "1", 1))
	tr.Observe(beat("a", "2", 1))
	clock.Advance(100 * time.Second)
	tr.Observe(beat("b", "1", 1))
	tr.Tick()
	sum := tr.Services()
	if len(sum) != 2 || sum[0] != (ServiceSummary{Name: "a", Counts: Counts{Stale: 2}}) || sum[1] != (ServiceSummary{Name: "b", Counts: Counts{Alive: 1}}) {
		t.Errorf("services %+v", sum)
	}
	snap := tr.Snapshot()
	if len(snap) != 3 || snap[0].Key != (Key{"a", "1"}) || snap[2].Key != (Key{"b", "1"}) {
		t.Errorf("snapshot %+v", snap)
	}
}

// A burst of made-up instance ids that fills the tracker must not hide a
// real instance that appears after it: at the bound, the instance silent
// the longest makes room, and the eviction is counted.
func TestAtTheBoundTheLongestSilentIsEvicted(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock), WithMaxInstances(3))
	tr.Observe(beat("real", "1", 1))
	clock.Advance(time.Second)
	tr.Observe(beat("fake", "1", 1))
	clock.Advance(time.Second)
	tr.Observe(beat("fake", "2", 1))
	clock.Advance(time.Second)
	tr.Observe(beat("real", "1", 2)) // heard again: now the most recent
	clock.Advance(time.Second)
	got := tr.Observe(beat("payments", "1", 1))
	if len(got) != 1 || got[0].To != Alive {
		t.Fatalf("new instance at the bound: %+v", got)
	}
	if _, ok := tr.Get(Key{"payments", "1"}); !ok {
		t.Fatal("new instance not tracked")
	}
	if _, ok := tr.Get(Key{"fake", "1"}); ok {
		t.Error("the longest-silent instance was kept")
	}
	if _, ok := tr.Get(Key{"real", "1"}); !ok {
		t.Error("an instance heard recently was evicted")
	}
	if tr.Len() != 3 || tr.Evicted() != 1 {
		t.Errorf("len %d evicted %d, want 3 and 1", tr.Len(), tr.Evicted())
	}
	// The evicted instance left nothing behind: no deadline fires for it.
	clock.Advance(time.Hour)
	for _, tn := range tr.Tick() {
		if tn.Key == (Key{"fake", "1"}) {
			t.Errorf("evicted instance still has a deadline: %+v", tn)
		}
	}
}

// A flood of made-up ids many times the bound: the instances silent the
// longest go first, in the order they fell silent (the dead before the
// fillers heard after them, the fillers before the flood), instances that
// keep beating through the flood all survive, and every eviction is
// counted. Nothing evicted is reported again, and the service names of
// evicted instances are released.
func TestAFloodEvictsTheLongestSilentFirst(t *testing.T) {
	const bound, dead, fillers, real, flood = 50, 5, 35, 10, 1000
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock), WithMaxInstances(bound))
	var order []Key // the expected order of eviction
	for i := 0; i < dead; i++ {
		// Peers that have run for an hour, heard one by one: none is
		// another's replacement.
		k := Key{"crashed", fmt.Sprint(i)}
		tr.Observe(up(k.Service, k.Instance, 1, time.Hour))
		order = append(order, k)
		clock.Advance(time.Second)
	}
	for i := 0; i < fillers; i++ {
		k := Key{"quiet", fmt.Sprint(i)}
		tr.Observe(beat(k.Service, k.Instance, 1)) // 60 s: alive through the flood
		order = append(order, k)
		clock.Advance(10 * time.Millisecond)
	}
	count := int64(1)
	beatReal := func() {
		for i := 0; i < real; i++ {
			tr.Observe(withInterval(beat("real", fmt.Sprint(i), count), time.Second))
		}
		count++
	}
	beatReal()
	clock.Advance(5 * time.Second)
	beatReal()
	tr.Tick()
	for i := 0; i < dead; i++ {
		if in, _ := tr.Get(order[i]); in.State != Dead {
			t.Fatalf("%v is %v before the flood, want dead", order[i], in.State)
		}
	}
	if tr.Len() != bound || tr.Evicted() != 0 {
		t.Fatalf("before the flood: %d tracked, %d evicted", tr.Len(), tr.Evicted())
	}

	evicted := map[Key]bool{}
	for i := 0; i < flood; i++ {
		k := Key{"flood", fmt.Sprintf("%08x-0000-4000-8000-000000000000", i)}
		tr.Observe(beat(k.Service, k.Instance, 1))
		order = append(order, k)
		// Each new id past the bound evicts exactly the next one in order.
		n := tr.Evicted()
		if n != int64(i+1) {
			t.Fatalf("after %d flood ids: %d evicted, want %d", i+1, n, i+1)
		}
		gone := order[n-1]
		if _, ok := tr.Get(gone); ok {
			t.Fatalf("after %d flood ids: %v, silent the longest, is still tracked", i+1, gone)
		}
		if _, ok := tr.Get(order[n]); !ok {
			t.Fatalf("after %d flood ids: %v was evicted before %v, silent longer", i+1, order[n], gone)
		}
		evicted[gone] = true
		clock.Advance(10 * time.Millisecond)
		if i%10 == 9 {
			beatReal() // every 100 ms, well inside the bound's turnover
		}
		for _, tn := range tr.Tick() {
			if evicted[tn.Key] {
				t.Fatalf("a transition of an evicted instance: %+v", tn)
			}
		}
	}
	for i := 0; i < real; i++ {
		if in, ok := tr.Get(Key{"real", fmt.Sprint(i)}); !ok || in.State != Alive {
			t.Errorf("real instance %d, beating through the flood: tracked %v, %v", i, ok, in.State)
		}
	}
	if tr.Len() != bound || tr.Evicted() != flood {
		t.Errorf("after the flood: %d tracked, %d evicted; want %d and %d", tr.Len(), tr.Evicted(), bound, flood)
	}
	if n := tr.serviceNames(); n != 2 {
		t.Errorf("%d service names held, want 2 (real, flood)", n)
	}
}

// The tracker keeps one copy of each service name while an instance of
// it is tracked, and none after: a burst of distinct names cannot grow it
// for good.
func TestServiceNamesAreReleasedWithTheirInstances(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock), WithRetention(time.Minute))
	for i := 0; i < 1000; i++ {
		tr.Observe(beat(fmt.Sprint("svc_", i), "1", 1))
	}
	tr.Observe(beat("svc_0", "2", 1))
	if n := tr.serviceNames(); n != 1000 {
		t.Fatalf("%d service names held, want 1000", n)
	}
	clock.Advance(time.Hour)
	tr.Tick() // stale, dead
	clock.Advance(time.Hour)
	tr.Tick() // forgotten
	if tr.Len() != 0 || tr.serviceNames() != 0 {
		t.Errorf("after every instance was forgotten: %d instances, %d service names held", tr.Len(), tr.serviceNames())
	}
}

// BenchmarkTickNothingDue measures a tick over a million tracked instances
// when no deadline has passed: it must not scan them.
func BenchmarkTickNothingDue(b *testing.B) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock))
	for i := 0; i < 1_000_000; i++ {
		tr.Observe(beat("service_"+fmt.Sprint(i%100), fmt.Sprint(i), 1))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if got := tr.Tick(); len(got) != 0 {
			b.Fatal(got)
		}
	}
}

// BenchmarkObserve is the tracker's cost per heartbeat with 100,000
// instances tracked, heartbeats arriving in fleet order.
func BenchmarkObserve(b *testing.B) { observeFleet(b, 0) }

// BenchmarkObserveAndTick is BenchmarkObserve with the ticks a monitor
// makes (every 1,000 heartbeats, 0.6 s of this fleet's time), which
// re-file an instance whose old deadline comes up: the tracker's whole
// cost per heartbeat in a steady fleet. It reports how many of those
// re-filings, O(log n) each, a heartbeat costs.
func BenchmarkObserveAndTick(b *testing.B) { observeFleet(b, 1000) }

// observeFleet observes 100,000 instances' heartbeats every minute, in
// fleet order, and ticks every tickEvery heartbeats (0: never).
func observeFleet(b *testing.B, tickEvery int) {
	// From now, with its monotonic reading, as a monitor's times come:
	// comparing and subtracting them costs what it costs there.
	clock := &fakeClock{t: time.Now()}
	tr := NewTracker(WithClock(clock))
	const n = 100_000
	msgs := make([]*wire.Message, n)
	for i := range msgs {
		msgs[i] = withInterval(beat(fmt.Sprintf("service_%03d", i%50), fmt.Sprintf("%08x-e5f6-7890-abcd-ef1234567890", i), 1), time.Minute)
		tr.Observe(msgs[i])
	}
	b.ReportAllocs()
	refiled := tr.refiled
	i := 0
	for b.Loop() {
		m := msgs[i%n]
		m.HeartbeatCount++
		clock.t = clock.t.Add(time.Minute / n)
		tr.Observe(m)
		if i++; tickEvery > 0 && i%tickEvery == 0 {
			if got := tr.Tick(); len(got) != 0 {
				b.Fatalf("a steady fleet changed: %v", got[0])
			}
		}
	}
	if tickEvery > 0 {
		b.ReportMetric(float64(tr.refiled-refiled)/float64(i), "refiles/heartbeat")
	}
}

// BenchmarkMemoryPerInstance reports the heap a tracker keeps per instance
// at 1,000,000 instances, everything included: its entry, its service's index and heap
// slots, and the instance id it retains from the heartbeat.
func BenchmarkMemoryPerInstance(b *testing.B) {
	heapPerInstance(b, 1_000_000, func(i int) string { return fmt.Sprintf("service_%03d", i%100) })
}

// BenchmarkMemoryPerInstanceAServiceEach is BenchmarkMemoryPerInstance at
// 100,000 instances each of a service of its own, the service's names and
// counts included: a fleet of one instance a service, or a flood of
// made-up service names.
func BenchmarkMemoryPerInstanceAServiceEach(b *testing.B) {
	heapPerInstance(b, 100_000, func(i int) string { return fmt.Sprintf("service_%08x", i) })
}

// heapPerInstance reports the heap a tracker of n instances keeps per
// instance, instance i of service(i).
func heapPerInstance(b *testing.B, n int, service func(i int) string) {
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		tr := NewTracker()
		for i := 0; i < n; i++ {
			tr.Observe(beat(service(i), fmt.Sprintf("%08x-e5f6-7890-abcd-ef1234567890", i), 1))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "B/instance")
		runtime.KeepAlive(tr)
	}
}

// BenchmarkMemoryPerInstanceKeepingHeartbeats reports the heap a tracker
// keeping heartbeats (WithHeartbeats, as the admin panel runs it) holds
// per instance at 100,000 instances of 50 services: its entry, its
// service's index of it, its kept heartbeat and the instance id. Each
// heartbeat is decoded from the JSON of the original design's, three
// service fields included, as a watcher receives it.
func BenchmarkMemoryPerInstanceKeepingHeartbeats(b *testing.B) {
	const n = 100_000
	in := wire.NewInterner(1 << 10)
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		tr := NewTracker(WithHeartbeats())
		for i := 0; i < n; i++ {
			data, err := wire.Marshal(&wire.Message{
				ServiceName: fmt.Sprintf("service_%02d", i%50), InstanceID: fmt.Sprintf("%08x-e5f6-7890-abcd-ef1234567890", i),
				Timestamp: t0, UptimeSeconds: 3600, HeartbeatCount: 60, MemoryUsageMB: 45.2, CPUUsagePercent: 2.5,
				IntervalSeconds: 60, Status: wire.StatusRunning,
				Has: wire.HasUptime | wire.HasHeartbeatCount | wire.HasMemory | wire.HasCPU | wire.HasInterval,
				Fields: []wire.Field{
					{Key: "queue_size", Value: wire.Int(int64(i % 2000))},
					{Key: "api_status", Value: wire.String("ok")},
					{Key: "last_successful_fetch", Value: wire.Time(t0)},
				},
			})
			if err != nil {
				b.Fatal(err)
			}
			var m wire.Message
			if err := wire.UnmarshalIntern(data, &m, in); err != nil {
				b.Fatal(err)
			}
			tr.Observe(&m)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/instance")
		runtime.KeepAlive(tr)
	}
}

// TickAt judges only up to the time the watcher knows it has seen
// everything sent: a heartbeat still on its way cannot be declared missing.
func TestTickAtJudgesOnlyUpToWhatWasSeen(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock))
	tr.Observe(withInterval(beat("a", "1", 1), time.Second))
	clock.Advance(10 * time.Second)
	if got := tr.TickAt(t0.Add(time.Second)); len(got) != 0 {
		t.Errorf("seen up to 1s: %s", describe(got))
	}
	if got := describe(tr.TickAt(t0.Add(2 * time.Second))); got != "alive->stale@1.5s" {
		t.Errorf("seen up to 2s: %s", got)
	}
}

// After a time the watcher could not see (a stalled broker, a paused
// monitor), no instance changes state from silence until it has been
// watched for 1.5 of its intervals again: its heartbeats may still be on
// their way.
func TestHoldDelaysVerdictsAfterBlindness(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock))
	a := withInterval(beat("a", "1", 1), time.Second)
	b := withInterval(beat("b", "1", 1), time.Second)
	tr.Observe(a)
	tr.Observe(b)
	clock.Advance(10 * time.Second) // blind: nothing could arrive
	tr.Hold(clock.Now())
	if got := tr.Tick(); len(got) != 0 {
		t.Fatalf("verdicts right after blindness: %s", describe(got))
	}
	clock.Advance(1400 * time.Millisecond)
	if got := tr.Tick(); len(got) != 0 {
		t.Fatalf("verdicts within the hold: %s", describe(got))
	}
	a.HeartbeatCount++
	if got := tr.Observe(a); len(got) != 0 {
		t.Errorf("a heartbeat within the hold: %s", describe(got))
	}
	clock.Advance(100 * time.Millisecond)
	// b was watched for 1.5 intervals without a heartbeat.
	if got := describe(tr.Tick()); got != "alive->stale@11.5s,stale->dead@11.5s" {
		t.Errorf("after the hold: %s", got)
	}
	if in, _ := tr.Get(Key{"a", "1"}); in.State != Alive {
		t.Errorf("a is %v", in.State)
	}
}

// seedBeat is a heartbeat from a publisher in the original design's format: no
// interval_seconds.
func seedBeat(count int64) *wire.Message { return beat("seed_service", "s1", count) }

// A publisher that does not send interval_seconds is judged by the interval
// its own heartbeats show, not by a fixed 60 s; until there is evidence,
// the default applies, and the instance says which it is.
func TestTheIntervalIsInferredWhenTheSenderDoesNotSayIt(t *testing.T) {
	for _, real := range []time.Duration{time.Second, 2 * time.Second} {
		t.Run(real.String(), func(t *testing.T) {
			clock := &fakeClock{t: t0}
			tr := NewTracker(WithClock(clock))
			k := Key{"seed_service", "s1"}
			tr.Observe(seedBeat(1))
			if in, _ := tr.Get(k); in.Interval != wire.DefaultInterval || in.IntervalSource != IntervalDefault {
				t.Fatalf("before any evidence: %v (%v)", in.Interval, in.IntervalSource)
			}
			for n := int64(2); n <= 5; n++ {
				clock.Advance(real + time.Duration(n%2)*10*time.Millisecond) // a little jitter
				tr.Observe(seedBeat(n))
			}
			in, _ := tr.Get(k)
			if in.IntervalSource != IntervalInferred || in.Interval < real || in.Interval > real+10*time.Millisecond {
				t.Fatalf("after four gaps of %v: %v (%v)", real, in.Interval, in.IntervalSource)
			}
			// Silent from now: stale at 1.5 and dead at 3 of the real interval.
			last := clock.t
			clock.t = last.Add(scale(in.Interval, 1.5) - time.Millisecond)
			if got := tr.Tick(); len(got) != 0 {
				t.Errorf("before 1.5 intervals: %s", describe(got))
			}
			clock.t = last.Add(scale(in.Interval, 3))
			got := tr.Tick()
			if len(got) != 2 || got[0].To != Stale || got[1].To != Dead || got[1].IntervalSource != IntervalInferred {
				t.Errorf("at 3 intervals: %+v", got)
			}
		})
	}
}

// Neither a lost heartbeat (the count says how many gaps one wait spans)
// nor a stall and the burst after it halves or doubles the interval.
func TestAnInferredIntervalSurvivesLostHeartbeatsAndStalls(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock))
	k := Key{"seed_service", "s1"}
	n := int64(1)
	beatAfter := func(d time.Duration, skip int64) {
		clock.Advance(d)
		n += skip + 1
		tr.Observe(seedBeat(n))
	}
	tr.Observe(seedBeat(n))
	for i := 0; i < 4; i++ {
		beatAfter(time.Second, 0)
	}
	beatAfter(3*time.Second, 2) // two lost: one wait of three intervals
	beatAfter(5*time.Second, 0) // a stall held one back for five seconds...
	for i := 0; i < 4; i++ {
		beatAfter(0, 0) // ...and the ones behind it arrive at once
	}
	beatAfter(time.Second, 0)
	if in, _ := tr.Get(k); in.Interval != time.Second {
		t.Errorf("interval %v, want 1s", in.Interval)
	}
}

// A sender that says its interval is judged by it, whatever its gaps.
func TestASentIntervalWins(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock), WithDefaultInterval(10*time.Second))
	tr.Observe(withInterval(beat("a", "1", 1), 5*time.Second))
	clock.Advance(time.Second)
	tr.Observe(withInterval(beat("a", "1", 2), 5*time.Second))
	if in, _ := tr.Get(Key{"a", "1"}); in.Interval != 5*time.Second || in.IntervalSource != IntervalSent {
		t.Errorf("%v (%v)", in.Interval, in.IntervalSource)
	}
	tr.Observe(beat("b", "1", 1))
	if in, _ := tr.Get(Key{"b", "1"}); in.Interval != 10*time.Second || in.IntervalSource != IntervalDefault {
		t.Errorf("configured default: %v (%v)", in.Interval, in.IntervalSource)
	}
}

// Time the watcher could not see is not silence, and only that time: a
// watcher knocked off its subscription for short spells over and over
// still declares a crashed instance dead, late by the spells.
func TestUnwatchedTimeIsNotSilence(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock))
	tr.Observe(withInterval(beat("a", "1", 1), time.Second))
	for i := 0; i < 10; i++ { // 100 ms unseen in every 250 ms
		from := clock.t.Add(150 * time.Millisecond)
		clock.Advance(250 * time.Millisecond)
		tr.Unwatched(from, clock.t)
		tr.Tick()
	}
	// 2.5 s have passed, 1.5 s of them watched: stale now, not dead.
	if in, _ := tr.Get(Key{"a", "1"}); in.State != Stale {
		t.Errorf("after 1.5 s watched of 2.5 s: %v", in.State)
	}
	clock.Advance(1500 * time.Millisecond)
	got := tr.Tick()
	if len(got) != 1 || got[0].To != Dead || got[0].Age != 4*time.Second {
		t.Errorf("after 3 s watched: %s", describe(got))
	}
}

// At the bound, the dead and the stopped go before any instance still
// alive or stale, whatever their intervals and however recently they
// were heard: a crashed 10 ms sender before a healthy hourly one, and an
// instance that stopped gracefully a moment ago before one heard a second
// earlier.
func TestAtTheBoundTheGoneGoBeforeTheLiving(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock), WithMaxInstances(3))
	tr.Observe(withInterval(beat("hourly", "1", 1), time.Hour))
	clock.Advance(time.Second)
	tr.Observe(withInterval(beat("fast", "1", 1), 10*time.Millisecond))
	clock.Advance(time.Second)
	tr.Tick() // fast/1 is dead now; hourly/1 is alive
	stopping := withInterval(beat("deploy", "1", 1), time.Hour)
	stopping.Status = wire.StatusStopping
	tr.Observe(stopping)
	clock.Advance(time.Second)

	tr.Observe(withInterval(beat("new", "1", 1), time.Hour))
	if _, ok := tr.Get(Key{"fast", "1"}); ok {
		t.Error("a dead instance was kept while a new one evicted another")
	}
	tr.Observe(withInterval(beat("new", "2", 1), time.Hour))
	if _, ok := tr.Get(Key{"deploy", "1"}); ok {
		t.Error("a stopped instance was kept while a new one evicted another")
	}
	if _, ok := tr.Get(Key{"hourly", "1"}); !ok {
		t.Error("the alive hourly instance was evicted before the dead and the stopped")
	}
	if tr.Evicted() != 2 {
		t.Errorf("evicted %d, want 2", tr.Evicted())
	}
}

// An instance that comes back from the dead is among the living again: at
// the bound it is not evicted before one heard earlier.
func TestARecoveredInstanceIsAmongTheLivingAgain(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock), WithMaxInstances(2))
	tr.Observe(withInterval(beat("a", "1", 1), time.Second))
	clock.Advance(5 * time.Second)
	tr.Tick() // a/1 dead
	tr.Observe(withInterval(beat("b", "1", 1), time.Hour))
	clock.Advance(time.Second)
	tr.Observe(withInterval(beat("a", "1", 2), time.Second)) // back, and heard last
	tr.Observe(withInterval(beat("c", "1", 1), time.Hour))
	if _, ok := tr.Get(Key{"a", "1"}); !ok {
		t.Error("the recovered instance, heard last, was evicted")
	}
	if _, ok := tr.Get(Key{"b", "1"}); ok {
		t.Error("b, heard before a recovered, was kept")
	}
}

// Instances read from latest-state keys take their place by when they
// were last heard, not by when the keys were read: at the bound, a key
// read as already stale goes before an instance heard just now.
func TestKeysReadAtStartTakeTheirPlaceByAge(t *testing.T) {
	clock := &fakeClock{t: t0.Add(time.Hour)}
	tr := NewTracker(WithClock(clock), WithMaxInstances(2))
	tr.Observe(withInterval(beat("live", "1", 1), time.Minute))
	tr.ObserveAt(withInterval(beat("old", "1", 1), time.Minute), clock.Now().Add(-170*time.Second))
	tr.Observe(withInterval(beat("new", "1", 1), time.Minute))
	if _, ok := tr.Get(Key{"old", "1"}); ok {
		t.Error("the key read as stale was kept")
	}
	if _, ok := tr.Get(Key{"live", "1"}); !ok {
		t.Error("the instance heard just now was evicted before a stale key")
	}
}

// Alive answers from the tracker's own verdicts: an instance leaves at the
// tick that finds it stale, at once on its stopping heartbeat, and comes
// back with its next heartbeat; forgotten and evicted instances leave the
// per-service index too, and without WithHeartbeats the answer is the
// same, without the heartbeats.
func TestAliveFollowsTheVerdicts(t *testing.T) {
	for _, keep := range []bool{true, false} {
		clock := &fakeClock{t: t0}
		opts := []TrackerOption{WithClock(clock), WithMaxInstances(4), WithRetention(time.Minute)}
		if keep {
			opts = append(opts, WithHeartbeats())
		}
		tr := NewTracker(opts...)
		alive := func() string {
			var ids []string
			for _, in := range tr.Alive("svc") {
				if keep != (in.Heartbeat() != nil) {
					t.Errorf("keep %v: %s has heartbeat %v", keep, in.Instance, in.Heartbeat())
				}
				if keep && in.Heartbeat().InstanceID != in.Instance {
					t.Errorf("%s carries the heartbeat of %s", in.Instance, in.Heartbeat().InstanceID)
				}
				ids = append(ids, in.Instance)
			}
			return strings.Join(ids, ",")
		}
		for _, id := range []string{"c", "a", "b"} {
			tr.Observe(withInterval(beat("svc", id, 1), time.Second))
		}
		tr.Observe(withInterval(beat("other", "x", 1), time.Second))
		if got := alive(); got != "a,b,c" {
			t.Fatalf("keep %v: alive %q", keep, got)
		}
		stopping := withInterval(beat("svc", "c", 2), time.Second)
		stopping.Status = wire.StatusStopping
		tr.Observe(stopping)
		if got := alive(); got != "a,b" {
			t.Errorf("keep %v: after c stopped: %q", keep, got)
		}
		clock.Advance(1499 * time.Millisecond)
		tr.Observe(withInterval(beat("svc", "b", 2), time.Second))
		tr.Tick()
		if got := alive(); got != "a,b" {
			t.Errorf("keep %v: before 1.5 intervals: %q", keep, got)
		}
		clock.Advance(time.Millisecond)
		tr.Tick()
		if got := alive(); got != "b" {
			t.Errorf("keep %v: at 1.5 intervals of a's silence: %q", keep, got)
		}
		tr.Observe(withInterval(beat("svc", "a", 5), time.Second))
		if got := alive(); got != "a,b" {
			t.Errorf("keep %v: a beat again: %q", keep, got)
		}
		clock.Advance(time.Hour)
		tr.Tick()
		tr.Tick()
		if got := alive(); got != "" || tr.Len() != 0 {
			t.Errorf("keep %v: after an hour: alive %q, %d tracked", keep, got, tr.Len())
		}
		if n := tr.serviceNames(); n != 0 {
			t.Errorf("keep %v: %d service names kept", keep, n)
		}
	}
}

// The service rule, in one place: up at its minimum of instances up
// (alive or stale); below it stopped (planned) when the shortfall is all
// graceful stops, down when an instance is dead or too few exist; unknown
// with no instance.
func TestTheServiceRule(t *testing.T) {
	for _, tt := range []struct {
		c        Counts
		minAlive int
		want     ServiceState
	}{
		{Counts{}, 1, ServiceUnknown},
		{Counts{Alive: 1}, 1, ServiceUp},
		{Counts{Stale: 1, Dead: 3}, 1, ServiceUp},
		{Counts{Alive: 1}, 0, ServiceUp},
		{Counts{Dead: 1}, 1, ServiceDown},
		{Counts{Alive: 1, Dead: 1}, 2, ServiceDown},
		{Counts{Stopped: 2}, 1, ServiceStopped},
		{Counts{Alive: 1, Stopped: 1}, 2, ServiceStopped}, // a rolling deploy below the minimum
		{Counts{Alive: 1, Stopped: 1, Dead: 1}, 2, ServiceDown},
		{Counts{Alive: 1, Stopped: 2, Dead: 1}, 2, ServiceDown}, // a crash is a crash
		{Counts{Alive: 2}, 3, ServiceDown},                      // too few exist
	} {
		if got := tt.c.State(tt.minAlive); got != tt.want {
			t.Errorf("%+v at min %d: %v, want %v", tt.c, tt.minAlive, got, tt.want)
		}
	}
	for st := Unknown; st <= Stopped; st++ {
		if got, ok := ParseState(st.String()); !ok || got != st {
			t.Errorf("ParseState(%q) = %v, %v", st, got, ok)
		}
	}
	if _, ok := ParseState("forgotten"); ok {
		t.Error("forgotten parsed as a state")
	}
}

// Range, ServiceInstances and CountServices, which spare a large fleet's
// readers a copy of every instance, agree with Snapshot: with and without
// kept heartbeats, across states, the degraded counted.
func TestTheCheapReadsAgreeWithSnapshot(t *testing.T) {
	for _, keep := range []bool{true, false} {
		clock := &fakeClock{t: t0}
		rule, err := ParseHealthRule("svc: queue > 10")
		if err != nil {
			t.Fatal(err)
		}
		opts := []TrackerOption{WithClock(clock), WithHealthRules(rule)}
		if keep {
			opts = append(opts, WithHeartbeats())
		}
		tr := NewTracker(opts...)
		queued := func(id string, count, queue int64) *wire.Message {
			m := withInterval(beat("svc", id, count), time.Second)
			m.Fields = []wire.Field{{Key: "queue", Value: wire.Int(queue)}}
			return m
		}
		for i, id := range []string{"d", "b", "a", "c"} {
			tr.Observe(queued(id, 1, int64(i*10)))
		}
		tr.Observe(withInterval(beat("other", "x", 1), time.Second))
		clock.Advance(2 * time.Second)
		tr.Observe(queued("a", 2, 20))
		tr.Observe(queued("c", 2, 0))
		tr.Tick()
		clock.Advance(1500 * time.Millisecond)
		tr.Tick()

		want := map[string]Counts{}
		var wantSvc []string
		for _, in := range tr.Snapshot() {
			c := want[in.Service]
			c.Count(&in, clock.Now())
			want[in.Service] = c
			if in.Service == "svc" {
				wantSvc = append(wantSvc, in.Instance+"="+in.State.String())
			}
		}
		got := tr.CountServices(clock.Now())
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("keep %v: CountServices %v, Snapshot counts %v", keep, got, want)
		}
		if want["svc"].Dead == 0 || want["svc"].Degraded == 0 {
			t.Errorf("keep %v: the case lacks a dead or a degraded instance: %+v", keep, want["svc"])
		}
		var gotSvc []string
		for _, in := range tr.ServiceInstances("svc") {
			gotSvc = append(gotSvc, in.Instance+"="+in.State.String())
		}
		if strings.Join(gotSvc, ",") != strings.Join(wantSvc, ",") {
			t.Errorf("keep %v: ServiceInstances %v, want %v", keep, gotSvc, wantSvc)
		}
		if got := tr.ServiceInstances("nothing"); len(got) != 0 {
			t.Errorf("keep %v: an unknown service has %v", keep, got)
		}
		n := 0
		tr.Range(func(*Instance) bool { n++; return true })
		if n != tr.Len() {
			t.Errorf("keep %v: Range saw %d of %d", keep, n, tr.Len())
		}
		n = 0
		tr.Range(func(*Instance) bool { n++; return false })
		if n != 1 {
			t.Errorf("keep %v: Range went on after false, %d calls", keep, n)
		}
	}
}

// The deadline heap hands out entries in order of the deadline each is
// filed under, through pushes, re-filings earlier and later, and
// removals anywhere, and always knows where each entry is.
func TestTheDeadlineHeapKeepsItsOrder(t *testing.T) {
	for seed := range 50 {
		r := rand.New(rand.NewPCG(uint64(seed), 3))
		var h deadlineHeap
		filed := map[*entry]int64{}
		check := func(step string) {
			for i, it := range h {
				if int(it.e.index) != i || filed[it.e] != it.filed {
					t.Fatalf("seed %d, after %s: entry at %d says %d, filed %d want %d", seed, step, i, it.e.index, it.filed, filed[it.e])
				}
				if i > 0 && h[(i-1)/4].filed > it.filed {
					t.Fatalf("seed %d, after %s: %d filed before its parent", seed, step, i)
				}
			}
		}
		for range 2000 {
			switch op := r.IntN(10); {
			case op < 4 || len(h) == 0:
				e := &entry{index: -1}
				filed[e] = r.Int64N(1000)
				h.push(e, filed[e])
				check("push")
			case op < 7:
				i := r.IntN(len(h))
				filed[h[i].e] = r.Int64N(1000)
				h.refile(i, filed[h[i].e])
				check("refile")
			default:
				i := r.IntN(len(h))
				e := h[i].e
				h.remove(i)
				delete(filed, e)
				if e.index != -1 {
					t.Fatalf("seed %d: a removed entry says it is at %d", seed, e.index)
				}
				check("remove")
			}
		}
		for last := int64(-1); len(h) > 0; {
			if h[0].filed < last {
				t.Fatalf("seed %d: %d handed out after %d", seed, h[0].filed, last)
			}
			last = h[0].filed
			h.remove(0)
		}
	}
}

// RangeNotable and CountServices tell what a walk of every instance
// would: each service's instances by state (and the degraded) and its
// longest interval, and every instance that is not alive or that health
// rules judge, through heartbeats, intervals
// sent, inferred and changed, stops, ticks, instances remembered,
// replaced, forgotten and evicted.
func TestRangeNotableIsAWalkOfEveryInstance(t *testing.T) {
	for seed := range 40 {
		r := rand.New(rand.NewPCG(uint64(seed), 5))
		clock := &fakeClock{t: t0}
		tr := NewTracker(WithClock(clock), WithMaxInstances(40), WithRetention(time.Second),
			WithHealthRules(HealthRule{Service: "s1", Field: "q", Op: Greater, Number: 100},
				HealthRule{Service: "s0", Field: "q", Op: Greater, Number: 150, For: 20 * time.Second}))
		counts := map[string]int64{}
		for step := range 600 {
			svc, id := fmt.Sprintf("s%d", r.IntN(3)), fmt.Sprint(r.IntN(100))
			switch op := r.IntN(10); {
			case op < 6:
				counts[svc+id]++
				m := beat(svc, id, counts[svc+id])
				m.Timestamp = clock.t
				if i := r.IntN(3); i > 0 {
					withInterval(m, time.Duration(i)*10*time.Second)
				}
				if r.IntN(20) == 0 {
					m.Status = wire.StatusStopping
				}
				m.Fields = []wire.Field{{Key: "q", Value: wire.Int(int64(r.IntN(200)))}}
				tr.ObserveAt(m, clock.t)
			case op < 7:
				tr.Remember(Key{svc, id}, []State{Alive, Stale, Dead, Stopped}[r.IntN(4)], clock.t.Add(-time.Minute), 0)
			default:
				clock.Advance(time.Duration(r.IntN(20)) * time.Second)
				tr.Tick()
			}
			want := map[string]ServiceTally{}
			wantFew := map[Key]bool{}
			tr.Range(func(in *Instance) bool {
				w := want[in.Service]
				w.Add(in.State, 1)
				w.Longest = max(w.Longest, in.Interval)
				want[in.Service] = w
				if in.State != Alive || in.Health != nil {
					wantFew[in.Key] = true
				}
				return true
			})
			gotFew := map[Key]bool{}
			got := tr.RangeNotable(func(in *Instance) bool {
				if gotFew[in.Key] {
					t.Fatalf("seed %d step %d: %v visited twice", seed, step, in.Key)
				}
				gotFew[in.Key] = true
				return true
			})
			if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gotFew, wantFew) {
				t.Fatalf("seed %d step %d: tallies %v, want %v; notable %v, want %v", seed, step, got, want, gotFew, wantFew)
			}
			wantCounts := map[string]Counts{}
			tr.Range(func(in *Instance) bool {
				c := wantCounts[in.Service]
				c.Count(in, clock.t)
				wantCounts[in.Service] = c
				return true
			})
			if gotCounts := tr.CountServices(clock.t); !reflect.DeepEqual(gotCounts, wantCounts) {
				t.Fatalf("seed %d step %d: counted %v, want %v", seed, step, gotCounts, wantCounts)
			}
			if names := tr.ServiceNames(); len(names) != len(want) {
				t.Fatalf("seed %d step %d: services %v, want those of %v", seed, step, names, want)
			}
			for _, svc := range tr.ServiceNames() {
				n := 0
				tr.RangeService(svc, func(in *Instance) bool {
					if in.Service != svc {
						t.Fatalf("seed %d step %d: %v in the walk of %s", seed, step, in.Key, svc)
					}
					n++
					return true
				})
				if n != want[svc].Total() {
					t.Fatalf("seed %d step %d: %d instances of %s walked, want %d", seed, step, n, svc, want[svc].Total())
				}
			}
		}
	}
}

// A heartbeat a monitor hands its tracker carries the tracker's own copy
// of its instance id and service name afterwards, whatever copy it came
// with: a consumer of the monitor's events that keeps it by instance keeps
// no other. One observed with Observe is only read: it may be shared.
func TestObservedHeartbeatsShareTheTrackersNames(t *testing.T) {
	tr := NewTracker(WithClock(&fakeClock{t: t0}))
	first := beat(strings.Clone("svc"), strings.Clone("id-1"), 1)
	tr.observeOwned(first, t0)
	for n := range int64(3) {
		m := beat(strings.Clone("svc"), strings.Clone("id-1"), 2+n)
		tr.observeOwned(m, t0)
		if unsafe.StringData(m.InstanceID) != unsafe.StringData(first.InstanceID) || unsafe.StringData(m.ServiceName) != unsafe.StringData(first.ServiceName) {
			t.Fatalf("heartbeat %d keeps its own copy of its names", n+2)
		}
	}
	m := beat(strings.Clone("svc"), strings.Clone("id-1"), 9)
	id, svc := unsafe.StringData(m.InstanceID), unsafe.StringData(m.ServiceName)
	tr.Observe(m)
	if unsafe.StringData(m.InstanceID) != id || unsafe.StringData(m.ServiceName) != svc {
		t.Error("Observe changed the message it was given")
	}
}

// Names hands out the tracker's own copy of an instance's names, and says
// when it does not track it.
func TestNamesAreTheTrackersOwn(t *testing.T) {
	tr := NewTracker(WithClock(&fakeClock{t: t0}))
	m := beat(strings.Clone("svc"), strings.Clone("id-1"), 1)
	tr.Observe(m)
	k, ok := tr.Names(Key{Service: strings.Clone("svc"), Instance: strings.Clone("id-1")})
	if !ok || unsafe.StringData(k.Instance) != unsafe.StringData(m.InstanceID) || unsafe.StringData(k.Service) != unsafe.StringData(m.ServiceName) {
		t.Errorf("Names: %v, %v: not the tracker's copy", k, ok)
	}
	if k, ok := tr.Names(Key{Service: "svc", Instance: "other"}); ok || k.Instance != "other" {
		t.Errorf("an instance not tracked: %v, %v", k, ok)
	}
}

// However heartbeats move deadlines on (at a leaf of the heap, filed in
// place; elsewhere, left for Tick to re-file), no entry is filed later
// than its deadline and the heap keeps its order: through heartbeats of
// many intervals, inferred and sent, stops, silences, ticks and
// instances forgotten.
func TestDeadlinesAreNeverFiledLate(t *testing.T) {
	for seed := range 30 {
		r := rand.New(rand.NewPCG(uint64(seed), 9))
		clock := &fakeClock{t: t0}
		tr := NewTracker(WithClock(clock), WithRetention(2*time.Minute))
		counts := map[string]int64{}
		check := func(step string) {
			t.Helper()
			h := tr.deadlines
			for i, it := range h {
				if int(it.e.index) != i {
					t.Fatalf("seed %d, after %s: entry at %d says %d", seed, step, i, it.e.index)
				}
				if i > 0 && h[(i-1)/4].filed > it.filed {
					t.Fatalf("seed %d, after %s: %d filed before its parent", seed, step, i)
				}
				if due := tr.deadline(it.e); it.filed > due {
					t.Fatalf("seed %d, after %s: %s filed %v after its deadline", seed, step, it.e.Key.Instance, time.Duration(it.filed-due))
				}
			}
			if len(h) != tr.Len() {
				t.Fatalf("seed %d, after %s: %d filed of %d tracked", seed, step, len(h), tr.Len())
			}
		}
		for range 3000 {
			clock.t = clock.t.Add(time.Duration(r.IntN(4000)) * time.Millisecond)
			id := fmt.Sprint(r.IntN(200))
			switch op := r.IntN(20); {
			case op < 15:
				counts[id]++
				m := beat("svc", id, counts[id])
				if r.IntN(2) == 0 {
					m = withInterval(m, time.Duration(1+r.IntN(4))*10*time.Second)
				}
				if op == 0 {
					m.Status = wire.StatusStopping
				}
				tr.Observe(m)
				check("a heartbeat")
			default:
				tr.Tick()
				check("a tick")
			}
		}
	}
}

// A service of a few instances finds them among its members, without an
// index of its own (a few hundred bytes, which a fleet of one instance a
// service, or a flood of made-up service names, would pay for every
// instance); one of more keeps an index by id, and lets it go when it is
// few again. Every instance is found whichever it uses.
func TestAServiceOfAFewInstancesHasNoIndexOfItsOwn(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock), WithRetention(time.Minute))
	r := rand.New(rand.NewPCG(1, 2))
	live := map[string]bool{}
	for step := range 5000 {
		id := fmt.Sprint(r.IntN(40))
		if r.IntN(3) == 0 {
			if e, _ := tr.lookup(Key{"svc", id}); e != nil {
				tr.remove(e)
			}
			delete(live, id)
		} else {
			tr.Observe(beat("svc", id, 1))
			live[id] = true
		}
		svc := tr.services["svc"]
		switch n := len(live); {
		case n == 0 && svc != nil:
			t.Fatalf("step %d: a service of no instance is kept", step)
		case n > 0 && n <= smallService/2 && svc.byID != nil:
			t.Fatalf("step %d: a service of %d instances keeps an index", step, n)
		case n > smallService && svc.byID == nil:
			t.Fatalf("step %d: a service of %d instances has no index", step, n)
		}
		for i := range 40 {
			id := fmt.Sprint(i)
			if e, _ := tr.lookup(Key{"svc", id}); (e != nil) != live[id] || (e != nil && e.Key.Instance != id) {
				t.Fatalf("step %d: %s found %v, tracked %v", step, id, e != nil, live[id])
			}
		}
	}
}

// A service's instances counted by interval tell the longest as a map of
// them would, through instances moving between intervals, joining and
// leaving; and while they share one interval no map is kept.
func TestIntervalCountsAreAMapOfThem(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var c intervalCounts
	want := map[time.Duration]int{}
	var members []time.Duration
	for step := range 20000 {
		switch op := r.IntN(3); {
		case op == 0 || len(members) == 0:
			d := time.Duration(r.IntN(4)) * 10 * time.Second
			members = append(members, d)
			c.add(d, 1)
			want[d]++
		case op == 1:
			i := r.IntN(len(members))
			d := members[i]
			members[i] = members[len(members)-1]
			members = members[:len(members)-1]
			c.add(d, -1)
			if want[d]--; want[d] == 0 {
				delete(want, d)
			}
		default:
			i := r.IntN(len(members))
			was, d := members[i], time.Duration(r.IntN(4))*10*time.Second
			members[i] = d
			c.add(was, -1)
			c.add(d, 1)
			if want[was]--; want[was] == 0 {
				delete(want, was)
			}
			want[d]++
		}
		var longest time.Duration
		for d := range want {
			longest = max(longest, d)
		}
		if got := c.longest(); got != longest {
			t.Fatalf("step %d: longest %v, want %v of %v", step, got, longest, want)
		}
		if len(want) <= 1 && c.more != nil {
			t.Fatalf("step %d: a map kept for one interval: %v", step, want)
		}
	}
}
