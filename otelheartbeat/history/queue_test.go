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
	for round := range 200 {
		for range round % 13 {
			if q.push(watch.Event{Count: next}) {
				next++
			} else if waiting(q) != 50 {
				t.Fatalf("round %d: a push refused with %d waiting", round, waiting(q))
			}
		}
		if waiting(q) > 50 || cap(q.events) > 50 {
			t.Fatalf("round %d: %d waiting in room for %d, past the bound", round, waiting(q), cap(q.events))
		}
		if waiting(q) == 0 {
			continue
		}
		select {
		case <-q.ready:
		default:
			t.Fatalf("round %d: %d wait and the taker is not woken", round, waiting(q))
		}
		// A taker woken takes one or more.
		for range max(round%8, 1) {
			e, ok := q.pop()
			if !ok {
				break
			}
			if e.Count != want {
				t.Fatalf("round %d: event %d came out, want %d", round, e.Count, want)
			}
			want++
		}
	}
	for e, ok := q.pop(); ok; e, ok = q.pop() {
		if e.Count != want {
			t.Fatalf("event %d came out, want %d", e.Count, want)
		}
		want++
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
	if waiting(r.events) != 5000 {
		t.Fatalf("%d events wait, want 5000", waiting(r.events))
	}
	for _, ok := r.events.pop(); ok; _, ok = r.events.pop() {
	}
	if c := cap(r.events.events); c > keptRoom {
		t.Errorf("an empty queue holds room for %d events", c)
	}
	runtime.KeepAlive(r)
}

// waiting is how many events wait in q.
func waiting(q *eventQueue) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.events) - q.head
}
