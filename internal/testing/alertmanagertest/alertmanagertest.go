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
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/binary"

	"github.com/otel-heartbeat/heartbeat/internal/testing/logtail"
)

const (
	// startTimeout bounds how long Alertmanager may take to answer ready.
	startTimeout = 15 * time.Second
	// stopTimeout is how long it may take to end after SIGTERM before it
	// is killed.
	stopTimeout = 5 * time.Second
)

// Binary returns the Alertmanager binary the tests will use, or an error
// that says how to install one.
func Binary() (string, error) { return binary.Alertmanager.Find() }

// Alertmanager is one Alertmanager process owned by a test.
type Alertmanager struct {
	// URL is its base URL, http://127.0.0.1:PORT, without a trailing slash.
	URL string

	t      testing.TB
	cmd    *exec.Cmd
	exited chan struct{}
	log    *logtail.Tail
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
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		am, err := start(t, bin, cfg, filepath.Join(dir, fmt.Sprint("data", attempt)), port)
		if err == nil {
			t.Cleanup(am.stop)
			return am
		}
		lastErr = err
	}
	t.Fatalf("alertmanagertest: %v", lastErr)
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func start(t testing.TB, bin, cfg, data string, port int) (*Alertmanager, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command(bin,
		"--config.file="+cfg,
		"--storage.path="+data,
		"--web.listen-address="+addr,
		// Empty: no cluster, so no gossip listener on 9094.
		"--cluster.listen-address=",
		"--log.level=debug",
	)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	am := &Alertmanager{URL: "http://" + addr, t: t, cmd: cmd, exited: make(chan struct{}), log: logtail.New(60)}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			am.log.Add(sc.Text())
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() {
		<-copied // Wait closes the pipe: read it to the end first
		_ = cmd.Wait()
		close(am.exited)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		if ready(ctx, client, am.URL) {
			return am, nil
		}
		select {
		case <-am.exited:
			return nil, fmt.Errorf("%s exited at start on port %d:\n%s", bin, port, am.log)
		case <-ctx.Done():
			am.kill()
			return nil, fmt.Errorf("%s not ready in %v on port %d:\n%s", bin, startTimeout, port, am.log)
		case <-time.After(25 * time.Millisecond): // polling readiness: it says so only over HTTP
		}
	}
}

func ready(ctx context.Context, c *http.Client, base string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/-/ready", nil)
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// stop ends Alertmanager with SIGTERM, then SIGKILL if it has not exited
// after stopTimeout.
func (am *Alertmanager) stop() {
	_ = am.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-am.exited:
	case <-time.After(stopTimeout):
		am.t.Errorf("alertmanagertest: no exit %v after SIGTERM; killed", stopTimeout)
		am.kill()
	}
	if am.t.Failed() {
		am.t.Logf("alertmanager at %s, last log lines:\n%s", am.URL, am.log)
	}
}

func (am *Alertmanager) kill() {
	_ = am.cmd.Process.Kill()
	<-am.exited
}

// Log returns its last log lines.
func (am *Alertmanager) Log() string { return am.log.String() }

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
