package watch

import (
	"context"
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
			for _, e := range b {
				ob.m.queued.Add(-int64(e.bytes))
				ob.m.queuedEvents.Add(-1)
				out = append(out, e)
			}
			ob.p.recycle(b)
		default:
			return out
		}
	}
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
// again, and one made for an event alone holds no more room than it.
func TestBatchesAreFilledAgain(t *testing.T) {
	client := redis.NewClient(&redis.Options{}) // never dialled
	defer client.Close()
	m, err := New(Connection{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	p := newPipe(DefaultQueue)
	ob := m.newOutbox(p)
	ctx := context.Background()
	for range maxBatch {
		ob.offer(ctx, Event{Kind: KindHeartbeat})
	}
	full := <-p.out
	if len(full) != maxBatch {
		t.Fatalf("handed over %d events, want %d", len(full), maxBatch)
	}
	p.recycle(full)
	ob.offer(ctx, Event{Kind: KindHeartbeat})
	if cap(ob.batch) < maxBatch {
		t.Errorf("a full batch was not filled again: the next has room for %d", cap(ob.batch))
	}
	ob.flush(ctx)
	<-p.out
	ob.offer(ctx, Event{Kind: KindHeartbeat})
	if cap(ob.batch) != 1 {
		t.Errorf("a batch made for one event has room for %d", cap(ob.batch))
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
