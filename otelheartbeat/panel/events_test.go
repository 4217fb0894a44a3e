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

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/internal/testing/poll"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// An event stream whose reader stops reading is cut at the write
// deadline, and while its handler runs it counts against the bound, so
// readers that never read cannot pile up beyond it or hold memory.
func TestAReaderThatNeverReadsIsCut(t *testing.T) {
	srv := redistest.Start(t)
	p, err := New(watch.NewTracker(TrackerOptions()...), srv.Client(t), WithEventWriteTimeout(300*time.Millisecond), WithCoalesce(5*time.Millisecond))
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
		p.hub.run(ctx, p.cfg.coalesce, func([]watch.Key, []watch.Transition, bool, string) []byte { return big })
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
	p, err := New(watch.NewTracker(TrackerOptions()...), srv.Client(t))
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
// panel's bound of streams, from the address of the operator's own page,
// lock nobody out: a reader that reads gets its stream and its updates,
// no address holds more than its share, a reader that has proved it
// reads keeps its stream through a second flood, and the streams that do
// not read are found by the probes a crowded panel writes under a
// deadline, and cut.
func TestEventStreamsThatNeverReadLockNobodyOut(t *testing.T) {
	srv := redistest.Start(t)
	p, err := New(watch.NewTracker(TrackerOptions()...), srv.Client(t), WithEventWriteTimeout(500*time.Millisecond),
		WithCoalesce(50*time.Millisecond), WithErrorf(t.Logf))
	if err != nil {
		t.Fatal(err)
	}
	p.probeEvery = 50 * time.Millisecond
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
	flood := func() {
		_, _, before := p.hub.counts()
		for range 260 {
			c, err := net.Dial("tcp", web.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			idle = append(idle, c)
			fmt.Fprintf(c, "GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n") // and never read
		}
		poll.Until(t, 20*time.Second, "every idle stream to be served", func() bool { _, _, added := p.hub.counts(); return added >= before+260 })
		if n, _, _ := p.hub.counts(); n > maxStreamsPerAddress {
			t.Errorf("%d streams held, more than one address's share (%d)", n, maxStreamsPerAddress)
		}
	}
	flood()

	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
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
	updates := make(chan struct{}, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 256<<10), 4<<20)
		for sc.Scan() {
			if sc.Text() == "event: update" {
				updates <- struct{}{}
			}
		}
	}()
	next := func(what string) {
		t.Helper()
		p.hub.changedAll()
		select {
		case <-updates:
		case <-time.After(10 * time.Second):
			t.Fatalf("the reader had no update %s", what)
		}
	}
	next("after the first flood")
	poll.Until(t, 30*time.Second, "the streams that do not read to be cut", func() bool { return p.streams.Load() == 1 })
	// A second flood, on the reader's stream now open: the flood churns
	// through its own streams, newest first, and leaves the reader's.
	flood()
	next("after the second flood")
	poll.Until(t, 30*time.Second, "the streams that do not read to be cut", func() bool { return p.streams.Load() == 1 })
	next("once they are cut")
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
	p, err := New(watch.NewTracker(TrackerOptions()...), client, WithEndpoint("redis://"+addr), WithAuth(auth))
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

// A newcomer cuts the newest stream that has not proved it reads, at its
// address's share and when the hub is full: a stream that proved it
// reads, or an older one, is kept.
func TestANewcomerCutsTheNewestUnprovenStream(t *testing.T) {
	h := newHub()
	noDeadline := func(time.Time) error { return nil }
	var first []*client
	for i := range maxStreamsPerAddress {
		first = append(first, h.add("", "10.0.0.1", noDeadline))
		if i == 0 {
			first[0].proven.Store(true)
		}
	}
	h.add("", "10.0.0.1", noDeadline)
	h.mu.Lock()
	kept := h.clients[first[0]] && h.clients[first[1]] && !h.clients[first[len(first)-1]]
	h.mu.Unlock()
	if !kept {
		t.Error("at its share an address lost its proven or oldest stream, not its newest unproven one")
	}
	for i := 0; len(h.clients) < maxStreams; i++ {
		c := h.add("", fmt.Sprintf("10.1.%d.%d", i/250, i%250), noDeadline)
		c.proven.Store(true)
	}
	late := h.add("", "10.9.0.1", noDeadline)
	h.add("", "10.9.0.2", noDeadline)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.clients[late] || !h.clients[first[0]] {
		t.Error("the full hub did not cut the newest stream that had not proved it reads")
	}
}
