package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/poll"
	"github.com/otel-heartbeat/heartbeat/internal/testing/proctest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/testbin"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

func TestHeartbeatBesideAnExistingExporter(t *testing.T) {
	srv := redistest.Start(t)
	bin := testbin.Build(t, ".")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ps := srv.PSubscribe(t, "heartbeat:service:*")

	cmd := exec.CommandContext(ctx, bin, "--duration", "1500ms", "--export-interval", "500ms")
	cmd.Env = append(os.Environ(), "OTEL_EXPORTER_VALKEY_ENDPOINT="+srv.URL(), "HEARTBEAT_INTERVAL=0.5",
		"OTEL_SERVICE_NAME=", "OTEL_RESOURCE_ATTRIBUTES=deployment.environment=test")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	for _, want := range []string{`"process.uptime"`, `"process.memory.usage"`, `"heartbeat.cache_size"`, `"geocoder.requests"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the stdout exporter did not write %s", want)
		}
	}
	var statuses []string
	for {
		msg, err := ps.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("heartbeats so far %v: %v", statuses, err)
		}
		m, err := wire.Unmarshal([]byte(msg.Payload))
		if err != nil {
			t.Fatal(err)
		}
		if m.ServiceName != "geocoding_service" {
			t.Errorf("service %q", m.ServiceName)
		}
		if _, ok := m.Field("cache_size"); !ok {
			t.Errorf("heartbeat %s", msg.Payload)
		}
		statuses = append(statuses, m.Status)
		if m.Status == "stopping" {
			break
		}
	}
	if len(statuses) < 3 {
		t.Errorf("heartbeats %v: want the first at once, more every 0.5s, then stopping", statuses)
	}
}

// With OTEL_METRICS_EXPORTER=prometheus the service exports what the
// join of its own metrics with its liveness needs (docs/admin-panel.md,
// and the rules' promtool test that stands on these series): its
// requests, and its service.name and service.instance.id in target_info,
// the instance id the heartbeats carry.
func TestPrometheusExportJoinsTheHeartbeats(t *testing.T) {
	srv := redistest.Start(t)
	bin := testbin.Build(t, ".")
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	p := proctest.Start(t, bin, proctest.Env("OTEL_EXPORTER_VALKEY_ENDPOINT="+srv.URL(), "HEARTBEAT_INTERVAL=0.5",
		"OTEL_METRICS_EXPORTER=prometheus", "OTEL_EXPORTER_PROMETHEUS_HOST=127.0.0.1", fmt.Sprintf("OTEL_EXPORTER_PROMETHEUS_PORT=%d", port),
		"OTEL_RESOURCE_ATTRIBUTES=service.instance.id=geo-1"), "--duration", "30s")
	var body string
	poll.Until(t, 10*time.Second, "the service's requests on /metrics", func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return strings.Contains(body, "geocoder_requests_total{")
	})
	var info string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "target_info{") {
			info = l
		}
	}
	if !strings.Contains(info, `service_name="geocoding_service"`) || !strings.Contains(info, `service_instance_id="geo-1"`) {
		t.Errorf("target_info %q: want service_name and service_instance_id", info)
	}
	_ = p.Cmd.Process.Signal(os.Interrupt)
	_ = p.Wait(10 * time.Second)
}
