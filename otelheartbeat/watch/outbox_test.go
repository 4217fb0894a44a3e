package watch

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// drain hands over what ob holds and returns every event waiting in its
// pipe, in order, as Run would take them.
func drain(ob *outbox) []Event {
	ob.flush(context.Background())
	var out []Event
	for {
		select {
		case b := <-ob.p.out:
			out = append(out, b...)
			ob.m.release(ob.p, b, 0)
		default:
			return out
		}
	}
}

// newTestOutbox returns a monitor that is never run, a pipe as Run makes
// it and a reader's outbox into it, for tests of the hand-off alone.
func newTestOutbox(t *testing.T, opts ...Option) (*Monitor, *pipe, *outbox) {
	t.Helper()
	client := redis.NewClient(&redis.Options{}) // never dialled
	t.Cleanup(func() { client.Close() })
	m, err := New(Connection{Client: client}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	p := newPipe(m.cfg.Queue)
	return m, p, m.newOutbox(p)
}

// A burst of heartbeats reaches the renderer a batch at a time, every one
// of them and in the order they were published, and a heartbeat alone is
// not held back until another comes.
func TestABurstReachesTheRendererInBatches(t *testing.T) {
	srv := redistest.Start(t)
	m, err := New(Connection{Client: srv.Client(t)}, WithoutLatestState())
	if err != nil {
		t.Fatal(err)
	}
	var batches atomic.Int64
	m.onBatch = func(int) { batches.Add(1) }
	r := runWith(t, m)
	r.waitFor(KindLoaded)
	before := batches.Load()

	const n = 1000
	c := srv.Client(t)
	ctx := context.Background()
	p := c.Pipeline()
	for i := int64(1); i <= n; i++ {
		p.Publish(ctx, "heartbeat:service:burst", message("burst", "1", time.Minute, i))
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	next := int64(1)
	for next <= n {
		e := r.waitFor(KindHeartbeat)
		if e.Message.HeartbeatCount != next {
			t.Fatalf("heartbeat %d came when %d was next", e.Message.HeartbeatCount, next)
		}
		next++
	}
	if got := batches.Load() - before; got > n/4 {
		t.Errorf("%d heartbeats published at once came in %d batches", n, got)
	}

	c.Publish(ctx, "heartbeat:service:burst", message("burst", "1", time.Minute, n+1))
	if e := r.waitFor(KindHeartbeat); e.Message.HeartbeatCount != n+1 {
		t.Errorf("the heartbeat alone came as %d", e.Message.HeartbeatCount)
	}
	if s := m.Stats(); s.Dropped != 0 {
		t.Errorf("%d not shown", s.Dropped)
	}
}

// A batch grown to the most a reader gathers is given back to be filled
// again by a reader that gathers more than one event, and one made for an
// event alone holds no more room than it. A batch's room past its events
// counts against the queue's bound while it waits for Run.
func TestBatchesAreFilledAgain(t *testing.T) {
	m, p, ob := newTestOutbox(t)
	ctx := context.Background()
	for range maxBatch {
		ob.offer(ctx, Event{Kind: KindHeartbeat})
	}
	full := <-p.out
	if len(full) != maxBatch {
		t.Fatalf("handed over %d events, want %d", len(full), maxBatch)
	}
	if q := m.queuedEvents.Load(); q != int64(cap(full)) {
		t.Errorf("a batch of %d events with room for %d waiting: %d counted", len(full), cap(full), q)
	}
	m.release(p, full, 0)
	if q := m.queuedEvents.Load(); q != 0 {
		t.Errorf("%d counted once the batch was let go of", q)
	}

	ob.offer(ctx, Event{Kind: KindHeartbeat})
	if cap(ob.batch) != 1 {
		t.Errorf("a batch begun for one event has room for %d", cap(ob.batch))
	}
	ob.flush(ctx)
	m.release(p, <-p.out, 0)
	if n, one := len(p.free), len(p.single); n != 1 || one != 1 {
		t.Errorf("%d batches of room for many free and %d of room for one, want 1 and 1", n, one)
	}
	ob.offer(ctx, Event{Kind: KindHeartbeat})
	ob.offer(ctx, Event{Kind: KindHeartbeat})
	if cap(ob.batch) < maxBatch {
		t.Errorf("a full batch was not filled again: a batch of two has room for %d", cap(ob.batch))
	}
	ob.flush(ctx)
	m.release(p, <-p.out, 0)

	// Events one at a time, as go-redis's subscription hands them over,
	// take batches of room for one that Run has emptied.
	if n := testing.AllocsPerRun(100, func() {
		ob.offer(ctx, Event{Kind: KindHeartbeat})
		ob.flush(ctx)
		m.release(p, <-p.out, 0)
	}); n != 0 {
		t.Errorf("%.0f allocations an event handed over alone", n)
	}
}

// Run, stuck, and a reader handing over sparse batches: whatever the
// batches' room, the queue holds no more than its bound in events.
func TestSparseBatchesHoldNoMoreRoomThanTheBound(t *testing.T) {
	const queue = 1000
	m, p, ob := newTestOutbox(t, WithQueue(queue, 0))
	ctx := context.Background()
	// A burst grows a batch to the most, which Run empties: it is free.
	for range maxBatch {
		ob.offer(ctx, Event{Kind: KindHeartbeat})
	}
	m.release(p, <-p.out, 0)
	// Then reads of two heartbeats each, Run taking none.
	for range 2 * queue {
		ob.offer(ctx, Event{Kind: KindHeartbeat})
		ob.offer(ctx, Event{Kind: KindHeartbeat})
		ob.flush(ctx)
	}
	room := 0
	for len(p.out) > 0 {
		b := <-p.out
		room += cap(b)
		defer m.release(p, b, 0)
	}
	if room > queue {
		t.Errorf("the queue of %d events holds room for %d", queue, room)
	}
}

// With WithReusedMessages a heartbeat's message is the renderer's during
// the call that gets it, holding that heartbeat, and is decoded into again
// afterwards; without it every event's message is its own.
func TestReusedMessagesAreLentForTheCallOnly(t *testing.T) {
	srv := redistest.Start(t)
	for _, reuse := range []bool{true, false} {
		opts := []Option{WithoutLatestState()}
		if reuse {
			opts = append(opts, WithReusedMessages())
		}
		m, err := New(Connection{Client: srv.Client(t)}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		const n = 300
		loaded := make(chan struct{})
		counts := make(chan int64, n)
		seen := map[*wire.Message]bool{}
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan struct{})
		go func() {
			defer close(ran)
			_ = m.Run(ctx, func(e Event) {
				switch e.Kind {
				case KindLoaded:
					close(loaded)
				case KindHeartbeat:
					seen[e.Message] = true
					counts <- e.Message.HeartbeatCount
				}
			})
		}()
		<-loaded
		// Bursts, each rendered before the next is published: the
		// messages of one are free again for the next.
		c := srv.Client(t)
		const burst = 30
		for from := int64(1); from <= n; from += burst {
			p := c.Pipeline()
			for i := from; i < from+burst; i++ {
				p.Publish(ctx, "heartbeat:service:lent", message("lent", "1", time.Minute, i))
			}
			if _, err := p.Exec(ctx); err != nil {
				t.Fatal(err)
			}
			for want := from; want < from+burst; want++ {
				select {
				case got := <-counts:
					if got != want {
						t.Fatalf("reuse %v: heartbeat %d rendered as %d", reuse, want, got)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("reuse %v: heartbeat %d not rendered", reuse, want)
				}
			}
		}
		cancel()
		<-ran
		switch {
		case reuse && len(seen) > n/2:
			t.Errorf("%d heartbeats rendered in %d messages: not reused", n, len(seen))
		case !reuse && len(seen) != n:
			t.Errorf("%d heartbeats rendered in %d messages, reused without WithReusedMessages", n, len(seen))
		}
	}
}

// A reader that has read a heartbeat and the start of the next frame hands
// the heartbeat over before it waits for the rest: a server that stalls in
// the middle of a frame holds back nothing already read.
func TestAFrameCutShortHoldsNothingBack(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		if _, err := r.ReadString('\n'); err != nil { // the PSUBSCRIBE's header
			return
		}
		for range 4 { // its name and pattern
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
		}
		const pattern, channel = "heartbeat:service:*", "heartbeat:service:stall"
		payload := message("stall", "1", time.Minute, 1)
		frame := fmt.Sprintf("*3\r\n$10\r\npsubscribe\r\n$%d\r\n%s\r\n:1\r\n", len(pattern), pattern) +
			fmt.Sprintf("*4\r\n$8\r\npmessage\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(pattern), pattern, len(channel), channel, len(payload), payload) +
			"*4\r\n$8\r\npmes" // and nothing more: the probes are read and never answered
		if _, err := c.Write([]byte(frame)); err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, c)
	}()
	client := redis.NewClient(&redis.Options{Addr: ln.Addr().String()})
	defer client.Close()
	m, err := New(Connection{Client: client}, WithoutLatestState())
	if err != nil {
		t.Fatal(err)
	}
	r := runWith(t, m)
	if e := r.waitFor(KindHeartbeat); e.Message.InstanceID != "1" {
		t.Errorf("heartbeat of %q", e.Message.InstanceID)
	}
	r.stop()
	<-served // the monitor's connection closed: the server is done
}

// A message lent for a fat heartbeat keeps nothing of it once given back:
// its fields are emptied, and room for many more than most heartbeats
// carry is let go of.
func TestALentMessageKeepsNothingOfItsLastHeartbeat(t *testing.T) {
	m, _, _ := newTestOutbox(t, WithReusedMessages())
	fields := func(n int) []wire.Field {
		f := make([]wire.Field, n)
		for i := range f {
			f[i] = wire.Field{Key: fmt.Sprintf("k%d", i), Value: wire.String(strings.Repeat("x", 900))}
		}
		return f
	}
	thin := &wire.Message{ServiceName: "s", InstanceID: "1", Fields: fields(3)[:1]}
	m.giveBack(Event{Kind: KindHeartbeat, Message: thin})
	if thin.ServiceName != "" || len(thin.Fields) != 0 || cap(thin.Fields) != 3 {
		t.Errorf("given back: %+v, room for %d fields", thin, cap(thin.Fields))
	}
	for _, f := range thin.Fields[:cap(thin.Fields)] {
		if f.Key != "" || f.Value.Str != "" {
			t.Errorf("a field kept past its message's length: %q", f.Key)
		}
	}
	fat := &wire.Message{ServiceName: "s", InstanceID: "2", Fields: fields(64)}
	m.giveBack(Event{Kind: KindHeartbeat, Message: fat})
	if cap(fat.Fields) != 0 {
		t.Errorf("a message given back keeps room for %d fields", cap(fat.Fields))
	}
}
