package valkeyexporter_test

import (
	"context"
	"fmt"
	"regexp"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/otel-heartbeat/heartbeat/valkeyexporter"
)

// A heartbeat reader on a MeterProvider: two service fields registered by
// hand under the heartbeat scope, following the gauge convention. (The
// otelheartbeat package registers these, and the process gauges, for you.)
func Example() {
	ctx := context.Background()
	broker, err := miniredis.Run() // any Valkey or Redis; in-process here
	if err != nil {
		panic(err)
	}
	defer broker.Close()

	// An admin panel's subscription.
	sub := redis.NewClient(&redis.Options{Addr: broker.Addr()})
	defer sub.Close()
	ps := sub.PSubscribe(ctx, "heartbeat:service:*")
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		panic(err)
	}

	exp, err := valkeyexporter.New(valkeyexporter.WithEndpoint(broker.Addr()))
	if err != nil {
		panic(err)
	}
	reader := valkeyexporter.NewReader(exp)
	mp := sdkmetric.NewMeterProvider(
		sdkmetric.WithResource(resource.NewSchemaless(
			attribute.String("service.name", "tracker_fetcher"),
			attribute.String("service.instance.id", "a1b2c3d4-e5f6-7890-abcd-ef1234567890"),
		)),
		sdkmetric.WithReader(reader),
	)

	meter := mp.Meter(valkeyexporter.ScopeName)
	_, _ = meter.Int64ObservableGauge("heartbeat.queue_size",
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(1380)
			return nil
		}))
	_, _ = meter.Int64ObservableGauge("heartbeat.api_status.info",
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(1, metric.WithAttributes(attribute.String("heartbeat.value", "authenticated")))
			return nil
		}))

	// The first heartbeat at once, rather than after one interval.
	if err := reader.ForceFlush(ctx); err != nil {
		panic(err)
	}
	msg, _ := ps.ReceiveMessage(ctx)
	fmt.Println(msg.Channel)
	fmt.Println(hideTimestamp(msg.Payload))

	// Shutting down sends the final heartbeat, marked "stopping".
	if err := mp.Shutdown(ctx); err != nil {
		panic(err)
	}
	msg, _ = ps.ReceiveMessage(ctx)
	fmt.Println(hideTimestamp(msg.Payload))
	// Output:
	// heartbeat:service:tracker_fetcher
	// {"service_name":"tracker_fetcher","instance_id":"a1b2c3d4-e5f6-7890-abcd-ef1234567890","timestamp":"…","heartbeat_count":1,"interval_seconds":60,"status":"running","api_status":"authenticated","queue_size":1380}
	// {"service_name":"tracker_fetcher","instance_id":"a1b2c3d4-e5f6-7890-abcd-ef1234567890","timestamp":"…","heartbeat_count":2,"interval_seconds":60,"status":"stopping","api_status":"authenticated","queue_size":1380}
}

var timestamp = regexp.MustCompile(`"timestamp":"[^"]*"`)

func hideTimestamp(s string) string { return timestamp.ReplaceAllString(s, `"timestamp":"…"`) }
