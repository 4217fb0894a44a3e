package otelheartbeat

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/internal/tools/pubcost/handwritten"
	"github.com/otel-heartbeat/heartbeat/internal/valkeyconf"
	"github.com/otel-heartbeat/heartbeat/valkeyexporter"
)

var benchLastOK = time.Date(2025, 1, 16, 8, 29, 45, 123456000, time.UTC)

// BenchmarkHeartbeatCycle is one whole heartbeat through the library:
// collect every standard gauge and three service fields, encode, one
// pipelined PUBLISH+SET to a real redis-server.
func BenchmarkHeartbeatCycle(b *testing.B) {
	srv := redistest.Start(b)
	cycle, done := libraryCycle(b, srv)
	defer done()
	b.ReportAllocs()
	for b.Loop() {
		cycle()
	}
}

// BenchmarkHeartbeatCycleBaseline is the same heartbeat written by hand
// (internal/tools/pubcost/handwritten): the same process values from
// gopsutil, the same JSON from a map through encoding/json, the same
// pipeline on an equally configured client.
func BenchmarkHeartbeatCycleBaseline(b *testing.B) {
	srv := redistest.Start(b)
	cycle, done := baselineCycle(b, srv)
	defer done()
	b.ReportAllocs()
	for b.Loop() {
		cycle()
	}
}

// BenchmarkHeartbeatCycleInterleaved alternates one library heartbeat and
// one baseline heartbeat per iteration against the same server, so that a
// shared, noisy machine slows both alike, and reports the ratio of their
// times.
func BenchmarkHeartbeatCycleInterleaved(b *testing.B) {
	srv := redistest.Start(b)
	library, stopLibrary := libraryCycle(b, srv)
	defer stopLibrary()
	baseline, stopBaseline := baselineCycle(b, srv)
	defer stopBaseline()
	var lib, base time.Duration
	for b.Loop() {
		t0 := time.Now()
		library()
		t1 := time.Now()
		baseline()
		t2 := time.Now()
		lib += t1.Sub(t0)
		base += t2.Sub(t1)
	}
	n := float64(b.N)
	b.ReportMetric(float64(lib.Nanoseconds())/n, "library-ns/heartbeat")
	b.ReportMetric(float64(base.Nanoseconds())/n, "baseline-ns/heartbeat")
	b.ReportMetric(float64(lib)/float64(base), "time-ratio")
}

func libraryCycle(b *testing.B, srv *redistest.Server) (func(), func()) {
	m, err := NewManager("tracker_fetcher", WithInterval(time.Hour),
		WithExporterOptions(valkeyexporter.WithEndpoint(srv.URL())))
	if err != nil {
		b.Fatal(err)
	}
	_ = m.AddQueueSizeCollector(func() int { return 1380 })
	_ = m.AddAPIStatusCollector(func() string { return "authenticated" })
	_ = m.AddLastSuccessfulOperationCollector(func() time.Time { return benchLastOK })
	ctx := context.Background()
	if err := m.Start(ctx); err != nil {
		b.Fatal(err)
	}
	r := m.Reader()
	return func() {
			if err := r.ForceFlush(ctx); err != nil {
				b.Fatal(err)
			}
		}, func() {
			_ = m.Stop(ctx)
		}
}

func baselineCycle(b *testing.B, srv *redistest.Server) (func(), func()) {
	// The test server, through the same resolution as the library's own
	// client, so that both are configured alike.
	conn, err := valkeyconf.ConnectionWithEndpoint(srv.URL(), "benchmark", func(string) string { return "" })
	if err != nil {
		b.Fatal(err)
	}
	opts, err := conn.ClientOptions(0)
	if err != nil {
		b.Fatal(err)
	}
	client := redis.NewUniversalClient(opts)
	p, err := handwritten.New(client, "tracker_fetcher", time.Hour, handwritten.Fields{
		QueueSize: func() int { return 1380 },
		APIStatus: func() string { return "authenticated" },
		LastOK:    func() time.Time { return benchLastOK },
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	return func() {
		if err := p.Beat(ctx); err != nil {
			b.Fatal(err)
		}
	}, func() { _ = client.Close() }
}
