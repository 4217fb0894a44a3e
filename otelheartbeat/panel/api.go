package panel

import (
	"container/heap"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/uptime"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// The API's JSON. Every string that came from a heartbeat is data: the
// page sets it as text, never as markup.

// IncidentJSON is a span in which a service was down.
type IncidentJSON struct {
	Service   string  `json:"service"`
	StartedAt string  `json:"started_at"`
	EndedAt   *string `json:"ended_at"` // null while open
	Duration  float64 `json:"duration_seconds"`
	// Unknown is the part of it nobody watched: the service was down on
	// both sides, so it does not end the incident, but it is not counted
	// as downtime either.
	Unknown   float64  `json:"unknown_seconds"`
	Instances []string `json:"instances"`
	// MetricsLinks are the instances' links to their own metrics
	// (WithMetricsLink), by instance; absent without a template.
	MetricsLinks map[string]string `json:"metrics_links,omitempty"`
}

// ServiceJSON is a service in the fleet overview.
type ServiceJSON struct {
	Name     string       `json:"name"`
	State    string       `json:"state"` // watch.ServiceState: up, degraded (every up instance breaks a health rule), down, stopped (short only by graceful stops), unknown
	MinAlive int          `json:"min_alive"`
	Counts   watch.Counts `json:"counts"`
	// Uptime by window ("1h", "24h", "7d", "30d"): up / (up + down),
	// null when there is no recorded time in it.
	Uptime map[string]*float64 `json:"uptime"`
	// OpenIncident is the service's outage still going on, dated from when
	// it began (or the start of the longest window, if before); nil when
	// there is none.
	OpenIncident *IncidentJSON `json:"open_incident"`
}

// ServiceDetailJSON is one service with its instances.
type ServiceDetailJSON struct {
	ServiceJSON
	// Instances are one page of the service's instances, ordered by id:
	// at most the request's limit (DefaultServicePage unless it says),
	// those after its after, in its state when it names one.
	Instances []InstanceJSON `json:"instances"`
	// Matched counts the instances in the request's state (all of them
	// when it names none), on every page.
	Matched int `json:"matched"`
	// Next is the after of the next page; absent on the last.
	Next      string           `json:"next,omitempty"`
	Incidents []IncidentJSON   `json:"incidents"` // in the longest window, latest first
	Restarts  map[string]int   `json:"restarts"`  // by window
	Lost      map[string]int64 `json:"lost"`      // by window, all instances
}

// InstanceJSON is one instance.
type InstanceJSON struct {
	Service        string   `json:"service"`
	Instance       string   `json:"instance"`
	State          string   `json:"state"`
	Since          string   `json:"since"`
	LastSeen       string   `json:"last_seen"`
	Age            float64  `json:"age_seconds"`
	Interval       float64  `json:"interval_seconds"`
	IntervalSource string   `json:"interval_source"`
	Heartbeats     int64    `json:"heartbeats"` // the sender's heartbeat_count
	Received       int64    `json:"received"`   // heartbeats this panel received
	Lost           int64    `json:"lost"`
	MemoryMB       *float64 `json:"memory_mb"`
	CPUPercent     *float64 `json:"cpu_percent"`
	Address        string   `json:"address,omitempty"`
	// Uptime over 24 h (or the shortest window above an hour).
	Uptime *float64 `json:"uptime"`
	// Bars: whether a heartbeat arrived in each of the last intervals,
	// oldest first: 1 yes, 0 no, -1 not watched yet.
	Bars []int `json:"bars,omitempty"`
	// Heartbeat is the last heartbeat as the panel keeps it: every
	// documented field, and the service fields within the panel's bound of
	// bytes per instance (long strings cut and ending in "…").
	Heartbeat json.RawMessage `json:"heartbeat,omitempty"`
	// Fields are the last heartbeat's service fields, in its order: what
	// the page shows (the documented keys are the wire's to know).
	Fields []FieldJSON `json:"fields"`
	// FieldsCut counts the service fields of the last heartbeat cut short
	// or left out of Heartbeat by that bound.
	FieldsCut int `json:"fields_cut,omitempty"`
	// Health is how an up instance stands against its service's health
	// rules; absent when none applies, or when it is not up.
	Health *HealthJSON `json:"health,omitempty"`
	// MetricsLink leads to the instance's own metrics (WithMetricsLink).
	MetricsLink string `json:"metrics_link,omitempty"`
}

// HealthJSON is an instance's health (watch.Health).
type HealthJSON struct {
	// Verdict is "degraded" (a rule is broken), "healthy" (none is, and
	// one at least is known to hold or be pending), or "unknown" (the
	// instance sends none of the rules' fields).
	Verdict string      `json:"verdict"`
	Checks  []CheckJSON `json:"checks"`
}

// CheckJSON is one health rule against one instance.
type CheckJSON struct {
	Rule   string `json:"rule"`
	Status string `json:"status"` // holds, pending (failing for less than its for), broken, unknown (the field is not sent)
	// Since is when the condition began to fail (pending), or when the
	// rule became broken (broken).
	Since *string `json:"since,omitempty"`
	// Value is the field's value in the last heartbeat, as sent.
	Value json.RawMessage `json:"value,omitempty"`
}

// FieldJSON is one service field of a heartbeat.
type FieldJSON struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// FleetJSON is GET /api/v1/services.
type FleetJSON struct {
	GeneratedAt string `json:"generated_at"`
	Watching    bool   `json:"watching"`
	Recording   bool   `json:"recording"` // this replica records history
	// Role is "recorder" (this replica records history and sends alerts)
	// or "standby" (another does; this one shows the same verdicts, from
	// the same heartbeats and history, and takes over within the lease).
	Role    string   `json:"role"`
	Replica string   `json:"replica"` // this replica's name in the lease
	Windows []string `json:"windows"`
	// HistoryAt is when the uptime figures were computed from history
	// (every 10 s, and soon after a change); null before the first time.
	HistoryAt *string       `json:"history_at"`
	Services  []ServiceJSON `json:"services"`
}

// UpdateJSON is one Server-Sent Event of /api/v1/events: what changed
// since the last one.
type UpdateJSON struct {
	At          string           `json:"at"`
	Watching    bool             `json:"watching"`
	Role        string           `json:"role"` // as in FleetJSON
	Services    []ServiceJSON    `json:"services"`
	Instances   []InstanceJSON   `json:"instances"`
	Removed     []InstanceKey    `json:"removed"`
	Transitions []TransitionJSON `json:"transitions"`
}

// InstanceKey names an instance.
type InstanceKey struct {
	Service  string `json:"service"`
	Instance string `json:"instance"`
}

// TransitionJSON is one change of state.
type TransitionJSON struct {
	Service  string `json:"service"`
	Instance string `json:"instance"`
	From     string `json:"from"`
	To       string `json:"to"` // a watch.State, "replaced" included
	At       string `json:"at"`
	// ReplacedBy is the instance that replaced this one, when To is
	// "replaced".
	ReplacedBy string `json:"replaced_by,omitempty"`
}

func stamp(t time.Time) string { return string(wire.AppendTimestamp(nil, t)) }

// windowName spells a window as the page shows it: 1h, 24h, 7d, 30d.
func windowName(d time.Duration) string {
	if d >= 48*time.Hour && d%(24*time.Hour) == 0 {
		return itoa(int64(d/(24*time.Hour))) + "d"
	}
	if d%time.Hour == 0 {
		return itoa(int64(d/time.Hour)) + "h"
	}
	if d%time.Minute == 0 {
		return itoa(int64(d/time.Minute)) + "m"
	}
	return d.String()
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func ratio(t uptime.Times) *float64 {
	u, ok := t.Uptime()
	if !ok {
		return nil
	}
	u = math.Round(u*1e6) / 1e6
	return &u
}

func (p *Panel) incidentJSON(svc string, in uptime.Incident, now time.Time) IncidentJSON {
	j := IncidentJSON{Service: svc, StartedAt: stamp(in.Start), Duration: math.Round(in.Duration(now).Seconds()*1000) / 1000,
		Unknown: math.Round(in.Unknown.Seconds()*1000) / 1000, Instances: in.Instances}
	if j.Instances == nil {
		j.Instances = []string{}
	}
	if p.cfg.metricsLink != "" && len(j.Instances) > 0 {
		j.MetricsLinks = make(map[string]string, len(j.Instances))
		for _, id := range j.Instances {
			if l := p.metricsLink(svc, id); l != "" {
				j.MetricsLinks[id] = l
			}
		}
	}
	if !in.Open() {
		s := stamp(in.End)
		j.EndedAt = &s
	}
	return j
}

// service builds a service's summary from its instances' counts now and
// the cached reports.
func (p *Panel) service(name string, counts watch.Counts, now time.Time) ServiceJSON {
	s := ServiceJSON{Name: name, MinAlive: p.minAlive(name), Uptime: map[string]*float64{}, Counts: counts}
	state := s.Counts.State(s.MinAlive)
	if !p.Watching() {
		state = watch.ServiceUnknown
	}
	for _, w := range p.cfg.windows {
		if r, ok := p.reports.get(name, w); ok {
			s.Uptime[windowName(w)] = ratio(r.Times)
			// The longest window's: an incident is dated from the later of
			// its start and its window's.
			if w == slices.Max(p.cfg.windows) {
				for _, in := range r.Incidents {
					if in.Open() {
						j := p.incidentJSON(name, in, now)
						s.OpenIncident = &j
					}
				}
			}
		} else {
			s.Uptime[windowName(w)] = nil
		}
	}
	// No instance tracked, but history says it is still down (its dead
	// instances forgotten): down, not unknown.
	if state == watch.ServiceUnknown && s.Counts.Total() == 0 && s.OpenIncident != nil && p.Watching() {
		state = watch.ServiceDown
	}
	s.State = state.String()
	return s
}

// instance builds one instance's view.
func (p *Panel) instance(in watch.Instance, now time.Time) InstanceJSON {
	slot, _ := p.tr.SlotOf(in.Key) // its bars and received count
	j := InstanceJSON{Service: in.Service, Instance: in.Instance, State: in.State.String(), Since: stamp(in.Since),
		LastSeen: stamp(in.LastSeen), Age: math.Round(in.Age(now).Seconds()*1000) / 1000,
		Interval: in.Interval.Seconds(), IntervalSource: in.IntervalSource.String(),
		Heartbeats: in.Count, Received: p.arrivals.received(slot), Lost: in.Lost}
	if in.Has&wire.HasMemory != 0 {
		j.MemoryMB = &in.MemoryMB
	}
	if in.Has&wire.HasCPU != 0 {
		j.CPUPercent = &in.CPUPercent
	}
	hb := in.Heartbeat()
	if hb != nil {
		j.Address = hb.InstanceAddress
		if b, err := wire.Marshal(hb); err == nil {
			j.Heartbeat = b
		}
		j.FieldsCut = in.Cut
		for _, f := range hb.Fields {
			if v, err := wire.AppendValue(nil, f.Value); err == nil {
				j.Fields = append(j.Fields, FieldJSON{Key: f.Key, Value: v})
			}
		}
	}
	if j.Fields == nil {
		j.Fields = []FieldJSON{}
	}
	j.Health = health(in, hb, p.judged(now))
	j.MetricsLink = p.metricsLink(in.Service, in.Instance)
	j.Bars = p.arrivals.barsOf(slot, in.Interval, now)
	if p.instanceWindow() > 0 {
		j.Uptime = p.reports.instanceUptime(slot)
	}
	return j
}

// judged is when health is judged: now, or the watcher's seen time when
// it is earlier (WithSeen), so that a stalled Valkey freezes it.
func (p *Panel) judged(now time.Time) time.Time {
	if p.cfg.seen == nil {
		return now
	}
	if s := p.cfg.seen(); !s.IsZero() && s.Before(now) {
		return s
	}
	return now
}

// health is an up instance's health, or nil; hb is its last heartbeat.
func health(in watch.Instance, hb *wire.Message, now time.Time) *HealthJSON {
	if in.Health == nil || !in.State.Up() {
		return nil
	}
	h := &HealthJSON{Verdict: "unknown", Checks: []CheckJSON{}}
	for _, c := range in.Health.Checks {
		st := c.Status(now)
		cj := CheckJSON{Rule: c.Rule.String(), Status: st.String()}
		switch st {
		case watch.CheckPending:
			s := stamp(c.Since)
			cj.Since = &s
		case watch.CheckBroken:
			s := stamp(c.BrokenSince())
			cj.Since = &s
			h.Verdict = "degraded"
		}
		if st != watch.CheckUnknown && h.Verdict == "unknown" {
			h.Verdict = "healthy"
		}
		if hb != nil {
			if v, ok := c.Rule.ValueIn(hb); ok {
				cj.Value, _ = wire.AppendValue(nil, v)
			}
		}
		h.Checks = append(h.Checks, cj)
	}
	return h
}

// instanceWindow is the window of the instances table's uptime: 24 h if
// shown, else the shortest window above an hour, else the longest.
func (p *Panel) instanceWindow() time.Duration {
	best := time.Duration(0)
	for _, w := range p.cfg.windows {
		if w == 24*time.Hour {
			return w
		}
		if w > time.Hour && (best == 0 || w < best) {
			best = w
		}
	}
	if best == 0 && len(p.cfg.windows) > 0 {
		best = slices.Max(p.cfg.windows)
	}
	return best
}

// fleet is GET /api/v1/services. It counts the instances in place: at a
// large fleet a copy of every instance would cost more than the answer.
func (p *Panel) fleet(now time.Time) FleetJSON {
	f := FleetJSON{GeneratedAt: stamp(now), Watching: p.Watching(), Recording: p.rec.Leading(), Role: p.role(),
		Replica: p.cfg.replica, Services: []ServiceJSON{}}
	for _, w := range p.cfg.windows {
		f.Windows = append(f.Windows, windowName(w))
	}
	counts := p.tr.CountServices(p.judged(now))
	names, historyAt := p.services(counts)
	if !historyAt.IsZero() {
		at := stamp(historyAt)
		f.HistoryAt = &at
	}
	for _, n := range names {
		f.Services = append(f.Services, p.service(n, counts[n], now))
	}
	return f
}

// services names, sorted, every service the panel shows: those with
// instances tracked (counts) and those with history but no instance
// tracked now; and when the uptime figures were computed from history.
func (p *Panel) services(counts map[string]watch.Counts) (names []string, historyAt time.Time) {
	names = make([]string, 0, len(counts))
	for n := range counts {
		names = append(names, n)
	}
	p.reports.mu.Lock()
	for n := range p.reports.reports {
		if _, ok := counts[n]; !ok {
			names = append(names, n)
		}
	}
	historyAt = p.reports.at
	p.reports.mu.Unlock()
	slices.Sort(names)
	return names, historyAt
}

// DefaultServicePage is how many instances GET /api/v1/services/{name}
// returns unless its limit says otherwise, and MaxServicePage the most it
// returns at once: a service of thousands of instances is read a page at
// a time.
const (
	DefaultServicePage = 500
	MaxServicePage     = 5000
)

// pageQuery is which instances a service view returns: those after After
// (by instance id) in State (a watch.State's name, or "degraded"; empty:
// all), at most Limit.
type pageQuery struct {
	After string
	State string
	Limit int
}

// parsePage reads a service view's query: limit (1 to MaxServicePage),
// after (an instance id; empty: from the first) and state (empty: any),
// each at most once. An error quotes at most the start of what was wrong.
func parsePage(q url.Values) (pageQuery, error) {
	pq := pageQuery{Limit: DefaultServicePage}
	if err := once(q, "limit", "after", "state"); err != nil {
		return pageQuery{}, err
	}
	if v, given := q["limit"]; given {
		v := v[0]
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxServicePage || strconv.Itoa(n) != v {
			return pageQuery{}, fmt.Errorf("limit %s: want a whole number from 1 to %d", quoted(v), MaxServicePage)
		}
		pq.Limit = n
	}
	if pq.After = q.Get("after"); pq.After != "" {
		if err := wire.ValidateInstanceID(pq.After); err != nil {
			return pageQuery{}, fmt.Errorf("after: %w", err)
		}
	}
	switch pq.State = q.Get("state"); pq.State {
	case "", "alive", "stale", "dead", "stopped", "degraded":
	default:
		return pageQuery{}, fmt.Errorf("state %s: want alive, stale, dead, stopped or degraded", quoted(pq.State))
	}
	return pq, nil
}

// once says which of names q gives more than once, if any.
func once(q url.Values, names ...string) error {
	for _, name := range names {
		if vs := q[name]; len(vs) > 1 {
			return fmt.Errorf("%s: want one value, not %d (%s)", name, len(vs), quoted(strings.Join(vs, ",")))
		}
	}
	return nil
}

// quoted quotes what a request said, cut to its first 40 bytes.
func quoted(v string) string {
	if len(v) > 40 {
		return strconv.Quote(v[:40]) + "…"
	}
	return strconv.Quote(v)
}

// matches says whether in is in the state the query asks for, as the page
// shows it: an up instance that breaks a health rule is degraded.
func (q pageQuery) matches(in *watch.Instance, judged time.Time) bool {
	if q.State == "" {
		return true
	}
	if in.Degraded(judged) {
		return q.State == "degraded"
	}
	return q.State == in.State.String()
}

// detail is GET /api/v1/services/{name}: its summary and one page of its
// instances; false if the panel knows nothing of the service.
func (p *Panel) detail(name string, now time.Time, q pageQuery) (ServiceDetailJSON, bool) {
	judged := p.judged(now)
	var (
		counts  watch.Counts
		tracked int
		matched int
		page    instancePage
		more    bool // more match after the page
	)
	// The page is picked as the tracker walks the service, a page's worth
	// kept at a time: a copy of every instance, sorted, was 20 MB and
	// 140 ms for a page of a service of 100,000.
	p.tr.RangeService(name, func(in *watch.Instance) bool {
		tracked++
		counts.Count(in, judged)
		if !q.matches(in, judged) {
			return true
		}
		matched++
		if q.After == "" || in.Instance > q.After {
			more = page.offer(in, q.Limit) || more
		}
		return true
	})
	_, known := p.reports.get(name, slices.Max(p.cfg.windows))
	if tracked == 0 && !known {
		return ServiceDetailJSON{}, false
	}
	d := ServiceDetailJSON{ServiceJSON: p.service(name, counts, now), Instances: make([]InstanceJSON, 0, len(page)), Incidents: []IncidentJSON{},
		Restarts: map[string]int{}, Lost: map[string]int64{}, Matched: matched}
	slices.SortFunc(page, func(a, b watch.Instance) int { return strings.Compare(a.Instance, b.Instance) })
	for _, in := range page {
		d.Instances = append(d.Instances, p.instance(in, now))
	}
	if more && len(page) > 0 {
		d.Next = page[len(page)-1].Instance
	}
	for _, w := range p.cfg.windows {
		if r, ok := p.reports.get(name, w); ok {
			d.Restarts[windowName(w)], d.Lost[windowName(w)] = r.Restarts, r.Lost
		}
	}
	if r, ok := p.reports.get(name, slices.Max(p.cfg.windows)); ok {
		for i := len(r.Incidents) - 1; i >= 0; i-- {
			d.Incidents = append(d.Incidents, p.incidentJSON(name, r.Incidents[i], now))
		}
	}
	return d, true
}

// instancePage is a page of a service's instances being picked: a heap
// (container/heap), the greatest id first, which the next lesser id
// takes the place of.
type instancePage []watch.Instance

func (h instancePage) Len() int           { return len(h) }
func (h instancePage) Less(i, j int) bool { return h[i].Instance > h[j].Instance }
func (h instancePage) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *instancePage) Push(x any)        { *h = append(*h, x.(watch.Instance)) }
func (h *instancePage) Pop() any {
	old := *h
	in := old[len(old)-1]
	*h = old[:len(old)-1]
	return in
}

// offer keeps a copy of in when it is among the limit least ids offered
// so far, and reports whether an instance was left out: in, or the one
// it took the place of.
func (h *instancePage) offer(in *watch.Instance, limit int) bool {
	switch {
	case len(*h) < limit:
		heap.Push(h, *in)
		return false
	case len(*h) > 0 && in.Instance < (*h)[0].Instance:
		(*h)[0] = *in
		heap.Fix(h, 0)
	}
	return true
}

// role is "recorder" or "standby".
func (p *Panel) role() string {
	if p.rec.Leading() {
		return "recorder"
	}
	return "standby"
}
