package panel

import (
	"math"
	"sync"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
)

// arrivals is what the panel keeps of each instance's heartbeats as they
// arrive: how many, and when the latest few came, for the bars. A time is
// kept as 32 bits of arrivalTick since base (13 years): a month before the
// panel started, so that a heartbeat read from a latest-state key, which
// arrived before, keeps its time. Every instance's times are in one slice,
// and its counts in another, where its map entry says: an instance costs
// that entry, 16 bytes and 4 a bar, about 180 bytes at the default 30
// bars, and no allocation of its own for the collector to follow. The
// bars are as fine as a tick: a heartbeat within a tenth of a second of a
// bar's edge may count in the bar beside, and a bar of an interval under
// a tick spans a tick.
type arrivals struct {
	mu    sync.Mutex
	of    map[watch.Key]int32 // an instance's place in beats, and in at times bars
	beats []beats
	at    []uint32 // each instance's ring of its latest arrivals, bars long, in ticks since base; 0: none
	free  []int32  // places of instances forgotten, to use again
	bars  int
	base  time.Time
}

// beats are one instance's counts.
type beats struct {
	received int64
	first    uint32 // when the first came, in ticks since base
	next     uint32 // where the next goes in its ring
}

// arrivalTick is the resolution of the kept times: a tenth of the
// shortest interval the bars show well.
const arrivalTick = 100 * time.Millisecond

// arrivalsBefore is how long before the panel's start base is.
const arrivalsBefore = 31 * 24 * time.Hour

func newArrivals(bars int, started time.Time) *arrivals {
	return &arrivals{of: map[watch.Key]int32{}, bars: bars, base: started.Add(-arrivalsBefore)}
}

// ticks is t in ticks since base, at least 1 (0 is "none") and at most
// what 32 bits hold.
func (a *arrivals) ticks(t time.Time) uint32 {
	d := t.Sub(a.base) / arrivalTick
	return uint32(min(max(int64(d), 0)+1, math.MaxUint32))
}

// add records a heartbeat of k that arrived at at.
func (a *arrivals) add(k watch.Key, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	i, ok := a.of[k]
	if !ok {
		i = a.place()
		a.of[k] = i
		a.beats[i].first = a.ticks(at)
	}
	b := &a.beats[i]
	b.received++
	if ring := a.ring(i); len(ring) > 0 {
		ring[b.next] = a.ticks(at)
		b.next = (b.next + 1) % uint32(len(ring))
	}
}

// place returns a place for a new instance, cleared: one forgotten, or a
// new one at the end.
func (a *arrivals) place() int32 {
	if n := len(a.free); n > 0 {
		i := a.free[n-1]
		a.free = a.free[:n-1]
		a.beats[i] = beats{}
		clear(a.ring(i))
		return i
	}
	a.beats = append(a.beats, beats{})
	a.at = append(a.at, make([]uint32, a.bars)...)
	return int32(len(a.beats) - 1)
}

// ring is the times of the instance at place i.
func (a *arrivals) ring(i int32) []uint32 {
	return a.at[int(i)*a.bars : (int(i)+1)*a.bars]
}

// received is how many heartbeats of k arrived.
func (a *arrivals) received(k watch.Key) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	i, ok := a.of[k]
	if !ok {
		return 0
	}
	return a.beats[i].received
}

// bars returns, oldest first, whether a heartbeat of k arrived in each of
// the last intervals before now: 1 yes, 0 no, -1 before the panel first
// heard it.
func (a *arrivals) barsOf(k watch.Key, interval time.Duration, now time.Time) []int {
	out := make([]int, a.bars)
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.of[k]
	if !ok || interval <= 0 {
		for i := range out {
			out[i] = -1
		}
		return out
	}
	first, ring := a.beats[at].first, a.ring(at)
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

// forget drops the instances gone says are gone, asking without the
// lock, so that the bars are not held up meanwhile.
func (a *arrivals) forget(gone func(watch.Key) bool) {
	a.mu.Lock()
	keys := make([]watch.Key, 0, len(a.of))
	for k := range a.of {
		keys = append(keys, k)
	}
	a.mu.Unlock()
	var drop []watch.Key
	for _, k := range keys {
		if gone(k) {
			drop = append(drop, k)
		}
	}
	a.mu.Lock()
	for _, k := range drop {
		if i, ok := a.of[k]; ok {
			delete(a.of, k)
			a.free = append(a.free, i)
		}
	}
	a.mu.Unlock()
}
