package otelheartbeat

import (
	"context"
	"errors"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/otel-heartbeat/heartbeat/collectors"
	"github.com/otel-heartbeat/heartbeat/internal/testing/leaktest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
	"github.com/otel-heartbeat/heartbeat/valkeyexporter"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

// tracker is a TrackerFetcher whose values a test sets.
type tracker struct {
	queue  atomic.Int64
	last   atomic.Int64 // Unix microseconds
	status atomic.Value
}

func newTracker() *tracker {
	t := &tracker{}
	t.queue.Store(1380)
	t.last.Store(time.Date(2025, 1, 16, 8, 29, 45, 123456000, time.UTC).UnixMicro())
	t.status.Store("authenticated")
	return t
}

func (t *tracker) QueueSize() int                     { return int(t.queue.Load()) }
func (t *tracker) LastSuccessfulOperation() time.Time { return time.UnixMicro(t.last.Load()) }
func (t *tracker) APIStatus() string                  { return t.status.Load().(string) }

type heartbeats struct {
	t  *testing.T
	ch <-chan *redis.Message
}

func subscribe(t *testing.T, srv *redistest.Server) heartbeats {
	t.Helper()
	return heartbeats{t, srv.PSubscribe(t, "heartbeat:service:*").Channel()}
}

// next returns the next heartbeat, decoded, and when it arrived.
func (h heartbeats) next() (*wire.Message, string) {
	h.t.Helper()
	select {
	case raw := <-h.ch:
		m, err := wire.Unmarshal([]byte(raw.Payload))
		if err != nil {
			h.t.Fatalf("heartbeat %q: %v", raw.Payload, err)
		}
		return m, raw.Payload
	case <-time.After(10 * time.Second):
		h.t.Fatal("no heartbeat within 10s")
		return nil, ""
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func stop(t *testing.T, p interface{ Stop(context.Context) error }) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	must(t, p.Stop(ctx))
}

func rssMiB(t *testing.T) float64 {
	b, err := os.ReadFile("/proc/self/statm")
	must(t, err)
	pages, err := strconv.ParseFloat(strings.Fields(string(b))[1], 64)
	must(t, err)
	return pages * float64(os.Getpagesize()) / (1 << 20)
}

func TestTrackerFetcherConfiguredByEnvironmentAlone(t *testing.T) {
	srv := redistest.Start(t)
	t.Setenv("HEARTBEAT_INTERVAL", "1")
	t.Setenv("OTEL_EXPORTER_VALKEY_ENDPOINT", srv.URL())
	t.Setenv("OTEL_SERVICE_NAME", "")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=a1b2c3d4-e5f6-7890-abcd-ef1234567890,deployment.environment=test")
	hbs := subscribe(t, srv)
	svc := newTracker()
	m, err := NewTrackerFetcherHeartbeat(svc)
	must(t, err)

	must(t, m.Start(context.Background()))
	startReturned := time.Now()
	first, raw := hbs.next()
	// The first heartbeat was collected before Start returned, not one
	// interval later.
	if first.HeartbeatCount != 1 || first.Timestamp.After(startReturned) {
		t.Errorf("first heartbeat: count %d at %v, Start returned at %v", first.HeartbeatCount, first.Timestamp, startReturned)
	}
	if first.ServiceName != "tracker_fetcher" || first.InstanceID != "a1b2c3d4-e5f6-7890-abcd-ef1234567890" {
		t.Errorf("identity %s/%s", first.ServiceName, first.InstanceID)
	}
	if want := rssMiB(t); math.Abs(first.MemoryUsageMB-want) > 0.3*want {
		t.Errorf("memory_usage_mb %.1f, /proc says %.1f", first.MemoryUsageMB, want)
	}
	if first.Has&wire.HasCPU == 0 || first.CPUUsagePercent < 0 || first.CPUUsagePercent > 100*float64(64) {
		t.Errorf("cpu_usage_percent %v", first.CPUUsagePercent)
	}
	if first.UptimeSeconds <= 0 || first.IntervalSeconds != 1 || first.Status != "running" {
		t.Errorf("heartbeat %s", raw)
	}
	for _, key := range []string{"service_name", "instance_id", "timestamp", "uptime_seconds", "heartbeat_count", "memory_usage_mb", "cpu_usage_percent"} {
		if !strings.Contains(raw, `"`+key+`":`) {
			t.Errorf("%s missing from %s", key, raw)
		}
	}
	if !strings.HasSuffix(raw, `"api_status":"authenticated","last_successful_operation":"2025-01-16T08:29:45.123456+00:00","queue_size":1380}`) {
		t.Errorf("service fields in %s", raw)
	}

	prev := first
	svc.queue.Store(7)
	for want := int64(2); want <= 3; want++ {
		m, _ := hbs.next()
		if m.HeartbeatCount != want {
			t.Fatalf("heartbeat_count %d, want %d", m.HeartbeatCount, want)
		}
		if gap := m.Timestamp.Sub(prev.Timestamp); gap < 500*time.Millisecond || gap > 2*time.Second {
			t.Errorf("heartbeat %d came %v after the previous one; the interval is 1s", want, gap)
		}
		if v, _ := m.Field("queue_size"); v.Int != 7 {
			t.Errorf("queue_size %d after the service changed it to 7", v.Int)
		}
		prev = m
	}

	stop(t, m)
	final, _ := hbs.next()
	if final.Status != "stopping" || final.HeartbeatCount != 4 {
		t.Errorf("final heartbeat: status %q count %d", final.Status, final.HeartbeatCount)
	}
	key := "heartbeat:instance:tracker_fetcher:a1b2c3d4-e5f6-7890-abcd-ef1234567890"
	if n, _ := srv.Client(t).Exists(context.Background(), key).Result(); n != 0 {
		t.Error("latest-state key left after Stop")
	}
}

func TestBadCollectorsCannotStopHeartbeats(t *testing.T) {
	srv := redistest.Start(t)
	hbs := subscribe(t, srv)
	var mu sync.Mutex
	var reported []error
	p, err := NewPublisher("geocoding_service",
		WithInterval(200*time.Millisecond),
		WithCollectorTimeout(50*time.Millisecond),
		WithExporterOptions(valkeyexporter.WithEndpoint(srv.URL())),
		withErrorHandler(func(err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() }))
	must(t, err)
	release := make(chan struct{})
	must(t, p.AddDataCollector("cache_size", collectors.Int(func() int64 { return 42 })))
	must(t, p.AddDataCollector("panics", collectors.Int(func() int64 { panic("collector bug") })))
	must(t, p.AddDataCollector("blocks", collectors.Int(func() int64 { <-release; return 1 })))
	must(t, p.AddDataCollector("not_a_number", collectors.Float(func() float64 { return math.NaN() })))
	must(t, p.Start(context.Background()))

	var prev *wire.Message
	for i := 0; i < 5; i++ {
		m, raw := hbs.next()
		if v, ok := m.Field("cache_size"); !ok || v.Int != 42 {
			t.Errorf("healthy field missing from %s", raw)
		}
		for _, bad := range []string{"panics", "blocks", "not_a_number"} {
			if _, ok := m.Field(bad); ok {
				t.Errorf("%s present in %s", bad, raw)
			}
		}
		if m.Has&wire.HasMemory == 0 || m.Has&wire.HasUptime == 0 {
			t.Errorf("process fields missing from %s", raw)
		}
		if prev != nil {
			// On time: a blocked collector costs at most its 50ms budget.
			if gap := m.Timestamp.Sub(prev.Timestamp); gap > 600*time.Millisecond {
				t.Errorf("heartbeat %d came %v after the previous one; the interval is 200ms", m.HeartbeatCount, gap)
			}
		}
		prev = m
	}
	close(release)
	stop(t, p)
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != 3 {
		t.Errorf("want three failures reported once each, got %d: %v", len(reported), reported)
	}
}

func TestStandaloneWithAnotherReaderInParallel(t *testing.T) {
	srv := redistest.Start(t)
	hbs := subscribe(t, srv)
	manual := sdkmetric.NewManualReader()
	m, err := NewManager("geofence_service",
		WithReader(manual),
		WithResource(resource.NewSchemaless(attribute.String("deployment.environment", "test"))),
		WithExporterOptions(valkeyexporter.WithEndpoint(srv.URL())))
	must(t, err)
	must(t, m.AddActiveGeofencesCollector(func() int { return 12 }))
	must(t, m.AddPendingEventsCollector(func() int { return 3 }))
	must(t, m.Start(context.Background()))
	hb, raw := hbs.next()
	if v, _ := hb.Field("active_geofences"); v.Int != 12 {
		t.Errorf("heartbeat %s", raw)
	}

	var rm metricdata.ResourceMetrics
	must(t, manual.Collect(context.Background(), &rm))
	assertHeartbeatGauges(t, &rm, "heartbeat.active_geofences", "heartbeat.pending_events")
	if env, _ := rm.Resource.Set().Value("deployment.environment"); env.AsString() != "test" {
		t.Errorf("resource %v", rm.Resource)
	}
	if id, _ := rm.Resource.Set().Value("service.instance.id"); id.AsString() != hb.InstanceID || m.InstanceID() != hb.InstanceID {
		t.Errorf("the other reader's instance id %q, the heartbeat's %q", id.AsString(), hb.InstanceID)
	}
	stop(t, m)
	// Stop shut the other reader down with the provider it built.
	if err := manual.Collect(context.Background(), &rm); !errors.Is(err, sdkmetric.ErrReaderShutdown) {
		t.Errorf("the manual reader after Stop: %v", err)
	}
}

func assertHeartbeatGauges(t *testing.T, rm *metricdata.ResourceMetrics, extra ...string) {
	t.Helper()
	seen := map[string]bool{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != valkeyexporter.ScopeName {
			continue
		}
		for _, m := range sm.Metrics {
			seen[m.Name] = true
		}
	}
	for _, name := range append([]string{"process.uptime", "process.memory.usage", "process.cpu.time"}, extra...) {
		if !seen[name] {
			t.Errorf("the other reader did not see %s (saw %v)", name, seen)
		}
	}
}

func TestExistingMeterProvider(t *testing.T) {
	srv := redistest.Start(t)
	hbs := subscribe(t, srv)

	// What a service already on OpenTelemetry writes.
	hbReader, err := NewReader("tracker_fetcher", valkeyexporter.WithEndpoint(srv.URL()), valkeyexporter.WithInterval(time.Hour))
	must(t, err)
	manual := sdkmetric.NewManualReader() // stands in for its OTLP or Prometheus reader
	mp := sdkmetric.NewMeterProvider(
		sdkmetric.WithResource(resource.NewSchemaless(attribute.String("service.name", "tracker-fetcher-prod"), attribute.String("service.instance.id", "pod-7"))),
		sdkmetric.WithReader(hbReader),
		sdkmetric.WithReader(manual),
	)
	m, err := NewTrackerFetcherHeartbeat(newTracker(), WithMeterProvider(mp, hbReader))
	must(t, err)
	must(t, m.Start(context.Background()))

	hb, raw := hbs.next()
	if hb.ServiceName != "tracker_fetcher" || hb.InstanceID != "pod-7" || hb.HeartbeatCount != 1 {
		t.Errorf("heartbeat %s", raw)
	}
	if v, _ := hb.Field("api_status"); v.Str != "authenticated" {
		t.Errorf("heartbeat %s", raw)
	}
	var rm metricdata.ResourceMetrics
	must(t, manual.Collect(context.Background(), &rm))
	assertHeartbeatGauges(t, &rm, "heartbeat.queue_size", "heartbeat.api_status.info", "heartbeat.last_successful_operation.timestamp")

	stop(t, m)
	if final, _ := hbs.next(); final.Status != "stopping" {
		t.Errorf("final status %q", final.Status)
	}
	// The service's provider and its other readers are still its own.
	must(t, manual.Collect(context.Background(), &rm))
	must(t, mp.Shutdown(context.Background()))
}

func TestStopReturnsWithinDeadlineWhenValkeyIsUnreachable(t *testing.T) {
	for _, fault := range []string{"killed", "stalled"} {
		t.Run(fault, func(t *testing.T) {
			srv := redistest.Start(t)
			hbs := subscribe(t, srv)
			p, err := NewPublisher("tracker_fetcher", WithExporterOptions(valkeyexporter.WithEndpoint(srv.URL())))
			must(t, err)
			must(t, p.Start(context.Background()))
			hbs.next()
			if fault == "killed" {
				srv.Kill()
			} else {
				srv.Pause()
				defer srv.Resume()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			begin := time.Now()
			err = p.Stop(ctx)
			if took := time.Since(begin); took > 2*time.Second {
				t.Errorf("Stop took %v with a 300ms deadline", took)
			}
			if err == nil {
				t.Error("Stop reported success although the final heartbeat could not be sent")
			}
			if err := p.Stop(context.Background()); err != nil {
				t.Errorf("second Stop: %v", err)
			}
		})
	}
}

func TestValkeyDownAtStart(t *testing.T) {
	port, err := redistest.FreePort()
	must(t, err)
	var mu sync.Mutex
	var reported []error
	p, err := NewPublisher("tracker_fetcher",
		WithInterval(200*time.Millisecond),
		WithExporterOptions(valkeyexporter.WithEndpoint("127.0.0.1:"+strconv.Itoa(port))),
		withErrorHandler(func(err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() }))
	must(t, err)
	// Start succeeds: the service must run without Valkey.
	must(t, p.Start(context.Background()))
	mu.Lock()
	if len(reported) != 1 || !strings.Contains(reported[0].Error(), "first heartbeat") {
		t.Errorf("reported %v", reported)
	}
	mu.Unlock()

	srv := redistest.StartOnPort(t, port)
	hbs := subscribe(t, srv)
	m, _ := hbs.next()
	if m.HeartbeatCount < 2 {
		t.Errorf("heartbeat_count %d; the lost heartbeats should still be counted", m.HeartbeatCount)
	}
	stop(t, p)
}

func TestLifecycleErrors(t *testing.T) {
	srv := redistest.Start(t)
	p, err := NewPublisher("tracker_fetcher", WithExporterOptions(valkeyexporter.WithEndpoint(srv.URL())))
	must(t, err)
	must(t, p.Start(context.Background()))
	if err := p.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start: %v", err)
	}
	stop(t, p)
	stop(t, p)
	if err := p.Start(context.Background()); !errors.Is(err, ErrStopped) {
		t.Errorf("Start after Stop: %v", err)
	}
	if err := p.AddDataCollector("late", collectors.Int(func() int64 { return 1 })); !errors.Is(err, ErrStopped) {
		t.Errorf("AddDataCollector after Stop: %v", err)
	}

	// Never started: Stop just releases the connection.
	q, err := NewPublisher("tracker_fetcher", WithExporterOptions(valkeyexporter.WithEndpoint(srv.URL())))
	must(t, err)
	stop(t, q)
}

func TestNamesAreCheckedAtRegistration(t *testing.T) {
	t.Setenv("OTEL_SERVICE_NAME", "")
	for _, name := range []string{"my service", "svc*", "svc?", "svc[1]", strings.Repeat("x", 129)} {
		if _, err := NewPublisher(name); err == nil || !strings.Contains(err.Error(), "service name") {
			t.Errorf("NewPublisher(%q) = %v", name, err)
		}
	}
	if _, err := NewPublisher(""); err == nil || !strings.Contains(err.Error(), "OTEL_SERVICE_NAME") {
		t.Errorf("no name anywhere: %v", err)
	}
	t.Setenv("HEARTBEAT_INTERVAL", "-1")
	if _, err := NewPublisher("ok"); err == nil || !strings.Contains(err.Error(), "HEARTBEAT_INTERVAL") {
		t.Errorf("bad HEARTBEAT_INTERVAL: %v", err)
	}
	t.Setenv("HEARTBEAT_INTERVAL", "")

	p, err := NewPublisher("ok")
	must(t, err)
	defer stop(t, p)
	ok := collectors.Int(func() int64 { return 1 })
	for name, want := range map[string]string{
		"heartbeat_count":   "clashes",
		"timestamp":         "clashes",
		"cpu_usage_percent": "clashes",
		"queue-size":        "may hold only",
		"":                  "empty",
	} {
		if err := p.AddDataCollector(name, ok); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("AddDataCollector(%q) = %v, want %q", name, err, want)
		}
	}
	must(t, p.AddDataCollector("queue_size", ok))
	if err := p.AddDataCollector("queue_size", ok); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Errorf("duplicate: %v", err)
	}
	if err := p.AddDataCollector("empty", collectors.Collector{}); err == nil {
		t.Error("zero collector accepted")
	}
}

func TestConvenienceConstructorNamesYieldToOTELServiceName(t *testing.T) {
	t.Setenv("OTEL_SERVICE_NAME", "tracker_fetcher_eu")
	m, err := NewTrackerFetcherHeartbeat(newTracker())
	must(t, err)
	defer stop(t, m)
	if m.ServiceName() != "tracker_fetcher_eu" {
		t.Errorf("service name %q", m.ServiceName())
	}
	t.Setenv("OTEL_SERVICE_NAME", "")
	g, err := NewGeocodingHeartbeat(geocoding{})
	must(t, err)
	defer stop(t, g)
	if g.ServiceName() != "geocoding_service" {
		t.Errorf("service name %q", g.ServiceName())
	}
	if _, err := NewGeofenceHeartbeat(nil); err == nil {
		t.Error("nil service accepted")
	}
}

type geocoding struct{}

func (geocoding) CacheSize() int       { return 1 }
func (geocoding) PendingRequests() int { return 2 }
