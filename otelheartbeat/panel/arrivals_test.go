package panel

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
)

// The bars say, interval by interval, whether a heartbeat arrived: -1
// before the first, 1 where one did, 0 where none did; the ring keeps
// the latest as many as there are bars, and the count goes on.
func TestArrivalsMakeTheBars(t *testing.T) {
	base := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	a := newArrivals(6, base.Add(150*time.Second)) // heartbeats from before the panel started keep their times
	k := watch.Slot{Index: 3, Gen: 1}
	// Heartbeats every 10 s from 100 s on, but for the one at 130 s.
	for s := 100; s <= 160; s += 10 {
		if s != 130 {
			a.add(k, base.Add(time.Duration(s)*time.Second+time.Second))
		}
	}
	now := base.Add(165 * time.Second)
	// Intervals ending at 115, 125, ..., 165 s: (105,115] holds 111, ...
	if got := fmt.Sprint(a.barsOf(k, 10*time.Second, now)); got != "[1 1 0 1 1 1]" {
		t.Errorf("bars %s", got)
	}
	// Further back, the intervals before the first heartbeat are -1.
	if got := fmt.Sprint(a.barsOf(k, 10*time.Second, base.Add(125*time.Second))); got != "[-1 -1 -1 1 1 1]" {
		t.Errorf("bars at 125 s %s", got)
	}
	if n := a.received(k); n != 6 {
		t.Errorf("received %d", n)
	}
	for _, never := range []watch.Slot{{Index: 1, Gen: 1}, {Index: 99, Gen: 1}, {}} {
		if got := fmt.Sprint(a.barsOf(never, 10*time.Second, now)); got != "[-1 -1 -1 -1 -1 -1]" || a.received(never) != 0 {
			t.Errorf("an instance never heard (%+v): %s, received %d", never, got, a.received(never))
		}
	}
}

// An interval under the tick (the wire allows 10 ms) shows a beating
// instance's bars full, not every other one empty.
func TestArrivalsOfAFastInstanceFillTheBars(t *testing.T) {
	base := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	a := newArrivals(10, base)
	k := watch.Slot{Index: 0, Gen: 1}
	for _, iv := range []time.Duration{10 * time.Millisecond, 50 * time.Millisecond} {
		at := base.Add(time.Second)
		for range 40 {
			at = at.Add(iv)
			a.add(k, at)
		}
		for i, v := range a.barsOf(k, iv, at.Add(iv/2)) {
			if v != 1 {
				t.Errorf("interval %v: bar %d is %d, want 1", iv, i, v)
			}
		}
	}
}

// An instance given the slot of one forgotten starts afresh (its count,
// its first heartbeat, its bars), and the instances beside it keep
// theirs: the forgotten one's latest arrival, later than the new one's
// first (read from a latest-state key), shows in none of its bars; and a
// heartbeat of the forgotten one read late counts for nobody.
func TestAForgottenInstancesSlotIsClearedForTheNext(t *testing.T) {
	base := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	a := newArrivals(3, base)
	old, kept, fresh := watch.Slot{Index: 0, Gen: 1}, watch.Slot{Index: 1, Gen: 1}, watch.Slot{Index: 0, Gen: 2}
	for _, s := range []int{10, 20, 40} {
		a.add(old, base.Add(time.Duration(s)*time.Second))
	}
	for _, s := range []int{20, 30, 40} {
		a.add(kept, base.Add(time.Duration(s)*time.Second))
	}
	a.add(fresh, base.Add(30*time.Second))
	a.add(old, base.Add(41*time.Second)) // late
	now := base.Add(45 * time.Second)
	if got := fmt.Sprint(a.barsOf(fresh, 10*time.Second, now)); got != "[-1 1 0]" || a.received(fresh) != 1 {
		t.Errorf("the new instance: bars %s, received %d; want [-1 1 0], 1", got, a.received(fresh))
	}
	if got := fmt.Sprint(a.barsOf(kept, 10*time.Second, now)); got != "[1 1 1]" || a.received(kept) != 3 {
		t.Errorf("the instance beside: bars %s, received %d; want [1 1 1], 3", got, a.received(kept))
	}
	if got := fmt.Sprint(a.barsOf(old, 10*time.Second, now)); got != "[-1 -1 -1]" || a.received(old) != 0 {
		t.Errorf("the forgotten instance: bars %s, received %d", got, a.received(old))
	}
	if len(a.beats) != 2 || len(a.at) != 2*3 {
		t.Errorf("%d places, %d times for two slots of three bars", len(a.beats), len(a.at))
	}
}

// A slot whose generations have counted round starts afresh for its new
// instance, as at any other generation, rather than taking it for one
// read late.
func TestArrivalsAfterASlotsGenerationsCountRound(t *testing.T) {
	base := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	a := newArrivals(3, base)
	last, next := watch.Slot{Index: 0, Gen: math.MaxUint32}, watch.Slot{Index: 0, Gen: 1}
	a.add(last, base.Add(10*time.Second))
	a.add(next, base.Add(20*time.Second))
	a.add(last, base.Add(21*time.Second)) // read late
	if a.received(next) != 1 || a.received(last) != 0 {
		t.Errorf("received: the new instance %d, the one before %d; want 1, 0", a.received(next), a.received(last))
	}
}
