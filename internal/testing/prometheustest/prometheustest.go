// Package prometheustest starts a real Prometheus server for tests, on a
// free loopback port with a configuration the test gives: it scrapes what
// the test runs, evaluates the shipped rules, and sends alerts to a real
// Alertmanager, so that what reaches the Alertmanager from Prometheus is
// tested as it happens, not only in promtool's unit tests.
//
// The binary is $PROMETHEUS, else prometheus on PATH (Debian's prometheus
// package, which also holds promtool). When there is none the test fails
// with a message saying how to install one. Its storage is in the test's
// temporary directory.
package prometheustest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/binary"
	"github.com/otel-heartbeat/heartbeat/internal/testing/daemon"
)

// Prometheus is one Prometheus server owned by a test.
type Prometheus struct {
	*daemon.Daemon
}

// Start starts a Prometheus for t with config, the text of a
// prometheus.yml (rule_files may name files by absolute path), waits
// until it answers GET /-/ready, and stops it when the test ends.
func Start(t testing.TB, config string) *Prometheus {
	t.Helper()
	bin, err := binary.Prometheus.Find()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return &Prometheus{daemon.Start(t, daemon.Spec{Name: "prometheus", Bin: bin, Ready: "/-/ready",
		Args: func(addr string, attempt int) []string {
			return []string{
				"--config.file=" + cfg,
				"--storage.tsdb.path=" + filepath.Join(dir, fmt.Sprint("data", attempt)),
				"--web.listen-address=" + addr,
				"--log.level=debug",
			}
		}})}
}

// Alert is an alert as Prometheus's GET /api/v1/alerts lists it.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"` // pending, firing
}

// Alerts returns the alerts Prometheus's rules hold now.
func (p *Prometheus) Alerts(t testing.TB) []Alert {
	t.Helper()
	var body struct {
		Data struct{ Alerts []Alert } `json:"data"`
	}
	p.get(t, "/api/v1/alerts", &body)
	return body.Data.Alerts
}

// Query evaluates an instant PromQL query now and returns its samples'
// labels and values.
func (p *Prometheus) Query(t testing.TB, q string) []Sample {
	t.Helper()
	var body struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	p.get(t, "/api/v1/query?query="+url.QueryEscape(q), &body)
	var out []Sample
	for _, r := range body.Data.Result {
		s := Sample{Labels: r.Metric}
		if v, ok := r.Value[1].(string); ok {
			fmt.Sscan(v, &s.Value)
		}
		out = append(out, s)
	}
	return out
}

// Sample is one result of a query.
type Sample struct {
	Labels map[string]string
	Value  float64
}

func (p *Prometheus) get(t testing.TB, path string, v any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("prometheustest: GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("prometheustest: GET %s: %s: %v", path, resp.Status, err)
	}
}
