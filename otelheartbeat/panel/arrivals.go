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
// arrived before, keeps its time. An instance costs its map entry and 4
// bytes a bar, about 250 bytes at the default 30 bars. The bars are as
// fine as a tick: a heartbeat within a tenth of a second of a bar's edge
// may count in the bar beside, and a bar of an interval under a tick
// spans a tick.
type arrivals struct {
	mu   sync.Mutex
	of   map[watch.Key]beats
	bars int
	base time.Time
}

// beats are one instance's arrivals.
type beats struct {
	received int64
	first    uint32   // when the first came, in ticks since base
	next     uint32   // where the next goes in at
	at       []uint32 // ring of the latest, in ticks since base; 0: none
}

// arrivalTick is the resolution of the kept times: a tenth of the
// shortest interval the bars show well.
const arrivalTick = 100 * time.Millisecond

// arrivalsBefore is how long before the panel's start base is.
const arrivalsBefore = 31 * 24 * time.Hour

func newArrivals(bars int, started time.Time) *arrivals {
	return &arrivals{of: map[watch.Key]beats{}, bars: bars, base: started.Add(-arrivalsBefore)}
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
	b, ok := a.of[k]
	if !ok {
		b = beats{first: a.ticks(at), at: make([]uint32, a.bars)}
	}
	b.received++
	if len(b.at) > 0 {
		b.at[b.next] = a.ticks(at)
		b.next = (b.next + 1) % uint32(len(b.at))
	}
	a.of[k] = b
}

// received is how many heartbeats of k arrived.
func (a *arrivals) received(k watch.Key) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.of[k].received
}

// bars returns, oldest first, whether a heartbeat of k arrived in each of
// the last intervals before now: 1 yes, 0 no, -1 before the panel first
// heard it.
func (a *arrivals) barsOf(k watch.Key, interval time.Duration, now time.Time) []int {
	out := make([]int, a.bars)
	a.mu.Lock()
	defer a.mu.Unlock()
	b, ok := a.of[k]
	if !ok || interval <= 0 {
		for i := range out {
			out[i] = -1
		}
		return out
	}
	for i := range out {
		end := now.Add(-time.Duration(len(out)-1-i) * interval)
		if a.ticks(end) < b.first {
			out[i] = -1
			continue
		}
		lo, hi := a.ticks(end.Add(-max(interval, arrivalTick))), a.ticks(end)
		for _, t := range b.at {
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
		delete(a.of, k)
	}
	a.mu.Unlock()
}
