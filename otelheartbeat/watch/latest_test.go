package watch

import (
	"bytes"
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// netOutput is how many bytes the server has sent its clients so far.
func netOutput(t *testing.T, c *redis.Client) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, "total_net_output_bytes:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no total_net_output_bytes in INFO stats")
	return 0
}

// byKey returns the entry of key, failing when there is none.
func byKey(t *testing.T, latest []Latest, key string) Latest {
	t.Helper()
	for _, l := range latest {
		if l.Key == key {
			return l
		}
	}
	t.Fatalf("no entry for %s in %+v", key, latest)
	return Latest{}
}

// A latest-state key larger than any heartbeat is reported, not read: five
// 100 MB keys once cost a monitor 900 MB at start and on every reconnect.
func TestOversizedLatestStateKeysAreNotRead(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	const size = 8 << 20
	c.Set(ctx, "heartbeat:instance:big:0001", strings.Repeat("x", size), time.Minute)
	c.Set(ctx, "heartbeat:instance:ok:0002", message("ok", "0002", time.Minute, 1), 3*time.Minute)

	before := netOutput(t, c)
	latest, err := ReadLatest(ctx, c, wire.DefaultKeyPrefix, "")
	sent := netOutput(t, c) - before
	if err != nil {
		t.Fatal(err)
	}
	if sent > 1<<20 {
		t.Errorf("the server sent %d bytes: the %d-byte key was read", sent, size)
	}
	big := byKey(t, latest, "heartbeat:instance:big:0001")
	if big.Err == nil || !strings.Contains(big.Err.Error(), "8388608 bytes") || !strings.Contains(big.Err.Error(), "heartbeat:instance:big:0001") {
		t.Errorf("big key: %v", big.Err)
	}
	if ok := byKey(t, latest, "heartbeat:instance:ok:0002"); ok.Err != nil || ok.State() != Alive {
		t.Errorf("valid key beside it: %+v", ok)
	}
}

// Keys the library cannot have written are malformed, naming the key: one
// without a TTL (read as "age 0, alive" forever), one whose TTL is longer
// than the three intervals the exporter sets, and one of another type.
func TestLatestStateKeysTheLibraryCannotHaveWrittenAreMalformed(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	c.Set(ctx, "heartbeat:instance:forever:0001", message("forever", "0001", time.Minute, 1), 0)
	c.Set(ctx, "heartbeat:instance:long:0003", message("long", "0003", time.Minute, 1), time.Hour)
	c.HSet(ctx, "heartbeat:instance:hash:0002", "service_name", "hash")
	c.Set(ctx, "heartbeat:instance:ok:0004", message("ok", "0004", time.Minute, 1), 3*time.Minute)

	latest, err := ReadLatest(ctx, c, wire.DefaultKeyPrefix, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(latest) != 4 {
		t.Fatalf("%d entries, want 4: %+v", len(latest), latest)
	}
	for key, want := range map[string]string{
		"heartbeat:instance:forever:0001": "has no TTL",
		"heartbeat:instance:long:0003":    "longer than three intervals",
		"heartbeat:instance:hash:0002":    "WRONGTYPE",
	} {
		l := byKey(t, latest, key)
		if l.Err == nil || !strings.Contains(l.Err.Error(), want) || !strings.Contains(l.Err.Error(), key) {
			t.Errorf("%s: %v, want an error naming it and saying %q", key, l.Err, want)
		}
	}
	if ok := byKey(t, latest, "heartbeat:instance:ok:0004"); ok.Err != nil || ok.State() != Alive {
		t.Errorf("valid key: %+v", ok)
	}
}

// --service payments is payments, not payments:worker, although both keys
// match heartbeat:instance:payments:*.
func TestLatestStateMatchesTheServiceExactly(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	c.Set(ctx, wire.Key(wire.DefaultKeyPrefix, "payments:worker", "bbbb"), message("payments:worker", "bbbb", time.Minute, 1), 3*time.Minute)
	latest, err := ReadLatest(ctx, c, wire.DefaultKeyPrefix, "payments")
	if err != nil || len(latest) != 0 {
		t.Errorf("payments without an instance: %+v, %v", latest, err)
	}
	c.Set(ctx, wire.Key(wire.DefaultKeyPrefix, "payments", "aaaa"), message("payments", "aaaa", time.Minute, 1), 3*time.Minute)
	latest, err = ReadLatest(ctx, c, wire.DefaultKeyPrefix, "payments")
	if err != nil || len(latest) != 1 || latest[0].Message == nil || latest[0].Message.ServiceName != "payments" {
		t.Errorf("payments: %+v, %v", latest, err)
	}

	r := start(t, srv, WithService("payments"))
	if loaded := r.waitFor(KindLoaded); loaded.Count != 1 {
		t.Errorf("monitor of payments loaded %d instances, want 1", loaded.Count)
	}
	r.stop()
	if snap := r.m.Tracker().Snapshot(); len(snap) != 1 || snap[0].Service != "payments" {
		t.Errorf("tracked %+v", snap)
	}
}

// A key whose name is longer than any heartbeat's key can be (a prefix, a
// service name and an instance id of at most wire.MaxNameLength bytes
// each) is reported by a short prefix of its name and not read: a 100 MB
// name once cost a monitor 2.6 GB and 400 MB of output.
func TestAnOverlongKeyNameIsReportedShortAndNotRead(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	long := "heartbeat:instance:" + strings.Repeat("\x1b", 1<<20)
	c.Set(ctx, long, "x", time.Minute)
	c.Set(ctx, "heartbeat:instance:ok:aaaa", message("ok", "aaaa", time.Minute, 1), 3*time.Minute)
	before := netOutput(t, c)
	latest, err := ReadLatest(ctx, c, wire.DefaultKeyPrefix, "")
	if err != nil {
		t.Fatal(err)
	}
	// SCAN returns the name once; nothing asks for it again.
	if sent := netOutput(t, c) - before; sent > 2<<20 {
		t.Errorf("the server sent %d bytes: the long key was asked about", sent)
	}
	var reported bool
	for _, l := range latest {
		if len(l.Key) > 200 {
			t.Errorf("an entry names a key of %d bytes", len(l.Key))
		}
		if l.Err != nil && strings.Contains(l.Err.Error(), "1048595 bytes") {
			reported = true
			if len(l.Err.Error()) > 400 {
				t.Errorf("the error is %d bytes long", len(l.Err.Error()))
			}
		}
	}
	if !reported {
		t.Errorf("the long key was not reported: %+v", latest)
	}
	if l := byKey(t, latest, "heartbeat:instance:ok:aaaa"); l.Err != nil {
		t.Errorf("the good key: %v", l.Err)
	}
}

// gatedProxy forwards one client's connections to a server, calling
// before with each chunk the client sends, before forwarding it: a test
// acts between a reader's round trips there.
func gatedProxy(t *testing.T, server string, before func(chunk []byte)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", server)
			if err != nil {
				in.Close()
				continue
			}
			wg.Go(func() { defer in.Close(); _, _ = io.Copy(in, out) })
			wg.Go(func() {
				defer out.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := in.Read(buf)
					if err != nil {
						return
					}
					before(buf[:n])
					if _, err := out.Write(buf[:n]); err != nil {
						return
					}
				}
			})
		}
	})
	return ln.Addr().String()
}

// A writer that swaps a huge value into a latest-state key between a
// reader's look at the key and its read gets nothing more than a
// heartbeat's size transferred: any service may SET its own key, so one
// could otherwise make every monitor read 60 MB.
func TestALatestStateKeySwappedBetweenRoundTripsIsNotReadWhole(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	key := wire.Key(wire.DefaultKeyPrefix, "swap", "0001")
	small := message("swap", "0001", time.Minute, 1)
	const size = 16 << 20
	big := strings.Repeat("x", size)
	c.Set(ctx, key, small, 3*time.Minute)

	var looked, swapped bool
	addr := gatedProxy(t, srv.Addr(), func(chunk []byte) {
		switch {
		case swapped:
		case looked:
			// The reader's next round trip: the key holds the huge value now.
			c.Set(ctx, key, big, 3*time.Minute)
			swapped = true
		case bytes.Contains(bytes.ToLower(chunk), []byte("strlen")) || bytes.Contains(bytes.ToLower(chunk), []byte("getrange")):
			looked = true
		}
	})
	reader := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 1, Protocol: 2})
	defer reader.Close()
	if err := reader.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	before := netOutput(t, c)
	latest, err := ReadLatest(ctx, reader, wire.DefaultKeyPrefix, "")
	if sent := netOutput(t, c) - before; sent > 1<<20 {
		t.Errorf("the server sent %d bytes: the swapped-in %d-byte value was read", sent, size)
	}
	if err != nil {
		t.Fatal(err)
	}
	if l := byKey(t, latest, key); l.Err == nil && l.Message == nil {
		t.Errorf("the key is neither read nor reported: %+v", l)
	}
}
