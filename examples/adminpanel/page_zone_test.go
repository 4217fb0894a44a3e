package main

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/otel-heartbeat/heartbeat/internal/testing/browsertest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
)

// zonelessTimes lists, in the visible view, each absolute time the page
// shows (outside the services' own fields, which are the heartbeat's
// text) that does not say its zone, or whose title does not give it in
// full ISO 8601 with the offset want; and how many it checked.
func zonelessTimes(want string) string {
	return fmt.Sprintf(`(() => {
		const view = [...document.querySelectorAll('main > section')].find((s) => !s.hidden);
		const stamp = /\d{4}-\d\d-\d\d[ T]\d\d:\d\d/;
		const zoned = /\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC%[1]s(?!\d)/;
		const iso = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?%[1]s/;
		const bad = [];
		let n = 0;
		// Each element whose own text holds a date and a time, a <time>
		// taken whole.
		const shown = new Set();
		const walker = document.createTreeWalker(view, NodeFilter.SHOW_TEXT);
		for (let t = walker.nextNode(); t; t = walker.nextNode()) {
			const e = t.parentElement;
			if (e.closest('.fields') || e.closest('[hidden]')) continue;
			if (e.closest('time')) shown.add(e.closest('time'));
			else if (stamp.test(t.textContent)) shown.add(e);
		}
		for (const e of shown) {
			n++;
			const title = (e.closest('[title]') || {}).title || '';
			if (!zoned.test(e.textContent) || !iso.test(title)) bad.push(e.textContent + ' [' + title + ']');
		}
		return JSON.stringify({ n, bad });
	})()`, want)
}

type zoneCheck struct {
	N   int      `json:"n"`
	Bad []string `json:"bad"`
}

// TestPageTimesNameTheirZone runs the page in a browser whose zone is
// Asia/Kolkata (UTC+05:30 all year) while a service dies and comes back:
// every absolute time on the fleet, the service, the incidents and the
// alerts views says its zone, UTC+05:30, and its title gives it in full
// ISO 8601 with the offset.
func TestPageTimesNameTheirZone(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Valkey, the panel and a browser")
	}
	srv := redistest.Start(t)
	url := startPanel(t, srv)
	waitReady(t, url)
	rdb := srv.Client(t)
	count := 0
	beat := func() {
		count++
		msg, _ := json.Marshal(map[string]any{"service_name": "billing_service", "instance_id": "i-1",
			"timestamp": time.Now().UTC().Format("2006-01-02T15:04:05.000000+00:00"), "heartbeat_count": count,
			"interval_seconds": 0.5, "status": "running", "last_successful_operation": "2025-01-16T08:29:45.123456"})
		if err := rdb.Publish(context.Background(), "heartbeat:service:billing_service", msg).Err(); err != nil {
			t.Fatal(err)
		}
	}

	b := browsertest.Start(t)
	ctx, cancel := context.WithTimeout(b.Ctx, 90*time.Second)
	defer cancel()
	if _, err := chromedp.Call(ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Asia/Kolkata"}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(url+"/#/")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the fleet view", `document.querySelector('#app').dataset.view === "fleet"`, 10*time.Second)
	beat() // then silence: dead after three intervals, an incident open
	waitFor(t, ctx, "the open incident on the card", cardJS("billing_service")+` && !`+cardJS("billing_service")+`.querySelector('.incident').hidden`, 20*time.Second)

	check := func(view, ready string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](fmt.Sprintf("location.hash = %q", view))); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, view, ready, 20*time.Second)
		var c zoneCheck
		if err := json.Unmarshal([]byte(eval[string](t, ctx, zonelessTimes(`\+05:30`))), &c); err != nil {
			t.Fatal(err)
		}
		if c.N == 0 {
			t.Errorf("%s: no time shown", view)
		}
		for _, s := range c.Bad {
			t.Errorf("%s: %q does not say its zone (UTC+05:30, and in full in its title)", view, s)
		}
	}
	check("#/", `document.querySelector('#app').dataset.view === "fleet"`)
	check("#/services/billing_service", `document.querySelector('#app').dataset.view === "service" && `+
		`document.querySelector('#service-summary').textContent.includes('Open incident') && document.querySelectorAll('#service-incidents tbody tr').length > 0`)
	check("#/alerts", `document.querySelector('#app').dataset.view === "alerts" && document.querySelectorAll('#alerts-active tbody tr').length === 2`)

	// Back: the incident ends, the alerts resolve.
	beat()
	check("#/alerts", `document.querySelector('#app').dataset.view === "alerts" && document.querySelectorAll('#alerts-recent tbody tr[data-status="resolved"]').length === 2`)
	check("#/incidents", `document.querySelector('#app').dataset.view === "incidents" && `+
		`[...document.querySelectorAll('#incidents tbody tr')].some((r) => r.children[2].textContent !== "open")`)
	check("#/services/billing_service", `document.querySelector('#app').dataset.view === "service" && `+
		`[...document.querySelectorAll('#service-incidents tbody tr')].some((r) => r.children[1].textContent !== "open")`)
}
