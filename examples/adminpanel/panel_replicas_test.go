package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/history"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/panel"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"

	"github.com/otel-heartbeat/heartbeat/internal/testing/poll"

	"github.com/otel-heartbeat/heartbeat/internal/testing/proctest"
)

type replica struct {
	p   *proctest.Process
	url string
}

func startReplica(t *testing.T, bin string, environ []string, name string) replica {
	t.Helper()
	p := proctest.Start(t, bin, environ, "--listen", "127.0.0.1:0", "--lease", "1s", "--replica", name, "--windows", "1h,24h")
	line := p.Expect("admin panel on ", 10*time.Second).Text
	url := strings.Fields(strings.TrimPrefix(line, "admin panel on "))[0]
	return replica{p: p, url: strings.TrimSuffix(url, "/")}
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v: %s", url, err, b)
		}
	}
	return resp.StatusCode
}

func recording(t *testing.T, r replica) bool {
	var ready struct{ Recording bool }
	return getJSON(t, r.url+"/readyz", &ready) == 200 && ready.Recording
}

// Two replicas; the recorder is killed while a service dies. The standby
// takes over within the lease, records the death once, and records the
// time nobody watched as unknown. Both restarted, the history still shows
// the incident with its duration, and uptime agrees with a computation
// by hand.
func TestStandbyRecordsTheDeathOnceAndHistorySurvivesRestarts(t *testing.T) {
	r := newRig(t)
	srv, panelBin, svcBin, environ := r.srv, r.panelBin, r.svcBin, r.environ

	svc := proctest.Start(t, svcBin, environ, "serve", "--service", "geofence_service")
	svc.Expect("serving geofence_service", 10*time.Second)
	a := startReplica(t, panelBin, environ, "a")
	b := startReplica(t, panelBin, environ, "b")
	poll.Until(t, 10*time.Second, "recorder", func() bool { return recording(t, a) || recording(t, b) })
	recorder, standby := a, b
	if recording(t, b) {
		recorder, standby = b, a
	}
	if recording(t, standby) {
		t.Fatal("both replicas record")
	}

	// The recorder dies, and so does the service, at the same moment.
	killed := time.Now()
	if err := recorder.p.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := svc.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, "takeover", func() bool { return recording(t, standby) })
	t.Logf("the standby took over %v after the recorder was killed (lease 1s)", time.Since(killed).Round(time.Millisecond))
	if took := time.Since(killed); took > 2*time.Second {
		t.Errorf("takeover took %v, more than the lease and its renewal period", took)
	}
	c := srv.Client(t)
	deaths := func() int {
		msgs, err := c.XRange(context.Background(), "heartbeat:history:{geofence_service}:events", "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, m := range msgs {
			if m.Values["t"] == "dead" {
				n++
			}
		}
		return n
	}
	poll.Until(t, 10*time.Second, "the death recorded", func() bool { return deaths() > 0 })
	died := time.Now()

	// Restart both replicas: the history is in Valkey, not in them.
	if err := standby.p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := standby.p.Wait(10 * time.Second); err != nil {
		t.Errorf("the standby's graceful stop: %v", err)
	}
	c1 := startReplica(t, panelBin, environ, "c")
	c2 := startReplica(t, panelBin, environ, "d")
	poll.Until(t, 10*time.Second, "a recorder after the restart", func() bool { return recording(t, c1) || recording(t, c2) })
	if n := deaths(); n != 1 {
		t.Errorf("the death is recorded %d times", n)
	}

	type incidents struct {
		Incidents []panel.IncidentJSON `json:"incidents"`
	}
	var inc incidents
	poll.Until(t, 15*time.Second, "the incident in the API", func() bool {
		getJSON(t, c2.url+"/api/v1/incidents?service=geofence_service", &inc)
		return len(inc.Incidents) == 1
	})
	in := inc.Incidents[0]
	start, err := time.Parse(time.RFC3339Nano, in.StartedAt)
	if err != nil {
		t.Fatal(err)
	}
	// Dead 3 intervals after its last heartbeat, at most 1 s before the kill.
	if s := start.Sub(killed); s < 2*time.Second-100*time.Millisecond || s > 3*time.Second+500*time.Millisecond {
		t.Errorf("the incident started %v after the kill, want 2 to 3.5 s (dead at 3 intervals of silence)", s)
	}
	if in.EndedAt != nil || in.Duration < time.Since(died).Seconds() {
		t.Errorf("incident %+v: want it open, lasting at least since the death was recorded", in)
	}

	// The service comes back: the incident closes with its duration.
	svc2 := proctest.Start(t, svcBin, environ, "serve", "--service", "geofence_service")
	svc2.Expect("serving geofence_service", 10*time.Second)
	back := time.Now()
	poll.Until(t, 20*time.Second, "the incident closed", func() bool {
		getJSON(t, c1.url+"/api/v1/incidents?service=geofence_service", &inc)
		return len(inc.Incidents) == 1 && inc.Incidents[0].EndedAt != nil
	})
	in = inc.Incidents[0]
	end, _ := time.Parse(time.RFC3339Nano, *in.EndedAt)
	if d := end.Sub(back); d < -200*time.Millisecond || d > 2*time.Second {
		t.Errorf("the incident ended %v after the service came back", d)
	}
	if got, want := in.Duration, end.Sub(start).Seconds(); math.Abs(got-want) > 0.01 {
		t.Errorf("duration %v, want %v", got, want)
	}

	// Uptime by hand, from the recorded times: up from its appearance to
	// the death and from the return on, down between; the time nobody
	// watched (the takeover's gap) counts as neither.
	var fleet panel.FleetJSON
	var got float64
	poll.Until(t, 15*time.Second, "uptime in the API", func() bool {
		getJSON(t, c1.url+"/api/v1/services", &fleet)
		for _, s := range fleet.Services {
			if s.Name == "geofence_service" && s.Uptime["1h"] != nil && s.OpenIncident == nil && fleet.HistoryAt != nil {
				got = *s.Uptime["1h"]
				return true
			}
		}
		return false
	})
	at, _ := time.Parse(time.RFC3339Nano, *fleet.HistoryAt)
	msgs, err := c.XRange(context.Background(), "heartbeat:history:{geofence_service}:events", "-", "+").Result()
	if err != nil || len(msgs) == 0 {
		t.Fatalf("entries %v %v", msgs, err)
	}
	var appeared int64
	fmt.Sscan(msgs[0].Values["a"].(string), &appeared)
	gaps, err := c.XRange(context.Background(), "heartbeat:history:gaps", "-", "+").Result()
	if err != nil || len(gaps) == 0 {
		t.Fatalf("no gap recorded for the takeover: %v %v", gaps, err)
	}
	// The takeover's gap, and the restart's.
	type span struct{ from, to time.Time }
	var spans []span
	for _, g := range gaps {
		var from, to int64
		fmt.Sscan(g.Values["from"].(string), &from)
		fmt.Sscan(g.Values["to"].(string), &to)
		spans = append(spans, span{time.UnixMilli(from), time.UnixMilli(to)})
	}
	if took := spans[0].to.Sub(spans[0].from); took > 2*time.Second {
		t.Errorf("the takeover's gap is %v, more than the lease and a renewal", took)
	}
	t.Logf("nobody watched: %v", spans)
	overlap := func(from, to time.Time) time.Duration {
		var d time.Duration
		for _, g := range spans {
			lo, hi := from, to
			if g.from.After(lo) {
				lo = g.from
			}
			if g.to.Before(hi) {
				hi = g.to
			}
			d += max(hi.Sub(lo), 0)
		}
		return d
	}
	first := time.UnixMilli(appeared)
	up := start.Sub(first) - overlap(first, start) + at.Sub(end) - overlap(end, at)
	down := end.Sub(start) - overlap(start, end)
	want := up.Seconds() / (up + down).Seconds()
	t.Logf("uptime over 1h: %.5f; by hand %.5f (up %v, down %v)", got, want, up.Round(time.Millisecond), down.Round(time.Millisecond))
	// The API rounds to six decimals; the times are in milliseconds.
	if math.Abs(got-want) > 1e-4 {
		t.Errorf("uptime %v, by hand %v", got, want)
	}
}

func decodeJSON(resp *http.Response, v any) error {
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// A standby judges from the same heartbeats as the recorder, and from the
// same history: a crashed service is down with its dead instance counted,
// a stopped one stopped, on both replicas, whether the standby watched the
// crash and the stop or started after them; and the standby says it is
// the standby.
func TestAStandbyShowsTheRecordersVerdicts(t *testing.T) {
	r := newRig(t)
	panelBin, svcBin, environ := r.panelBin, r.svcBin, r.environ

	crash := proctest.Start(t, svcBin, environ, "serve", "--service", "crashing_service")
	crash.Expect("serving crashing_service", 10*time.Second)
	stop := proctest.Start(t, svcBin, environ, "serve", "--service", "stopping_service", "--drain", "0s")
	stop.Expect("serving stopping_service", 10*time.Second)
	a := startReplica(t, panelBin, environ, "a")
	b := startReplica(t, panelBin, environ, "b")
	poll.Until(t, 10*time.Second, "a recorder", func() bool { return recording(t, a) || recording(t, b) })
	recorder, standby := a, b
	if recording(t, b) {
		recorder, standby = b, a
	}
	poll.Until(t, 10*time.Second, "both services alive on both replicas", func() bool {
		return aliveIn(t, recorder, "crashing_service") && aliveIn(t, recorder, "stopping_service") &&
			aliveIn(t, standby, "crashing_service") && aliveIn(t, standby, "stopping_service")
	})
	send(t, crash, syscall.SIGKILL)
	send(t, stop, syscall.SIGTERM)

	type verdict struct {
		State  string
		Counts string
	}
	verdicts := func(r replica) (map[string]verdict, string) {
		var fleet panel.FleetJSON
		getJSON(t, r.url+"/api/v1/services", &fleet)
		out := map[string]verdict{}
		for _, s := range fleet.Services {
			out[s.Name] = verdict{s.State, fmt.Sprintf("%+v", s.Counts)}
		}
		return out, fleet.Role
	}
	want := map[string]verdict{
		"crashing_service": {"down", fmt.Sprintf("%+v", watch.Counts{Dead: 1})},
		"stopping_service": {"stopped", fmt.Sprintf("%+v", watch.Counts{Stopped: 1})},
	}
	poll.Until(t, 15*time.Second, "the recorder's verdicts", func() bool {
		got, role := verdicts(recorder)
		return fmt.Sprint(got) == fmt.Sprint(want) && role == "recorder"
	})
	late := startReplica(t, panelBin, environ, "late")
	for _, r := range []struct {
		name string
		r    replica
	}{{"the standby that watched", standby}, {"a standby started after", late}} {
		var got map[string]verdict
		var role string
		ok := poll.Within(15*time.Second, func() bool {
			got, role = verdicts(r.r)
			return fmt.Sprint(got) == fmt.Sprint(want)
		})
		if !ok || role != "standby" {
			t.Errorf("%s: verdicts %v as %q, want the recorder's %v as the standby", r.name, got, role, want)
		}
	}
}

// An instance that crashes while no panel watches (the only replica is
// being upgraded) and whose latest-state key has expired by the time a
// panel starts is known from history alone, as alive: the panel judges
// it as if heard at its start, so it is dead a few intervals later and
// pages, where it used to vanish and leave its service "unknown".
func TestACrashWhileNoPanelWatchesIsStillJudged(t *testing.T) {
	r := newRig(t)
	srv, panelBin, svcBin, environ := r.srv, r.panelBin, r.svcBin, r.environ

	crash := proctest.Start(t, svcBin, environ, "serve", "--service", "lonely_service")
	crash.Expect("serving lonely_service", 10*time.Second)
	before := panelWith(t, panelBin, environ)
	poll.Until(t, 10*time.Second, "the service alive", func() bool { return aliveIn(t, before, "lonely_service") })
	send(t, before.p, syscall.SIGTERM)
	if err := before.p.Wait(10 * time.Second); err != nil {
		t.Fatalf("the panel's stop: %v", err)
	}
	send(t, crash, syscall.SIGKILL)
	client := srv.Client(t)
	poll.Until(t, 15*time.Second, "the crashed instance's key expired", func() bool {
		keys, err := client.Keys(context.Background(), "heartbeat:instance:lonely_service:*").Result()
		return err == nil && len(keys) == 0
	})

	after := panelWith(t, panelBin, environ)
	var d panel.ServiceDetailJSON
	if !poll.Within(15*time.Second, func() bool {
		return getJSON(t, after.url+"/api/v1/services/lonely_service", &d) == 200 && d.Counts.Dead == 1
	}) {
		t.Errorf("the service a panel started after its silent crash: %s %+v; want down with one dead", d.State, d.Counts)
	}
}

// The panel and an instance go down together (one node) and the instance
// is restarted under a new id before a panel is back: the restart, which
// started after a panel last watched, replaces the crashed instance, which
// pages nobody for a day.
func TestARestartWhileNoPanelWatchesIsAReplacement(t *testing.T) {
	r := newRig(t)
	srv, panelBin, svcBin, environ := r.srv, r.panelBin, r.svcBin, r.environ

	crash := proctest.Start(t, svcBin, r.withID("pod-a"), "serve", "--service", "node_service")
	crash.Expect("serving node_service", 10*time.Second)
	before := panelWith(t, panelBin, environ)
	poll.Until(t, 10*time.Second, "the service alive", func() bool { return aliveIn(t, before, "node_service") })
	// The panel writes history a moment after it shows the instance: kill
	// it only once history holds pod-a up, or no panel could know of pod-a.
	client := srv.Client(t)
	store, err := history.NewStore(client)
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "pod-a up in history", func() bool {
		recorded, err := store.Recorded(context.Background())
		return err == nil && recorded["node_service"]["pod-a"].State.Up()
	})
	send(t, before.p, syscall.SIGKILL)
	send(t, crash, syscall.SIGKILL)
	poll.Until(t, 15*time.Second, "the crashed instance's key expired", func() bool {
		keys, err := client.Keys(context.Background(), "heartbeat:instance:node_service:*").Result()
		return err == nil && len(keys) == 0
	})
	restarted := proctest.Start(t, svcBin, r.withID("pod-b"), "serve", "--service", "node_service")
	restarted.Expect("serving node_service", 10*time.Second)

	after := panelWith(t, panelBin, environ)
	var d panel.ServiceDetailJSON
	// pod-a, remembered as alive, is judged dead three intervals after the
	// panel starts, and replaced by pod-b at once: one restart, nothing
	// dead, pod-b alone.
	ok := poll.Within(15*time.Second, func() bool {
		return getJSON(t, after.url+"/api/v1/services/node_service", &d) == 200 && d.Restarts["1h"] == 1
	})
	if !ok || d.Counts.Dead != 0 || len(d.Instances) != 1 || d.Instances[0].Instance != "pod-b" {
		t.Errorf("the service: %s %+v, %d restarts, %d instances; want pod-b alone after one restart",
			d.State, d.Counts, d.Restarts["1h"], len(d.Instances))
	}
}
