// Command otelservice is a service that is already on OpenTelemetry - its
// own MeterProvider, its own metrics, its own exporter - and adds the
// heartbeat beside it. The heartbeat takes five statements:
//
//	hb, err := otelheartbeat.NewReader("")                      // 1. the heartbeat reader
//	mp := sdkmetric.NewMeterProvider(..., sdkmetric.WithReader(hb), sdkmetric.WithReader(other))
//	                                                             // 2. beside the service's reader
//	m, err := otelheartbeat.NewGeocodingHeartbeat(svc,          // 3. the gauges, on mp
//		otelheartbeat.WithMeterProvider(mp, hb))
//	m.Start(ctx)                                                 // 4. the first heartbeat at once
//	m.Stop(ctx)                                                  // 5. the "stopping" heartbeat
//
// The service's other reader is built by contrib autoexport from the
// standard variables, as services on OpenTelemetry usually build it: with
// OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_METRICS_EXPORTER=otlp) the gauges go
// to an OTLP receiver; OTEL_METRICS_EXPORTER=prometheus or console work as
// autoexport documents; with none of them the example writes to stdout.
// The heartbeat gauges (process.uptime, process.memory.usage,
// process.cpu.time, heartbeat.cache_size, heartbeat.pending_requests) reach
// that reader with the service's own geocoder.requests, under the same
// service.name and service.instance.id as the heartbeats in Valkey.
// Configuration is the usual OTel environment (OTEL_SERVICE_NAME,
// OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_*, OTEL_EXPORTER_VALKEY_ENDPOINT,
// HEARTBEAT_INTERVAL).
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat"
)

// geocoder is the service's own work, with its own metric.
type geocoder struct {
	cache, pending atomic.Int64
	requests       metric.Int64Counter
}

func (g *geocoder) CacheSize() int       { return int(g.cache.Load()) }
func (g *geocoder) PendingRequests() int { return int(g.pending.Load()) }

func (g *geocoder) serve(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.requests.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", "ok")))
			g.cache.Add(1)
			g.pending.Store(int64(rand.IntN(5)))
		}
	}
}

// otherReader is the service's own metric reader, from the standard
// variables through contrib autoexport. Unless OTEL_METRICS_EXPORTER says
// otherwise, it is OTLP when an OTLP endpoint is set and stdout when not, so
// that the example shows something on its own. The --export-interval flag
// sets OTEL_METRIC_EXPORT_INTERVAL when given, or when that is unset.
func otherReader(ctx context.Context, every time.Duration) (sdkmetric.Reader, error) {
	if os.Getenv("OTEL_METRICS_EXPORTER") == "" {
		exporter := "console"
		if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") != "" {
			exporter = "otlp"
		}
		os.Setenv("OTEL_METRICS_EXPORTER", exporter)
	}
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "export-interval" })
	if given || os.Getenv("OTEL_METRIC_EXPORT_INTERVAL") == "" {
		os.Setenv("OTEL_METRIC_EXPORT_INTERVAL", strconv.FormatInt(every.Milliseconds(), 10))
	}
	return autoexport.NewMetricReader(ctx)
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "otelservice:", err)
		os.Exit(1)
	}
}

func run() error {
	duration := flag.Duration("duration", 0, "stop after this long (default: until interrupted)")
	exportEvery := flag.Duration("export-interval", 10*time.Second, "how often the other reader exports (default: OTEL_METRIC_EXPORT_INTERVAL, else 10s)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}

	// What the service already had.
	if os.Getenv("OTEL_SERVICE_NAME") == "" {
		os.Setenv("OTEL_SERVICE_NAME", otelheartbeat.GeocodingName)
	}
	res, err := resource.New(ctx, resource.WithService(), resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		return err
	}
	other, err := otherReader(ctx, *exportEvery)
	if err != nil {
		return err
	}

	// 1. The heartbeat reader, configured from the environment.
	hb, err := otelheartbeat.NewReader("")
	if err != nil {
		return err
	}
	mp := sdkmetric.NewMeterProvider(
		sdkmetric.WithResource(res),
		sdkmetric.WithReader(hb),
		sdkmetric.WithReader(other),
	)
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = mp.Shutdown(sctx)
	}()

	svc := &geocoder{}
	svc.requests, err = mp.Meter("example.com/geocoder").Int64Counter("geocoder.requests")
	if err != nil {
		return err
	}

	// 2. The heartbeat gauges, on the service's own MeterProvider.
	m, err := otelheartbeat.NewGeocodingHeartbeat(svc, otelheartbeat.WithMeterProvider(mp, hb))
	if err != nil {
		return err
	}
	// 3. The first heartbeat at once, then one every interval.
	if err := m.Start(ctx); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "otelservice: heartbeats every %v to %s; metrics through OTEL_METRICS_EXPORTER=%s every %s ms\n",
		m.Interval(), m.Endpoint(), os.Getenv("OTEL_METRICS_EXPORTER"), os.Getenv("OTEL_METRIC_EXPORT_INTERVAL"))
	svc.serve(ctx)

	// 4. The final "stopping" heartbeat; the provider and its other
	// readers are shut down by the deferred call above.
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return m.Stop(sctx)
}
