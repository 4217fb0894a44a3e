package panel

import (
	"cmp"
	"math"
	"math/bits"
	"slices"
	"sync"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
)

// arrivals is what the panel keeps of each instance's heartbeats as they
// arrive: how many, and when the latest few came, for the bars. A time is
// kept in arrivalTicks since base (32 bits: 13 years), a month before the
// panel started, so that a heartbeat read from a latest-state key, which
// arrived before, keeps its time. Instances are found by their slot in
// the tracker (watch.Slot): every instance's counts are in one slice, and
// its times in another, at its slot's index.
//
// Of an instance's latest arrivals, as many as there are bars, the latest
// is kept whole and each one before as its gap to the next, in 16 bits
// (see gapCode): exact to 409 s, and within 1/4096 of the gap beyond. An
// instance costs 24 bytes and 2 a bar, about 80 bytes at the default 30
// bars, no map entry and no allocation of its own for the collector to
// follow; a forgotten instance's place is taken by the next one the
// tracker gives its slot. The bars are as fine as a tick: a heartbeat
// within a tenth of a second of a bar's edge may count in the bar beside,
// and a bar of an interval under a tick spans a tick.
type arrivals struct {
	mu    sync.Mutex
	beats []beats  // by slot index
	gaps  []uint16 // each slot's ring of gaps between its latest arrivals, bars-1 long
	bars  int
	base  time.Time
}

// beats are one instance's counts.
type beats struct {
	received int64  // heartbeats since the first; the ring holds the latest min(received, bars)
	gen      uint32 // the generation of the slot they are of; 0: none
	first    uint32 // when the first came, in ticks since base
	last     uint32 // when the latest came
	next     uint32 // where the next gap goes in its ring
}

// arrivalTick is the resolution of the kept times: a tenth of the
// shortest interval the bars show well.
const arrivalTick = 100 * time.Millisecond

// arrivalsBefore is how long before the panel's start base is.
const arrivalsBefore = 31 * 24 * time.Hour

func newArrivals(bars int, started time.Time) *arrivals {
	return &arrivals{bars: max(bars, 1), base: started.Add(-arrivalsBefore)}
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
	t := a.ticks(at)
	switch held := (watch.Slot{Index: s.Index, Gen: b.gen}); {
	case b.gen == s.Gen:
	case b.gen != 0 && s.Before(held):
		return
	default: // the slot's new instance: it starts afresh
		*b = beats{gen: s.Gen, first: t, last: t, received: 1}
		return
	}
	ring := a.ring(i)
	switch {
	case t < b.last: // arrived before the latest (read late): in its place
		a.insert(b, ring, t)
		b.first = min(b.first, t)
	case len(ring) > 0:
		ring[b.next] = gapCode(t - b.last)
		b.next = (b.next + 1) % uint32(len(ring))
		b.last = t
	default:
		b.last = t
	}
	b.received++
}

// insert puts t, earlier than b's latest arrival, among b's arrivals, in
// their order: the rare heartbeat read after a later one.
func (a *arrivals) insert(b *beats, ring []uint16, t uint32) {
	var room [64]uint32
	times := a.times(b, ring, room[:0]) // latest first
	at, _ := slices.BinarySearchFunc(times, t, func(x, t uint32) int { return cmp.Compare(t, x) })
	times = slices.Insert(times, at, t)[:min(len(times)+1, a.bars)]
	clear(ring)
	b.last, b.next = times[0], 0
	for j := len(times) - 1; j > 0; j-- { // oldest gap first, as add writes them
		ring[b.next] = gapCode(times[j-1] - times[j])
		b.next = (b.next + 1) % uint32(len(ring))
	}
}

// times appends b's kept arrivals to dst, latest first.
func (a *arrivals) times(b *beats, ring []uint16, dst []uint32) []uint32 {
	t := b.last
	dst = append(dst, t)
	for k := 1; k < int(min(b.received, int64(a.bars))); k++ {
		j := (int(b.next) - k + len(ring)) % len(ring)
		t -= min(gapOf(ring[j]), t)
		dst = append(dst, t)
	}
	return dst
}

// grow makes room for n slots.
func (a *arrivals) grow(n int) {
	from := len(a.beats)
	a.beats = slices.Grow(a.beats, n-from)[:n]
	clear(a.beats[from:])
	g := a.bars - 1
	a.gaps = slices.Grow(a.gaps, (n-from)*g)[:n*g]
	clear(a.gaps[from*g:])
}

// of returns the counts of the instance in slot s, or nil.
func (a *arrivals) of(s watch.Slot) *beats {
	if !s.Valid() || int(s.Index) >= len(a.beats) || a.beats[s.Index].gen != s.Gen {
		return nil
	}
	return &a.beats[s.Index]
}

// ring is the gaps of the instance at index i.
func (a *arrivals) ring(i int) []uint16 {
	g := a.bars - 1
	return a.gaps[i*g : (i+1)*g]
}

// gapCode is a gap of ticks in 16 bits: below 4096 the gap itself; from
// there a 4-bit exponent and the gap's 12 leading bits, rounded to the
// nearest, so that an instance's times, each the sum of the gaps after
// it, drift neither way; at most 4095<<15 ticks (155 days), which any
// longer gap is held to.
func gapCode(d uint32) uint16 {
	if d < 1<<12 {
		return uint16(d)
	}
	e := bits.Len32(d) - 12
	m := (d + 1<<(e-1)) >> e // rounded: may carry to 1<<12
	if m == 1<<12 {
		e, m = e+1, 1<<11
	}
	if e > 15 {
		return 15<<12 | (1<<12 - 1)
	}
	return uint16(e<<12) | uint16(m&(1<<12-1))
}

// gapOf is the gap a gapCode stands for.
func gapOf(c uint16) uint32 {
	e := c >> 12
	if e == 0 {
		return uint32(c)
	}
	return uint32(c&(1<<12-1)|1<<11) << e
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
	var room [64]uint32
	times := a.times(b, a.ring(int(s.Index)), room[:0])
	for i := range out {
		end := now.Add(-time.Duration(len(out)-1-i) * interval)
		if a.ticks(end) < b.first {
			out[i] = -1
			continue
		}
		lo, hi := a.ticks(end.Add(-max(interval, arrivalTick))), a.ticks(end)
		for _, t := range times {
			if t > lo && t <= hi {
				out[i] = 1
				break
			}
		}
	}
	return out
}
