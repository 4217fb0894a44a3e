package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat"
)

// The three services, as small as a demo can make them: their values drift
// while they run, so the heartbeats show live data.

type trackerFetcher struct {
	queue  atomic.Int64
	lastOK atomic.Int64 // Unix microseconds
}

func (t *trackerFetcher) QueueSize() int { return int(t.queue.Load()) }
func (t *trackerFetcher) LastSuccessfulOperation() time.Time {
	return time.UnixMicro(t.lastOK.Load())
}
func (t *trackerFetcher) APIStatus() string { return "authenticated" }
func (t *trackerFetcher) step() {
	t.queue.Store(int64(1200 + rand.IntN(400)))
	t.lastOK.Store(time.Now().UnixMicro())
}

type geocoding struct{ cache, pending atomic.Int64 }

func (g *geocoding) CacheSize() int       { return int(g.cache.Load()) }
func (g *geocoding) PendingRequests() int { return int(g.pending.Load()) }
func (g *geocoding) step() {
	g.cache.Add(int64(rand.IntN(20)))
	g.pending.Store(int64(rand.IntN(10)))
}

type geofence struct{ active, pending atomic.Int64 }

func (g *geofence) ActiveGeofences() int { return int(g.active.Load()) }
func (g *geofence) PendingEvents() int   { return int(g.pending.Load()) }
func (g *geofence) step() {
	g.active.Store(int64(40 + rand.IntN(5)))
	g.pending.Store(int64(rand.IntN(4)))
}

// runService is one service process: its heartbeat configured by the
// environment alone, stopped gracefully on SIGTERM.
func runService(role string) int {
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { fmt.Fprintln(os.Stderr, err) }))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var (
		hb   *otelheartbeat.Manager
		err  error
		step func()
		srv  *http.Server
	)
	switch role {
	case "tracker_fetcher":
		svc := &trackerFetcher{}
		svc.step()
		// The other-exporters path: a Prometheus reader beside the
		// heartbeat reader on the Publisher's own MeterProvider.
		reg := prometheus.NewRegistry()
		promReader, perr := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
		if perr != nil {
			fmt.Fprintln(os.Stderr, perr)
			return 1
		}
		l, lerr := net.Listen("tcp", os.Getenv("DEMO_METRICS_ADDR"))
		if lerr != nil {
			fmt.Fprintln(os.Stderr, lerr)
			return 1
		}
		srv = &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(l) }()
		hb, err = otelheartbeat.NewTrackerFetcherHeartbeat(svc, otelheartbeat.WithReader(promReader))
		step = svc.step
	case "geocoding_service":
		svc := &geocoding{}
		svc.cache.Store(5000)
		hb, err = otelheartbeat.NewGeocodingHeartbeat(svc)
		step = svc.step
	case "geofence_service":
		svc := &geofence{}
		svc.step()
		hb, err = otelheartbeat.NewGeofenceHeartbeat(svc)
		step = svc.step
	default:
		err = errors.New("unknown service " + role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := hb.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(hb.Interval() / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				step()
			}
		}
	}()
	<-ctx.Done()
	wg.Wait()

	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	code := 0
	if err := hb.Stop(stopCtx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	if srv != nil {
		_ = srv.Shutdown(stopCtx)
	}
	return code
}
