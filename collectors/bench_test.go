package collectors

import (
	"context"
	"fmt"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// BenchmarkFields measures one collection of n trivial service fields, each
// on its own goroutine under the budget.
func BenchmarkFields(b *testing.B) {
	for _, n := range []int{0, 1, 3, 10} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			r := sdkmetric.NewManualReader()
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
			defer mp.Shutdown(context.Background())
			f := NewFields(WithMeterProvider(mp))
			defer f.Unregister(context.Background())
			for i := 0; i < n; i++ {
				switch i % 3 {
				case 0:
					_ = f.Add(fmt.Sprintf("n%d", i), Int(func() int64 { return 1380 }))
				case 1:
					_ = f.Add(fmt.Sprintf("s%d", i), String(func() string { return "authenticated" }))
				case 2:
					_ = f.Add(fmt.Sprintf("t%d", i), Timestamp(func() time.Time { return time.Unix(1, 0) }))
				}
			}
			var rm metricdata.ResourceMetrics
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := r.Collect(ctx, &rm); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
