// Command loadgen publishes heartbeats in the documented format for a
// simulated fleet - N instances of M services at a chosen interval,
// pipelined over a few connections - against any Valkey, to see how a
// monitor or admin panel copes at scale.
//
//	go run ./internal/tools/loadgen --instances 100000 --services 50 --interval 60s
//
// It connects as the library does (OTEL_EXPORTER_VALKEY_ENDPOINT, the
// original design's HEALTH_REDIS_*). Run a monitor beside it:
//
//	go run ./examples/monitor --table
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/internal/tools/loadgen/fleet"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
)

func main() {
	var cfg fleet.Config
	flag.IntVar(&cfg.Instances, "instances", 1000, "simulated instances in all")
	flag.IntVar(&cfg.Services, "services", 10, "services the instances belong to")
	flag.DurationVar(&cfg.Interval, "interval", 60*time.Second, "each instance's heartbeat interval")
	flag.IntVar(&cfg.Connections, "connections", 4, "connections publishing in parallel")
	flag.IntVar(&cfg.Batch, "batch", 500, "commands per pipelined round trip")
	flag.BoolVar(&cfg.LatestState, "latest-state", true, "also write the latest-state keys")
	duration := flag.Duration("duration", 0, "stop after this long (default: until interrupted)")
	flood := flag.Bool("flood", false, "send one heartbeat of every instance as fast as possible, then exit")
	flag.Parse()

	conn, err := watch.ConnectFromEnv(watch.WithCommandTimeout(10*time.Second),
		watch.WithClientOptions(func(o *redis.UniversalOptions) { o.PoolSize = cfg.Connections }))
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	client := conn.Client
	defer client.Close()
	fl, err := fleet.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	start := time.Now()
	var sent int
	if *flood {
		sent, err = fl.Round(ctx, client)
	} else {
		fmt.Fprintf(os.Stderr, "loadgen: %d instances of %d services, every %v, to %s\n", cfg.Instances, cfg.Services, cfg.Interval, conn.Endpoint)
		sent, err = fl.Run(ctx, client)
	}
	took := time.Since(start)
	fmt.Printf("sent %d heartbeats in %v (%.0f/s)\n", sent, took.Round(time.Millisecond), float64(sent)/took.Seconds())
	switch {
	case err != nil && ctx.Err() == nil:
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	case err != nil:
		fmt.Fprintln(os.Stderr, "loadgen: some batches failed and were skipped, the first:", err)
	}
}
