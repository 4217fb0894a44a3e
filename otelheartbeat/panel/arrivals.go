package panel

import (
	"math"
	"slices"
	"sync"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
)

// arrivals is what the panel keeps of each instance's heartbeats as they
// arrive: how many, and when the latest few came, for the bars. A time is
// kept as 32 bits of arrivalTick since base (13 years): a month before the
// panel started, so that a heartbeat read from a latest-state key, which
// arrived before, keeps its time. Instances are found by their slot in
// the tracker (watch.Slot): every instance's times are in one slice, and
// its counts in another, at its slot's index. An instance costs 24 bytes
// and 4 a bar, about 150 bytes at the default 30 bars, no map entry and no
// allocation of its own for the collector to follow; a forgotten
// instance's place is taken by the next one the tracker gives its slot.
// The bars are as fine as a tick: a heartbeat within a tenth of a second
// of a bar's edge may count in the bar beside, and a bar of an interval
// under a tick spans a tick.
type arrivals struct {
	mu    sync.Mutex
	beats []beats  // by slot index
	at    []uint32 // each slot's ring of its latest arrivals, bars long, in ticks since base; 0: none
	bars  int
	base  time.Time
}

// beats are one instance's counts.
type beats struct {
	received int64
	gen      uint32 // the generation of the slot they are of; 0: none
	first    uint32 // when the first came, in ticks since base
	next     uint32 // where the next goes in its ring
}

// arrivalTick is the resolution of the kept times: a tenth of the
// shortest interval the bars show well.
const arrivalTick = 100 * time.Millisecond

// arrivalsBefore is how long before the panel's start base is.
const arrivalsBefore = 31 * 24 * time.Hour

func newArrivals(bars int, started time.Time) *arrivals {
	return &arrivals{bars: bars, base: started.Add(-arrivalsBefore)}
}

// ticks is t in ticks since base, at least 1 (0 is "none") and at most
// what 32 bits hold.
func (a *arrivals) ticks(t time.Time) uint32 {
	d := t.Sub(a.base) / arrivalTick
	return uint32(min(max(int64(d), 0)+1, math.MaxUint32))
}

// add records a heartbeat that arrived at at, of the instance in slot s,
// a slot of the panel's tracker (below its Slots). A heartbeat of an
// instance whose slot has since been given to another (read late) is not
// counted for the other.
func (a *arrivals) add(s watch.Slot, at time.Time) {
	if !s.Valid() {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	i := int(s.Index)
	if i >= len(a.beats) {
		a.grow(i + 1)
	}
	b := &a.beats[i]
	switch held := (watch.Slot{Index: s.Index, Gen: b.gen}); {
	case b.gen == s.Gen:
	case b.gen != 0 && s.Before(held):
		return
	default: // the slot's new instance: it starts afresh
		*b = beats{gen: s.Gen, first: a.ticks(at)}
		clear(a.ring(i))
	}
	b.received++
	if ring := a.ring(i); len(ring) > 0 {
		ring[b.next] = a.ticks(at)
		b.next = (b.next + 1) % uint32(len(ring))
	}
}

// grow makes room for n slots.
func (a *arrivals) grow(n int) {
	from := len(a.beats)
	a.beats = slices.Grow(a.beats, n-from)[:n]
	clear(a.beats[from:])
	a.at = slices.Grow(a.at, (n-from)*a.bars)[:n*a.bars]
	clear(a.at[from*a.bars:])
}

// of returns the counts of the instance in slot s, or nil.
func (a *arrivals) of(s watch.Slot) *beats {
	if !s.Valid() || int(s.Index) >= len(a.beats) || a.beats[s.Index].gen != s.Gen {
		return nil
	}
	return &a.beats[s.Index]
}

// ring is the times of the instance at index i.
func (a *arrivals) ring(i int) []uint32 {
	return a.at[i*a.bars : (i+1)*a.bars]
}

// received is how many heartbeats of the instance in slot s arrived.
func (a *arrivals) received(s watch.Slot) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if b := a.of(s); b != nil {
		return b.received
	}
	return 0
}

// barsOf returns, oldest first, whether a heartbeat of the instance in
// slot s arrived in each of the last intervals before now: 1 yes, 0 no,
// -1 before the panel first heard it.
func (a *arrivals) barsOf(s watch.Slot, interval time.Duration, now time.Time) []int {
	out := make([]int, a.bars)
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.of(s)
	if b == nil || interval <= 0 {
		for i := range out {
			out[i] = -1
		}
		return out
	}
	first, ring := b.first, a.ring(int(s.Index))
	for i := range out {
		end := now.Add(-time.Duration(len(out)-1-i) * interval)
		if a.ticks(end) < first {
			out[i] = -1
			continue
		}
		lo, hi := a.ticks(end.Add(-max(interval, arrivalTick))), a.ticks(end)
		for _, t := range ring {
			if t != 0 && t > lo && t <= hi {
				out[i] = 1
				break
			}
		}
	}
	return out
}
