package history

import (
	"runtime"
	"testing"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
)

// Events come out in the order they went in, however pushes and takes
// interleave; no more than the bound wait, in no more room than the
// bound's; and the taker is woken while any wait.
func TestTheEventQueueKeepsOrderAndBound(t *testing.T) {
	q := newEventQueue(50)
	next, want := 0, 0
	var into [7]watch.Event
	for round := range 200 {
		for range round % 13 {
			if q.push(watch.Event{Count: next}) {
				next++
			} else if q.waiting() != 50 {
				t.Fatalf("round %d: a push refused with %d waiting", round, q.waiting())
			}
		}
		if q.waiting() > 50 || cap(q.events) > 50 {
			t.Fatalf("round %d: %d waiting in room for %d, past the bound", round, q.waiting(), cap(q.events))
		}
		if q.waiting() > 0 {
			select {
			case <-q.ready:
			default:
				t.Fatalf("round %d: %d wait and the taker is not woken", round, q.waiting())
			}
		}
		for _, e := range into[:q.take(into[:round%8])] {
			if e.Count != want {
				t.Fatalf("round %d: event %d came out, want %d", round, e.Count, want)
			}
			want++
		}
	}
	for n := q.take(into[:]); n > 0; n = q.take(into[:]) {
		for _, e := range into[:n] {
			if e.Count != want {
				t.Fatalf("event %d came out, want %d", e.Count, want)
			}
			want++
		}
	}
	if want != next {
		t.Fatalf("%d events came out of %d queued", want, next)
	}
}

// A recorder holds room for the events it has, not for all it may have:
// its queue of 10,000 was 3 MB from the start, whatever the fleet. Room
// a burst took is let go once it is written.
func TestARecorderHoldsNoRoomForEventsItHasNot(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := NewRecorder(nil, nil, nil)
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 64<<10 {
		t.Errorf("a new recorder holds %d bytes", grew)
	}
	for i := range 5000 {
		r.Observe(watch.Event{Kind: watch.KindTransition, Count: i})
	}
	if r.events.waiting() != 5000 {
		t.Fatalf("%d events wait, want 5000", r.events.waiting())
	}
	var into [16]watch.Event
	for r.events.take(into[:]) > 0 {
	}
	if c := cap(r.events.events); c > keptRoom {
		t.Errorf("an empty queue holds room for %d events", c)
	}
	runtime.KeepAlive(r)
}
