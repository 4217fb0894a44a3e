package otelheartbeat

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/shirou/gopsutil/v4/process"

	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/internal/valkeyconf"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
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

// BenchmarkHeartbeatCycleBaseline is the same heartbeat written by hand:
// the same process values from gopsutil, the same JSON from a map through
// encoding/json, the same pipeline on an equally configured client.
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
	proc, err := process.NewProcess(int32(os.Getpid()))
	if err != nil {
		b.Fatal(err)
	}
	created, _ := proc.CreateTime()
	start := time.UnixMilli(created)
	id := uuid.NewString()
	const interval = time.Hour
	channel := "heartbeat:service:tracker_fetcher"
	key := "heartbeat:instance:tracker_fetcher:" + id
	var count int64
	var prevCPU float64
	prevAt := start
	ctx := context.Background()
	queue := func() int { return 1380 }
	status := func() string { return "authenticated" }
	lastOK := func() time.Time { return benchLastOK }
	return func() {
		mem, err := proc.MemoryInfo()
		if err != nil {
			b.Fatal(err)
		}
		times, err := proc.Times()
		if err != nil {
			b.Fatal(err)
		}
		now := time.Now()
		cpu := times.User + times.System
		count++
		payload, err := json.Marshal(map[string]any{
			"service_name":              "tracker_fetcher",
			"instance_id":               id,
			"timestamp":                 now.UTC().Format(wire.TimestampLayout),
			"uptime_seconds":            float64(int(now.Sub(start).Seconds()*10)) / 10,
			"heartbeat_count":           count,
			"memory_usage_mb":           float64(int(float64(mem.RSS)/(1<<20)*10)) / 10,
			"cpu_usage_percent":         float64(int((cpu-prevCPU)/now.Sub(prevAt).Seconds()*1000)) / 10,
			"interval_seconds":          interval.Seconds(),
			"status":                    "running",
			"queue_size":                queue(),
			"api_status":                status(),
			"last_successful_operation": lastOK().UTC().Format(wire.TimestampLayout),
		})
		if err != nil {
			b.Fatal(err)
		}
		prevCPU, prevAt = cpu, now
		if _, err := client.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Publish(ctx, channel, payload)
			p.Set(ctx, key, payload, 3*interval)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}, func() { _ = client.Close() }
}
