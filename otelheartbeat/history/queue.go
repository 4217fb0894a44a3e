package history

import (
	"sync"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
)

// eventQueue holds the events waiting to be written, at most max, in the
// order they came, in room for at most max. It takes room as events come
// rather than all at once:
// a channel of 10,000 events held 3 MB from the start, a panel's fixed
// cost whatever its fleet, for a queue that is empty nearly always; and
// room a burst took is let go once the queue is empty again.
type eventQueue struct {
	mu     sync.Mutex
	events []watch.Event // events[head:] wait
	head   int
	max    int
	ready  chan struct{} // holds a token while events wait
}

// keptRoom is the room an empty queue keeps for the next events.
const keptRoom = 16

func newEventQueue(max int) *eventQueue {
	return &eventQueue{max: max, ready: make(chan struct{}, 1)}
}

// push queues e, unless max are waiting: it reports whether it did.
func (q *eventQueue) push(e watch.Event) bool {
	q.mu.Lock()
	if len(q.events)-q.head >= q.max {
		q.mu.Unlock()
		return false
	}
	if len(q.events) == cap(q.events) {
		if q.head > 0 {
			// Move what waits to the front rather than grow past it.
			n := copy(q.events, q.events[q.head:])
			clear(q.events[n:])
			q.events, q.head = q.events[:n], 0
		} else {
			// Grow by doubling, but never past the bound: what waits
			// never needs more.
			grown := make([]watch.Event, len(q.events), min(max(2*cap(q.events), keptRoom), q.max))
			copy(grown, q.events)
			q.events = grown
		}
	}
	q.events = append(q.events, e)
	q.mu.Unlock()
	q.signal()
	return true
}

// signal leaves a token in ready, unless one is there already.
func (q *eventQueue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// pop takes the oldest waiting event, if any. The token is given back
// while more wait, so that the taker comes back for them after whatever
// else it has to do.
func (q *eventQueue) pop() (watch.Event, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.events) {
		return watch.Event{}, false
	}
	e := q.events[q.head]
	q.events[q.head] = watch.Event{}
	q.head++
	if q.head < len(q.events) {
		q.signal()
	} else {
		q.emptied()
	}
	return e, true
}

// drop empties the queue.
func (q *eventQueue) drop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	clear(q.events[q.head:])
	q.emptied()
}

// emptied starts the queue again at its front, letting go of room past
// keptRoom. The caller holds q.mu.
func (q *eventQueue) emptied() {
	q.head = 0
	if cap(q.events) > keptRoom {
		q.events = nil
	} else {
		q.events = q.events[:0]
	}
}
