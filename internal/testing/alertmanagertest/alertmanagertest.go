// Package alertmanagertest starts a real Prometheus Alertmanager for tests,
// on a free loopback port with a configuration the test gives, so that
// alerts are tested through the Alertmanager that will route them: its
// grouping, its timers, its webhook payloads, its resolved notifications.
//
// The binary is $ALERTMANAGER, else prometheus-alertmanager (Debian's name)
// or alertmanager on PATH. When there is none the test fails with a message
// saying how to install one: alerting is never skipped. Clustering is off
// (no gossip port), and its storage is in the test's temporary directory.
package alertmanagertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/binary"
	"github.com/otel-heartbeat/heartbeat/internal/testing/daemon"
)

// Binary returns the Alertmanager binary the tests will use, or an error
// that says how to install one.
func Binary() (string, error) { return binary.Alertmanager.Find() }

// Alertmanager is one Alertmanager process owned by a test.
type Alertmanager struct {
	*daemon.Daemon
}

// Start starts an Alertmanager for t with config, the text of an
// alertmanager.yml, on a free loopback port, waits until it answers
// GET /-/ready, and stops it when the test ends. If the test failed, its
// last log lines are logged.
func Start(t testing.TB, config string) *Alertmanager {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return &Alertmanager{daemon.Start(t, spec(bin, cfg, dir))}
}

func spec(bin, cfg, dir string) daemon.Spec {
	return daemon.Spec{Name: "alertmanager", Bin: bin, Ready: "/-/ready",
		Args: func(addr string, attempt int) []string {
			return []string{
				"--config.file=" + cfg,
				"--storage.path=" + filepath.Join(dir, fmt.Sprint("data", attempt)),
				"--web.listen-address=" + addr,
				// Empty: no cluster, so no gossip listener on 9094.
				"--cluster.listen-address=",
				"--log.level=debug",
			}
		}}
}

// Alert is an alert as clients post it to /api/v2/alerts.
type Alert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Post posts alerts to /api/v2/alerts and fails the test unless
// Alertmanager accepts them.
func (am *Alertmanager) Post(t testing.TB, alerts ...Alert) {
	t.Helper()
	body, err := json.Marshal(alerts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, am.URL+"/api/v2/alerts", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("alertmanagertest: POST /api/v2/alerts: %v", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("alertmanagertest: POST /api/v2/alerts: %s: %s", resp.Status, msg)
	}
}

// Active returns the alerts Alertmanager holds active now (GET
// /api/v2/alerts?active=true), silenced and inhibited ones included.
func (am *Alertmanager) Active(t testing.TB) []Alert {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, am.URL+"/api/v2/alerts?active=true&unprocessed=true", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("alertmanagertest: GET /api/v2/alerts: %v", err)
	}
	defer resp.Body.Close()
	var alerts []Alert
	if err := json.NewDecoder(resp.Body).Decode(&alerts); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("alertmanagertest: GET /api/v2/alerts: %s: %v", resp.Status, err)
	}
	return alerts
}

// Notification is the body Alertmanager's webhook receiver posts (version 4).
type Notification struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"` // "firing" or "resolved"
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []struct {
		Status       string            `json:"status"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		StartsAt     time.Time         `json:"startsAt"`
		EndsAt       time.Time         `json:"endsAt"`
		GeneratorURL string            `json:"generatorURL"`
		Fingerprint  string            `json:"fingerprint"`
	} `json:"alerts"`
}

// Webhook is a webhook receiver for Alertmanager to notify: a loopback HTTP
// server that queues each notification for the test.
type Webhook struct {
	// URL is the address to put in a webhook_configs url.
	URL string

	srv  *httptest.Server
	recv chan Notification
}

// NewWebhook starts a webhook receiver, closed when the test ends.
func NewWebhook(t testing.TB) *Webhook {
	w := &Webhook{recv: make(chan Notification, 64)}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var n Notification
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			t.Errorf("alertmanagertest: webhook body: %v", err)
			return
		}
		select {
		case w.recv <- n:
		default:
			t.Errorf("alertmanagertest: more than %d notifications unread", cap(w.recv))
		}
	}))
	w.URL = w.srv.URL + "/hook"
	t.Cleanup(w.srv.Close)
	return w
}

// Next returns the next notification whose status is status ("firing" or
// "resolved"), passing over others, and fails the test if none arrives
// within timeout.
func (w *Webhook) Next(t testing.TB, status string, timeout time.Duration) Notification {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case n := <-w.recv:
			if n.Status == status {
				return n
			}
		case <-deadline:
			t.Fatalf("alertmanagertest: no %s notification within %v", status, timeout)
			return Notification{}
		}
	}
}
