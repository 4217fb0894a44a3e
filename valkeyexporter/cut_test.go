package valkeyexporter

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
)

// An export whose context is cancelled (no deadline) while Valkey stalls
// returns at once, not at the client's 5 s read timeout, though the send
// runs on the caller's goroutine; and once Valkey answers again the next
// export goes through: only the connection the cancelled send used was cut.
func TestACancelledExportReturnsAtOnceWhileValkeyStalls(t *testing.T) {
	srv := redistest.Start(t)
	exp := newExporter(t, srv)
	rm := collect(t, "tracker_fetcher")
	must(t, exp.Export(context.Background(), rm))

	srv.Pause()
	// Cancelled at once, before the send has written anything, and while
	// it waits for the stalled server's reply.
	for _, after := range []time.Duration{0, 150 * time.Millisecond} {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- exp.Export(ctx, rm) }()
		time.AfterFunc(after, cancel)
		start := time.Now()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("export cancelled after %v: %v, want context.Canceled", after, err)
			}
			if took := time.Since(start); took > after+time.Second {
				t.Errorf("the export cancelled after %v returned after %v", after, took)
			}
		case <-time.After(4 * time.Second):
			t.Fatalf("the export cancelled after %v did not return before the client's read timeout", after)
		}
		cancel()
	}
	srv.Resume()
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := exp.Export(ctx, rm)
		cancel()
		if err != nil {
			t.Fatalf("export %d after the stall: %v", i, err)
		}
	}
}

// A connection cut while its send was in progress, but already back in the
// pool (go-redis returns it before the send returns), works for the next
// send: the cut ends with the send it was for. And a cut that lands after
// its send ended cuts nothing.
func TestACutEndsWithItsSend(t *testing.T) {
	srv := redistest.Start(t)
	exp := newExporter(t, srv)
	rm := collect(t, "tracker_fetcher")
	ctx := context.Background()
	must(t, exp.Export(ctx, rm))

	cut, end := exp.cutters.begin()
	if err := exp.s.client.Ping(ctx).Err(); err != nil { // the send's I/O, done and pooled
		t.Fatal(err)
	}
	cut()
	end()
	for i := range 3 {
		if err := exp.Export(ctx, rm); err != nil {
			t.Fatalf("export %d after a connection was cut in an earlier send: %v", i, err)
		}
	}

	cut, end = exp.cutters.begin()
	end()
	cut() // late: its send is over
	if err := exp.Export(ctx, rm); err != nil {
		t.Fatalf("export after a late cut: %v", err)
	}
}

// Exports cancelled at random moments against a healthy server never cost
// the uncancelled export after each its heartbeat.
func TestRandomCancelsDoNotFailTheExportsAfterThem(t *testing.T) {
	srv := redistest.Start(t)
	exp := newExporter(t, srv)
	rm := collect(t, "tracker_fetcher")
	must(t, exp.Export(context.Background(), rm))
	for i := range 1000 {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(time.Duration(i%400)*time.Microsecond, cancel)
		_ = exp.Export(ctx, rm)
		cancel()
		ctx, cancel = context.WithTimeout(context.Background(), 3*time.Second)
		err := exp.Export(ctx, rm)
		cancel()
		if err != nil {
			t.Fatalf("round %d: the export after a cancelled one failed: %v", i, err)
		}
	}
}

// A connection Valkey closed while it sat idle for a second or more (its
// `timeout` setting, a proxy's idle cut) is found closed before a heartbeat
// is written to it, and the heartbeat goes out on a new one. One closed
// within the second after it was last used is not looked at: the
// heartbeat sent on it fails, the next one goes out on a new connection.
func TestAConnectionClosedWhileIdleIsNotUsed(t *testing.T) {
	srv := redistest.Start(t)
	exp := newExporter(t, srv)
	var now atomic.Int64 // nanoseconds on the exporter's clock
	exp.cutters.now = func() time.Duration { return time.Duration(now.Load()) }
	ch := subscribe(t, srv, "heartbeat:service:*")
	rm := collect(t, "tracker_fetcher")
	ctx := context.Background()
	must(t, exp.Export(ctx, rm))
	next(t, ch)

	kill := func() {
		t.Helper()
		// Every normal client but the one asking: the exporter's.
		if n := srv.Do(t, "CLIENT", "KILL", "TYPE", "normal"); n != int64(1) {
			t.Fatalf("CLIENT KILL closed %v connections, want the exporter's 1", n)
		}
	}

	kill()
	now.Add(int64(time.Second))
	if err := exp.Export(ctx, rm); err != nil {
		t.Fatalf("the export after the connection was closed while idle: %v", err)
	}
	next(t, ch)

	kill()
	now.Add(int64(time.Second / 2))
	if err := exp.Export(ctx, rm); err == nil {
		t.Fatal("a heartbeat went out on a connection closed half a second after its last use; want it sent there and failed, as nothing looked at it")
	}
	must(t, exp.Export(ctx, rm))
	next(t, ch)
}

// The exporter's client works before its first send too: a command made
// outside any send (the cluster client's reload of the slots, Shutdown's
// clean-up) is never taken for one of a send that was cut.
func TestTheClientWorksOutsideASend(t *testing.T) {
	srv := redistest.Start(t)
	exp := newExporter(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := exp.s.client.Ping(ctx).Err(); err != nil {
		t.Fatalf("a command before the first send: %v", err)
	}
	must(t, exp.Export(ctx, collect(t, "tracker_fetcher")))
	if err := exp.s.client.Ping(ctx).Err(); err != nil {
		t.Fatalf("a command after a send: %v", err)
	}
}
