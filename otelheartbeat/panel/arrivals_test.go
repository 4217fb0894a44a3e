package panel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
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
	if len(a.beats) != 2 || len(a.gaps) != 2*2 {
		t.Errorf("%d places, %d gaps for two slots of three bars", len(a.beats), len(a.gaps))
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

// A gap's 16 bits are the gap itself below 4096 ticks (409.6 s), and
// within 1/4096 of it beyond, rounded either way, never past what 16
// bits hold; a longer code is a longer gap.
func TestAGapsCodeIsExactThenWithinAPart(t *testing.T) {
	for d := range uint32(1 << 12) {
		if got := gapOf(gapCode(d)); got != d {
			t.Fatalf("gap %d came back as %d", d, got)
		}
	}
	prev := uint16(0)
	for _, d := range []uint32{4096, 4097, 8191, 8192, 36_000, 36_001, 864_000, 1 << 24, 4095 << 15, 4096 << 15, math.MaxUint32} {
		c := gapCode(d)
		got := gapOf(c)
		want := min(uint64(d), 4095<<15)
		if diff := math.Abs(float64(got) - float64(want)); diff > float64(want)/4096 {
			t.Errorf("gap %d came back as %d, off by %.0f", d, got, diff)
		}
		if c < prev {
			t.Errorf("gap %d has code %#x, below the shorter gap's %#x", d, c, prev)
		}
		prev = c
	}
}

// Heartbeats read out of their order (a latest-state key read after a
// later heartbeat, a redelivery) show in the bars as they would in order.
func TestArrivalsOutOfOrderMakeTheSameBars(t *testing.T) {
	base := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		bars := 1 + rng.IntN(12)
		interval := time.Duration(1+rng.IntN(40)) * time.Second
		var at []time.Time
		for s := time.Duration(0); len(at) < 3*bars; s += interval {
			if rng.IntN(4) != 0 { // a quarter of the heartbeats are lost
				at = append(at, base.Add(time.Hour+s+time.Duration(rng.IntN(1000))*time.Millisecond))
			}
		}
		in, out := newArrivals(bars, base), newArrivals(bars, base)
		k := watch.Slot{Index: 0, Gen: 1}
		for _, t := range at {
			in.add(k, t)
		}
		// The same, shuffled: a little (each at most three places out)
		// in even rounds, wholly in odd ones, the first heartbeat too.
		shuffled := slices.Clone(at)
		for i := range shuffled {
			j := min(i+rng.IntN(4), len(shuffled)-1)
			if round%2 == 1 {
				j = i + rng.IntN(len(shuffled)-i)
			}
			shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
		}
		for _, t := range shuffled {
			out.add(k, t)
		}
		now := at[len(at)-1].Add(interval / 2)
		if a, b := fmt.Sprint(in.barsOf(k, interval, now)), fmt.Sprint(out.barsOf(k, interval, now)); a != b || in.received(k) != out.received(k) {
			t.Fatalf("round %d (%d bars, every %v): in order %s, out of order %s", round, bars, interval, a, b)
		}
	}
}

// An instance that beats once an hour or once a day keeps its bars
// whole: its gaps are kept within a part in 4096, rounded either way, so
// thirty of them move its first bar's heartbeat by less than a percent
// of a bar.
func TestArrivalsOfASlowInstanceKeepTheirBars(t *testing.T) {
	base := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	for _, interval := range []time.Duration{7 * time.Minute, time.Hour, 24 * time.Hour} {
		a := newArrivals(30, base)
		k := watch.Slot{Index: 0, Gen: 1}
		at := base
		for i := range 40 {
			at = base.Add(time.Duration(i)*interval + time.Duration(i%7)*time.Second)
			if i != 25 {
				a.add(k, at)
			}
		}
		want := strings.Repeat("1 ", 15) + "0 " + strings.TrimSpace(strings.Repeat("1 ", 14))
		if got := fmt.Sprint(a.barsOf(k, interval, at.Add(interval/2))); got != "["+want+"]" {
			t.Errorf("every %v: bars %s", interval, got)
		}
	}
}
