package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/panel"

	"github.com/otel-heartbeat/heartbeat/internal/testing/browsertest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/leaktest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/proctest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/testbin"
	"github.com/otel-heartbeat/heartbeat/internal/tools/loadgen/fleet"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

// -update-screenshot rewrites the page's screenshots in testdata, which
// the documentation shows; normal runs leave the tree alone.
var updateScreenshot = flag.Bool("update-screenshot", false, "write the page's screenshots to testdata/")

// startPanel runs the admin panel binary against srv and returns its URL.
func startPanel(t testing.TB, srv *redistest.Server, args ...string) string {
	t.Helper()
	p := proctest.Start(t, testbin.Build(t, "."), proctest.Env("OTEL_EXPORTER_VALKEY_ENDPOINT="+srv.URL()),
		append([]string{"--listen", "127.0.0.1:0"}, args...)...)
	line := p.Expect("admin panel on http://", 30*time.Second).Text
	url := strings.Fields(strings.TrimPrefix(line, "admin panel on "))[0]
	return strings.TrimSuffix(url, "/")
}

// startService runs `discovery serve` for a service at a 1 s interval.
func startService(t testing.TB, srv *redistest.Server, bin, name string) *proctest.Process {
	t.Helper()
	p := proctest.Start(t, bin, proctest.Env("OTEL_EXPORTER_VALKEY_ENDPOINT="+srv.URL(), "HEARTBEAT_INTERVAL=1"),
		"serve", "--service", name)
	p.Expect("serving "+name, 30*time.Second)
	return p
}

// waitFor polls the page until the JavaScript expression is true and
// returns how long it took; it fails the test at the deadline.
func waitFor(t testing.TB, ctx context.Context, what, expr string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		if err == nil && ok {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %v (%s; last error %v)", what, timeout, expr, err)
		}
		time.Sleep(20 * time.Millisecond) // the page changes on its own schedule: poll it
	}
}

func eval[T any](t testing.TB, ctx context.Context, expr string, opts ...chromedp.EvaluateOption) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

func cardSel(svc string) string { return fmt.Sprintf(`a.card[data-service=%q]`, svc) }

func cardJS(svc string) string {
	return fmt.Sprintf("document.querySelector(%q)", cardSel(svc))
}

// TestPageFollowsServicesLive runs three services, then crashes one and
// stops another, and watches the page follow without a reload: the
// crashed one's instance turns stale then dead and its service down, the
// stopped one's service stopped. It also walks the page by keyboard.
func TestPageFollowsServicesLive(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Valkey, the panel, three services and a browser")
	}
	srv := redistest.Start(t)
	url := startPanel(t, srv)
	names := []string{"billing_service", "geocoding_service", "search_service"}
	disc := testbin.Build(t, "../discovery")
	procs := map[string]*proctest.Process{}
	for _, n := range names {
		procs[n] = startService(t, srv, disc, n)
	}

	b := browsertest.Start(t)
	ctx, cancel := context.WithTimeout(b.Ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url+"/")); err != nil {
		t.Fatal(err)
	}
	// The page marks itself so that it can be told apart from a reload.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void]("window.__sameDocument = true")); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, ctx, "three services up", `document.querySelectorAll('a.card[data-state="up"]').length === 3`, 20*time.Second)
	t.Logf("three services up on the page after %v", took.Round(time.Millisecond))
	for _, n := range names {
		if got := eval[string](t, ctx, cardJS(n)+".querySelector('.state').textContent"); got != "up" {
			t.Errorf("%s card says %q, want the state written as text, up", n, got)
		}
		if got := eval[string](t, ctx, cardJS(n)+".querySelector('.uptime').textContent"); !strings.Contains(got, "1h") {
			t.Errorf("%s card's uptime %q does not name the 1h window", n, got)
		}
	}

	// Crash one: SIGKILL sends no final heartbeat.
	killed := time.Now()
	if err := procs["geocoding_service"].Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	g := cardJS("geocoding_service")
	stale := waitFor(t, ctx, "geocoding_service instance stale", g+".querySelector('.counts').textContent.includes('1 stale')", 20*time.Second)
	down := waitFor(t, ctx, "geocoding_service down", g+`.dataset.state === "down"`, 30*time.Second)
	t.Logf("after SIGKILL: stale on the page after %v, dead (service down) after %v",
		stale.Round(time.Millisecond), (stale + down).Round(time.Millisecond))
	if got := eval[string](t, ctx, g+".querySelector('.counts').textContent"); !strings.Contains(got, "1 dead") {
		t.Errorf("geocoding_service counts %q, want 1 dead", got)
	}
	_ = killed

	// Stop another gracefully: its final heartbeat says stopping.
	if err := procs["billing_service"].Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	stopped := waitFor(t, ctx, "billing_service stopped", cardJS("billing_service")+`.dataset.state === "stopped"`, 20*time.Second)
	t.Logf("after SIGTERM: stopped on the page after %v", stopped.Round(time.Millisecond))
	if err := procs["billing_service"].Wait(10 * time.Second); err != nil {
		t.Logf("billing_service exit: %v", err)
	}
	if !eval[bool](t, ctx, "window.__sameDocument === true") {
		t.Fatal("the page reloaded; it must follow the events in place")
	}
	if got := eval[string](t, ctx, cardJS("search_service")+".dataset.state"); got != "up" {
		t.Errorf("search_service is %q, want up", got)
	}
	if *updateScreenshot {
		browsertest.Screenshot(t, ctx, filepath.Join("testdata", "adminpanel.png"))
	}

	// The crash fired its alerts, which the Alerts view lists and the
	// navigation counts; the graceful stop fired none.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`location.hash = "#/alerts"`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the crash's alerts listed", `document.querySelectorAll('#alerts-active tr[data-alert="HeartbeatInstanceDead"]').length === 1 && `+
		`document.querySelectorAll('#alerts-active tr[data-alert="HeartbeatServiceDown"]').length === 1`, 20*time.Second)
	if got := eval[string](t, ctx, "document.getElementById('alerts-active').textContent"); strings.Contains(got, "billing_service") {
		t.Errorf("the graceful stop fired: %q", got)
	}
	if got := eval[string](t, ctx, "document.getElementById('alerts-count').textContent"); got != "(2)" {
		t.Errorf("the navigation counts %q alerts, want (2)", got)
	}
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`location.hash = "#/"`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the fleet again", `document.querySelectorAll('a.card').length === 3`, 10*time.Second)

	// The keyboard: Tab reaches the cards, Enter opens one, the service
	// view lists its instance, and its back link returns to the fleet.
	focused := ""
	for range 12 {
		if err := chromedp.Do(ctx, chromedp.KeyEvent("\t")); err != nil {
			t.Fatal(err)
		}
		focused = eval[string](t, ctx, "document.activeElement.dataset.service || ''")
		if focused == "geocoding_service" {
			break
		}
	}
	if focused != "geocoding_service" {
		t.Fatalf("Tab never reached the geocoding_service card (focus on %q)", eval[string](t, ctx, "document.activeElement.outerHTML.slice(0, 80)"))
	}
	if outline := eval[string](t, ctx, "getComputedStyle(document.activeElement).outlineStyle"); outline == "none" {
		t.Error("the focused card has no visible outline")
	}
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\r")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "service view", `location.hash === "#/services/geocoding_service" && document.querySelector('#app').dataset.rendered === "1"`, 10*time.Second)
	if got := eval[string](t, ctx, `document.querySelector('#instances tbody tr').dataset.state`); got != "dead" {
		t.Errorf("the killed instance's row is %q, want dead", got)
	}
	if got := eval[string](t, ctx, `document.querySelector('#instances tbody tr .state').textContent`); got != "dead" {
		t.Errorf("the killed instance's row says %q, want dead", got)
	}
	// The age ticks in the page without server updates: nothing is sent
	// for a dead instance.
	age1 := eval[string](t, ctx, `document.querySelector('#instances tbody tr td:nth-child(3)').textContent`)
	waitFor(t, ctx, "the age ticks", fmt.Sprintf(`document.querySelector('#instances tbody tr td:nth-child(3)').textContent !== %q`, age1), 5*time.Second)
	if n := eval[int](t, ctx, `document.querySelectorAll('#instances tbody tr .bars span').length`); n == 0 {
		t.Error("no heartbeat bars")
	}
	if err := chromedp.Do(ctx, chromedp.Click("#service-view a.back")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "back to the fleet", `document.querySelector('#app').dataset.view === "fleet" && !document.querySelector('#fleet-view').hidden`, 10*time.Second)

	// A phone: the cards stack and the page does not scroll sideways (the
	// tables scroll in their own boxes).
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(375, 800, chromedp.EmulateScale(2), chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	for _, view := range []string{"#/", "#/services/search_service"} {
		if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](fmt.Sprintf("location.hash = %q", view))); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, "view "+view, `document.querySelector('#app').dataset.rendered !== ""`, 10*time.Second)
		if w := eval[int](t, ctx, "document.documentElement.scrollWidth"); w > 375 {
			t.Errorf("%s at 375 px is %d px wide: the page scrolls sideways", view, w)
		}
	}

	// Dark: the page follows prefers-color-scheme.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
	light := eval[string](t, ctx, "getComputedStyle(document.body).backgroundColor")
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}}); err != nil {
		t.Fatal(err)
	}
	if dark := eval[string](t, ctx, "getComputedStyle(document.body).backgroundColor"); dark == light {
		t.Errorf("the background is %s in light and dark alike", dark)
	}
	if *updateScreenshot {
		if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void]("location.hash = '#/'")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, "fleet", `document.querySelector('#app').dataset.view === "fleet"`, 10*time.Second)
		browsertest.Screenshot(t, ctx, filepath.Join("testdata", "adminpanel-dark.png"))
	}

	// The incidents log: the crashed service's outage is an incident
	// once the recorder has written it.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void]("location.hash = '#/incidents'")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "incidents view", `document.querySelector('#app').dataset.view === "incidents"`, 10*time.Second)
	took = waitFor(t, ctx, "the crash in the incidents log", `[...document.querySelectorAll('#incidents tbody tr')].some((r) => r.textContent.includes('geocoding_service'))`, 5*time.Second)
	if got := eval[string](t, ctx, `[...document.querySelectorAll('#incidents tbody tr')].find((r) => r.textContent.includes('geocoding_service')).children[2].textContent`); got != "open" {
		t.Errorf("the crash's incident ended %q, want open", got)
	}
}

// TestPageShowsHostileFieldsAsText publishes a heartbeat whose service
// name and field carry markup and checks the page shows them as text and
// runs nothing, and that the page is served with its CSP.
func TestPageShowsHostileFieldsAsText(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Valkey, the panel and a browser")
	}
	srv := redistest.Start(t)
	url := startPanel(t, srv)
	rdb := srv.Client(t)

	resp, err := http.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %s", csp, want)
		}
	}

	const (
		svc  = `x<svg/onload=window.__pwned=2>`
		inst = `<b>inst</b>`
		note = `<img src=x onerror=window.__pwned=1>`
	)
	msg := map[string]any{
		"service_name": svc, "instance_id": inst, "timestamp": time.Now().UTC().Format("2006-01-02T15:04:05.000000+00:00"),
		"uptime_seconds": 10.0, "heartbeat_count": 1, "memory_usage_mb": 10.5, "cpu_usage_percent": 1.5,
		"interval_seconds": 60, "status": "running", "note": note,
	}
	count := 0
	publish := func() {
		count++
		msg["heartbeat_count"] = count
		b, _ := json.Marshal(msg)
		if err := rdb.Publish(context.Background(), "heartbeat:service:"+svc, b).Err(); err != nil {
			t.Fatal(err)
		}
	}

	br := browsertest.Start(t)
	ctx, cancel := context.WithTimeout(br.Ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url+"/")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "fleet rendered", `document.querySelector('#app').dataset.view === "fleet"`, 10*time.Second)
	publish()
	// The card arrives by the events, then the service view by the API:
	// both paths.
	waitFor(t, ctx, "the hostile service's card", fmt.Sprintf("document.querySelector(%q)", cardSel(svc)), 10*time.Second)
	if got := eval[string](t, ctx, cardJS(svc)+".querySelector('.card-name').textContent"); got != svc {
		t.Errorf("card name %q, want the name as text %q", got, svc)
	}
	if err := chromedp.Do(ctx, chromedp.Click(cardSel(svc))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "service view", `document.querySelector('#app').dataset.view === "service" && document.querySelector('#app').dataset.rendered === "1"`, 10*time.Second)
	if got := eval[string](t, ctx, "document.querySelector('#service-name').textContent"); got != svc {
		t.Errorf("service name %q, want %q", got, svc)
	}
	if got := eval[string](t, ctx, "document.querySelector('#instances tbody th').title"); got != inst {
		t.Errorf("instance title %q, want %q", got, inst)
	}
	if got := eval[string](t, ctx, "document.querySelector('#instances .fields dd').textContent"); got != note {
		t.Errorf("field shown as %q, want the text %q", got, note)
	}
	// Once more by the events, into the rows already there.
	publish()
	waitFor(t, ctx, "the second heartbeat in the row", `document.querySelector('#instances tbody td.num') && `+
		`[...document.querySelectorAll('#instances tbody td.num')].some((td) => td.textContent === "2")`, 10*time.Second)
	if n := eval[int](t, ctx, "document.querySelectorAll('main img, main svg, main b').length"); n != 0 {
		t.Errorf("%d elements made from the data", n)
	}
	if got := eval[string](t, ctx, "typeof window.__pwned"); got != "undefined" {
		t.Errorf("window.__pwned is %s: the data ran as script", got)
	}
	if !eval[bool](t, ctx, "document.body.textContent.includes('<img src=x onerror=window.__pwned=1>')") {
		t.Error("the field's text is not on the page")
	}
}

// TestPageTenThousandInstances runs the page against a simulated fleet
// of 10,000 instances and checks it stays usable.
func TestPageTenThousandInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("publishes 10,000 instances and starts a browser")
	}
	m := measureFleet(t, 1)
	t.Logf("fleet first render %v, service (500 instances) first render %v, publish to DOM %v, longest frame %v",
		m.fleet.Round(time.Millisecond), m.service.Round(time.Millisecond), m.update.Round(time.Millisecond), m.frame.Round(time.Millisecond))
	if m.service > 15*time.Second || m.frame > 2*time.Second {
		t.Errorf("the page is not usable with 10,000 instances")
	}
}

// BenchmarkPageTenThousandInstances measures the page against 10,000
// simulated instances of 20 services (500 each): the time to first render
// of the fleet overview and of one service's view, and from a heartbeat
// being published to its showing in the DOM (coalescing included). Run it
// once: go test -run '^$' -bench PageTenThousand -benchtime=1x.
func BenchmarkPageTenThousandInstances(b *testing.B) { benchFleet(b, 20, 10_000) }

// BenchmarkPageOneServiceOfTenThousand is the same with every instance in
// one service: the page reads and shows its first page of 500.
func BenchmarkPageOneServiceOfTenThousand(b *testing.B) { benchFleet(b, 1, 10_000) }

func benchFleet(b *testing.B, services, instances int) {
	var fleetT, svcT, updT, frameT time.Duration
	n := 0
	for b.Loop() {
		m := measureFleetOf(b, services, instances, 3)
		fleetT += m.fleet
		svcT += m.service
		updT += m.update
		frameT = max(frameT, m.frame)
		n++
	}
	b.ReportMetric(float64(fleetT.Milliseconds())/float64(n), "fleet-render-ms")
	b.ReportMetric(float64(svcT.Milliseconds())/float64(n), "service-render-ms")
	b.ReportMetric(float64(updT.Milliseconds())/float64(n), "publish-to-dom-ms")
	b.ReportMetric(float64(frameT.Milliseconds()), "max-frame-ms")
	b.ReportMetric(0, "ns/op")
}

type fleetTimes struct{ fleet, service, update, frame time.Duration }

// measureFleet publishes a fleet of 10,000 instances, keeps it beating,
// loads the page and measures it; updates is how many published-to-DOM
// round trips to take the median of.
func measureFleet(tb testing.TB, updates int) fleetTimes {
	return measureFleetOf(tb, 20, 10_000, updates)
}

// measureFleetOf is measureFleet with services services of instances in all.
func measureFleetOf(tb testing.TB, services, instances, updates int) fleetTimes {
	tb.Helper()
	srv := redistest.Start(tb)
	url := startPanel(tb, srv, "--bars", "30")
	rdb := srv.Client(tb)
	fl, err := fleet.New(fleet.Config{Services: services, Instances: instances, Interval: 60 * time.Second, LatestState: true})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	if _, err := fl.Round(ctx, rdb); err != nil {
		tb.Fatal(err)
	}
	// Keep it beating, each instance once a minute, while the page runs.
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = fl.Run(ctx, rdb) })
	defer wg.Wait()
	defer stop()

	// One more instance of service_003, ours to change.
	svc, id := fmt.Sprintf("service_%03d", min(3, services-1)), "0-probe-instance" // first by id: shown in the first rows
	publish := func(marker string) {
		m := map[string]any{"service_name": svc, "instance_id": id, "timestamp": time.Now().UTC().Format("2006-01-02T15:04:05.000000+00:00"),
			"heartbeat_count": 1, "interval_seconds": 60, "status": "running", "marker": marker}
		b, _ := json.Marshal(m)
		if err := rdb.Publish(ctx, "heartbeat:service:"+svc, b).Err(); err != nil {
			tb.Fatal(err)
		}
	}
	publish("m0")
	waitPanel(tb, url, instances+1)

	br := browsertest.Start(tb)
	bctx, cancel := context.WithTimeout(br.Ctx, 50*time.Second)
	defer cancel()
	var out fleetTimes

	start := time.Now()
	if err := chromedp.Do(bctx, chromedp.Navigate(url+"/#/")); err != nil {
		tb.Fatal(err)
	}
	waitFor(tb, bctx, "the cards", fmt.Sprintf(`document.querySelector('#app').dataset.view === "fleet" && document.querySelectorAll('a.card').length === %d`, services), 20*time.Second)
	out.fleet = time.Since(start)

	// Open the service as a click on its card does: a new hash in the
	// same page.
	start = time.Now()
	if err := chromedp.Do(bctx, chromedp.Evaluate[chromedp.Void](fmt.Sprintf("location.hash = %q", "#/services/"+svc))); err != nil {
		tb.Fatal(err)
	}
	rows := min(instances/services+1, panel.DefaultServicePage) // the page reads a page of the server's at first
	total := instances/services + 1
	waitFor(tb, bctx, "the rows", fmt.Sprintf(`document.querySelector('#app').dataset.view === "service" && document.querySelector('#app').dataset.rendered === "%d" && document.querySelectorAll('#instances tbody tr').length === %d && document.querySelector('#instances-count').textContent === "(%d)"`, rows, rows, total), 30*time.Second)
	out.service = time.Since(start)

	if rows < total {
		// Past the first page: "Show more" reads the next, and the state
		// filter reads that state's first page from the server.
		// An instance that starts past the pages read is counted at once
		// and shown with the page it falls in, not in the middle of these.
		late := map[string]any{"service_name": svc, "instance_id": "zzz-late", "timestamp": time.Now().UTC().Format("2006-01-02T15:04:05.000000+00:00"),
			"heartbeat_count": 1, "interval_seconds": 60, "status": "running"}
		lb, _ := json.Marshal(late)
		if err := rdb.Publish(ctx, "heartbeat:service:"+svc, lb).Err(); err != nil {
			tb.Fatal(err)
		}
		total++
		waitFor(tb, bctx, "the late instance counted", fmt.Sprintf(`document.querySelector('#instances-count').textContent === "(%d)"`, total), 10*time.Second)
		if n := eval[int](tb, bctx, `document.querySelectorAll('#instances tbody tr').length`); n != rows {
			tb.Errorf("%d rows after an instance past the page started, want %d", n, rows)
		}
		if err := chromedp.Do(bctx, chromedp.Click("#more-rows")); err != nil {
			tb.Fatal(err)
		}
		more := fmt.Sprintf(`document.querySelectorAll('#instances tbody tr').length === %d`, min(total, 2*rows))
		if total <= 2*rows { // the late instance is on the second page
			more += ` && document.querySelector('#instances tbody tr:last-child').dataset.instance === "zzz-late"`
		}
		waitFor(tb, bctx, "more rows", more, 10*time.Second)
		if err := chromedp.Do(bctx, chromedp.SetValue("#state-filter", "dead"), chromedp.Evaluate[chromedp.Void](
			`document.querySelector('#state-filter').dispatchEvent(new Event('change'))`)); err != nil {
			tb.Fatal(err)
		}
		waitFor(tb, bctx, "no dead rows", `document.querySelectorAll('#instances tbody tr').length === 0 && document.querySelector('#rows-note').textContent.includes('No dead')`, 10*time.Second)
		if err := chromedp.Do(bctx, chromedp.SetValue("#state-filter", ""), chromedp.Evaluate[chromedp.Void](
			`document.querySelector('#state-filter').dispatchEvent(new Event('change'))`)); err != nil {
			tb.Fatal(err)
		}
		waitFor(tb, bctx, "the rows again", fmt.Sprintf(`document.querySelectorAll('#instances tbody tr').length === %d`, rows), 10*time.Second)
	}

	// The longest gap between frames over two seconds of live updates.
	gap := eval[float64](tb, bctx, `new Promise((done) => {
		let last = performance.now(), worst = 0; const end = last + 2000;
		const step = (t) => { worst = Math.max(worst, t - last); last = t; if (t < end) requestAnimationFrame(step); else done(worst); };
		requestAnimationFrame(step);
	})`, chromedp.EvalAwaitPromise)
	_ = gap
	out.frame = time.Duration(gap * float64(time.Millisecond))

	var took []time.Duration
	for i := range updates {
		marker := fmt.Sprintf("marker-%d-%d", i, time.Now().UnixNano())
		start := time.Now()
		publish(marker)
		waitFor(tb, bctx, "the update in the DOM", fmt.Sprintf(`(() => { const r = document.querySelector('#instances tr[data-instance="%s"]'); return r && r.textContent.includes(%q); })()`, id, marker), 10*time.Second)
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	out.update = took[len(took)/2]
	return out
}

// waitPanel waits until the panel tracks n instances.
func waitPanel(tb testing.TB, url string, n int) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/api/v1/services")
		if err == nil {
			var f struct {
				Services []struct {
					Counts map[string]int `json:"counts"`
				} `json:"services"`
			}
			err = json.NewDecoder(resp.Body).Decode(&f)
			resp.Body.Close()
			total := 0
			for _, s := range f.Services {
				for _, c := range s.Counts {
					total += c
				}
			}
			if total >= n {
				return
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the panel does not track %d instances within 30 s (%v)", n, err)
		}
		time.Sleep(100 * time.Millisecond) // the panel takes the fleet in at its own pace
	}
}

// TestPageBannerAndReconnect takes Valkey away from the panel, then the
// panel away from the page: the page must say the panel cannot see
// Valkey, and after its event stream reconnects it must load the view
// again.
func TestPageBannerAndReconnect(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Valkey, the panel, a service and a browser")
	}
	srv := redistest.Start(t)
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	bin := testbin.Build(t, ".")
	env := proctest.Env("OTEL_EXPORTER_VALKEY_ENDPOINT=" + srv.URL())
	panel := proctest.Start(t, bin, env, "--listen", listen)
	panel.Expect("admin panel on http://", 30*time.Second)
	url := "http://" + listen
	startService(t, srv, testbin.Build(t, "../discovery"), "geocoding_service")

	b := browsertest.Start(t)
	ctx, cancel := context.WithTimeout(b.Ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url+"/")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the service up", cardJS("geocoding_service")+`.dataset.state === "up"`, 20*time.Second)
	if !eval[bool](t, ctx, "document.querySelector('#banner').hidden") {
		t.Fatal("the banner shows while the panel sees Valkey")
	}

	// Valkey gone: the panel's API says it is not watching, and the page,
	// which has not reloaded, must say so too.
	srv.Kill()
	took := waitFor(t, ctx, "the banner", "!document.querySelector('#banner').hidden", 20*time.Second)
	t.Logf("banner shown %v after Valkey was killed", took.Round(time.Millisecond))
	if got := eval[string](t, ctx, cardJS("geocoding_service")+".dataset.state"); got != "unknown" {
		t.Errorf("with Valkey gone the service shows %q, want unknown", got)
	}
	srv.Restart()
	took = waitFor(t, ctx, "the banner gone", "document.querySelector('#banner').hidden", 30*time.Second)
	t.Logf("banner hidden %v after Valkey came back", took.Round(time.Millisecond))

	// The panel gone and back on the same address: the page reconnects
	// and fetches the fleet again.
	fetches := `performance.getEntriesByType('resource').filter((e) => e.name.endsWith('/api/v1/services')).length`
	before := eval[int](t, ctx, fetches)
	if err := panel.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = panel.Wait(10 * time.Second)
	waitFor(t, ctx, "reconnecting shown", `document.querySelector('#conn').dataset.state === "reconnecting"`, 10*time.Second)
	panel = proctest.Start(t, bin, env, "--listen", listen)
	panel.Expect("admin panel on http://", 30*time.Second)
	took = waitFor(t, ctx, "fleet fetched again", fmt.Sprintf("%s > %d && document.querySelector('#conn').dataset.state === 'live'", fetches, before), 20*time.Second)
	t.Logf("page live again %v after the panel restarted", took.Round(time.Millisecond))
	waitFor(t, ctx, "the service up", cardJS("geocoding_service")+`.dataset.state === "up"`, 20*time.Second)
}
