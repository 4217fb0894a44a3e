// Command library is a service that does nothing but publish heartbeats
// through the library, with three service fields: the library's side of
// the publisher cost comparison (internal/tools/pubcost). It is configured
// as any service is (OTEL_EXPORTER_VALKEY_ENDPOINT, HEARTBEAT_INTERVAL) and
// runs until SIGTERM or SIGINT, then stops its Publisher.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "library:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m, err := otelheartbeat.NewManager("pubcost")
	if err != nil {
		return err
	}
	lastOK := time.Now()
	if err := m.AddQueueSizeCollector(func() int { return 1380 }); err != nil {
		return err
	}
	if err := m.AddAPIStatusCollector(func() string { return "authenticated" }); err != nil {
		return err
	}
	if err := m.AddLastSuccessfulOperationCollector(func() time.Time { return lastOK }); err != nil {
		return err
	}
	if err := m.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return m.Stop(sctx)
}
