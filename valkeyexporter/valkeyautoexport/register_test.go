package valkeyautoexport

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/otel-heartbeat/heartbeat/internal/heartbeat"
	"github.com/otel-heartbeat/heartbeat/internal/leaktest"
	"github.com/otel-heartbeat/heartbeat/internal/redistest"
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
	if err := mp.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	msg, err := ps.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := heartbeat.Unmarshal([]byte(msg.Payload))
	if err != nil {
		t.Fatal(err)
	}
	if m.ServiceName != "tracker_fetcher" || m.HeartbeatCount != 1 || m.IntervalSeconds != 30 {
		t.Errorf("heartbeat %s", msg.Payload)
	}
	if err := mp.Shutdown(ctx); err != nil {
		t.Fatal(err)
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
