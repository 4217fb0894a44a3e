// Command otelservice is a service that is already on OpenTelemetry - its
// own MeterProvider, its own metrics, an exporter (stdout here; OTLP or
// Prometheus in production) - and adds the heartbeat beside it. It takes
// four lines:
//
//	hb, err := otelheartbeat.NewReader("")                      // 1. the heartbeat reader
//	mp := sdkmetric.NewMeterProvider(..., sdkmetric.WithReader(hb), sdkmetric.WithReader(stdout))
//	m, err := otelheartbeat.NewGeocodingHeartbeat(svc,          // 2. the gauges, on mp
//		otelheartbeat.WithMeterProvider(mp, hb))
//	m.Start(ctx) ... m.Stop(ctx)                                 // 3, 4.
//
// The heartbeat gauges (process.uptime, process.memory.usage,
// process.cpu.time, heartbeat.cache_size, heartbeat.pending_requests) then
// reach the stdout exporter too, and Valkey gets the documented JSON.
// Configuration is the usual OTel environment (OTEL_SERVICE_NAME,
// OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_VALKEY_ENDPOINT, HEARTBEAT_INTERVAL).
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
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

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "otelservice:", err)
		os.Exit(1)
	}
}

func run() error {
	duration := flag.Duration("duration", 0, "stop after this long (default: until interrupted)")
	exportEvery := flag.Duration("export-interval", 10*time.Second, "how often the stdout exporter writes")
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
	stdout, err := stdoutmetric.New()
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
		sdkmetric.WithReader(sdkmetric.NewPeriodicReader(stdout, sdkmetric.WithInterval(*exportEvery))),
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
	fmt.Fprintf(os.Stderr, "otelservice: heartbeats every %v to %s; metrics to stdout every %v\n", m.Interval(), m.Endpoint(), *exportEvery)
	svc.serve(ctx)

	// 4. The final "stopping" heartbeat; the provider and its other
	// readers are shut down by the deferred call above.
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return m.Stop(sctx)
}
