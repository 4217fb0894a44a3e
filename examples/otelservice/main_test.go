package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

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
