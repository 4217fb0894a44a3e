package watch

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
)

// An instance keeps its slot while it is tracked; once it is forgotten
// (evicted here) the slot is given to the next new instance, in a later
// generation, and indexes never pass the most instances tracked at once.
func TestASlotNamesItsInstanceUntilItIsForgotten(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	tr := NewTracker(WithClock(clock), WithMaxInstances(2))
	slot := func(id string) Slot {
		t.Helper()
		_, s := tr.observeOwned(beat("svc", id, 1), clock.Now())
		if got, ok := tr.SlotOf(Key{"svc", id}); !ok || got != s {
			t.Fatalf("SlotOf(%s) = %+v, %v; its heartbeat said %+v", id, got, ok, s)
		}
		return s
	}
	a := slot("a")
	clock.Advance(time.Second)
	b := slot("b")
	if !a.Valid() || !b.Valid() || a.Index == b.Index {
		t.Fatalf("slots of two instances: %+v, %+v", a, b)
	}
	clock.Advance(time.Second)
	if again := slot("a"); again != a {
		t.Errorf("a's slot changed from %+v to %+v while it was tracked", a, again)
	}
	clock.Advance(time.Second)
	c := slot("c") // b, the longest silent, is evicted
	if _, ok := tr.SlotOf(Key{"svc", "b"}); ok {
		t.Fatal("b still has a slot after it was evicted")
	}
	if c.Index != b.Index || c.Gen <= b.Gen {
		t.Errorf("the new instance has %+v, want b's index %d in a later generation than %d", c, b.Index, b.Gen)
	}
	for i := range 100 {
		clock.Advance(time.Second)
		if s := slot(fmt.Sprint("n", i)); s.Index < 0 || s.Index >= 2 {
			t.Fatalf("slot %+v at a bound of 2 instances", s)
		}
	}
	if n := tr.Slots(); n != 2 {
		t.Errorf("%d slots made at a bound of 2 instances", n)
	}
	if (Slot{}).Valid() {
		t.Error("the zero Slot names an instance")
	}
}

// SlotsOf gives what SlotOf gives of each instance, in order, across
// more than one hold of the lock: the zero Slot for an instance not
// tracked and for any of a service not tracked.
func TestSlotsOfGivesEachInstancesSlot(t *testing.T) {
	tr := NewTracker()
	var ids []string
	for i := range 2*slotsHeld + 3 {
		id := fmt.Sprint("i", i)
		ids = append(ids, id)
		if i%3 != 0 { // every third is not tracked
			tr.Observe(beat("svc", id, 1))
		}
	}
	tr.Observe(beat("other", "i0", 1))
	got := tr.SlotsOf("svc", ids, []Slot{{Index: 7, Gen: 7}})
	if len(got) != len(ids)+1 || got[0] != (Slot{Index: 7, Gen: 7}) {
		t.Fatalf("%d slots for %d ids appended to one, the first %+v", len(got), len(ids), got[0])
	}
	for i, id := range ids {
		want, ok := tr.SlotOf(Key{"svc", id})
		if got[i+1] != want || got[i+1].Valid() != ok {
			t.Fatalf("slot of %s: %+v, want %+v", id, got[i+1], want)
		}
	}
	if s := tr.SlotsOf("nobody", ids[:2], nil); len(s) != 2 || s[0].Valid() || s[1].Valid() {
		t.Errorf("slots of a service not tracked: %+v", s)
	}
}

// Generations compare as serial numbers: the one after the last (which
// skips 0) is after it, as any other.
func TestASlotsGenerationsCountRound(t *testing.T) {
	for _, c := range []struct{ a, b uint32 }{{1, 2}, {7, 1 << 31}, {math.MaxUint32 - 1, math.MaxUint32}, {math.MaxUint32, 1}, {math.MaxUint32 - 3, 2}} {
		a, b := Slot{Index: 3, Gen: c.a}, Slot{Index: 3, Gen: c.b}
		if !a.Before(b) || b.Before(a) || a.Before(a) {
			t.Errorf("generation %d before %d: %v, the other way: %v", c.a, c.b, a.Before(b), b.Before(a))
		}
	}
	tr := NewTracker()
	tr.gens = []uint32{math.MaxUint32}
	tr.freeSlots = []int32{0}
	if i := tr.takeSlot(); i != 0 || tr.gens[0] != 1 {
		t.Errorf("the slot after generation %d: index %d, generation %d; want 0, 1", uint32(math.MaxUint32), i, tr.gens[0])
	}
}

// Each heartbeat a monitor hands on carries its instance's slot in the
// monitor's tracker.
func TestAHeartbeatEventCarriesItsInstancesSlot(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	r := start(t, srv)
	r.waitFor(KindLoaded)
	seen := map[string]Slot{}
	deadline := time.After(10 * time.Second)
	for i := 0; len(seen) < 3; i++ {
		if i < 3 {
			c.Publish(context.Background(), "heartbeat:service:geocoding_service", message("geocoding_service", fmt.Sprint(i), time.Minute, 1))
		}
		select {
		case e := <-r.events:
			if e.Kind != KindHeartbeat {
				continue
			}
			want, ok := r.m.Tracker().SlotOf(Key{e.Message.ServiceName, e.Message.InstanceID})
			if !ok || e.Slot != want {
				t.Fatalf("heartbeat of %s carries %+v; the tracker has %+v, %v", e.Message.InstanceID, e.Slot, want, ok)
			}
			seen[e.Message.InstanceID] = e.Slot
		case <-deadline:
			t.Fatalf("heard %d of 3 instances", len(seen))
		}
	}
	if seen["0"].Index == seen["1"].Index || seen["1"].Index == seen["2"].Index || seen["0"].Index == seen["2"].Index {
		t.Errorf("three instances share slots: %+v", seen)
	}
}
