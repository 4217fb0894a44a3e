package valkeyautoexport_test

import (
	"context"
	"fmt"
	"os"

	"go.opentelemetry.io/contrib/exporters/autoexport"

	"github.com/otel-heartbeat/heartbeat/valkeyexporter"
	"github.com/otel-heartbeat/heartbeat/valkeyexporter/valkeyautoexport"
)

// With the "valkey" reader registered, OTEL_METRICS_EXPORTER=valkey makes
// autoexport build the heartbeat reader, configured by the usual variables.
func Example() {
	os.Setenv("OTEL_METRICS_EXPORTER", "valkey")
	os.Setenv("HEARTBEAT_INTERVAL", "30")
	defer os.Unsetenv("OTEL_METRICS_EXPORTER")
	defer os.Unsetenv("HEARTBEAT_INTERVAL")

	if err := valkeyautoexport.Register(); err != nil {
		panic(err)
	}
	reader, err := autoexport.NewMetricReader(context.Background()) // connects on the first export only
	if err != nil {
		panic(err)
	}
	defer reader.Shutdown(context.Background())
	hb := reader.(*valkeyexporter.Reader)
	fmt.Println(hb.Exporter().Interval())
	// Output:
	// 30s
}
