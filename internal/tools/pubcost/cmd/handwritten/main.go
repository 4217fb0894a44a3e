// Command handwritten publishes the same heartbeats as command library,
// written by hand (package handwritten): gopsutil, encoding/json over a
// map, a go-redis pipeline, on a time.Ticker. It reads the same variables
// (OTEL_EXPORTER_VALKEY_ENDPOINT, HEARTBEAT_INTERVAL) and runs until
// SIGTERM or SIGINT.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/internal/tools/pubcost/handwritten"
	"github.com/otel-heartbeat/heartbeat/internal/valkeyconf"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "handwritten:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	interval := 60 * time.Second
	if s := os.Getenv(valkeyconf.EnvHeartbeatInterval); s != "" {
		var err error
		if interval, err = valkeyconf.ParseInterval(valkeyconf.EnvHeartbeatInterval, s); err != nil {
			return err
		}
	}
	conn, err := valkeyconf.ConnectionFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	opts, err := conn.ClientOptions(0)
	if err != nil {
		return err
	}
	client := redis.NewUniversalClient(opts)
	defer client.Close()
	lastOK := time.Now()
	p, err := handwritten.New(client, "pubcost", interval, handwritten.Fields{
		QueueSize: func() int { return 1380 },
		APIStatus: func() string { return "authenticated" },
		LastOK:    func() time.Time { return lastOK },
	})
	if err != nil {
		return err
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if err := p.Beat(ctx); err != nil && ctx.Err() == nil {
			fmt.Fprintln(os.Stderr, "handwritten:", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
