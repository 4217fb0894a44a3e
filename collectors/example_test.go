package collectors_test

import (
	"context"
	"fmt"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/otel-heartbeat/heartbeat/collectors"
)

// Service values become observable gauges that any reader sees.
func Example() {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())

	fields := collectors.NewFields(collectors.WithMeterProvider(mp),
		collectors.WithErrorHandler(func(err error) { fmt.Println("reported:", err) })) // default: otel.Handle
	defer fields.Unregister(context.Background())
	_ = fields.Add("queue_size", collectors.Int(func() int64 { return 1380 }))
	_ = fields.Add("api_status", collectors.String(func() string { return "authenticated" }))
	_ = fields.Add("last_successful_operation", collectors.Timestamp(func() time.Time {
		return time.Date(2025, 1, 16, 8, 29, 45, 0, time.UTC)
	}))
	_ = fields.Add("broken", collectors.IntFunc(func(context.Context) (int64, error) {
		return 0, fmt.Errorf("backend down") // left out, reported once
	}))

	var rm metricdata.ResourceMetrics
	_ = reader.Collect(context.Background(), &rm)
	for _, md := range rm.ScopeMetrics[0].Metrics {
		switch data := md.Data.(type) {
		case metricdata.Gauge[int64]:
			for _, dp := range data.DataPoints {
				if state, ok := dp.Attributes.Value("heartbeat.value"); ok {
					fmt.Println(md.Name, dp.Value, state.Emit())
				} else {
					fmt.Println(md.Name, dp.Value)
				}
			}
		case metricdata.Gauge[float64]:
			for _, dp := range data.DataPoints {
				fmt.Println(md.Name, md.Unit, int64(dp.Value))
			}
		}
	}
	// Unordered output:
	// reported: collectors: field broken: backend down; left out
	// heartbeat.queue_size 1380
	// heartbeat.api_status.info 1 authenticated
	// heartbeat.last_successful_operation.timestamp s 1737016185
}
