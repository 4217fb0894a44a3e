package panel

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// The panel counts each instance's heartbeats as its watcher hands them
// on, by their slots: an instance evicted at the tracker's bound takes
// nothing of its count to the instance given its slot, and an event made
// by hand, which has no slot, counts for its instance all the same.
func TestThePanelCountsEachInstancesHeartbeats(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	mon, err := watch.New(watch.Connection{Client: c}, watch.WithTracker(append(TrackerOptions(), watch.WithMaxInstances(2))...))
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(mon.Tracker(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.met.shutdown() })
	beats, loaded := make(chan watch.Event, 16), make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = mon.Run(ctx, func(e watch.Event) {
			p.Observe(e)
			switch e.Kind {
			case watch.KindHeartbeat:
				beats <- e
			case watch.KindLoaded: // subscribed, and the keys read
				close(loaded)
			}
		})
	})
	defer wg.Wait()
	defer cancel()

	count := int64(0)
	send := func(id string) {
		t.Helper()
		count++
		m := &wire.Message{ServiceName: "svc", InstanceID: id, Timestamp: time.Now(), HeartbeatCount: count,
			IntervalSeconds: 60, Has: wire.HasHeartbeatCount | wire.HasInterval}
		b, err := wire.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Publish(ctx, "heartbeat:service:svc", b).Err(); err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-beats:
			if e.Message.InstanceID != id || !e.Slot.Valid() {
				t.Fatalf("heard %s with %+v, want %s's heartbeat with a slot", e.Message.InstanceID, e.Slot, id)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s's heartbeat was not heard", id)
		}
	}
	select {
	case <-loaded:
	case <-time.After(10 * time.Second):
		t.Fatal("the monitor did not start")
	}
	received := func(id string) int64 { return p.receivedCount(watch.Key{Service: "svc", Instance: id}) }
	send("a")
	send("b")
	send("a")
	if a, b := received("a"), received("b"); a != 2 || b != 1 {
		t.Fatalf("received a %d, b %d; want 2, 1", a, b)
	}
	send("c") // b, the longest silent, is evicted; c takes its slot
	if b, c := received("b"), received("c"); b != 0 || c != 1 {
		t.Errorf("received b %d, c %d after b was evicted; want 0, 1", b, c)
	}
	if bars := p.instance(mustGet(t, p, "c"), time.Now()).Bars; bars[len(bars)-1] != 1 || bars[len(bars)-2] != -1 {
		t.Errorf("c's bars %v: want its one heartbeat, and nothing before", bars)
	}
	now := time.Now()
	p.Observe(watch.Event{Kind: watch.KindHeartbeat, At: now, Message: &wire.Message{ServiceName: "svc", InstanceID: "a", Timestamp: now}})
	if a := received("a"); a != 3 {
		t.Errorf("received a %d after an event made by hand, want 3", a)
	}
	// A slot the tracker never gave is not taken at its word: no room is
	// made for it, and the heartbeat counts for its instance.
	p.Observe(watch.Event{Kind: watch.KindHeartbeat, At: now, Message: &wire.Message{ServiceName: "svc", InstanceID: "a", Timestamp: now},
		Slot: watch.Slot{Index: math.MaxInt32, Gen: 1}})
	if a := received("a"); a != 4 {
		t.Errorf("received a %d after an event with a slot the tracker never gave, want 4", a)
	}
	p.arrivals.mu.Lock()
	places := len(p.arrivals.beats)
	p.arrivals.mu.Unlock()
	if places > mon.Tracker().Slots() {
		t.Errorf("%d places for the bars, %d slots in the tracker", places, mon.Tracker().Slots())
	}
}

// mustGet is the instance id of svc in p's tracker.
func mustGet(t *testing.T, p *Panel, id string) watch.Instance {
	t.Helper()
	in, ok := p.tr.Get(watch.Key{Service: "svc", Instance: id})
	if !ok {
		t.Fatalf("%s is not tracked", id)
	}
	return in
}
