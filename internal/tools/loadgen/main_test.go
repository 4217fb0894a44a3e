package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/leaktest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/testbin"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

func TestFloodPublishesTheDocumentedFormatForEveryInstance(t *testing.T) {
	srv := redistest.Start(t)
	bin := testbin.Build(t, ".")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ps := srv.PSubscribe(t, "heartbeat:service:*")
	cmd := exec.CommandContext(ctx, bin, "--instances", "300", "--services", "3", "--flood")
	cmd.Env = append(os.Environ(), "OTEL_EXPORTER_VALKEY_ENDPOINT="+srv.URL())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "sent 300 heartbeats") {
		t.Fatalf("%v\n%s", err, out)
	}
	instances, services := map[string]bool{}, map[string]bool{}
	for len(instances) < 300 {
		msg, err := ps.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("after %d instances: %v", len(instances), err)
		}
		m, err := wire.Unmarshal([]byte(msg.Payload))
		if err != nil {
			t.Fatal(err)
		}
		instances[m.InstanceID], services[m.ServiceName] = true, true
	}
	if len(services) != 3 {
		t.Errorf("%d services", len(services))
	}
	keys, _ := srv.Client(t).Keys(ctx, "heartbeat:instance:*").Result()
	if len(keys) != 300 {
		t.Errorf("%d latest-state keys", len(keys))
	}
}
