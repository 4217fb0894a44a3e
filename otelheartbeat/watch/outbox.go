package watch

import "context"

// maxBatch bounds the events a reader hands to Run at once.
const maxBatch = 256

// freeBatches is how many emptied batches of room for many wait to be
// filled again, and minFree the least room of one; freeSingles how many of
// room for one.
const (
	freeBatches = 8
	minFree     = 16
	freeSingles = 64
)

// pipe carries events from the reading goroutines to Run a batch at a
// time, and brings the batches Run has emptied back to be filled again:
// those of room for many, for a reader gathering a burst, and those of
// room for one, for a reader with an event alone.
type pipe struct {
	out          chan []Event
	free, single chan []Event
}

// newPipe holds up to queue batches: as many as the events the queue
// holds (WithQueue), so that it is full only when they are.
func newPipe(queue int) *pipe {
	return &pipe{out: make(chan []Event, max(queue, 1)), free: make(chan []Event, freeBatches),
		single: make(chan []Event, freeSingles)}
}

// recycle gives an emptied batch back, unless enough of its kind wait
// already or it is of neither kind. A batch grown to maxBatch has room for
// a few more (append rounds up).
func (p *pipe) recycle(b []Event) {
	clear(b) // past its events a batch is empty already
	to := p.free
	switch {
	case cap(b) == 1:
		to = p.single
	case cap(b) < minFree || cap(b) > 2*maxBatch:
		return
	}
	select {
	case to <- b[:0]:
	default:
	}
}

// release lets go of a batch handed over, its events from i on not
// emitted: they and the batch's room past its events are uncounted, and
// their messages given back.
func (m *Monitor) release(p *pipe, b []Event, i int) {
	for _, e := range b[i:] {
		m.queued.Add(-int64(e.bytes))
		m.giveBack(e)
	}
	m.queuedEvents.Add(-int64(len(b) - i + cap(b) - len(b)))
	p.recycle(b)
}

// outbox is one reading goroutine's side of the pipe. A heartbeat costs a
// channel send, and Run a wake-up, when it is handed over alone: a reader
// gathers what one read of its socket brought (at most maxBatch events)
// and hands it over before it reads from the socket again, even in the
// middle of a frame (see subscriber.beforeRead), so that the flow costs
// that a batch and no event waits for more bytes to come.
//
// The queue's bounds (WithQueue) count events, from the moment one joins
// a batch until Run has emitted it, and a batch's room past its events
// while it waits in the pipe, so that the queue never holds more room than
// its bound in events. A heartbeat or malformed-message report past them
// is not shown, and counted as dropped. A transition is never dropped:
// once the queue is full it is handed over at once, and waits when the
// pipe is full, so that at most as many transitions again as the bound
// wait beyond it while Run is stuck.
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
	switch {
	case o.batch == nil:
		// Room for this event alone: events that come one at a time are
		// handed over a batch each, holding no more room than themselves.
		select {
		case o.batch = <-o.p.single:
		default:
			o.batch = make([]Event, 0, 1)
		}
	case len(o.batch) == 1 && cap(o.batch) == 1:
		// More than one: one emptied by Run, when there is one.
		select {
		case b := <-o.p.free:
			o.batch = append(b, o.batch[0])
		default:
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
	// Its room past its events counts while it waits.
	o.m.queuedEvents.Add(int64(cap(b) - len(b)))
	if verdict {
		select {
		case o.p.out <- b:
			return true
		case <-ctx.Done():
			o.m.release(o.p, b, 0)
			return false
		}
	}
	select {
	case o.p.out <- b:
	default:
		o.m.dropped.Add(int64(len(b)))
		o.m.release(o.p, b, 0)
	}
	return true
}
