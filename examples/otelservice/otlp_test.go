package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/protobuf/proto"

	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/testbin"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// otlpReceiver is a small OTLP/HTTP metrics receiver: it keeps, for each
// export, the resource attributes and the metric names it carried.
type otlpReceiver struct {
	mu      sync.Mutex
	exports []otlpExport
}

type otlpExport struct {
	resource map[string]string
	metrics  map[string]bool
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/v1/metrics" {
		http.NotFound(w, req)
		return
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var msg colmetrics.ExportMetricsServiceRequest
	if err := proto.Unmarshal(body, &msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	for _, rm := range msg.ResourceMetrics {
		e := otlpExport{resource: map[string]string{}, metrics: map[string]bool{}}
		for _, kv := range rm.GetResource().GetAttributes() {
			e.resource[kv.Key] = kv.GetValue().GetStringValue()
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				e.metrics[m.Name] = true
			}
		}
		r.exports = append(r.exports, e)
	}
	r.mu.Unlock()
	out, _ := proto.Marshal(&colmetrics.ExportMetricsServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// With the standard OTLP variables set, the service's other reader sends
// the heartbeat gauges to the OTLP receiver, under the same service.name and
// service.instance.id as the heartbeats in Valkey.
func TestOTLPReceiverGetsTheSameGaugesAsValkey(t *testing.T) {
	srv := redistest.Start(t)
	recv := &otlpReceiver{}
	otlp := httptest.NewServer(recv)
	defer otlp.Close()
	bin := testbin.Build(t, ".")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ps := srv.PSubscribe(t, "heartbeat:service:*")

	cmd := exec.CommandContext(ctx, bin, "--duration", "1500ms", "--export-interval", "300ms")
	cmd.Env = append(os.Environ(), "OTEL_EXPORTER_VALKEY_ENDPOINT="+srv.URL(), "HEARTBEAT_INTERVAL=0.5",
		"OTEL_SERVICE_NAME=geocoder_eu", "OTEL_RESOURCE_ATTRIBUTES=", "OTEL_METRICS_EXPORTER=",
		"OTEL_EXPORTER_OTLP_ENDPOINT="+otlp.URL, "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	msg, err := ps.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hb, err := wire.Unmarshal([]byte(msg.Payload))
	if err != nil {
		t.Fatal(err)
	}

	recv.mu.Lock()
	defer recv.mu.Unlock()
	if len(recv.exports) == 0 {
		t.Fatal("the OTLP receiver got nothing")
	}
	seen := map[string]bool{}
	for _, e := range recv.exports {
		if e.resource["service.name"] != hb.ServiceName || e.resource["service.instance.id"] != hb.InstanceID {
			t.Errorf("OTLP resource %v; the heartbeat says %s %s", e.resource, hb.ServiceName, hb.InstanceID)
		}
		for m := range e.metrics {
			seen[m] = true
		}
	}
	for _, want := range []string{"process.uptime", "process.memory.usage", "process.cpu.time", "heartbeat.cache_size", "heartbeat.pending_requests", "geocoder.requests"} {
		if !seen[want] {
			t.Errorf("the OTLP receiver never got %s (got %v)", want, seen)
		}
	}
}
