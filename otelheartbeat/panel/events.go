package panel

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// The live updates: GET /api/v1/events, Server-Sent Events fed by a hub
// that coalesces what changed. A stream whose reader does not read holds a
// goroutine, its queued updates and a slot: readers that never read must
// not take the slots of those that do. So one address holds a share of
// the slots; a crowded panel probes its streams with padded comments
// under the write deadline, on connections whose send buffer it shrank,
// which cuts a reader that does not read within seconds; and a stream
// whose reader has taken more than its buffers could hold has proved it
// reads, and is never cut to make room for a newcomer.

// Bounds of the event streams.
const (
	// maxStreams bounds the streams the hub feeds at once. Past it, a new
	// stream makes room by cutting one of the address that holds the most,
	// as that address's own next stream would: it is never refused for
	// want of room.
	maxStreams = 256
	// maxStreamsPerAddress bounds one address's streams (an IPv6 /64 is
	// one address): its next stream cuts the newest of them that has not
	// proved it reads (or, when all have, its oldest), so that a flood
	// churns through its own streams and leaves the page that was open
	// alone. A browser opens one per tab.
	maxStreamsPerAddress = 8
	// maxHandlers bounds the stream handlers running, cut ones still
	// finishing a write included: past it a stream is refused.
	maxHandlers = 2 * maxStreams
	// keepAliveEvery spaces the comments that keep an idle stream open
	// through proxies.
	keepAliveEvery = 15 * time.Second
	// probeSize is the padding of the comment a crowded panel writes to a
	// stream that has not proved it reads, every probe (Panel.probeEvery),
	// and to the others every sixteenth: a reader that does not read fills
	// its buffers with a few of them, and the write deadline then cuts it.
	probeSize = 64 << 10
	// provenAfter is what a reader has taken, written without blocking,
	// when it has proved it reads: several times what the shrunk send
	// buffer and a receive window that does not grow hold together (about
	// 300 KB on Linux, measured).
	provenAfter = 1 << 20
	// streamSendBuffer is the kernel's send buffer of a stream's
	// connection, when the server gives the handler its connection
	// (ConnContext): small enough that probes fill a non-reader's
	// buffers in seconds, large enough for a service's update over a
	// long round trip.
	streamSendBuffer = 64 << 10
)

// probeComment is the padded comment of a probe: EventSource skips it.
var probeComment = append(append([]byte(": "), bytes.Repeat([]byte{' '}, probeSize)...), "\n\n"...)

type connKey struct{}

// ConnContext, set as the http.Server's ConnContext, gives the event
// streams their connection, so that they can shrink its send buffer: a
// reader that never reads is then found in seconds rather than after
// megabytes. Without it the streams work the same, and such a reader is
// cut later.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// events is GET /api/v1/events: Server-Sent Events, one "update" event
// each time something changed (at most every Config.Coalesce). A client
// too slow to take them is disconnected; its browser reconnects and
// reloads.
func (p *Panel) events(w http.ResponseWriter, r *http.Request) {
	if _, ok := w.(http.Flusher); !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	// Handlers whose streams were cut may still be finishing a write: the
	// bound counts every handler running, and is well above the streams'.
	if p.streams.Add(1) > maxHandlers {
		p.streams.Add(-1)
		http.Error(w, "too many event streams", http.StatusServiceUnavailable)
		return
	}
	defer p.streams.Add(-1)
	service := r.URL.Query().Get("service")
	if service != "" {
		if err := wire.ValidateServiceName(service); err != nil {
			http.Error(w, "service: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	// Only a send buffer of known size makes what a reader took a proof
	// that it reads: the kernel's own grows to megabytes.
	conn, canProve := r.Context().Value(connKey{}).(*net.TCPConn)
	if canProve {
		canProve = conn.SetWriteBuffer(streamSendBuffer) == nil
	}
	rc := http.NewResponseController(w)
	c := p.hub.add(service, address(r.RemoteAddr), rc.SetWriteDeadline)
	if c == nil {
		http.Error(w, "the panel is stopping", http.StatusServiceUnavailable)
		return
	}
	defer p.hub.remove(c)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	h.Set("Connection", "close") // a cut stream ends its connection
	write := func(b []byte) bool {
		if !c.deadline(p.cfg.eventWriteTimeout) {
			return false
		}
		if _, err := w.Write(b); err != nil || rc.Flush() != nil {
			return false
		}
		if canProve && c.written.Add(int64(len(b))) >= provenAfter {
			c.proven.Store(true)
		}
		return true
	}
	if !write([]byte("retry: 2000\n\n")) {
		return
	}
	probe := time.NewTicker(p.probeEvery)
	defer probe.Stop()
	quiet := time.Now()
	for tick := 0; ; tick++ {
		select {
		case <-r.Context().Done():
			return
		case b, ok := <-c.ch:
			if !ok || !write(fmt.Appendf(nil, "event: update\ndata: %s\n\n", b)) {
				return
			}
			quiet = time.Now()
		case now := <-probe.C:
			switch {
			case p.hub.crowded() && (!c.proven.Load() || tick%16 == 0):
				if !write(probeComment) {
					return
				}
			case now.Sub(quiet) >= keepAliveEvery:
				if !write([]byte(": keep-alive\n\n")) {
					return
				}
				quiet = now
			}
		}
	}
}

// address is the part of a remote address that one party controls: the
// host, and of an IPv6 host its /64, which one party usually holds whole.
func address(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Is4() || ip.Is4In6() {
		return host
	}
	prefix, _ := ip.Prefix(64)
	return prefix.String()
}

// hub collects what changed and sends it to every event stream.
type hub struct {
	mu          sync.Mutex
	dirty       map[watch.Key]bool
	transitions []watch.Transition
	all         bool // every service changed: whether the panel watches did
	clients     map[*client]bool
	byAddress   map[string][]*client // each address's streams, oldest first
	closed      bool
	added       int64 // streams ever added
}

type client struct {
	ch      chan []byte
	service string // "": the fleet, without instances
	address string
	seq     int64        // the order it was added in
	written atomic.Int64 // bytes written to it without blocking
	proven  atomic.Bool  // it has taken more than it could hold unread

	mu          sync.Mutex
	cut         bool                  // by the hub: the handler must end
	setDeadline func(time.Time) error // the connection's write deadline
}

// deadline sets the next write's deadline, unless the stream was cut:
// false then.
func (c *client) deadline(d time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut {
		return false
	}
	_ = c.setDeadline(time.Now().Add(d))
	return true
}

// stop cuts the stream: a write under way fails at once, and the
// handler ends.
func (c *client) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = true
	_ = c.setDeadline(time.Now())
}

func newHub() *hub {
	return &hub{dirty: map[watch.Key]bool{}, clients: map[*client]bool{}, byAddress: map[string][]*client{}}
}

// maxDirty bounds what one update holds; past it the rest waits for the
// next one.
const maxDirty = 20_000

// touch marks k changed for the next update. With nobody listening there
// is none to make, so nothing is kept: a stream is registered before its
// first byte, and its reader reads the whole state once it opens (the
// page does), so nothing touched before can be missed.
func (h *hub) touch(k watch.Key) {
	h.mu.Lock()
	if len(h.clients) > 0 && (len(h.dirty) < maxDirty || h.dirty[k]) {
		h.dirty[k] = true
	}
	h.mu.Unlock()
}

func (h *hub) transition(t watch.Transition) {
	h.mu.Lock()
	if len(h.transitions) < 1000 {
		h.transitions = append(h.transitions, t)
	}
	h.mu.Unlock()
}

// changedAll marks every service changed, as when the panel starts or
// stops seeing Valkey: their states turn unknown or back without any
// instance being touched.
func (h *hub) changedAll() {
	h.mu.Lock()
	h.all = true
	h.mu.Unlock()
}

// add registers a stream of address, making room as the bounds say; nil
// once the hub is closed.
func (h *hub) add(service, address string, setDeadline func(time.Time) error) *client {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	if same := h.byAddress[address]; len(same) >= maxStreamsPerAddress {
		h.drop(toCut(same))
	}
	if len(h.clients) >= maxStreams {
		h.drop(h.victim())
	}
	h.added++
	c := &client{ch: make(chan []byte, 16), service: service, address: address, setDeadline: setDeadline, seq: h.added}
	h.clients[c] = true
	h.byAddress[address] = append(h.byAddress[address], c)
	return c
}

// victim is the stream to cut for a newcomer when the hub is full: the
// newest of all that has not proved it reads, or when every one has, the
// oldest of the address that holds the most. Readers that proved it keep
// their streams, from whatever address, whatever the newcomers do.
func (h *hub) victim() *client {
	var newest, oldest *client
	var most []*client
	for _, cs := range h.byAddress {
		for _, c := range cs {
			if !c.proven.Load() && (newest == nil || c.seq > newest.seq) {
				newest = c
			}
		}
		if len(cs) > len(most) || len(cs) == len(most) && cs[0].seq < oldest.seq {
			most, oldest = cs, cs[0]
		}
	}
	if newest != nil {
		return newest
	}
	return oldest
}

// toCut is the stream of cs (oldest first) to cut for a newcomer: the
// newest that has not proved it reads, or when every one has, the oldest.
func toCut(cs []*client) *client {
	for i := len(cs) - 1; i >= 0; i-- {
		if !cs[i].proven.Load() {
			return cs[i]
		}
	}
	return cs[0]
}

// drop ends a stream the hub holds; with h.mu held.
func (h *hub) drop(c *client) {
	if !h.clients[c] {
		return
	}
	delete(h.clients, c)
	rest := slices.DeleteFunc(h.byAddress[c.address], func(o *client) bool { return o == c })
	if len(rest) == 0 {
		delete(h.byAddress, c.address)
	} else {
		h.byAddress[c.address] = rest
	}
	close(c.ch)
	c.stop()
}

func (h *hub) remove(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.drop(c)
}

// counts are how many streams the hub feeds, how many of them have
// proved they read, and how many it was ever given.
func (h *hub) counts() (now, proven int, added int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		if c.proven.Load() {
			proven++
		}
	}
	return len(h.clients), proven, h.added
}

// crowded says whether the streams are many, or one address holds its
// share: then the streams are probed, so that those that do not read are
// found and cut, and those that do prove it.
func (h *hub) crowded() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.clients) >= maxStreams/4 {
		return true
	}
	for _, cs := range h.byAddress {
		if len(cs) >= maxStreamsPerAddress {
			return true
		}
	}
	return false
}

func (h *hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for c := range h.clients {
		h.drop(c)
	}
}

// run sends an update every period when something changed.
func (h *hub) run(ctx context.Context, period time.Duration, build func(keys []watch.Key, ts []watch.Transition, all bool, service string) []byte) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.mu.Lock()
		if len(h.clients) == 0 || (len(h.dirty) == 0 && len(h.transitions) == 0 && !h.all) {
			if len(h.clients) == 0 {
				clear(h.dirty)
				h.transitions = h.transitions[:0]
				h.all = false
			}
			h.mu.Unlock()
			continue
		}
		keys := make([]watch.Key, 0, len(h.dirty))
		for k := range h.dirty {
			keys = append(keys, k)
		}
		clear(h.dirty)
		ts := slices.Clone(h.transitions)
		h.transitions = h.transitions[:0]
		all := h.all
		h.all = false
		h.mu.Unlock()

		// One update per subscription: a stream of the fleet carries no
		// instance, a stream of a service carries that service's.
		h.mu.Lock()
		subs := map[string]bool{}
		for c := range h.clients {
			subs[c.service] = true
		}
		h.mu.Unlock()
		built := map[string][]byte{}
		for svc := range subs {
			built[svc] = build(keys, ts, all, svc)
		}
		h.mu.Lock()
		for c := range h.clients {
			b, ok := built[c.service]
			if !ok {
				continue // subscribed meanwhile: the next update
			}
			select {
			case c.ch <- b:
			default: // too slow: it reconnects and reloads
				h.drop(c)
			}
		}
		h.mu.Unlock()
	}
}
