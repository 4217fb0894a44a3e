package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/otel-heartbeat/heartbeat/internal/testing/browsertest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
)

// TestPageAlertsViewFollowsAlertsThatWait opens the Alerts view, then
// lets an instance die under a rule that waits (service_down for 5s): the
// service's alert fires seconds after the last transition the page saw,
// and the view and the count in the navigation must still show it.
func TestPageAlertsViewFollowsAlertsThatWait(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Valkey, the panel and a browser")
	}
	srv := redistest.Start(t)
	rules := filepath.Join(t.TempDir(), "alerts.yml")
	if err := os.WriteFile(rules, []byte("rules:\n  service_down: {for: 5s}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	url := startPanel(t, srv, "--alerts", rules)
	waitReady(t, url)

	b := browsertest.Start(t)
	ctx, cancel := context.WithTimeout(b.Ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url+"/#/alerts")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the Alerts view", `document.querySelector('#app').dataset.view === "alerts" && !document.querySelector('#alerts-none').hidden`, 10*time.Second)

	// One heartbeat at a half-second interval, then silence: the instance
	// dead after three intervals, and the service down.
	msg, _ := json.Marshal(map[string]any{"service_name": "billing_service", "instance_id": "i-1",
		"timestamp": time.Now().UTC().Format("2006-01-02T15:04:05.000000+00:00"), "heartbeat_count": 1,
		"interval_seconds": 0.5, "status": "running"})
	if err := srv.Client(t).Publish(context.Background(), "heartbeat:service:billing_service", msg).Err(); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, ctx, "the instance's alert", `document.querySelectorAll('#alerts-active tr[data-alert="HeartbeatInstanceDead"]').length === 1`, 15*time.Second)
	t.Logf("HeartbeatInstanceDead listed %v after the heartbeat", took.Round(time.Millisecond))
	took = waitFor(t, ctx, "the service's alert, fired 5 s after it went down", `document.querySelectorAll('#alerts-active tr[data-alert="HeartbeatServiceDown"]').length === 1 && `+
		`document.getElementById('alerts-count').textContent === "(2)"`, 15*time.Second)
	t.Logf("HeartbeatServiceDown listed and counted %v later", took.Round(time.Millisecond))
}
