package panel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/alerting"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/uptime"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// Auth protects the panel: a bearer token, basic auth, or both. Secrets
// are compared in constant time and never written anywhere.
type Auth struct {
	Token          string // Authorization: Bearer TOKEN
	User, Password string // Authorization: Basic, and the browser's prompt
}

// ParseAuth reads the panel's variables: ADMINPANEL_TOKEN and
// ADMINPANEL_BASIC_AUTH (user:password). Neither set is no auth; a
// malformed one is an error that names it without its value.
func ParseAuth(token, basic string) (*Auth, error) {
	if token == "" && basic == "" {
		return nil, nil
	}
	a := &Auth{Token: token}
	if basic != "" {
		u, pw, ok := strings.Cut(basic, ":")
		if !ok || u == "" || pw == "" {
			return nil, errors.New("ADMINPANEL_BASIC_AUTH: want user:password, both non-empty")
		}
		a.User, a.Password = u, pw
	}
	if token != "" && len(token) < 16 {
		return nil, errors.New("ADMINPANEL_TOKEN: shorter than 16 characters")
	}
	return a, nil
}

func equal(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

func (a *Auth) allows(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	if a.Token != "" {
		// The scheme is case-insensitive (RFC 7235).
		if scheme, t, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") && equal(strings.TrimSpace(t), a.Token) {
			return true
		}
	}
	if a.User != "" {
		if u, pw, ok := r.BasicAuth(); ok && equal(u, a.User) && equal(pw, a.Password) {
			return true
		}
	}
	return false
}

// Handler serves the page, the API, the events, the health checks and the
// metrics. It is read-only: anything but GET and HEAD is refused.
func (p *Panel) Handler() http.Handler {
	mux := http.NewServeMux()
	if p.cfg.Page != nil {
		mux.Handle("GET /", http.FileServerFS(p.cfg.Page))
	}
	mux.HandleFunc("GET /api/v1/services", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, p.fleet(time.Now()))
	})
	mux.HandleFunc("GET /api/v1/services/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if err := wire.ValidateServiceName(name); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		d, ok := p.detail(name, time.Now())
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such service"})
			return
		}
		writeJSON(w, http.StatusOK, d)
	})
	mux.HandleFunc("GET /api/v1/incidents", p.incidents)
	mux.HandleFunc("GET /api/v1/events", p.events)
	mux.HandleFunc("GET /api/v1/alerts", p.alerts)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", p.readyz)
	mux.Handle("GET /metrics", p.met.handler)

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "+
			"manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "read-only", http.StatusMethodNotAllowed)
			return
		}
		if a := p.cfg.Auth; a != nil && r.URL.Path != "/healthz" && r.URL.Path != "/readyz" && !a.allows(r) {
			if a.User != "" {
				h.Set("WWW-Authenticate", `Basic realm="heartbeat admin panel", charset="UTF-8"`)
			} else {
				h.Set("WWW-Authenticate", `Bearer realm="heartbeat admin panel"`)
			}
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}

// readyz answers 200 when the panel is subscribed and sees (its probes
// are answered) and Valkey answers a PING, else 503 with the reason. It
// answers without credentials, for load balancers; when the panel
// requires them, such a request hears ready or not and nothing more: the
// reasons name Valkey's address, and which replica records is the
// operator's to know.
func (p *Panel) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	var reasons []string
	switch {
	case !p.loaded.Load():
		reasons = append(reasons, "not subscribed yet")
	case p.down.Load():
		reasons = append(reasons, "disconnected from Valkey")
	case p.blind.Load():
		reasons = append(reasons, "Valkey does not answer the subscription's probes")
	}
	if err := p.cfg.Conn.Client.Ping(ctx).Err(); err != nil {
		reasons = append(reasons, "PING: "+err.Error())
	}
	told := p.cfg.Auth == nil || p.cfg.Auth.allows(r)
	switch {
	case len(reasons) > 0 && told:
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "reasons": reasons})
	case len(reasons) > 0:
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready"})
	case told:
		writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "recording": p.rec.Leading()})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
	}
}

// incidents is GET /api/v1/incidents?service=NAME&since=TIME, TIME an
// RFC 3339 time or a duration back from now (24h); default: the longest
// window. Latest first.
func (p *Panel) incidents(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	since := now.Add(-slices.Max(p.cfg.Windows))
	if s := r.URL.Query().Get("since"); s != "" {
		if d, err := time.ParseDuration(s); err == nil && d > 0 {
			since = now.Add(-d)
		} else if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			since = t
		} else {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "since: want an RFC 3339 time or a positive duration such as 24h"})
			return
		}
	}
	var svcs []string
	if s := r.URL.Query().Get("service"); s != "" {
		if err := wire.ValidateServiceName(s); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "service: " + err.Error()})
			return
		}
		svcs = []string{s}
	} else {
		var err error
		if svcs, err = p.store.Services(r.Context()); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "reading history failed"})
			return
		}
	}
	// At most a few at once, each within 10 s: history is read from the
	// panel's cache, only what was added since is read from Valkey.
	select {
	case p.historyReads <- struct{}{}:
		defer func() { <-p.historyReads }()
	case <-r.Context().Done():
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	gaps, err := p.store.Gaps(ctx, since)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "reading history failed"})
		return
	}
	out := []IncidentJSON{}
	for _, svc := range svcs {
		entries, err := p.reports.history.read(ctx, p, svc, now)
		if err != nil && ctx.Err() != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "reading history failed"})
			return
		}
		if err != nil {
			continue // that service's history cannot be read: the others are shown
		}
		rep := uptime.Compute(svc, entries, gaps, uptime.Window{From: since, To: now}, p.minAlive(svc))
		for _, in := range rep.Incidents {
			out = append(out, incidentJSON(svc, in, now))
		}
	}
	slices.SortFunc(out, func(a, b IncidentJSON) int { return strings.Compare(b.StartedAt, a.StartedAt) })
	writeJSON(w, http.StatusOK, map[string]any{"since": stamp(since), "incidents": out})
}

// AlertJSON is one alert in GET /api/v1/alerts.
type AlertJSON struct {
	Name         string            `json:"alertname"`
	Status       string            `json:"status"` // firing, resolved
	Service      string            `json:"service,omitempty"`
	Instance     string            `json:"instance,omitempty"`
	State        string            `json:"state"`
	StartsAt     string            `json:"starts_at"`
	EndsAt       *string           `json:"ends_at"`
	Summary      string            `json:"summary"`
	Labels       map[string]string `json:"labels"`
	GeneratorURL string            `json:"generator_url,omitempty"`
}

// ReceiverJSON is one receiver's counts.
type ReceiverJSON struct {
	Name string `json:"name"`
	notifyStats
}

type notifyStats struct {
	Sent    int64 `json:"sent"`
	Failed  int64 `json:"failed"`
	Dropped int64 `json:"dropped"`
	Queued  int64 `json:"queued"`
	Fenced  int64 `json:"fenced"` // not sent: made under a lease this replica no longer holds
}

func alertJSON(a alerting.Alert) AlertJSON {
	j := AlertJSON{Name: a.Labels["alertname"], Status: "firing", Service: a.Labels["service"], Instance: a.Labels["instance"],
		State: a.State, StartsAt: stamp(a.StartsAt), Summary: a.Annotations["summary"], Labels: a.Labels, GeneratorURL: a.GeneratorURL}
	if !a.Firing() {
		j.Status = "resolved"
		s := stamp(a.EndsAt)
		j.EndsAt = &s
	}
	return j
}

// alerts is GET /api/v1/alerts: the alerts firing and the latest fires
// and resolves, as recorded in Valkey, and each receiver's counts on this
// replica.
func (p *Panel) alerts(w http.ResponseWriter, r *http.Request) {
	active, err := p.alert.Active(r.Context())
	var recent []alerting.Alert
	if err == nil {
		recent, err = p.alert.Recent(r.Context(), 50)
	}
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "reading alerts failed"})
		return
	}
	out := struct {
		Active    []AlertJSON    `json:"active"`
		Recent    []AlertJSON    `json:"recent"`
		Receivers []ReceiverJSON `json:"receivers"`
	}{Active: []AlertJSON{}, Recent: []AlertJSON{}, Receivers: []ReceiverJSON{}}
	for _, a := range active {
		out.Active = append(out.Active, alertJSON(a))
	}
	for _, a := range recent {
		out.Recent = append(out.Recent, alertJSON(a))
	}
	for _, rc := range p.cfg.Receivers {
		st := rc.Stats()
		out.Receivers = append(out.Receivers, ReceiverJSON{Name: rc.Name(), notifyStats: notifyStats{st.Sent, st.Failed, st.Dropped, st.Queued, st.Fenced}})
	}
	writeJSON(w, http.StatusOK, out)
}

// Bounds of the Server-Sent Events streams. A stream whose reader does
// not read holds a goroutine, its queued updates and a slot: readers that
// never read must not take every slot from those that do.
const (
	// maxStreams bounds the streams the hub feeds at once. Past it, a new
	// stream makes room by cutting the oldest stream of the address that
	// holds the most: it is never refused for want of room.
	maxStreams = 256
	// maxStreamsPerAddress bounds one address's streams (an IPv6 /64 is
	// one address): its next stream cuts its oldest. A browser opens one
	// per tab.
	maxStreamsPerAddress = 8
	// maxHandlers bounds the stream handlers running, cut ones still
	// finishing a write included: past it a stream is refused.
	maxHandlers = 2 * maxStreams
	// keepAliveEvery spaces the comments that keep an idle stream open
	// through proxies.
	keepAliveEvery = 15 * time.Second
	// probeSize is the padding of the comment a crowded panel writes to
	// every stream each probe (Panel.probeEvery): a reader that does not
	// read fills its buffers with a few of them, and the write deadline
	// then cuts it.
	probeSize = 32 << 10
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
	if c, ok := r.Context().Value(connKey{}).(*net.TCPConn); ok {
		_ = c.SetWriteBuffer(streamSendBuffer)
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
		if !c.deadline(p.cfg.EventWriteTimeout) {
			return false
		}
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write([]byte("retry: 2000\n\n")) {
		return
	}
	probe := time.NewTicker(p.probeEvery)
	defer probe.Stop()
	quiet := time.Now()
	for {
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
			case p.hub.crowded():
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
}

type client struct {
	ch      chan []byte
	service string // "": the fleet, without instances
	address string

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

func (h *hub) touch(k watch.Key) {
	h.mu.Lock()
	if len(h.dirty) < maxDirty || h.dirty[k] {
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
		h.drop(same[0])
	}
	if len(h.clients) >= maxStreams {
		var most []*client
		for _, cs := range h.byAddress {
			if len(cs) > len(most) {
				most = cs
			}
		}
		h.drop(most[0])
	}
	c := &client{ch: make(chan []byte, 16), service: service, address: address, setDeadline: setDeadline}
	h.clients[c] = true
	h.byAddress[address] = append(h.byAddress[address], c)
	return c
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

// len is how many streams the hub feeds.
func (h *hub) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// crowded says whether the streams are many, or one address holds its
// share: then every stream is probed, so that those that do not read are
// found and cut.
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

// flush builds one update for the streams of service ("": the fleet's,
// which carry no instance); all adds every service to it.
func (p *Panel) flush(keys []watch.Key, ts []watch.Transition, all bool, service string) []byte {
	now := time.Now()
	u := UpdateJSON{At: stamp(now), Watching: p.Watching(), Services: []ServiceJSON{}, Instances: []InstanceJSON{},
		Removed: []InstanceKey{}, Transitions: []TransitionJSON{}}
	// A service's summary changes with its transitions (and the uptime
	// refreshes, which mark all); its instances go only to its own streams.
	touched := map[string]bool{}
	for _, k := range keys {
		if service == "" || k.Service != service {
			continue
		}
		touched[k.Service] = true
		if in, ok := p.tr.Get(k); ok {
			u.Instances = append(u.Instances, p.instance(in, now))
		} else {
			u.Removed = append(u.Removed, InstanceKey{Service: k.Service, Instance: k.Instance})
		}
	}
	for _, t := range ts {
		touched[t.Service] = true
		u.Transitions = append(u.Transitions, TransitionJSON{Service: t.Service, Instance: t.Instance, From: t.From.String(), To: t.To.String(), At: stamp(t.At)})
	}
	if all {
		for _, s := range p.fleet(now).Services {
			touched[s.Name] = true
		}
	}
	if len(touched) > 0 {
		groups := byService(p.tr.Snapshot())
		for svc := range touched {
			u.Services = append(u.Services, p.service(svc, groups[svc], now))
		}
		slices.SortFunc(u.Services, func(a, b ServiceJSON) int { return strings.Compare(a.Name, b.Name) })
	}
	b, _ := json.Marshal(u)
	return b
}
