package panel

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/poll"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// An event stream whose reader stops reading is cut at the write
// deadline, and while its handler runs it counts against the bound, so
// readers that never read cannot pile up beyond it or hold memory.
func TestAReaderThatNeverReadsIsCut(t *testing.T) {
	srv := redistest.Start(t)
	p, err := New(Config{Conn: watch.Connection{Client: srv.Client(t)}, EventWriteTimeout: 300 * time.Millisecond, Coalesce: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.met.shutdown()
	web := httptest.NewServer(p.Handler())
	defer web.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait(); p.hub.closeAll() }()
	big := append(bytes.Repeat([]byte("x"), 256<<10), '"')
	wg.Add(2)
	go func() {
		defer wg.Done()
		p.hub.run(ctx, p.cfg.Coalesce, func([]watch.Key, []watch.Transition, bool, string) []byte { return big })
	}()
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			p.hub.touch(watch.Key{Service: "s", Instance: fmt.Sprint(i % 10)})
			time.Sleep(time.Millisecond) // a steady trickle of changes
		}
	}()

	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := d.Dial("tcp", web.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n") // and never read
	poll.Until(t, 10*time.Second, "the stream to start", func() bool { return p.streams.Load() == 1 })
	poll.Until(t, 10*time.Second, "the stalled stream to be cut", func() bool { return p.streams.Load() == 0 })
}

// The bearer scheme is matched without regard to case (RFC 7235).
func TestAuthSchemeIsCaseInsensitive(t *testing.T) {
	a, err := ParseAuth("0123456789abcdef-token", "")
	if err != nil {
		t.Fatal(err)
	}
	for h, want := range map[string]bool{"Bearer 0123456789abcdef-token": true, "bearer 0123456789abcdef-token": true,
		"BEARER 0123456789abcdef-token": true, "Bearer 0123456789abcdef-toke": false, "Basic 0123456789abcdef-token": false} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", h)
		if got := a.allows(r); got != want {
			t.Errorf("%q: %v, want %v", h, got, want)
		}
	}
}

// A stream of the fleet carries no instance; a stream of a service
// carries that service's instances and no other's.
func TestUpdatesCarryOnlyWhatTheStreamShows(t *testing.T) {
	srv := redistest.Start(t)
	p, err := New(Config{Conn: watch.Connection{Client: srv.Client(t)}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.met.shutdown()
	var keys []watch.Key
	for _, k := range []watch.Key{{Service: "a", Instance: "1"}, {Service: "b", Instance: "2"}} {
		p.tr.Observe(&wire.Message{ServiceName: k.Service, InstanceID: k.Instance, Timestamp: time.Now(), IntervalSeconds: 1, Has: wire.HasInterval})
		keys = append(keys, k)
	}
	decode := func(b []byte) UpdateJSON {
		var u UpdateJSON
		if err := json.Unmarshal(b, &u); err != nil {
			t.Fatal(err)
		}
		return u
	}
	if u := decode(p.flush(keys, nil, false, "")); len(u.Instances) != 0 {
		t.Errorf("the fleet's stream carries %d instances", len(u.Instances))
	}
	u := decode(p.flush(keys, nil, false, "a"))
	if len(u.Instances) != 1 || u.Instances[0].Service != "a" || len(u.Services) != 1 || u.Services[0].Name != "a" {
		t.Errorf("a's stream: %+v", u)
	}
}

// 260 connections to /api/v1/events that never read, more than the
// panel's bound of streams, lock nobody out: a reader that reads still
// gets its stream and its updates, no address holds more than its share,
// and the streams that do not read are found by the probes a crowded
// panel writes under a deadline, and cut.
func TestEventStreamsThatNeverReadLockNobodyOut(t *testing.T) {
	srv := redistest.Start(t)
	p, err := New(Config{Conn: watch.Connection{Client: srv.Client(t)}, EventWriteTimeout: 500 * time.Millisecond,
		Coalesce: 50 * time.Millisecond, Errorf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	p.probeEvery = 200 * time.Millisecond
	web := httptest.NewUnstartedServer(p.Handler())
	web.Config.ConnContext = ConnContext
	web.Start()
	defer web.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- p.Run(ctx) }()
	defer func() { cancel(); <-ran }()

	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range 260 {
		c, err := net.Dial("tcp", web.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
		fmt.Fprintf(c, "GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n") // and never read
	}
	poll.Until(t, 10*time.Second, "the idle streams to be served", func() bool { return p.streams.Load() > 0 })

	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	req, _ := http.NewRequestWithContext(rctx, http.MethodGet, web.URL+"/api/v1/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("a reader that reads got %s: %s", resp.Status, b)
	}
	p.hub.changedAll()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if sc.Text() == "event: update" {
			break
		}
	}
	if sc.Err() != nil {
		t.Fatalf("the reader's stream: %v", sc.Err())
	}
	if n := p.hub.len(); n > maxStreamsPerAddress+1 {
		t.Errorf("%d streams held, more than one address's share (%d) and the reader", n, maxStreamsPerAddress)
	}
	// The reader keeps reading; the others are found and cut.
	go func() { _, _ = io.Copy(io.Discard, resp.Body) }()
	poll.Until(t, 30*time.Second, "the streams that do not read to be cut", func() bool { return p.streams.Load() == 1 })
}

// With credentials required, /readyz still answers without them, for
// load balancers, but says ready or not and nothing else: not Valkey's
// address, not why, not whether this replica records. With them, all of
// it.
func TestReadyzSaysNothingMoreWithoutCredentials(t *testing.T) {
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + fmt.Sprint(port)
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer client.Close()
	auth, err := ParseAuth("a-token-of-16-chars-or-more", "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{Conn: watch.Connection{Client: client, Endpoint: "redis://" + addr}, Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	defer p.met.shutdown()
	web := httptest.NewServer(p.Handler())
	defer web.Close()
	get := func(token string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, web.URL+"/readyz", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("")
	if code != http.StatusServiceUnavailable || strings.TrimSpace(body) != `{"status":"not ready"}` {
		t.Errorf("without credentials: %d %s", code, body)
	}
	code, body = get("a-token-of-16-chars-or-more")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, fmt.Sprint(port)) || !strings.Contains(body, "reasons") {
		t.Errorf("with credentials: %d %s, want the reasons", code, body)
	}
}
