package otelheartbeat_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/otel-heartbeat/heartbeat/collectors"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat"
	"github.com/otel-heartbeat/heartbeat/valkeyexporter"
)

// watch subscribes like an admin panel and returns a function that prints
// the next heartbeat's stable fields.
func watch(addr string) (next func(keys ...string), closeFn func()) {
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: addr})
	ps := c.PSubscribe(ctx, "heartbeat:service:*")
	if _, err := ps.Receive(ctx); err != nil {
		panic(err)
	}
	next = func(keys ...string) {
		msg, err := ps.ReceiveMessage(ctx)
		if err != nil {
			panic(err)
		}
		var hb map[string]any
		if err := json.Unmarshal([]byte(msg.Payload), &hb); err != nil {
			panic(err)
		}
		fmt.Printf("%s #%v %v", msg.Channel, hb["heartbeat_count"], hb["status"])
		for _, k := range keys {
			fmt.Printf(" %s=%v", k, hb[k])
		}
		fmt.Println()
	}
	return next, func() { ps.Close(); c.Close() }
}

func ExampleNewPublisher() {
	broker, _ := miniredis.Run() // stands in for Valkey
	defer broker.Close()
	next, done := watch(broker.Addr())
	defer done()

	p, err := otelheartbeat.NewPublisher("my_service",
		otelheartbeat.WithInterval(time.Minute),
		otelheartbeat.WithExporterOptions(valkeyexporter.WithEndpoint(broker.Addr())))
	if err != nil {
		panic(err)
	}
	queue := []string{"a", "b", "c"}
	_ = p.AddDataCollector("custom_metric", collectors.Int(func() int64 { return int64(len(queue)) }))

	ctx := context.Background()
	_ = p.Start(ctx) // the first heartbeat goes out now
	next("custom_metric", "interval_seconds")
	_ = p.Stop(ctx) // the final heartbeat says "stopping"
	next("custom_metric")
	// Output:
	// heartbeat:service:my_service #1 running custom_metric=3 interval_seconds=60
	// heartbeat:service:my_service #2 stopping custom_metric=3
}

func ExampleNewManager() {
	broker, _ := miniredis.Run()
	defer broker.Close()
	next, done := watch(broker.Addr())
	defer done()

	m, err := otelheartbeat.NewManager("tracker_fetcher",
		otelheartbeat.WithExporterOptions(valkeyexporter.WithEndpoint(broker.Addr())))
	if err != nil {
		panic(err)
	}
	last := time.Date(2025, 1, 16, 8, 29, 45, 123456000, time.UTC)
	_ = m.AddQueueSizeCollector(func() int { return 1380 })
	_ = m.AddAPIStatusCollector(func() string { return "authenticated" })
	_ = m.AddLastSuccessfulOperationCollector(func() time.Time { return last })

	ctx := context.Background()
	_ = m.Start(ctx)
	next("queue_size", "api_status", "last_successful_operation")
	_ = m.Stop(ctx)
	// Output:
	// heartbeat:service:tracker_fetcher #1 running queue_size=1380 api_status=authenticated last_successful_operation=2025-01-16T08:29:45.123456+00:00
}

// A service already on OpenTelemetry adds the heartbeat reader to its own
// MeterProvider, beside its OTLP or Prometheus reader (a ManualReader here),
// which then exports the heartbeat gauges too.
func Example_existingMeterProvider() {
	broker, _ := miniredis.Run()
	defer broker.Close()
	next, done := watch(broker.Addr())
	defer done()
	ctx := context.Background()

	hb, err := otelheartbeat.NewReader("geofence_service", valkeyexporter.WithEndpoint(broker.Addr()))
	if err != nil {
		panic(err)
	}
	otlp := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(
		sdkmetric.WithResource(resource.NewSchemaless(attribute.String("service.name", "geofence_service"))),
		sdkmetric.WithReader(hb),
		sdkmetric.WithReader(otlp),
	)
	defer mp.Shutdown(ctx)

	m, err := otelheartbeat.NewManager("geofence_service", otelheartbeat.WithMeterProvider(mp, hb))
	if err != nil {
		panic(err)
	}
	_ = m.AddActiveGeofencesCollector(func() int { return 12 })
	_ = m.Start(ctx)
	next("active_geofences")

	var rm metricdata.ResourceMetrics
	_ = otlp.Collect(ctx, &rm)
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name == valkeyexporter.ScopeName {
			for _, md := range sm.Metrics {
				fmt.Println("other reader sees", md.Name)
			}
		}
	}
	_ = m.Stop(ctx)
	// Unordered output:
	// heartbeat:service:geofence_service #1 running active_geofences=12
	// other reader sees process.uptime
	// other reader sees process.memory.usage
	// other reader sees process.cpu.time
	// other reader sees heartbeat.active_geofences
}
