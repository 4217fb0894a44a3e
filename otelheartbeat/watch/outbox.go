package watch

import "context"

// maxBatch bounds the events a reader hands to Run at once.
const maxBatch = 256

// freeBatches is how many emptied batches wait to be filled again.
const freeBatches = 8

// pipe carries events from the reading goroutines to Run a batch at a
// time, and brings the batches Run has emptied back to be filled again.
type pipe struct {
	out  chan []Event
	free chan []Event
}

// newPipe holds up to queue batches: as many as the events the queue
// holds (WithQueue), so that it is full only when they are.
func newPipe(queue int) *pipe {
	return &pipe{out: make(chan []Event, max(queue, 1)), free: make(chan []Event, freeBatches)}
}

// recycle gives an emptied batch back, unless enough wait already. A
// batch grown to maxBatch has room for a few more (append rounds up).
func (p *pipe) recycle(b []Event) {
	clear(b)
	if cap(b) > 2*maxBatch {
		return
	}
	select {
	case p.free <- b[:0]:
	default:
	}
}

// outbox is one reading goroutine's side of the pipe. A heartbeat costs a
// channel send, and Run a wake-up, when it is handed over alone: a reader
// gathers what one read of its socket brought (at most maxBatch events)
// and hands it over before it reads again from the socket, so that the
// flow costs that a batch and no event waits for the next publication.
//
// The queue's bounds (WithQueue) count events, from the moment one joins
// a batch until Run has emitted it. A heartbeat or malformed-message
// report past them is not shown, and counted as dropped; a transition is
// never dropped: once the queue is full it is handed over at once, the
// reader waiting for room, as it waited before batches.
type outbox struct {
	m       *Monitor
	p       *pipe
	batch   []Event
	verdict bool // the batch holds a transition: it waits for room rather than being dropped
}

func (m *Monitor) newOutbox(p *pipe) *outbox { return &outbox{m: m, p: p} }

// offer adds an event Run may skip, when the queue has room for it.
func (o *outbox) offer(ctx context.Context, e Event) bool {
	m := o.m
	e.bytes = len(e.Raw)
	if e.Message != nil {
		e.bytes += e.Message.Footprint()
	}
	if m.queuedEvents.Add(1) > int64(m.cfg.Queue) {
		m.queuedEvents.Add(-1)
		m.dropped.Add(1)
		m.giveBack(e)
		return true
	}
	if m.queued.Add(int64(e.bytes)) > int64(m.cfg.QueueBytes) {
		m.queued.Add(-int64(e.bytes))
		m.queuedEvents.Add(-1)
		m.dropped.Add(1)
		m.giveBack(e)
		return true
	}
	return o.add(ctx, e)
}

// must adds an event that waits for Run rather than being dropped.
func (o *outbox) must(ctx context.Context, e Event) bool {
	over := o.m.queuedEvents.Add(1) > int64(o.m.cfg.Queue)
	o.verdict = true
	if !o.add(ctx, e) {
		return false
	}
	if over {
		return o.flush(ctx)
	}
	return true
}

func (o *outbox) add(ctx context.Context, e Event) bool {
	if o.batch == nil {
		// One emptied by Run; or else room for this event alone, so that
		// the queue's events, a batch each when Run is stuck and they
		// come one at a time, hold no more room than themselves.
		select {
		case o.batch = <-o.p.free:
		default:
			o.batch = make([]Event, 0, 1)
		}
	}
	o.batch = append(o.batch, e)
	if len(o.batch) >= maxBatch {
		return o.flush(ctx)
	}
	return true
}

// flush hands the batch over. One without a transition that finds the
// pipe full is dropped, and counted; one with a transition waits for
// room, until ctx is done (false).
func (o *outbox) flush(ctx context.Context) bool {
	b, verdict := o.batch, o.verdict
	if len(b) == 0 {
		return true
	}
	o.batch, o.verdict = nil, false
	if verdict {
		select {
		case o.p.out <- b:
			return true
		case <-ctx.Done():
			o.release(b)
			return false
		}
	}
	select {
	case o.p.out <- b:
	default:
		o.m.dropped.Add(int64(len(b)))
		o.release(b)
	}
	return true
}

// release uncounts the events of a batch that is not handed over.
func (o *outbox) release(b []Event) {
	for i := range b {
		o.m.queued.Add(-int64(b[i].bytes))
		o.m.giveBack(b[i])
	}
	o.m.queuedEvents.Add(-int64(len(b)))
	o.p.recycle(b)
}
