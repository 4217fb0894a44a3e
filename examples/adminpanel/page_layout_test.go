package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/otel-heartbeat/heartbeat/internal/testing/browsertest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/poll"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
)

// richFields are service fields as a real service sends them: a
// timestamp with microseconds and its offset, numbers, a version, a
// nested object and a long URL.
func richFields(i, beat int) map[string]any {
	f := map[string]any{
		"last_successful_operation": "2025-01-16T08:29:45.123456+00:00",
		"pending_requests":          12 + i + beat,
		"region":                    "eu-west-1",
		"build_version":             "1.4.2-rc.1+build.20250116.8f3a2c1",
		"queue":                     map[string]any{"depth": 3, "oldest_seconds": 1.25},
		"upstream":                  "https://geo-upstream.internal.example.com/v2/lookup?region=eu-west-1&tier=gold",
	}
	if i == 2 { // a heartbeat with many: most are behind "6 more fields"
		for j := range 6 {
			f[fmt.Sprintf("zz_extra_%d", j)] = strings.Repeat("x", 40*j)
		}
	}
	return f
}

// richIDs are n instance ids, in order.
func richIDs(n int) []string {
	var ids []string
	for i := range n {
		ids = append(ids, fmt.Sprintf("%d1287bb6-1876-4632-94c0-4edc58d253a8", i))
	}
	return ids
}

// publishRich publishes heartbeat number beat of an instance of svc for
// each id, each with richFields, at a 60 s interval: they stay alive for
// the test.
func publishRich(t testing.TB, srv *redistest.Server, svc string, ids []string, beat int) {
	t.Helper()
	rdb := srv.Client(t)
	for i, id := range ids {
		msg := map[string]any{
			"service_name": svc, "instance_id": id,
			"timestamp":      time.Now().UTC().Format("2006-01-02T15:04:05.000000+00:00"),
			"uptime_seconds": 86400.0 + float64(i), "heartbeat_count": 1440 + 10*beat + i, "memory_usage_mb": 1234.5, "cpu_usage_percent": 99.9,
			"interval_seconds": 60, "status": "running", "instance_address": fmt.Sprintf("http://10.0.12.%d:8080/api", 30+i),
		}
		for k, v := range richFields(i, beat) {
			msg[k] = v
		}
		b, _ := json.Marshal(msg)
		if err := rdb.Publish(context.Background(), "heartbeat:service:"+svc, b).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// waitReady waits until the panel says it is ready: subscribed, so that
// what is published from now on reaches it.
func waitReady(t testing.TB, url string) {
	t.Helper()
	poll.Until(t, 30*time.Second, "ready panel", func() bool {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// rowLayout is what measureRows reads of the instances' rows.
type rowLayout struct {
	ViewportWidth  float64 `json:"vw"`
	ViewportHeight float64 `json:"vh"`
	ScrollWidth    float64 `json:"scrollWidth"`
	Rows           []struct {
		Instance    string  `json:"instance"`
		Height      float64 `json:"height"`
		BarsLeft    float64 `json:"barsLeft"`
		BarsRight   float64 `json:"barsRight"`
		BarsWidth   float64 `json:"barsWidth"`
		BarsVisible bool    `json:"barsVisible"`
		// Stamp is the box of the timestamp field's value.
		StampWidth  float64 `json:"stampWidth"`
		StampHeight float64 `json:"stampHeight"`
		LineHeight  float64 `json:"lineHeight"`
	} `json:"rows"`
}

// measureRows reads, in the page, each instance row's height, where its
// heartbeat bars are and whether they are what the browser shows at their
// centre (not clipped by a scrolling box nor covered), and the box of the
// timestamp field. It scrolls the window vertically only, to each row in
// turn, never sideways: bars off to the side must stay off.
const measureRows = `(() => {
	const out = { vw: window.innerWidth, vh: window.innerHeight, scrollWidth: document.documentElement.scrollWidth, rows: [] };
	for (const tr of document.querySelectorAll('#instances tbody tr')) {
		const top = tr.getBoundingClientRect().top + window.scrollY;
		window.scrollTo(window.scrollX, Math.max(0, top - 60));
		const r = tr.getBoundingClientRect();
		const bars = tr.querySelector('.bars');
		const b = bars.getBoundingClientRect();
		const hit = document.elementFromPoint(b.left + b.width / 2, b.top + b.height / 2);
		const stamp = [...tr.querySelectorAll('.fields dd')].find((dd) => dd.textContent.startsWith('2025-01-16T08:29:45'));
		const s = stamp ? stamp.getBoundingClientRect() : { width: 0, height: 0 };
		out.rows.push({ instance: tr.dataset.instance, height: r.height,
			barsLeft: b.left, barsRight: b.right, barsWidth: b.width, barsVisible: !!hit && bars.contains(hit),
			stampWidth: s.width, stampHeight: s.height,
			lineHeight: stamp ? parseFloat(getComputedStyle(stamp).lineHeight) || 20 : 0 });
	}
	window.scrollTo(0, 0);
	return JSON.stringify(out);
})()`

// TestPageServiceRowsFitLaptopAndPhone shows a service whose instances
// send several fields, one a timestamp with microseconds, at a laptop's
// 1280x800 and a phone's 390x844: each row stays a few lines tall (at
// most 120 px on the laptop; on the phone, where a row is a card, at most
// 450 px, about half the screen), the timestamp wraps at most once, the
// heartbeat bars are on screen, and the page never scrolls sideways.
func TestPageServiceRowsFitLaptopAndPhone(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Valkey, the panel and a browser")
	}
	srv := redistest.Start(t)
	url := startPanel(t, srv)
	const svc = "geofence_service"
	waitReady(t, url)
	publishRich(t, srv, svc, richIDs(3), 0)
	waitPanel(t, url, 3)

	b := browsertest.Start(t)
	ctx, cancel := context.WithTimeout(b.Ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800), chromedp.Navigate(url+"/#/services/"+svc)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the three rows", `document.querySelector('#app').dataset.view === "service" && document.querySelectorAll('#instances tbody tr').length === 3`, 20*time.Second)

	for _, size := range []struct {
		name          string
		width, height int64
		mobile        bool
		maxRow        float64
	}{
		{"laptop", 1280, 800, false, 120},
		{"phone", 390, 844, true, 450},
	} {
		opts := []chromedp.EmulateViewportOption{}
		if size.mobile {
			opts = append(opts, chromedp.EmulateScale(3), chromedp.EmulateMobile)
		}
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(size.width, size.height, opts...)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, "the viewport at "+size.name, fmt.Sprintf("window.innerWidth === %d", size.width), 5*time.Second)
		var m rowLayout
		if err := json.Unmarshal([]byte(eval[string](t, ctx, measureRows)), &m); err != nil {
			t.Fatal(err)
		}
		if m.ScrollWidth > m.ViewportWidth {
			t.Errorf("%s: the page is %.0f px wide in a %.0f px window: it scrolls sideways", size.name, m.ScrollWidth, m.ViewportWidth)
		}
		for _, r := range m.Rows {
			t.Logf("%s %.0fx%.0f: row %s is %.0f px tall; bars %.0f to %.0f px (visible %v); the timestamp %.0fx%.0f px",
				size.name, m.ViewportWidth, m.ViewportHeight, r.Instance[:8], r.Height, r.BarsLeft, r.BarsRight, r.BarsVisible, r.StampWidth, r.StampHeight)
			if r.Height > size.maxRow {
				t.Errorf("%s: row %s is %.0f px tall, want at most %.0f", size.name, r.Instance, r.Height, size.maxRow)
			}
			if r.BarsLeft < 0 || r.BarsRight > m.ViewportWidth || r.BarsWidth < 30 || !r.BarsVisible {
				t.Errorf("%s: row %s's heartbeat bars span %.0f to %.0f px of a %.0f px window (shown: %v)",
					size.name, r.Instance, r.BarsLeft, r.BarsRight, m.ViewportWidth, r.BarsVisible)
			}
			if r.StampHeight == 0 || r.StampHeight > 2.5*r.LineHeight || r.StampWidth < 80 {
				t.Errorf("%s: row %s's timestamp field is %.0fx%.0f px (a line is %.0f px): it wraps more than once",
					size.name, r.Instance, r.StampWidth, r.StampHeight, r.LineHeight)
			}
		}
	}

	// The fields past the sixth are one Tab and Enter away, and stay open
	// while the instance keeps sending.
	more := `document.querySelector('#instances tr[data-instance^="2"] details.more')`
	if got := eval[string](t, ctx, more+".querySelector('summary').textContent"); got != "6 more fields" {
		t.Errorf("the fields past the sixth are behind %q, want 6 more fields", got)
	}
	if err := chromedp.Do(ctx, chromedp.Focus(`#instances tr[data-instance^="2"] details.more summary`),
		chromedp.KeyEvent("\r")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the fields opened", more+".open", 5*time.Second)
	if n := eval[int](t, ctx, more+".querySelectorAll('dd').length"); n != 6 {
		t.Errorf("%d fields behind the summary, want 6", n)
	}
	publishRich(t, srv, svc, richIDs(3), 1)
	waitFor(t, ctx, "the next heartbeat", `[...document.querySelectorAll('#instances tbody td.num')].some((td) => td.textContent === "1452")`, 10*time.Second)
	if !eval[bool](t, ctx, more+".open") {
		t.Error("the fields closed when the instance sent again")
	}
}
