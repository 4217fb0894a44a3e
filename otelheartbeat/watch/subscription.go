package watch

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"
)

// subscription is one of the monitor's ways of receiving heartbeats: a
// PSUBSCRIBE on the lean subscriber's own connection, go-redis's PubSub
// for the clients the lean subscriber cannot stand in for, or one
// SSUBSCRIBE connection per node in sharded mode. Each feeds the tracker
// and the event queue itself, on its own goroutines, so that Run never
// waits on the network; what they share, reconnecting with a bounded
// back-off and telling Run when they subscribe and fail, is receive.
type subscription interface {
	// session subscribes and calls subscribed once it has (subscribed
	// returns false when ctx is done, and the session returns), then
	// ingests what it reads until the subscription fails, and returns
	// why. A session that fails before subscribing does not call
	// subscribed.
	session(ctx context.Context, subscribed func() bool) error
	// close releases what outlives a session, once every session is over.
	close()
}

// newSubscription chooses how to receive: the lean subscriber when it can
// stand in for the client, since go-redis copies every publication it
// delivers.
func (m *Monitor) newSubscription(out *pipe) subscription {
	if m.cfg.Sharded {
		return &shardedSubscription{m: m, out: out}
	}
	if o, ok := leanOptions(m.cfg.Client); ok {
		return &leanSubscription{m: m, opts: o, ds: newDecodeState(), out: out}
	}
	return &goRedisSubscription{m: m, ds: newDecodeState(), out: out}
}

// Bounds of the back-off between failed sessions: the first wait after a
// session that subscribed is the shortest.
const (
	firstBackoff = 100 * time.Millisecond
	maxBackoff   = 5 * time.Second
)

// receive runs sessions of sub until ctx is done, telling Run of each
// subscription and each failure, and waiting between failures. Run waits
// for it to return.
func (m *Monitor) receive(ctx context.Context, sub subscription, ctl chan<- control) {
	backoff := firstBackoff
	for ctx.Err() == nil {
		subscribed := false
		err := sub.session(ctx, func() bool {
			subscribed = true
			return sendControl(ctx, ctl, control{subscribed: true, at: time.Now()})
		})
		if ctx.Err() != nil {
			return
		}
		if subscribed {
			backoff = firstBackoff
		}
		if !sendControl(ctx, ctl, control{err: err, at: time.Now()}) || !wait(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// sendControl passes a connection event to Run; false when ctx is done.
func sendControl(ctx context.Context, ctl chan<- control, c control) bool {
	select {
	case ctl <- c:
		return true
	case <-ctx.Done():
		return false
	}
}

func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// leanSubscription reads the subscription with the lean subscriber, on a
// connection dialled afresh for every session.
type leanSubscription struct {
	m    *Monitor
	opts subscriberOptions
	ds   *decodeState
	out  *pipe
}

func (l *leanSubscription) session(ctx context.Context, subscribed func() bool) error {
	from := time.Now()
	sub, err := dialSubscriber(ctx, l.opts, "PSUBSCRIBE", l.m.Subscription())
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = sub.close() }) // unblocks the read
	defer func() {
		stop()
		_ = sub.close()
	}()
	pr := l.m.sight.newProbe(from, sub.ping)
	defer l.m.sight.drop(pr)
	if !subscribed() {
		return nil
	}
	return l.m.read(ctx, sub, pr, l.ds, "pmessage", l.out)
}

func (l *leanSubscription) close() {}

// read ingests sub's frames until the connection fails, and returns why.
// A frame the reader refuses but can read past (an oversized channel name
// or payload) is a malformed heartbeat, never a broken connection.
func (m *Monitor) read(ctx context.Context, sub *subscriber, pr *probe, ds *decodeState, message string, out *pipe) error {
	ob := m.newOutbox(out)
	// Before each read from the socket, which may wait, even in the middle
	// of a frame, what the reader gathered goes to Run; and whatever ends
	// the reading, since the tracker has taken it.
	sub.beforeRead = func() error {
		if !ob.flush(ctx) {
			return ctx.Err()
		}
		return nil
	}
	defer func() {
		sub.beforeRead = nil
		ob.flush(ctx)
	}()
	for {
		if m.beforeFrame != nil {
			m.beforeFrame()
		}
		kind, ch, payload, err := sub.frame()
		var big *oversized
		switch {
		case errors.As(err, &big):
			if !m.ingest(ctx, ob, received{at: time.Now(), channel: string(ch), err: big}) {
				return ctx.Err()
			}
		case err != nil:
			return err
		case kind == message:
			if !m.ingest(ctx, ob, m.decode(ds, ch, payload, time.Now())) {
				return ctx.Err()
			}
		case kind == "pong":
			pr.answered(payload)
		case kind == "sunsubscribe":
			return fmt.Errorf("%w (%s)", errSlotMoved, ch)
		}
	}
}

// goRedisSubscription reads the subscription through go-redis, for clients
// the lean subscriber cannot stand in for (Cluster, Sentinel, custom
// dialers and credential providers). One PubSub serves every session:
// after a failure, go-redis reconnects and resubscribes on the next
// Receive.
type goRedisSubscription struct {
	m   *Monitor
	ds  *decodeState
	out *pipe

	ps       *redis.PubSub
	patterns bool      // PSUBSCRIBE succeeded once: go-redis repeats it
	from     time.Time // when the connection being made was asked for
}

func (g *goRedisSubscription) session(ctx context.Context, subscribed func() bool) error {
	if g.ps == nil {
		g.ps = g.m.cfg.Client.PSubscribe(ctx)
	}
	stop := context.AfterFunc(ctx, func() { _ = g.ps.Close() }) // unblocks Receive
	defer stop()
	if !g.patterns {
		g.from = time.Now()
		if err := g.ps.PSubscribe(ctx, g.m.Subscription()); err != nil {
			return err
		}
		g.patterns = true
	}
	var pr *probe
	defer func() {
		if pr != nil {
			g.m.sight.drop(pr)
		}
	}()
	ob := g.m.newOutbox(g.out)
	for {
		msg, err := g.ps.Receive(ctx)
		if err != nil {
			g.from = time.Now()
			return err
		}
		switch msg := msg.(type) {
		case *redis.Subscription:
			if pr == nil {
				pr = g.m.sight.newProbe(g.from, g.ping(ctx))
			}
			if !subscribed() {
				return nil
			}
		case *redis.Pong:
			if pr != nil {
				pr.answered([]byte(msg.Payload))
			}
		case *redis.Message:
			// Views, not copies: nothing writes to them, and the decoder
			// keeps no reference into its input.
			ch := unsafe.Slice(unsafe.StringData(msg.Channel), len(msg.Channel))
			payload := unsafe.Slice(unsafe.StringData(msg.Payload), len(msg.Payload))
			// go-redis does not say what it has read ahead: each
			// publication goes over alone.
			if !g.m.ingest(ctx, ob, g.m.decode(g.ds, ch, payload, time.Now())) || !ob.flush(ctx) {
				return nil
			}
		}
	}
}

// ping probes the PubSub's connection; the answer arrives through Receive.
func (g *goRedisSubscription) ping(ctx context.Context) func(string) error {
	return func(payload string) error {
		pctx, cancel := context.WithTimeout(ctx, g.m.cfg.Probe)
		defer cancel()
		return g.ps.Ping(pctx, payload)
	}
}

func (g *goRedisSubscription) close() {
	if g.ps != nil {
		_ = g.ps.Close()
	}
}

// shardedSubscription keeps one SSUBSCRIBE connection per node that owns
// a registered service's channel; see shardSession.
type shardedSubscription struct {
	m   *Monitor
	out *pipe
}

func (s *shardedSubscription) session(ctx context.Context, subscribed func() bool) error {
	return s.m.shardSession(ctx, s.out, subscribed)
}

func (s *shardedSubscription) close() {}
