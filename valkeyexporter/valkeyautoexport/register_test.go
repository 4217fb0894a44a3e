package valkeyautoexport

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/otel-heartbeat/heartbeat/internal/testing/leaktest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
	"github.com/otel-heartbeat/heartbeat/valkeyexporter"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

func TestOTELMetricsExporterValkeyPublishesHeartbeats(t *testing.T) {
	srv := redistest.Start(t)
	t.Setenv("OTEL_METRICS_EXPORTER", "valkey")
	t.Setenv("OTEL_EXPORTER_VALKEY_ENDPOINT", srv.URL())
	t.Setenv("HEARTBEAT_INTERVAL", "30")
	if err := Register(); err != nil {
		t.Fatal(err)
	}
	if err := Register(); err != nil {
		t.Fatalf("second Register: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ps := srv.PSubscribe(t, "heartbeat:service:*")

	reader, err := autoexport.NewMetricReader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hb, ok := reader.(*valkeyexporter.Reader)
	if !ok {
		t.Fatalf("reader is %T, want *valkeyexporter.Reader", reader)
	}
	if hb.Exporter().Interval() != 30*time.Second {
		t.Errorf("interval %v, want HEARTBEAT_INTERVAL", hb.Exporter().Interval())
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader),
		sdkmetric.WithResource(resource.NewSchemaless(attribute.String("service.name", "tracker_fetcher"))))
	defer func() { _ = mp.Shutdown(context.Background()) }()

	// The reader alone has no gauges to collect: its exports are refused,
	// saying what to add, instead of publishing a heartbeat with no uptime,
	// memory or CPU.
	if err := mp.ForceFlush(ctx); !errors.Is(err, valkeyexporter.ErrNoHeartbeatInstruments) || !strings.Contains(err.Error(), "otelheartbeat") {
		t.Errorf("the autoexport reader alone: want ErrNoHeartbeatInstruments naming otelheartbeat, got %v", err)
	}

	// The complete path: the Publisher registers the gauges on the
	// provider and sends the first heartbeat at Start, not an interval later.
	p, err := otelheartbeat.NewPublisher("", otelheartbeat.WithMeterProvider(mp, hb))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Stop(context.Background()) }()
	msg, err := ps.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := wire.Unmarshal([]byte(msg.Payload))
	if err != nil {
		t.Fatal(err)
	}
	const complete = wire.HasUptime | wire.HasMemory | wire.HasCPU
	if m.ServiceName != "tracker_fetcher" || m.HeartbeatCount != 1 || m.IntervalSeconds != 30 || m.Has&complete != complete {
		t.Errorf("heartbeat %s", msg.Payload)
	}
	if p.ServiceName() != "tracker_fetcher" {
		t.Errorf("ServiceName() %q", p.ServiceName())
	}
}

func TestMalformedEnvironmentIsAnError(t *testing.T) {
	t.Setenv("OTEL_METRICS_EXPORTER", "valkey")
	t.Setenv("HEARTBEAT_INTERVAL", "often")
	if err := Register(); err != nil {
		t.Fatal(err)
	}
	_, err := autoexport.NewMetricReader(context.Background())
	if err == nil {
		t.Fatal("want an error for HEARTBEAT_INTERVAL=often")
	}
}
