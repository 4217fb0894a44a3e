package panel

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/history"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
	"github.com/redis/go-redis/v9"
)

// A service view is paged: limit instances at a time, ordered by id,
// each page's next the after of the one that follows, a state filter
// counted in matched on every page; a bad query is refused naming what
// was wrong.
func TestTheServiceViewIsPaged(t *testing.T) {
	tr := watch.NewTracker(TrackerOptions()...)
	p := newPanel(t, tr)
	now := time.Now()
	for i := range 7 {
		m := &wire.Message{ServiceName: "paged", InstanceID: fmt.Sprintf("i%02d", 6-i), Timestamp: now, HeartbeatCount: 1,
			IntervalSeconds: 60, Has: wire.HasHeartbeatCount | wire.HasInterval}
		if i%3 == 0 {
			m.Status = wire.StatusStopping
		}
		tr.ObserveAt(m, now)
	}
	tr.ObserveAt(&wire.Message{ServiceName: "other", InstanceID: "x", Timestamp: now, IntervalSeconds: 60, Has: wire.HasInterval}, now)
	web := httptest.NewServer(p.Handler())
	defer web.Close()
	get := func(query string) (int, ServiceDetailJSON, string) {
		t.Helper()
		resp, err := http.Get(web.URL + "/api/v1/services/paged" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var raw json.RawMessage
		_ = json.NewDecoder(resp.Body).Decode(&raw)
		var d ServiceDetailJSON
		_ = json.Unmarshal(raw, &d)
		return resp.StatusCode, d, string(raw)
	}
	ids := func(d ServiceDetailJSON) string {
		var out []string
		for _, in := range d.Instances {
			out = append(out, in.Instance)
		}
		return strings.Join(out, ",")
	}

	var pages []string
	for after, n := "", 0; n < 5; n++ {
		code, d, raw := get("?limit=3&after=" + after)
		if code != 200 || d.Matched != 7 || d.Counts.Total() != 7 {
			t.Fatalf("page after %q: %d, matched %d, counts %+v: %s", after, code, d.Matched, d.Counts, raw)
		}
		pages = append(pages, ids(d))
		if d.Next == "" {
			if strings.Contains(raw, `"next"`) {
				t.Errorf("the last page carries a next: %s", raw)
			}
			break
		}
		after = d.Next
	}
	if got := strings.Join(pages, " | "); got != "i00,i01,i02 | i03,i04,i05 | i06" {
		t.Errorf("pages %q", got)
	}
	if _, d, _ := get(""); len(d.Instances) != 7 || d.Next != "" {
		t.Errorf("the default page: %s, next %q", ids(d), d.Next)
	}
	if _, d, _ := get("?state=stopped&limit=2"); ids(d) != "i00,i03" || d.Matched != 3 || d.Next != "i03" {
		t.Errorf("stopped, two: %s, matched %d, next %q", ids(d), d.Matched, d.Next)
	}
	if _, d, _ := get("?state=stopped&limit=2&after=i03"); ids(d) != "i06" || d.Matched != 3 || d.Next != "" {
		t.Errorf("stopped after i03: %s, matched %d, next %q", ids(d), d.Matched, d.Next)
	}
	if _, d, _ := get("?state=dead"); len(d.Instances) != 0 || d.Matched != 0 || d.Counts.Total() != 7 {
		t.Errorf("dead: %s, matched %d, counts %+v", ids(d), d.Matched, d.Counts)
	}
	for query, want := range map[string]string{
		"?limit=0":                              "limit",
		"?limit=5001":                           "limit",
		"?limit=ten":                            "limit",
		"?state=sleeping":                       "state",
		"?after=" + strings.Repeat("x", 300):    "after",
		"?after=bad%20id%0A":                    "after",
		"?limit=2&limit=abc":                    "limit",
		"?limit=":                               "limit",
		"?limit=%2B3":                           "limit",
		"?limit=0003":                           "limit",
		"?state=alive&state=dead":               "state",
		"?state=" + strings.Repeat("%80", 3000): "state",
	} {
		code, _, raw := get(query)
		if code != http.StatusBadRequest || !strings.Contains(raw, want) || len(raw) > 300 {
			t.Errorf("%s: %d %s, want a short 400 naming %s", query, code, raw, want)
		}
	}
}

// The fleet overview counts every service's instances as the service
// view does, degraded included.
func TestTheFleetCountsAsTheServiceView(t *testing.T) {
	rule, err := watch.ParseHealthRule("svc: queue > 10")
	if err != nil {
		t.Fatal(err)
	}
	tr := watch.NewTracker(append(TrackerOptions(), watch.WithHealthRules(rule))...)
	p := newPanel(t, tr)
	now := time.Now()
	for i := range 5 {
		tr.ObserveAt(&wire.Message{ServiceName: "svc", InstanceID: fmt.Sprint("i", i), Timestamp: now, IntervalSeconds: 60, Has: wire.HasInterval,
			Fields: []wire.Field{{Key: "queue", Value: wire.Int(int64(i * 5))}}}, now)
	}
	f := p.fleet(now)
	if len(f.Services) != 1 || f.Services[0].Counts != (watch.Counts{Alive: 5, Degraded: 2}) {
		t.Fatalf("fleet: %+v", f.Services)
	}
	d, ok := p.detail("svc", now, pageQuery{Limit: DefaultServicePage})
	if !ok || d.Counts != f.Services[0].Counts || d.State != f.Services[0].State {
		t.Errorf("the service view: %+v %s, the fleet's %+v %s", d.Counts, d.State, f.Services[0].Counts, f.Services[0].State)
	}
	if d, _ := p.detail("svc", now, pageQuery{Limit: DefaultServicePage, State: "degraded"}); d.Matched != 2 || len(d.Instances) != 2 {
		t.Errorf("degraded: matched %d, %d instances", d.Matched, len(d.Instances))
	}
}

// newPanel is a panel over tr, with a redis-server of its own, not run.
func newPanel(t *testing.T, tr *watch.Tracker) *Panel {
	t.Helper()
	return newPanelOn(t, tr, redistest.Start(t))
}

// newPanelOn is a panel over tr on srv, with opts, not run.
func newPanelOn(t *testing.T, tr *watch.Tracker, srv *redistest.Server, opts ...Option) *Panel {
	t.Helper()
	p, err := New(tr, srv.Client(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.met.shutdown() })
	return p
}

// apply writes recs to p's history, as its recorder would.
func apply(t *testing.T, p *Panel, recs ...history.Record) {
	t.Helper()
	if _, err := p.store.Apply(context.Background(), 1, recs); err != nil {
		t.Fatal(err)
	}
}

// uptimesOf is the uptime the service view shows of each of svc's
// instances at now, to digits decimals, "none" for one without.
func uptimesOf(t *testing.T, p *Panel, svc string, now time.Time, digits int) string {
	t.Helper()
	d, ok := p.detail(svc, now, pageQuery{Limit: DefaultServicePage})
	if !ok {
		t.Fatalf("no view of %s", svc)
	}
	got := map[string]string{}
	for _, in := range d.Instances {
		got[in.Instance] = "none"
		if in.Uptime != nil {
			got[in.Instance] = fmt.Sprintf("%.*f", digits, *in.Uptime)
		}
	}
	return fmt.Sprint(got)
}

// An instance in the service view carries its uptime over the instances
// table's window, as history has it: none for one history never saw.
func TestAnInstanceCarriesItsUptime(t *testing.T) {
	tr := watch.NewTracker(TrackerOptions()...)
	p := newPanel(t, tr)
	ctx := context.Background()
	now := time.Now()
	at := func(ago time.Duration) time.Time { return now.Add(-ago) }
	apply(t, p,
		history.Record{Service: "svc", Instance: "steady", To: watch.Alive, At: at(2 * time.Hour)},
		history.Record{Service: "svc", Instance: "flaky", To: watch.Alive, At: at(2 * time.Hour)},
		history.Record{Service: "svc", Instance: "flaky", To: watch.Dead, At: at(90 * time.Minute)},
		history.Record{Service: "svc", Instance: "flaky", To: watch.Alive, At: at(30 * time.Minute)})
	for _, id := range []string{"steady", "flaky", "unrecorded"} {
		tr.ObserveAt(&wire.Message{ServiceName: "svc", InstanceID: id, Timestamp: now, IntervalSeconds: 60, Has: wire.HasInterval}, now)
	}
	p.reports.compute(ctx, p)
	// flaky: up 30 min, down 60, up 30 (to within the test's own time).
	if got, want := uptimesOf(t, p, "svc", now, 4), fmt.Sprint(map[string]string{"steady": "1.0000", "flaky": "0.5000", "unrecorded": "none"}); got != want {
		t.Errorf("uptime by instance %v, want %v", got, want)
	}
}

// Every instance of a service of more instances than the panel files at
// once carries its own uptime, and a service of them all whole is kept
// whole with every one of its slots.
func TestEveryInstanceOfALargeServiceCarriesItsUptime(t *testing.T) {
	tr := watch.NewTracker(TrackerOptions()...)
	p := newPanel(t, tr)
	now := time.Now()
	at := func(ago time.Duration) time.Time { return now.Add(-ago) }
	const n = 2*slotsAtOnce + 300
	id := func(i int) string { return fmt.Sprintf("i-%04d", i) }
	var recs []history.Record
	for _, svc := range []string{"mixed", "whole"} {
		for i := range n {
			recs = append(recs, history.Record{Service: svc, Instance: id(i), To: watch.Alive, At: at(2 * time.Hour)})
			if svc == "mixed" && i%3 == 1 {
				recs = append(recs,
					history.Record{Service: svc, Instance: id(i), To: watch.Dead, At: at(90 * time.Minute)},
					history.Record{Service: svc, Instance: id(i), To: watch.Alive, At: at(30 * time.Minute)})
			}
			tr.ObserveAt(&wire.Message{ServiceName: svc, InstanceID: id(i), Timestamp: now, IntervalSeconds: 60, Has: wire.HasInterval}, now)
		}
	}
	apply(t, p, recs...)
	p.reports.compute(context.Background(), p)
	for _, svc := range []string{"mixed", "whole"} {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = id(i)
		}
		wrong := 0
		for i, s := range tr.SlotsOf(svc, ids, nil) {
			want := 1.0
			if svc == "mixed" && i%3 == 1 {
				want = 0.5
			}
			if got := p.reports.instanceUptime(s); got == nil || math.Abs(*got-want) > 0.001 {
				if wrong++; wrong <= 3 {
					t.Errorf("%s/%s: uptime %v, want %.2f", svc, ids[i], got, want)
				}
			}
		}
		if wrong > 3 {
			t.Errorf("%s: %d instances of %d with the wrong uptime", svc, wrong, n)
		}
	}
	if _, kept := p.reports.whole["mixed"]; kept {
		t.Error("a service with instances short of whole is kept whole")
	}
	if w, kept := p.reports.whole["whole"]; !kept || len(w.slots) != n {
		t.Errorf("the whole service is kept whole %v, with %d slots, want %d", kept, len(w.slots), n)
	}
}

// A service whose instances' uptime is all whole keeps their figures
// without working them out again, while its history and the gaps are as
// they were and for a minute at most; a change to either, or an instance
// short of whole, has them worked out again, and shown, at once.
func TestAWholeServiceKeepsItsInstancesFiguresUntilItsHistoryChanges(t *testing.T) {
	tr := watch.NewTracker(TrackerOptions()...)
	p := newPanel(t, tr)
	ctx := context.Background()
	now := time.Now()
	at := func(ago time.Duration) time.Time { return now.Add(-ago) }
	apply(t, p,
		history.Record{Service: "svc", Instance: "a", To: watch.Alive, At: at(2 * time.Hour)},
		history.Record{Service: "svc", Instance: "b", To: watch.Alive, At: at(2 * time.Hour)})
	for _, id := range []string{"a", "b"} {
		tr.ObserveAt(&wire.Message{ServiceName: "svc", InstanceID: id, Timestamp: now, IntervalSeconds: 60, Has: wire.HasInterval}, now)
	}
	uptimes := func() string { t.Helper(); return uptimesOf(t, p, "svc", now, 2) }
	// workedOut computes uptime, and reports whether svc's instances'
	// figures were worked out in it rather than kept.
	workedOut := func() bool {
		t.Helper()
		before := p.reports.whole["svc"]
		p.reports.compute(ctx, p)
		after, whole := p.reports.whole["svc"]
		return !whole || !after.at.Equal(before.at) || after.changes != before.changes
	}
	if !workedOut() || uptimes() != "map[a:1.00 b:1.00]" {
		t.Fatalf("first computation: uptime %s, want both whole, worked out", uptimes())
	}
	if workedOut() {
		t.Error("a whole service with no change worked out its instances again")
	}
	if got := uptimes(); got != "map[a:1.00 b:1.00]" {
		t.Errorf("kept figures %s, want both whole", got)
	}

	// Marked stale (an arrival, a death, a stop): worked out once, then
	// kept again.
	p.reports.invalidate("svc")
	if !workedOut() {
		t.Error("a service marked stale kept its figures")
	}
	if workedOut() {
		t.Error("a service worked out once after it was marked stale was worked out again")
	}

	// A minute on, they are worked out again whatever else.
	w := p.reports.whole["svc"]
	w.at = w.at.Add(-wholeFor)
	p.reports.whole["svc"] = w
	if !workedOut() {
		t.Error("a whole service's figures were kept past wholeFor")
	}

	// A gap in what was watched: worked out again.
	if err := p.store.AddGap(ctx, history.Gap{From: at(10 * time.Minute), To: at(9 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if !workedOut() {
		t.Error("a whole service's figures were kept after the gaps changed")
	}

	// Its history changes: a was dead for half an hour (of two hours, less
	// the gap's minute).
	apply(t, p,
		history.Record{Service: "svc", Instance: "a", To: watch.Dead, At: at(60 * time.Minute)},
		history.Record{Service: "svc", Instance: "a", To: watch.Alive, At: at(30 * time.Minute)})
	if !workedOut() {
		t.Error("a service whose history changed kept its instances' figures")
	}
	if got := uptimes(); got != "map[a:0.75 b:1.00]" {
		t.Errorf("after a's death, uptime %s, want a's 0.75", got)
	}
	// One instance short of whole: worked out every time.
	for range 2 {
		if !workedOut() {
			t.Error("a service with an instance short of whole kept its figures")
		}
	}
}

// Keeping whole services' figures shows nothing a computation from
// scratch would not: an instance tracked only after its service was found
// whole (arriving, or read from the latest-state keys as the panel
// starts) is shown once it is marked stale; a service whose history can
// no longer be read, or that Valkey lost, shows no figure, as it did
// before figures were kept.
func TestKeptFiguresAreThoseOfAComputationFromScratch(t *testing.T) {
	srv := redistest.Start(t)
	tr := watch.NewTracker(TrackerOptions()...)
	p := newPanelOn(t, tr, srv)
	ctx := context.Background()
	now := time.Now()
	at := func(ago time.Duration) time.Time { return now.Add(-ago) }
	uptimes := func(svc string) string { t.Helper(); return uptimesOf(t, p, svc, now, 2) }
	beat := func(svc, id string) {
		tr.ObserveAt(&wire.Message{ServiceName: svc, InstanceID: id, Timestamp: now, IntervalSeconds: 60, Has: wire.HasInterval}, now)
	}
	apply(t, p,
		history.Record{Service: "svc", Instance: "a", To: watch.Alive, At: at(2 * time.Hour)},
		history.Record{Service: "svc", Instance: "b", To: watch.Alive, At: at(2 * time.Hour)},
		history.Record{Service: "other", Instance: "x", To: watch.Alive, At: at(2 * time.Hour)},
		history.Record{Service: "third", Instance: "y", To: watch.Alive, At: at(2 * time.Hour)},
		history.Record{Service: "third", Instance: "y", To: watch.Dead, At: at(time.Hour)},
		history.Record{Service: "third", Instance: "y", To: watch.Alive, At: at(30 * time.Minute)})
	beat("third", "y")

	// Worked out before the tracker knows the fleet, as at a start.
	p.reports.compute(ctx, p)
	beat("svc", "a")
	beat("svc", "b")
	beat("other", "x")
	p.reports.invalidate("svc") // as the arrivals do
	p.reports.compute(ctx, p)
	if got := uptimes("svc"); got != "map[a:1.00 b:1.00]" {
		t.Errorf("instances tracked after their service was found whole, then marked stale: %s, want both whole", got)
	}
	p.Observe(watch.Event{Kind: watch.KindLoaded, At: now}) // the fleet read anew
	p.reports.compute(ctx, p)
	if got := uptimes("other"); got != "map[x:1.00]" {
		t.Errorf("after the fleet was read: %s, want x whole", got)
	}

	// A service's history can no longer be read: skipped, it shows none.
	if got := uptimes("third"); got != "map[y:0.75]" {
		t.Fatalf("before the skip: %s, want y's 0.75", got)
	}
	key := "heartbeat:history:{third}:events"
	if err := p.client.Del(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
	if err := p.client.Set(ctx, key, "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	p.reports.history.services = nil // nothing of it cached, as in a panel started now
	p.reports.compute(ctx, p)
	if got := uptimes("third"); got != "map[y:none]" {
		t.Errorf("a service skipped: %s, want no figure", got)
	}
	if got := uptimes("other"); got != "map[x:1.00]" {
		t.Errorf("beside a service skipped: %s, want x whole", got)
	}

	// Valkey lost everything: no service, no figure.
	if err := p.client.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	p.reports.compute(ctx, p)
	if got := uptimes("other") + uptimes("svc"); got != "map[x:none]map[a:none b:none]" {
		t.Errorf("after Valkey lost its data: %s, want no figure", got)
	}
}

// A service kept whole does not put its figures back over the slot of an
// instance it lost (its history not yet saying so) that the tracker gave
// to an instance of another service, whatever order they are computed in.
func TestAKeptServiceLeavesASlotGivenToAnotherAlone(t *testing.T) {
	tr := watch.NewTracker(append(TrackerOptions(), watch.WithMaxInstances(1))...)
	p := newPanel(t, tr)
	ctx := context.Background()
	now := time.Now()
	beat := func(svc, id string) {
		tr.ObserveAt(&wire.Message{ServiceName: svc, InstanceID: id, Timestamp: now, IntervalSeconds: 60, Has: wire.HasInterval}, now)
	}
	apply(t, p, history.Record{Service: "z-last", Instance: "old", To: watch.Alive, At: now.Add(-2 * time.Hour)})
	beat("z-last", "old")
	p.reports.compute(ctx, p) // z-last is whole, kept from now on
	apply(t, p, history.Record{Service: "a-first", Instance: "new", To: watch.Alive, At: now.Add(-time.Hour)})
	beat("a-first", "new") // old is evicted: new takes its slot
	p.reports.invalidate("a-first")
	p.reports.compute(ctx, p)
	if got := uptimesOf(t, p, "a-first", now, 2); got != "map[new:1.00]" {
		t.Errorf("the instance in the slot a kept service lost shows %s, want its own whole figure", got)
	}
}

// What marks a service's figures to be worked out again is not lost to a
// computation that fails, or to one that runs while the fleet is read
// anew: an instance tracked after its service was found whole shows its
// figure once a computation succeeds.
func TestAComputationThatFailsOrOverlapsLosesNoMark(t *testing.T) {
	srv := redistest.Start(t)
	tr := watch.NewTracker(TrackerOptions()...)
	p := newPanelOn(t, tr, srv)
	ctx := context.Background()
	now := time.Now()
	beat := func(id string) {
		tr.ObserveAt(&wire.Message{ServiceName: "svc", InstanceID: id, Timestamp: now, IntervalSeconds: 60, Has: wire.HasInterval}, now)
	}
	recs := []history.Record{
		{Service: "svc", Instance: "a", To: watch.Alive, At: now.Add(-2 * time.Hour)},
		{Service: "svc", Instance: "b", To: watch.Alive, At: now.Add(-2 * time.Hour)},
		{Service: "svc", Instance: "c", To: watch.Alive, At: now.Add(-2 * time.Hour)},
	}
	apply(t, p, recs...)
	beat("a")
	p.reports.compute(ctx, p) // whole, b and c not yet tracked

	// b arrives; the next computation fails (the list of services cannot
	// be read), the one after must still work svc out.
	beat("b")
	p.reports.invalidate("svc")
	services := "heartbeat:history:services"
	if err := p.client.Rename(ctx, services, "saved").Err(); err != nil {
		t.Fatal(err)
	}
	if err := p.client.Set(ctx, services, "not a set", 0).Err(); err != nil {
		t.Fatal(err)
	}
	p.reports.compute(ctx, p)
	if p.reports.err == nil {
		t.Fatal("the computation did not fail")
	}
	if err := p.client.Rename(ctx, "saved", services).Err(); err != nil {
		t.Fatal(err)
	}
	p.reports.compute(ctx, p)
	if got := uptimesOf(t, p, "svc", now, 2); got != "map[a:1.00 b:1.00]" {
		t.Errorf("after a failed computation: %s, want b's figure too", got)
	}

	// c is tracked, and the fleet read anew while a computation reads
	// svc's history.
	beat("c")
	g := newGate()
	p.client.AddHook(eventsReadHook{"{svc}:events", g.hold})
	done := make(chan struct{})
	go func() { defer close(done); p.reports.compute(ctx, p) }()
	<-g.entered
	p.Observe(watch.Event{Kind: watch.KindLoaded, At: now})
	close(g.release)
	<-done
	p.reports.compute(ctx, p)
	if got := uptimesOf(t, p, "svc", now, 2); got != "map[a:1.00 b:1.00 c:1.00]" {
		t.Errorf("after the fleet was read during a computation: %s, want c's figure too", got)
	}
}

// eventsReadHook calls f before each read of the history stream whose key
// holds key.
type eventsReadHook struct {
	key string
	f   func()
}

func (h eventsReadHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h eventsReadHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if strings.EqualFold(cmd.Name(), "xrange") && strings.Contains(cmd.String(), h.key) {
			h.f()
		}
		return next(ctx, cmd)
	}
}
func (h eventsReadHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// The uptime of an instance forgotten is not shown for the instance the
// tracker gives its slot to next.
func TestAnInstancesUptimeIsNotItsSlotsNext(t *testing.T) {
	tr := watch.NewTracker(append(TrackerOptions(), watch.WithMaxInstances(1))...)
	p := newPanel(t, tr)
	now := time.Now()
	apply(t, p, history.Record{Service: "svc", Instance: "old", To: watch.Alive, At: now.Add(-2 * time.Hour)})
	beat := func(id string) watch.Slot {
		tr.ObserveAt(&wire.Message{ServiceName: "svc", InstanceID: id, Timestamp: now, IntervalSeconds: 60, Has: wire.HasInterval}, now)
		s, _ := tr.SlotOf(watch.Key{Service: "svc", Instance: id})
		return s
	}
	uptimeOf := func(id string) *float64 {
		t.Helper()
		d, ok := p.detail("svc", now, pageQuery{Limit: DefaultServicePage})
		if !ok || len(d.Instances) != 1 || d.Instances[0].Instance != id {
			t.Fatalf("service view %+v, want %s alone", d.Instances, id)
		}
		return d.Instances[0].Uptime
	}
	old := beat("old")
	p.reports.compute(context.Background(), p)
	if u := uptimeOf("old"); u == nil || *u != 1 {
		t.Fatalf("old's uptime %v, want 1", u)
	}
	if next := beat("new"); next.Index != old.Index { // old is evicted
		t.Fatalf("new took slot %v, want old's %v", next, old)
	}
	if u := uptimeOf("new"); u != nil {
		t.Errorf("new, in old's slot before uptime is computed again, shows %v", *u)
	}
}

// A service whose history cannot be read is skipped and said once; when
// it can be read again, that is said too, once: an operator who saw the
// first line must not be left believing it still fails.
func TestAServiceWhoseHistoryIsReadAgainIsSaidToBe(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	p, lines := panelSaying(t, srv)
	now := time.Now()
	record := func(svc string) {
		t.Helper()
		apply(t, p, history.Record{Service: svc, Instance: "i1", To: watch.Alive, At: now.Add(-time.Hour)})
	}
	record("good")
	record("bad")
	spoilHistory(t, srv, "bad")
	p.reports.compute(ctx, p)
	p.reports.compute(ctx, p) // still failing: said once
	// The service is named as the line saying it is read again names it,
	// quoted, whatever Valkey's error says of its key.
	if got := lines(); len(got) != 1 || !strings.Contains(got[0], `reading history of "bad": `) || !strings.Contains(got[0], "the other services are shown") {
		t.Fatalf("said %q, want one line naming the bad service", got)
	}
	if _, ok := p.reports.get("good", p.cfg.windows[0]); !ok {
		t.Error("the good service has no report")
	}
	if err := srv.Client(t).Del(ctx, "heartbeat:history:{bad}:events").Err(); err != nil {
		t.Fatal(err)
	}
	record("bad")
	p.reports.compute(ctx, p)
	p.reports.compute(ctx, p)
	got := lines()
	if len(got) != 2 || !strings.Contains(got[1], `"bad"`) || !strings.Contains(got[1], "again") {
		t.Fatalf("said %q, want a second line saying the bad service's history is read again", got)
	}
	if _, ok := p.reports.get("bad", p.cfg.windows[0]); !ok {
		t.Error("the service read again has no report")
	}
}

// The charts' marks come from history; when it cannot be read, the values
// are answered all the same, and the answer says that its changes could
// not be read rather than that there were none.
func TestSeriesSayWhenTheirChangesCouldNotBeRead(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	p := newPanelOn(t, watch.NewTracker(TrackerOptions()...), srv)
	now := time.Now()
	p.seriesW.Add(&wire.Message{ServiceName: "svc", InstanceID: "i1", MemoryUsageMB: 10, Has: wire.HasMemory}, now.Add(-time.Minute))
	if _, err := p.seriesW.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	apply(t, p, history.Record{Service: "svc", Instance: "i1", To: watch.Alive, At: now.Add(-10 * time.Minute)})
	ts := httptest.NewServer(p.Handler())
	defer ts.Close()
	get := func() (SeriesJSON, string) {
		t.Helper()
		resp, err := http.Get(ts.URL + "/api/v1/services/svc/series?field=memory_usage_mb&instance=i1")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var raw json.RawMessage
		var s SeriesJSON
		if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v", resp.Status, err)
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatal(err)
		}
		return s, string(raw)
	}
	s, raw := get()
	if len(s.Series) != 1 || len(s.Events) != 1 || s.EventsUnread || strings.Contains(raw, "events_unread") {
		t.Fatalf("history readable: %s", raw)
	}
	spoilHistory(t, srv, "svc")
	if s, raw = get(); len(s.Series) != 1 || len(s.Events) != 0 || !s.EventsUnread {
		t.Errorf("history unreadable: %s, want the values and events_unread", raw)
	}
}

// spoilHistory makes svc's history unreadable: its stream of events a
// string.
func spoilHistory(t *testing.T, srv *redistest.Server, svc string) {
	t.Helper()
	if err := srv.Client(t).Set(context.Background(), "heartbeat:history:{"+svc+"}:events", "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
}

// When every service's history is unreadable, that is said in one line,
// once; when some are read again, the others are not said again.
func TestEveryServiceUnreadableIsSaidInOneLineOnce(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	p, lines := panelSaying(t, srv)
	now := time.Now()
	for _, svc := range []string{"a", "b", "c"} {
		apply(t, p, history.Record{Service: svc, Instance: "i1", To: watch.Alive, At: now.Add(-time.Hour)})
		spoilHistory(t, srv, svc)
	}
	p.reports.compute(ctx, p)
	p.reports.compute(ctx, p)
	got := lines()
	if len(got) != 1 || strings.Contains(got[0], "\n") {
		t.Fatalf("said %q, want one line", got)
	}
	if err := srv.Client(t).Del(ctx, "heartbeat:history:{a}:events").Err(); err != nil {
		t.Fatal(err)
	}
	p.reports.compute(ctx, p)
	p.reports.compute(ctx, p)
	got = lines()[1:]
	for _, l := range got {
		if strings.Contains(l, "{b}") || strings.Contains(l, "{c}") || strings.Contains(l, "\n") {
			t.Errorf("said again: %q", l)
		}
	}
	if !slices.ContainsFunc(got, func(l string) bool { return strings.Contains(l, `"a" again`) }) {
		t.Errorf("said %q, want a's recovery said", got)
	}
	n := len(lines())
	for _, svc := range []string{"b", "c"} {
		if err := srv.Client(t).Del(ctx, "heartbeat:history:{"+svc+"}:events").Err(); err != nil {
			t.Fatal(err)
		}
	}
	p.reports.compute(ctx, p)
	p.reports.compute(ctx, p)
	if got := lines()[n:]; len(got) != 2 || !slices.ContainsFunc(got, func(l string) bool { return strings.Contains(l, `"b" again`) }) {
		t.Errorf("said %q, want b's and c's recoveries, once each", got)
	}
}

// panelSaying is a panel on srv, not run, and what it has said so far
// (WithErrorf), a line an entry.
func panelSaying(t *testing.T, srv *redistest.Server) (*Panel, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var said []string
	p := newPanelOn(t, watch.NewTracker(TrackerOptions()...), srv, WithErrorf(func(format string, args ...any) {
		mu.Lock()
		said = append(said, fmt.Sprintf(format, args...))
		mu.Unlock()
	}))
	return p, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(said)
	}
}

// A series query that gives field, since or until twice is refused, as
// a service view's query is, rather than answered for the first.
func TestASeriesQueryTakesEachParameterOnce(t *testing.T) {
	p := newPanel(t, watch.NewTracker(TrackerOptions()...))
	ts := httptest.NewServer(p.Handler())
	defer ts.Close()
	for _, q := range []string{"field=queue_size&field=x", "field=queue_size&since=1h&since=2h", "field=queue_size&until=2026-01-01T00:00:00Z&until=2026-01-02T00:00:00Z"} {
		resp, err := http.Get(ts.URL + "/api/v1/services/svc/series?" + q + "&instance=i1")
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(body["error"], "want one value") {
			t.Errorf("%s: %s %q, want 400 naming the parameter given twice", q, resp.Status, body["error"])
		}
	}
}

// A service's open incident is dated from when it began, not from the
// start of the shortest uptime window: a service down for two hours is
// not shown down for one. One that ended before every window is none.
func TestAnOpenIncidentIsDatedFromItsStart(t *testing.T) {
	tr := watch.NewTracker(TrackerOptions()...)
	p := newPanel(t, tr)
	now := time.Now()
	at := func(ago time.Duration) time.Time { return now.Add(-ago) }
	apply(t, p,
		history.Record{Service: "down", Instance: "d1", To: watch.Alive, At: at(3 * time.Hour)},
		history.Record{Service: "down", Instance: "d1", To: watch.Dead, At: at(2 * time.Hour)},
		history.Record{Service: "back", Instance: "b1", To: watch.Alive, At: at(3 * time.Hour)},
		history.Record{Service: "back", Instance: "b1", To: watch.Dead, At: at(2 * time.Hour)},
		history.Record{Service: "back", Instance: "b1", To: watch.Alive, At: at(90 * time.Minute)})
	p.reports.compute(context.Background(), p)
	down := p.service("down", watch.Counts{}, now)
	if down.OpenIncident == nil || down.OpenIncident.StartedAt != stamp(at(2*time.Hour).Truncate(time.Millisecond)) {
		t.Errorf("a service down for two hours: open incident %+v, want one since %s", down.OpenIncident, stamp(at(2*time.Hour)))
	}
	if back := p.service("back", watch.Counts{Alive: 1}, now); back.OpenIncident != nil {
		t.Errorf("a service back for 90 minutes: open incident %+v", back.OpenIncident)
	}
}

// A page of the service view is the limit least ids after the one asked
// for, of the instances in the state asked for, with how many are in it,
// where the next page starts and the service's counts: what paging the
// whole service, sorted, gives, whatever the limit, the start, the state
// (degraded and stopped too) and the service's size; and a service the
// panel knows nothing of has no view.
func TestAServicePageIsThatOfTheWholeServiceSorted(t *testing.T) {
	var rules []watch.HealthRule
	for _, svc := range []string{"svc", "one", "two"} {
		rule, err := watch.ParseHealthRule(svc + ": queue > 10")
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, rule)
	}
	tr := watch.NewTracker(append(TrackerOptions(), watch.WithHealthRules(rules...))...)
	p := newPanel(t, tr)
	now := time.Now()
	r := rand.New(rand.NewPCG(3, 17))
	ids := map[string][]string{}
	for svc, n := range map[string]int{"svc": 700, "one": 1, "two": 2} {
		for range n {
			id := fmt.Sprintf("w-%x", r.Uint32()%5000)
			ids[svc] = append(ids[svc], id)
			// Heard from 0 to 6 minutes ago, every minute: alive, stale or
			// dead; some stopping, some with a queue the rule finds long.
			at := now.Add(-time.Duration(r.IntN(6)) * time.Minute)
			m := &wire.Message{ServiceName: svc, InstanceID: id, Timestamp: at, IntervalSeconds: 60, Has: wire.HasInterval,
				Fields: []wire.Field{{Key: "queue", Value: wire.Int(int64(r.IntN(20)))}}}
			if r.IntN(8) == 0 {
				m.Status = wire.StatusStopping
			}
			tr.ObserveAt(m, at)
		}
	}
	tr.TickAt(now)
	judged := p.judged(now)
	all := tr.ServiceInstances("svc")
	var fleet watch.Counts
	for i := range all {
		fleet.Count(&all[i], judged)
	}
	if fleet.Alive == 0 || fleet.Stale == 0 || fleet.Dead == 0 || fleet.Stopped == 0 || fleet.Degraded == 0 {
		t.Fatalf("the fleet is %+v, want instances alive, stale, dead, stopped and degraded", fleet)
	}
	if _, ok := p.detail("nosuch", now, pageQuery{Limit: DefaultServicePage}); ok {
		t.Error("a service the panel knows nothing of has a view")
	}
	for round := range 600 {
		svc := []string{"svc", "svc", "svc", "one", "two"}[r.IntN(5)]
		all := tr.ServiceInstances(svc)
		q := pageQuery{Limit: 1 + r.IntN(60), State: []string{"", "alive", "stale", "dead", "stopped", "degraded"}[r.IntN(6)]}
		if round%7 == 0 {
			q.Limit = MaxServicePage
		}
		if r.IntN(3) > 0 {
			q.After = ids[svc][r.IntN(len(ids[svc]))]
			if r.IntN(4) == 0 {
				q.After += "~" // between two ids, or after the last
			}
		}
		var (
			want                  []string
			wantMatched, wantNext = 0, ""
			counts                watch.Counts
		)
		for i := range all {
			counts.Count(&all[i], judged)
			if !q.matches(&all[i], judged) {
				continue
			}
			wantMatched++
			if q.After != "" && all[i].Instance <= q.After {
				continue
			}
			if len(want) == q.Limit {
				if wantNext == "" {
					wantNext = want[len(want)-1]
				}
				continue
			}
			want = append(want, all[i].Instance)
		}
		d, ok := p.detail(svc, now, q)
		if !ok {
			t.Fatalf("no view of %s", svc)
		}
		var got []string
		for _, in := range d.Instances {
			got = append(got, in.Instance)
		}
		if !slices.Equal(got, want) || d.Matched != wantMatched || d.Next != wantNext {
			t.Fatalf("round %d, %s %+v: page %q, %d matched, next %q; want %q, %d, %q", round, svc, q, got, d.Matched, d.Next, want, wantMatched, wantNext)
		}
		if wantCounts := p.service(svc, counts, now).Counts; d.Counts != wantCounts {
			t.Fatalf("round %d, %s %+v: counts %+v, want %+v", round, svc, q, d.Counts, wantCounts)
		}
	}
}
