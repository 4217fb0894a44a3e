package balance

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func beat(tr *watch.Tracker, id, addr string, pending int64, status string) {
	m := &wire.Message{ServiceName: "geo", InstanceID: id, Timestamp: time.Now(), HeartbeatCount: 1,
		IntervalSeconds: 1, Has: wire.HasHeartbeatCount | wire.HasInterval, Status: status, InstanceAddress: addr}
	if pending >= 0 {
		m.Fields = []wire.Field{{Key: "pending_requests", Value: wire.Int(pending)}}
	}
	tr.Observe(m)
}

func TestPickPrefersTheLeastLoadedAndSpreadsTies(t *testing.T) {
	c := &clock{now: time.Date(2025, 1, 16, 8, 30, 0, 0, time.UTC)}
	tr := watch.NewTracker(watch.WithClock(c), watch.WithHeartbeats())
	beat(tr, "a", "10.0.0.1:80", 5, wire.StatusRunning)
	beat(tr, "b", "10.0.0.2:80", 1, wire.StatusRunning)
	beat(tr, "c", "10.0.0.3:80", 1, wire.StatusRunning)
	beat(tr, "noaddr", "", 0, wire.StatusRunning)
	p, err := New(tr, "geo", "pending_requests")
	if err != nil {
		t.Fatal(err)
	}
	// b and c tie at 1 and take turns; each pick adds one in flight.
	var got []string
	var picks []Target
	for i := 0; i < 4; i++ {
		tg, err := p.Pick()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, tg.Instance)
		picks = append(picks, tg)
	}
	if want := "b c b c"; strings.Join(got, " ") != want {
		t.Errorf("picks %q, want %q", strings.Join(got, " "), want)
	}
	for _, tg := range picks {
		p.Done(tg)
	}
	if len(p.inflight) != 0 {
		t.Errorf("in flight after Done: %v", p.inflight)
	}
	// Excluded, stopped and unaddressed instances are never picked.
	if tg, _ := p.Pick("b", "c"); tg.Instance != "a" || tg.Address != "10.0.0.1:80" || tg.Load != 5 {
		t.Errorf("with b and c excluded: %+v", tg)
	} else {
		p.Done(tg)
	}
	beat(tr, "b", "10.0.0.2:80", 0, wire.StatusStopping)
	c.now = c.now.Add(1500 * time.Millisecond) // a and c silent for 1.5 intervals
	tr.Tick()
	if _, err := p.Pick(); !errors.Is(err, ErrNoInstance) {
		t.Errorf("every instance stale or stopped: %v", err)
	}
	// An instance that does not report the field counts as unloaded.
	beat(tr, "d", "10.0.0.4:80", -1, wire.StatusRunning)
	beat(tr, "a", "10.0.0.1:80", 3, wire.StatusRunning)
	if tg, _ := p.Pick(); tg.Instance != "d" || tg.Load != 0 {
		t.Errorf("without the field: %+v", tg)
	}
	if _, err := New(tr, "bad name", "x"); err == nil {
		t.Error("a bad service name was accepted")
	}
}

// A heartbeat cannot claim less than no load and draw every request, and
// an instance a request failed on is set aside for the cooldown while
// another is left.
func TestAHostileLoadOrAFailingInstanceCannotDrawEveryRequest(t *testing.T) {
	c := &clock{now: time.Date(2025, 1, 16, 8, 30, 0, 0, time.UTC)}
	tr := watch.NewTracker(watch.WithClock(c), watch.WithHeartbeats())
	fake := &wire.Message{ServiceName: "geo", InstanceID: "fake", Timestamp: time.Now(), IntervalSeconds: 1,
		Has: wire.HasInterval, InstanceAddress: "10.0.0.66:80",
		Fields: []wire.Field{{Key: "pending_requests", Value: wire.Float(-1e308)}}}
	tr.Observe(fake)
	beat(tr, "real", "10.0.0.1:80", 0, wire.StatusRunning)
	p, err := New(tr, "geo", "pending_requests")
	if err != nil {
		t.Fatal(err)
	}
	p.now = c.Now
	got := map[string]int{}
	for i := 0; i < 10; i++ {
		tg, err := p.Pick()
		if err != nil {
			t.Fatal(err)
		}
		got[tg.Instance]++
		if tg.Load < 0 {
			t.Errorf("load %v", tg.Load)
		}
		p.Done(tg)
	}
	if got["real"] != 5 || got["fake"] != 5 {
		t.Errorf("picks %v: a negative load must count as none", got)
	}
	p.Fail(Target{Instance: "fake"})
	for i := 0; i < 5; i++ {
		if tg, _ := p.Pick(); tg.Instance != "real" {
			t.Errorf("picked %s during its cooldown", tg.Instance)
		} else {
			p.Done(tg)
		}
	}
	p.Fail(Target{Instance: "real"})
	if tg, err := p.Pick(); err != nil {
		t.Errorf("every instance set aside: %v; want one tried rather than none", err)
	} else {
		p.Done(tg)
	}
	c.now = c.now.Add(DefaultCooldown)
	got = map[string]int{}
	for i := 0; i < 4; i++ {
		tg, _ := p.Pick()
		got[tg.Instance]++
		p.Done(tg)
	}
	if got["fake"] == 0 || got["real"] == 0 {
		t.Errorf("after the cooldown: %v", got)
	}
	if _, err := New(tr, "geo", "bad field"); err == nil {
		t.Error("a malformed load field was accepted")
	}
	if _, err := New(tr, "geo", "cpu_usage_percent"); err != nil {
		t.Errorf("cpu_usage_percent as the load: %v", err)
	}
}
