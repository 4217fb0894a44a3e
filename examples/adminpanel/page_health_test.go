package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/otel-heartbeat/heartbeat/internal/testing/browsertest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/poll"
	"github.com/otel-heartbeat/heartbeat/internal/testing/proctest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/testbin"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/panel"
)

// A tracker fetcher whose work loop hangs (SIGUSR1) while its heartbeat
// goes on: the panel's health rule turns it degraded, naming the rule, in
// the API, the page (its own colour) and an alert, and healthy again when
// the loop is freed; a rule whose field is not sent says unknown. Its
// values are charted live, at 1280 and 390 px, with its death marked, and
// its incident shows the hour before. Its link to its own metrics has
// its id escaped whole.
func TestAStuckWorkLoopIsDegradedAndItsValuesAreCharted(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Valkey, the panel, a service and a browser")
	}
	srv := redistest.Start(t)
	const id = "fetch/1&b=<i>#x" // a path, a parameter, markup, a fragment
	fetcher := proctest.Start(t, testbin.Build(t, "../trackerfetcher"), proctest.Env("OTEL_EXPORTER_VALKEY_ENDPOINT="+srv.URL(),
		"HEARTBEAT_INTERVAL=1", "OTEL_RESOURCE_ATTRIBUTES=service.instance.id="+url.PathEscape(id)))
	const link = "https://grafana.example.com/d/abc/requests?var-service={service_name}&var-instance={instance_id}"
	base := startPanel(t, srv,
		"--health-rule", "tracker_fetcher: last_successful_operation older than 3s",
		"--health-rule", "tracker_fetcher: queue_size > 100000 for 1m",
		"--health-rule", "tracker_fetcher: error_rate > 0.5",
		"--metrics-link", link)
	api := base + "/api/v1/services/tracker_fetcher"
	instance := func() (panel.InstanceJSON, panel.ServiceDetailJSON) {
		var d panel.ServiceDetailJSON
		if getJSON(t, api, &d) != 200 || len(d.Instances) != 1 {
			return panel.InstanceJSON{}, d
		}
		return d.Instances[0], d
	}
	poll.Until(t, 30*time.Second, "the fetcher alive and healthy", func() bool {
		in, _ := instance()
		// Until its first fetch it sends no last_successful_operation.
		return in.State == "alive" && in.Health != nil && in.Health.Verdict == "healthy" && in.Health.Checks[0].Status == "holds"
	})
	in, d := instance()
	wantLink := "https://grafana.example.com/d/abc/requests?var-service=tracker_fetcher&var-instance=fetch%2F1%26b%3D%3Ci%3E%23x"
	if in.Instance != id || in.MetricsLink != wantLink {
		t.Errorf("instance %q links to %q, want %q", in.Instance, in.MetricsLink, wantLink)
	}
	var statuses []string
	for _, c := range in.Health.Checks {
		statuses = append(statuses, c.Status)
	}
	if !slices.Equal(statuses, []string{"holds", "holds", "unknown"}) || d.State != "up" {
		t.Errorf("checks %v (want holds, holds, unknown: error_rate is not sent), service %s", statuses, d.State)
	}

	b := browsertest.Start(t)
	ctx, cancel := context.WithTimeout(b.Ctx, 120*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800), chromedp.Navigate(base+"/#/services/tracker_fetcher")); err != nil {
		t.Fatal(err)
	}
	row := `document.querySelector('#instances tbody tr')`
	waitFor(t, ctx, "the alive row", row+` && `+row+`.dataset.state === "alive"`, 20*time.Second)
	if href := eval[string](t, ctx, row+`.querySelector('a.metrics').href`); href != wantLink {
		t.Errorf("the row links to %q, want %q", href, wantLink)
	}
	if got := eval[string](t, ctx, row+`.querySelector('.health li.unknown').textContent`); got != "error_rate > 0.5: not sent" {
		t.Errorf("the unknown rule reads %q", got)
	}
	// Charted live: memory, CPU, queue_size, each with points.
	chart := func(f string) string {
		return fmt.Sprintf(`document.querySelector('#charts figure[data-field=%q]')`, f)
	}
	for _, f := range []string{"memory_usage_mb", "cpu_usage_percent", "queue_size"} {
		waitFor(t, ctx, "the "+f+" chart with a point", chart(f)+` && +`+chart(f)+`.dataset.points >= 1 && `+chart(f)+`.querySelector('canvas')`, 30*time.Second)
	}
	var s panel.SeriesJSON
	if getJSON(t, api+"/series?field=queue_size&since=1h", &s) != 200 || s.Field != "queue_size" || s.Step != 30 || len(s.Series) != 1 ||
		s.Series[0].Instance != id || len(s.Series[0].Points) == 0 || len(s.Aggregate.Sum) == 0 || len(s.Aggregate.Max) == 0 {
		t.Errorf("series: %+v", s)
	}
	if code := getJSON(t, api+"/series?field=queue_size&since=soon", nil); code != 400 {
		t.Errorf("a malformed since: %d, want 400", code)
	}

	// The work loop hangs: degraded within the rule's 3 s and a heartbeat.
	send(t, fetcher, syscall.SIGUSR1)
	poll.Until(t, 20*time.Second, "the fetcher degraded", func() bool {
		in, d := instance()
		return in.Health != nil && in.Health.Verdict == "degraded" && d.State == "degraded" && in.State == "alive"
	})
	in, _ = instance()
	if c := in.Health.Checks[0]; c.Status != "broken" || c.Rule != "tracker_fetcher: last_successful_operation older than 3s" || c.Since == nil || len(c.Value) == 0 {
		t.Errorf("the broken check: %+v", c)
	}
	poll.Until(t, 10*time.Second, "the degraded alert firing", func() bool {
		var a struct{ Active []panel.AlertJSON }
		getJSON(t, base+"/api/v1/alerts", &a)
		return slices.ContainsFunc(a.Active, func(a panel.AlertJSON) bool {
			return a.Name == "HeartbeatInstanceDegraded" && a.Instance == id && strings.Contains(a.Summary, "last_successful_operation older than 3s")
		})
	})
	waitFor(t, ctx, "the degraded row", row+`.dataset.state === "degraded"`, 10*time.Second)
	if m := metricsText(t, base); !strings.Contains(m, `heartbeat_instance_degraded{service_instance_id="fetch/1&b=<i>#x",service_name="tracker_fetcher"} 1`) {
		t.Errorf("/metrics lacks the degraded instance:\n%s", grepLines(m, "degraded"))
	}
	if got := eval[string](t, ctx, row+`.querySelector('.health li.broken').textContent`); got != "last_successful_operation older than 3s" {
		t.Errorf("the broken rule reads %q", got)
	}
	colours := eval[string](t, ctx, `JSON.stringify([getComputedStyle(`+row+`.querySelector('.state')).color,
		getComputedStyle(document.querySelector('#service-state')).color, getComputedStyle(document.documentElement).getPropertyValue('--degraded').trim()])`)
	var c [3]string
	_ = json.Unmarshal([]byte(colours), &c)
	if c[0] != c[1] || c[0] == "" || !strings.HasPrefix(c[2], "#") {
		t.Errorf("the degraded badge is %s, the service's %s (its colour %s)", c[0], c[1], c[2])
	}
	if *updateScreenshot {
		browsertest.Screenshot(t, ctx, filepath.Join("testdata", "adminpanel-degraded.png"))
	}

	// Freed: healthy again, and the alert resolves.
	send(t, fetcher, syscall.SIGUSR2)
	poll.Until(t, 20*time.Second, "the fetcher healthy again", func() bool {
		in, d := instance()
		return in.Health != nil && in.Health.Verdict == "healthy" && d.State == "up"
	})
	poll.Until(t, 10*time.Second, "the degraded alert resolved", func() bool {
		var a struct{ Active []panel.AlertJSON }
		getJSON(t, base+"/api/v1/alerts", &a)
		return len(a.Active) == 0
	})
	waitFor(t, ctx, "the alive row again", row+`.dataset.state === "alive"`, 10*time.Second)

	// On a phone, the charts fit the screen.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(3), chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the charts at 390 px", `window.innerWidth === 390 && [...document.querySelectorAll('#charts figure')].every((f) => {
		const r = f.getBoundingClientRect(), c = f.querySelector('canvas').getBoundingClientRect();
		return r.width > 200 && r.right <= 390 && c.right <= r.right + 1; })`, 10*time.Second)
	if w := eval[float64](t, ctx, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("at 390 px the page is %v px wide", w)
	}

	// It crashes: the death is marked on the charts, and the incident
	// shows the values of the hour before.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
	send(t, fetcher, syscall.SIGKILL)
	poll.Until(t, 20*time.Second, "the death in the series' events", func() bool {
		var s panel.SeriesJSON
		getJSON(t, api+"/series?field=memory_usage_mb", &s)
		return slices.ContainsFunc(s.Events, func(e panel.SeriesEventJSON) bool { return e.Event == "dead" && e.Instance == id })
	})
	waitFor(t, ctx, "the death marked on the memory chart", `+`+chart("memory_usage_mb")+`.dataset.marks >= 1 && document.querySelector('#charts-marks li[data-event="dead"]')`, 30*time.Second)
	inc := `document.querySelector('#service-incidents tbody tr')`
	waitFor(t, ctx, "the incident", inc, 20*time.Second)
	if href := eval[string](t, ctx, inc+`.querySelector('a.metrics').href`); href != wantLink {
		t.Errorf("the incident links to %q, want %q", href, wantLink)
	}
	if err := chromedp.Do(ctx, chromedp.Click(`#service-incidents tbody tr details.before summary`)); err != nil {
		t.Fatal(err)
	}
	before := inc + `.nextElementSibling`
	waitFor(t, ctx, "the incident's hour before, charted", before+` && `+before+`.querySelector('.charts').dataset.rendered >= 3 && `+
		before+`.querySelector('figure[data-field="queue_size"]').dataset.points >= 1`, 20*time.Second)
	// On a phone, they are on the screen.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(3), chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the incident's charts on a phone's screen", `window.innerWidth === 390 && [...`+before+`.querySelectorAll('figure')].every((f) => {
		const r = f.getBoundingClientRect(); return r.left >= 0 && r.right <= 390 && r.width > 200; })`, 10*time.Second)

	// History unreadable: the values are still charted, and the page says
	// that the changes are not marked rather than showing none.
	if eval[string](t, ctx, `document.getElementById('charts-note').dataset.unread`) != "false" {
		t.Error("the charts say history is unread while it is read")
	}
	vc := srv.Client(t)
	events := "heartbeat:history:{tracker_fetcher}:events"
	if err := vc.Del(t.Context(), events).Err(); err != nil {
		t.Fatal(err)
	}
	if err := vc.Set(t.Context(), events, "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the charts saying the changes are not marked", `document.getElementById('charts-note').dataset.unread === "true" && `+
		`document.getElementById('charts-note').textContent.includes("not marked") && `+chart("memory_usage_mb")+`.dataset.points >= 1`, 30*time.Second)
}

func metricsText(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// While the panel cannot see Valkey its verdicts are frozen, health
// included: a rule on a field's age does not break with time alone while
// the heartbeats that would refresh it cannot arrive.
func TestAStalledValkeyFreezesHealthToo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Valkey, the panel and a service")
	}
	srv := redistest.Start(t)
	proctest.Start(t, testbin.Build(t, "../trackerfetcher"), proctest.Env("OTEL_EXPORTER_VALKEY_ENDPOINT="+srv.URL(),
		"HEARTBEAT_INTERVAL=1", "OTEL_RESOURCE_ATTRIBUTES=service.instance.id=f1"))
	base := startPanel(t, srv, "--health-rule", "tracker_fetcher: last_successful_operation older than 3s")
	health := func() (string, string, bool) {
		var d panel.ServiceDetailJSON
		if getJSON(t, base+"/api/v1/services/tracker_fetcher", &d) != 200 || len(d.Instances) != 1 || d.Instances[0].Health == nil {
			return "", "", false
		}
		var f panel.FleetJSON
		getJSON(t, base+"/api/v1/services", &f)
		return d.Instances[0].Health.Verdict, d.Instances[0].Health.Checks[0].Status, f.Watching
	}
	poll.Until(t, 30*time.Second, "the fetcher healthy", func() bool { v, c, _ := health(); return v == "healthy" && c == "holds" })
	srv.Pause()
	poll.Until(t, 10*time.Second, "the panel blind", func() bool { _, _, w := health(); return !w })
	// Past the rule's 3 s with no heartbeat: frozen, not degraded.
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		if v, c, _ := health(); v == "degraded" || c == "broken" {
			srv.Resume()
			t.Fatalf("degraded while the panel could not see: %s, %s", v, c)
		}
		time.Sleep(200 * time.Millisecond) // the panel's own state: poll it
	}
	srv.Resume()
	poll.Until(t, 20*time.Second, "watching and healthy again", func() bool { v, _, w := health(); return w && v == "healthy" })
}

// A panel that keeps no values over time (--series-retention 0) says so
// in the API, and its page shows no charts and stops asking for them.
func TestPageWithoutValuesHidesTheCharts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Valkey, the panel and a browser")
	}
	srv := redistest.Start(t)
	url := startPanel(t, srv, "--series-retention", "0")
	waitReady(t, url)
	publishRich(t, srv, "geofence_service", richIDs(1), 0)
	waitPanel(t, url, 1)
	if code := getJSON(t, url+"/api/v1/services/geofence_service/series/fields", nil); code != 404 {
		t.Errorf("series fields: %d, want 404", code)
	}
	b := browsertest.Start(t)
	ctx, cancel := context.WithTimeout(b.Ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800), chromedp.Navigate(url+"/#/services/geofence_service")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the charts hidden", `document.querySelector('#instances tbody tr') && ["charts-title", "charts-controls", "charts"].every((id) => document.getElementById(id).hidden)`, 20*time.Second)
}

// Values heard in a panel's first moments, before it has taken the lease
// it records under, are kept for it, not thrown away.
func TestValuesHeardBeforeTheFirstLeaseAreKept(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Valkey and the panel")
	}
	srv := redistest.Start(t)
	url := startPanel(t, srv)
	waitReady(t, url)
	var ready struct{ Recording bool }
	getJSON(t, url+"/readyz", &ready)
	publishRich(t, srv, "early_service", richIDs(1), 0)
	poll.Until(t, 20*time.Second, "the first values kept", func() bool {
		var f panel.SeriesFieldsJSON
		return getJSON(t, url+"/api/v1/services/early_service/series/fields", &f) == 200 && slices.Contains(f.Fields, "memory_usage_mb")
	})
	t.Logf("published while recording: %v", ready.Recording)
}
