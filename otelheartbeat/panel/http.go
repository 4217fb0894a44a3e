package panel

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
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
	if p.cfg.page != nil {
		mux.Handle("GET /", http.FileServerFS(p.cfg.page))
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
		q, err := parsePage(r.URL.Query())
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		d, ok := p.detail(name, time.Now(), q)
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such service"})
			return
		}
		writeJSON(w, http.StatusOK, d)
	})
	mux.HandleFunc("GET /api/v1/services/{name}/series", p.seriesOf)
	mux.HandleFunc("GET /api/v1/services/{name}/series/fields", p.seriesFields)
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
		if a := p.cfg.auth; a != nil && r.URL.Path != "/healthz" && r.URL.Path != "/readyz" && !a.allows(r) {
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
	if err := p.client.Ping(ctx).Err(); err != nil {
		reasons = append(reasons, "PING: "+err.Error())
	}
	told := p.cfg.auth == nil || p.cfg.auth.allows(r)
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
	since := now.Add(-slices.Max(p.cfg.windows))
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
	// At most a few at once, each within readTimeout: history is read from the
	// panel's cache, only what was added since is read from Valkey.
	ctx, release, ok := p.readSlot(r.Context())
	if !ok {
		return
	}
	defer release()
	gaps, err := p.store.Gaps(ctx, since)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "reading history failed"})
		return
	}
	out := []IncidentJSON{}
	for _, svc := range svcs {
		entries, err := p.reports.history.read(ctx, p, svc, now, time.Time{})
		if err != nil && ctx.Err() != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "reading history failed"})
			return
		}
		if err != nil {
			continue // that service's history cannot be read: the others are shown
		}
		// Its incidents only: no window reported by instance.
		rep := uptime.Windows(svc, entries, gaps, []uptime.Window{{From: since, To: now}}, p.minAlive(svc), -1)[0]
		for _, in := range rep.Incidents {
			out = append(out, p.incidentJSON(svc, in, now))
		}
	}
	slices.SortFunc(out, func(a, b IncidentJSON) int { return strings.Compare(b.StartedAt, a.StartedAt) })
	writeJSON(w, http.StatusOK, map[string]any{"since": stamp(since), "incidents": out})
}

// readTimeout bounds one request's reads of Valkey.
const readTimeout = 10 * time.Second

// readSlot takes a place among the reads of Valkey the panel serves at
// once (history and values alike) and returns the context to read within
// (ctx, for at most readTimeout) and how to give the place back; false when
// ctx ended first.
func (p *Panel) readSlot(ctx context.Context) (context.Context, func(), bool) {
	select {
	case p.historyReads <- struct{}{}:
		rctx, cancel := context.WithTimeout(ctx, readTimeout)
		return rctx, func() { cancel(); <-p.historyReads }, true
	case <-ctx.Done():
		return nil, nil, false
	}
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
	for _, rc := range p.receivers {
		st := rc.Stats()
		out.Receivers = append(out.Receivers, ReceiverJSON{Name: rc.Name(), notifyStats: notifyStats{st.Sent, st.Failed, st.Dropped, st.Queued, st.Fenced}})
	}
	writeJSON(w, http.StatusOK, out)
}

// flush builds one update for the streams of service ("": the fleet's,
// which carry no instance); all adds every service to it.
func (p *Panel) flush(keys []watch.Key, ts []watch.Transition, all bool, service string) []byte {
	now := time.Now()
	u := UpdateJSON{At: stamp(now), Watching: p.Watching(), Role: p.role(), Services: []ServiceJSON{}, Instances: []InstanceJSON{},
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
		u.Transitions = append(u.Transitions, TransitionJSON{Service: t.Service, Instance: t.Instance, From: t.From.String(), To: t.To.String(), At: stamp(t.At),
			ReplacedBy: t.By})
	}
	if len(touched) > 0 || all {
		counts := p.tr.CountServices(p.judged(now))
		if all {
			names, _ := p.services(counts)
			for _, svc := range names {
				touched[svc] = true
			}
		}
		for svc := range touched {
			u.Services = append(u.Services, p.service(svc, counts[svc], now))
		}
		slices.SortFunc(u.Services, func(a, b ServiceJSON) int { return strings.Compare(a.Name, b.Name) })
	}
	b, _ := json.Marshal(u)
	return b
}
