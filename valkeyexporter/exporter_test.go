package valkeyexporter

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/otel-heartbeat/heartbeat/internal/convention"
	"github.com/otel-heartbeat/heartbeat/internal/testing/leaktest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

const testInstance = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"

func testResource(service string) *resource.Resource {
	return resource.NewSchemaless(
		attribute.String("service.name", service),
		attribute.String("service.instance.id", testInstance),
	)
}

// registerSeedGauges registers, under the heartbeat scope, a gauge for every
// field of the original design's example message, with the original design's values.
func registerSeedGauges(t *testing.T, mp metric.MeterProvider) {
	t.Helper()
	m := mp.Meter(ScopeName)
	lastOp := time.Date(2025, 1, 16, 8, 29, 45, 123456000, time.UTC)
	uptime, err := m.Float64ObservableGauge(convention.Uptime, metric.WithUnit("s"))
	must(t, err)
	mem, err := m.Int64ObservableUpDownCounter(convention.MemoryUsage, metric.WithUnit("By"))
	must(t, err)
	cpu, err := m.Float64ObservableCounter(convention.CPUTime, metric.WithUnit("s"))
	must(t, err)
	queue, err := m.Int64ObservableGauge(convention.NumberName("queue_size"))
	must(t, err)
	api, err := m.Int64ObservableGauge(convention.StringName("api_status"))
	must(t, err)
	last, err := m.Float64ObservableGauge(convention.TimestampName("last_successful_operation"), metric.WithUnit("s"))
	must(t, err)
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveFloat64(uptime, 3600.5)
		o.ObserveInt64(mem, 163890380) // 156.3 MiB
		o.ObserveFloat64(cpu, 400, metric.WithAttributes(attribute.String("cpu.mode", "user")))
		o.ObserveFloat64(cpu, 50, metric.WithAttributes(attribute.String("cpu.mode", "system")))
		o.ObserveInt64(queue, 1380)
		o.ObserveInt64(api, 1, metric.WithAttributes(attribute.String(convention.ValueKey, "authenticated")))
		o.ObserveFloat64(last, float64(lastOp.UnixMicro())/1e6)
		return nil
	}, uptime, mem, cpu, queue, api, last)
	must(t, err)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// subscribe PSUBSCRIBEs pattern and returns once the server has confirmed.
func subscribe(t *testing.T, srv *redistest.Server, pattern string) <-chan *redis.Message {
	t.Helper()
	return srv.PSubscribe(t, pattern).Channel()
}

func next(t *testing.T, ch <-chan *redis.Message) *redis.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no heartbeat arrived within 10s")
		return nil
	}
}

func newExporter(t *testing.T, srv *redistest.Server, opts ...Option) *Exporter {
	t.Helper()
	env := map[string]string{}
	all := append([]Option{WithEndpoint(srv.URL()), withEnv(func(k string) string { return env[k] })}, opts...)
	exp, err := New(all...)
	must(t, err)
	t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	return exp
}

func TestPeriodicReaderPublishesSeedFormat(t *testing.T) {
	srv := redistest.Start(t)
	msgs := subscribe(t, srv, "heartbeat:service:*")
	exp := newExporter(t, srv, WithInterval(100*time.Millisecond))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(testResource("tracker_fetcher")), sdkmetric.WithReader(NewReader(exp)))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	registerSeedGauges(t, mp)

	for want := int64(1); want <= 3; want++ {
		raw := next(t, msgs)
		if raw.Channel != "heartbeat:service:tracker_fetcher" {
			t.Fatalf("channel %q", raw.Channel)
		}
		m, err := wire.Unmarshal([]byte(raw.Payload))
		must(t, err)
		if m.ServiceName != "tracker_fetcher" || m.InstanceID != testInstance {
			t.Errorf("identity %q/%q", m.ServiceName, m.InstanceID)
		}
		if m.HeartbeatCount != want {
			t.Errorf("heartbeat_count = %d, want %d", m.HeartbeatCount, want)
		}
		if m.UptimeSeconds != 3600.5 || m.MemoryUsageMB != 156.3 || m.Status != "running" || m.IntervalSeconds != 0.1 {
			t.Errorf("documented fields: %+v", m)
		}
		if time.Since(m.Timestamp) > 10*time.Second || m.Timestamp.After(time.Now().Add(time.Second)) {
			t.Errorf("timestamp %v is not now", m.Timestamp)
		}
		// First heartbeat: CPU since start, 450 s over 3600.5 s. After that
		// the CPU time does not change, so usage over the interval is 0.
		wantCPU := 12.5
		if want > 1 {
			wantCPU = 0
		}
		if m.CPUUsagePercent != wantCPU {
			t.Errorf("heartbeat %d: cpu_usage_percent = %v, want %v", want, m.CPUUsagePercent, wantCPU)
		}
		// The documented keys come first, in order, then the additive keys,
		// then the service fields in key order.
		wantPrefix := `{"service_name":"tracker_fetcher","instance_id":"` + testInstance + `","timestamp":"`
		if !strings.HasPrefix(raw.Payload, wantPrefix) {
			t.Errorf("payload starts %q", raw.Payload[:80])
		}
		wantTail := `,"interval_seconds":0.1,"status":"running","api_status":"authenticated","last_successful_operation":"2025-01-16T08:29:45.123456+00:00","queue_size":1380}`
		if !strings.HasSuffix(raw.Payload, wantTail) {
			t.Errorf("payload %s\nwant suffix %s", raw.Payload, wantTail)
		}
		if keys := jsonKeys(t, raw.Payload); strings.Join(keys[:7], ",") != "service_name,instance_id,timestamp,uptime_seconds,heartbeat_count,memory_usage_mb,cpu_usage_percent" {
			t.Errorf("key order %v", keys)
		}
	}
}

func jsonKeys(t *testing.T, s string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	var keys []string
	_, _ = dec.Token()
	for dec.More() {
		k, err := dec.Token()
		must(t, err)
		keys = append(keys, k.(string))
		var skip json.RawMessage
		must(t, dec.Decode(&skip))
	}
	return keys
}

func TestOtherReadersSeeGaugesAndOtherScopesStayOut(t *testing.T) {
	srv := redistest.Start(t)
	msgs := subscribe(t, srv, "heartbeat:service:*")
	exp := newExporter(t, srv)
	hb := NewReader(exp)
	manual := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(testResource("geocoding_service")),
		sdkmetric.WithReader(hb), sdkmetric.WithReader(manual))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	registerSeedGauges(t, mp)

	// Application metrics in another scope, one even named like a field.
	app := mp.Meter("example.com/app")
	reqs, err := app.Int64Counter("http.requests")
	must(t, err)
	reqs.Add(context.Background(), 5)
	fake, err := app.Int64Counter(convention.NumberName("intruder"))
	must(t, err)
	fake.Add(context.Background(), 1)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	must(t, hb.ForceFlush(ctx))
	m, err := wire.Unmarshal([]byte(next(t, msgs).Payload))
	must(t, err)
	if _, ok := m.Field("intruder"); ok {
		t.Error("a metric of another scope reached the heartbeat")
	}
	if v, ok := m.Field("queue_size"); !ok || v.Int != 1380 {
		t.Errorf("queue_size = %+v", v)
	}

	var rm metricdata.ResourceMetrics
	must(t, manual.Collect(ctx, &rm))
	names := map[string]bool{}
	for _, sm := range rm.ScopeMetrics {
		for _, md := range sm.Metrics {
			names[sm.Scope.Name+" "+md.Name] = true
		}
	}
	for _, want := range []string{
		ScopeName + " process.uptime", ScopeName + " process.memory.usage", ScopeName + " process.cpu.time",
		ScopeName + " heartbeat.queue_size", ScopeName + " heartbeat.api_status.info",
		"example.com/app http.requests",
	} {
		if !names[want] {
			t.Errorf("the manual reader did not see %q; saw %v", want, names)
		}
	}
}

func TestLatestStateKeyHoldsHeartbeatWithTTL(t *testing.T) {
	srv := redistest.Start(t)
	msgs := subscribe(t, srv, "heartbeat:service:*")
	exp := newExporter(t, srv, WithInterval(2*time.Second))
	r := NewReader(exp)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(testResource("geofence_service")), sdkmetric.WithReader(r))
	registerSeedGauges(t, mp)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	must(t, r.ForceFlush(ctx))
	published := next(t, msgs).Payload

	c := srv.Client(t)
	key := "heartbeat:instance:geofence_service:" + testInstance
	got, err := c.Get(ctx, key).Result()
	must(t, err)
	if got != published {
		t.Errorf("latest-state key holds\n%s\nwant the published\n%s", got, published)
	}
	ttl, err := c.PTTL(ctx, key).Result()
	must(t, err)
	if ttl <= 5*time.Second || ttl > 6*time.Second {
		t.Errorf("TTL %v, want just under 3 x 2s", ttl)
	}

	// A graceful stop publishes "stopping" and removes the key.
	must(t, mp.Shutdown(ctx))
	final, err := wire.Unmarshal([]byte(next(t, msgs).Payload))
	must(t, err)
	if final.Status != wire.StatusStopping || final.HeartbeatCount != 2 {
		t.Errorf("final heartbeat: status %q count %d", final.Status, final.HeartbeatCount)
	}
	if n, err := c.Exists(ctx, key).Result(); err != nil || n != 0 {
		t.Errorf("latest-state key still exists after stop (%d, %v)", n, err)
	}
}

func TestWithoutLatestStateOnlyPublishes(t *testing.T) {
	srv := redistest.Start(t)
	exp := newExporter(t, srv, WithoutLatestState(), WithChannelPrefix("hb:"))
	other := subscribe(t, srv, "hb:*")
	rm := collect(t, "tracker_fetcher")
	must(t, exp.Export(context.Background(), rm))
	if got := next(t, other); got.Channel != "hb:tracker_fetcher" {
		t.Errorf("channel %q", got.Channel)
	}
	keys, err := srv.Client(t).Keys(context.Background(), "*").Result()
	must(t, err)
	if len(keys) != 0 {
		t.Errorf("keys written: %v", keys)
	}
}

// collect returns one collection of the original design gauges.
func collect(t *testing.T, service string) *metricdata.ResourceMetrics {
	t.Helper()
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(testResource(service)), sdkmetric.WithReader(r))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	registerSeedGauges(t, mp)
	var rm metricdata.ResourceMetrics
	must(t, r.Collect(context.Background(), &rm))
	return &rm
}

func TestExportFailsWithinDeadlineAndRecoversWithoutRestart(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "hunter2-secret")
	exp := newExporter(t, srv, WithEndpoint("redis://:hunter2-secret@"+srv.Addr()))
	rm := collect(t, "tracker_fetcher")
	export := func(timeout time.Duration) (error, time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		start := time.Now()
		err := exp.Export(ctx, rm)
		return err, time.Since(start)
	}
	if err, _ := export(5 * time.Second); err != nil {
		t.Fatalf("first export: %v", err)
	}

	srv.Kill()
	err, _ := export(5 * time.Second)
	if err == nil {
		t.Fatal("export to a killed server succeeded")
	}
	for _, want := range []string{"PUBLISH heartbeat:service:tracker_fetcher", srv.Addr()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %q shows the password", err)
	}

	srv.Restart()
	if err, _ := export(5 * time.Second); err != nil {
		t.Fatalf("export after restart: %v", err)
	}

	// A stalled server: the export gives up at its deadline.
	srv.Pause()
	const deadline = 300 * time.Millisecond
	err, took := export(deadline)
	srv.Resume()
	if err == nil {
		t.Fatal("export to a stalled server succeeded")
	}
	if took > deadline+time.Second {
		t.Errorf("export took %v, past its %v deadline", took, deadline)
	}
	if err, _ := export(5 * time.Second); err != nil {
		t.Fatalf("export after resume: %v", err)
	}
}

func TestSetRefusedStillPublishes(t *testing.T) {
	srv := redistest.Start(t)
	// A user that may PUBLISH heartbeat channels but not write keys.
	srv.Do(t, "ACL", "SETUSER", "hb", "on", ">pw-of-hb", "&heartbeat:service:*", "+publish", "+ping", "+hello")
	msgs := subscribe(t, srv, "heartbeat:service:*")
	var mu sync.Mutex
	var reported []error
	exp := newExporter(t, srv, WithEndpoint("redis://hb:pw-of-hb@"+srv.Addr()),
		withErrorHandler(func(err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() }))
	rm := collect(t, "tracker_fetcher")
	for i := 0; i < 3; i++ {
		must(t, exp.Export(context.Background(), rm))
		next(t, msgs)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != 1 || !strings.Contains(reported[0].Error(), "NOPERM") || !strings.Contains(reported[0].Error(), "SET heartbeat:instance:") {
		t.Errorf("want the refused SET reported once, got %v", reported)
	}
}

func TestIdentityComesFromTheResource(t *testing.T) {
	srv := redistest.Start(t)
	exp := newExporter(t, srv)
	// The heartbeat scope with no values: every collector failed.
	export := func(res *resource.Resource) error {
		return exp.Export(context.Background(), &metricdata.ResourceMetrics{Resource: res,
			ScopeMetrics: []metricdata.ScopeMetrics{{Scope: instrumentation.Scope{Name: ScopeName}}}})
	}
	if err := export(resource.Empty()); !errors.Is(err, ErrNoServiceName) {
		t.Errorf("no service.name: %v", err)
	}
	if err := export(resource.Default()); !errors.Is(err, ErrNoServiceName) {
		t.Errorf("unknown_service default: %v", err)
	}
	err := export(resource.NewSchemaless(attribute.String("service.name", "bad*name")))
	if err == nil || !strings.Contains(err.Error(), "bad*name") {
		t.Errorf("glob in service.name: %v", err)
	}
	err = export(resource.NewSchemaless(attribute.String("service.name", "ok"), attribute.String("service.instance.id", "has space")))
	if err == nil || !strings.Contains(err.Error(), "service.instance.id") {
		t.Errorf("bad instance id: %v", err)
	}

	// Without service.instance.id the exporter uses a UUID of its own,
	// the same on every heartbeat.
	msgs := subscribe(t, srv, "heartbeat:service:*")
	res := resource.NewSchemaless(attribute.String("service.name", "ok"))
	must(t, export(res))
	must(t, export(res))
	a, _ := wire.Unmarshal([]byte(next(t, msgs).Payload))
	b, _ := wire.Unmarshal([]byte(next(t, msgs).Payload))
	if a.InstanceID == "" || a.InstanceID != b.InstanceID || len(a.InstanceID) != 36 {
		t.Errorf("instance ids %q, %q", a.InstanceID, b.InstanceID)
	}
	if a.HeartbeatCount != 1 || b.HeartbeatCount != 2 {
		t.Errorf("counts %d, %d", a.HeartbeatCount, b.HeartbeatCount)
	}
	// With nothing but identity, a heartbeat still goes out: liveness does
	// not depend on any collector.
	if a.Has&wire.HasUptime != 0 || len(a.Fields) != 0 || a.Status != "running" {
		t.Errorf("bare heartbeat %+v", a)
	}
	if exp.ServiceName() != "ok" {
		t.Errorf("ServiceName() = %q, want the Resource's", exp.ServiceName())
	}
}

// A collection without the heartbeat scope means the gauges were never
// registered on this reader's provider: no heartbeat would say anything
// but its count, so none is sent and the error says what to wire.
func TestACollectionWithoutHeartbeatInstrumentsIsRefused(t *testing.T) {
	srv := redistest.Start(t)
	msgs := subscribe(t, srv, "heartbeat:service:*")
	exp := newExporter(t, srv)
	err := exp.Export(context.Background(), &metricdata.ResourceMetrics{Resource: testResource("svc"),
		ScopeMetrics: []metricdata.ScopeMetrics{{Scope: instrumentation.Scope{Name: "example.com/other"}}}})
	if !errors.Is(err, ErrNoHeartbeatInstruments) || !strings.Contains(err.Error(), "sdkmetric.WithReader") {
		t.Errorf("want ErrNoHeartbeatInstruments saying what to wire, got %v", err)
	}
	must(t, exp.Export(context.Background(), collect(t, "svc")))
	if m, _ := wire.Unmarshal([]byte(next(t, msgs).Payload)); m.HeartbeatCount != 1 {
		t.Errorf("the refused collection was counted: %+v", m)
	}
}

func TestShutdownOnceThenSentinel(t *testing.T) {
	srv := redistest.Start(t)
	exp := newExporter(t, srv)
	ctx := context.Background()
	rm := collect(t, "tracker_fetcher")
	must(t, exp.Export(ctx, rm))
	key := "heartbeat:instance:tracker_fetcher:" + testInstance
	c := srv.Client(t)
	if n, _ := c.Exists(ctx, key).Result(); n != 1 {
		t.Fatal("latest-state key missing after export")
	}
	must(t, exp.Shutdown(ctx))
	if n, _ := c.Exists(ctx, key).Result(); n != 0 {
		t.Error("Shutdown left the latest-state key")
	}
	if err := exp.Shutdown(ctx); !errors.Is(err, ErrShutdown) || !errors.Is(err, sdkmetric.ErrExporterShutdown) {
		t.Errorf("second Shutdown: %v", err)
	}
	if err := exp.Export(ctx, rm); !errors.Is(err, ErrShutdown) {
		t.Errorf("Export after Shutdown: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := exp.ForceFlush(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("ForceFlush with a cancelled context: %v", err)
	}
}

func TestShutdownReturnsWithinDeadlineWhenValkeyStalls(t *testing.T) {
	srv := redistest.Start(t)
	exp := newExporter(t, srv)
	rm := collect(t, "tracker_fetcher")
	must(t, exp.Export(context.Background(), rm))
	srv.Pause()
	defer srv.Resume()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_ = exp.Shutdown(ctx)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Shutdown took %v with a 300ms deadline", took)
	}
}

func TestConcurrentMethodsAreSafe(t *testing.T) {
	srv := redistest.Start(t)
	exp := newExporter(t, srv)
	rm := collect(t, "tracker_fetcher")
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				_ = exp.Temporality(sdkmetric.InstrumentKindObservableGauge)
				_ = exp.Aggregation(sdkmetric.InstrumentKindObservableGauge)
				_ = exp.ForceFlush(context.Background())
				_ = exp.Export(context.Background(), rm)
			}
		}()
	}
	wg.Wait()
	// Every export counted once, none lost to a race between them.
	got, err := srv.Client(t).Get(context.Background(), "heartbeat:instance:tracker_fetcher:"+testInstance).Result()
	must(t, err)
	if m, err := wire.Unmarshal([]byte(got)); err != nil || m.HeartbeatCount != 8*20 {
		t.Errorf("after 160 concurrent exports the key says %v (%v)", m, err)
	}
	must(t, exp.Shutdown(context.Background()))
}

// The options that say where and as whom to connect: a key prefix, an
// ACL user and password over the URL's, and TLS for a plain URL.
func TestConnectionOptions(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "right-password")
	ctx := context.Background()
	exp := newExporter(t, srv, WithEndpoint("redis://:wrong-password@"+srv.Addr()), WithAuth("", "right-password"), WithKeyPrefix("hb:inst:"))
	must(t, exp.Export(ctx, collect(t, "tracker_fetcher")))
	admin := srv.Client(t, func(o *redis.Options) { o.Password = "right-password" })
	if n, err := admin.Exists(ctx, "hb:inst:tracker_fetcher:"+testInstance).Result(); err != nil || n != 1 {
		t.Errorf("no key under the prefix from WithKeyPrefix (%d, %v)", n, err)
	}

	ca := redistest.NewCA(t, "heartbeat-test")
	cert, key := ca.Issue(t, "localhost")
	tlsSrv := redistest.StartTLS(t, cert, key)
	plainURL := "redis://localhost:" + strconv.Itoa(tlsSrv.Port())
	tlsExp := newExporter(t, tlsSrv, WithEndpoint(plainURL), WithTLSConfig(ca.ClientConfig("localhost")))
	must(t, tlsExp.Export(ctx, collect(t, "tracker_fetcher")))
}

// fakeCollection builds a collection by hand, for the exporter's own logic.
func fakeCollection(at time.Time, uptime, cpuSeconds float64, extra ...metricdata.Metrics) *metricdata.ResourceMetrics {
	ms := []metricdata.Metrics{
		{Name: convention.Uptime, Unit: "s", Data: metricdata.Gauge[float64]{DataPoints: []metricdata.DataPoint[float64]{{Time: at, Value: uptime}}}},
		{Name: convention.CPUTime, Unit: "s", Data: metricdata.Sum[float64]{IsMonotonic: true, Temporality: metricdata.CumulativeTemporality,
			DataPoints: []metricdata.DataPoint[float64]{{Time: at, Value: cpuSeconds * 0.8}, {Time: at, Value: cpuSeconds * 0.2}}}},
	}
	return &metricdata.ResourceMetrics{
		Resource:     testResource("svc"),
		ScopeMetrics: []metricdata.ScopeMetrics{{Metrics: append(ms, extra...)}},
	}
}

func TestBuildComputesCPUOverTheLastInterval(t *testing.T) {
	exp, err := New(WithEndpoint("localhost:1"), withEnv(func(string) string { return "" }))
	must(t, err)
	defer func() { _ = exp.Shutdown(context.Background()) }()
	t0 := time.Date(2025, 1, 16, 8, 30, 0, 0, time.UTC)
	steps := []struct {
		at            time.Time
		uptime, cpu   float64
		wantCPU       float64
		wantCPUInBeat bool
	}{
		{t0, 100, 25, 25, true},                          // first beat: 25 s of CPU in 100 s of life
		{t0.Add(60 * time.Second), 160, 55, 50, true},    // 30 s in 60 s: half a core
		{t0.Add(120 * time.Second), 220, 175, 200, true}, // 120 s in 60 s: two cores
		{t0.Add(180 * time.Second), 280, 175, 0, true},   // idle
	}
	for i, s := range steps {
		rm := fakeCollection(s.at, s.uptime, s.cpu)
		rm.ScopeMetrics[0].Scope.Name = ScopeName
		must(t, exp.build(rm, false))
		got := exp.msg
		if got.Has&wire.HasCPU == 0 || got.CPUUsagePercent != s.wantCPU {
			t.Errorf("step %d: cpu %v (present %v), want %v", i, got.CPUUsagePercent, got.Has&wire.HasCPU != 0, s.wantCPU)
		}
		if !got.Timestamp.Equal(s.at) {
			t.Errorf("step %d: timestamp %v, want the collection time %v", i, got.Timestamp, s.at)
		}
	}
}

func TestBuildLeavesOutBadValuesAndReportsOnce(t *testing.T) {
	var reported []error
	exp, err := New(WithEndpoint("localhost:1"), withEnv(func(string) string { return "" }),
		withErrorHandler(func(err error) { reported = append(reported, err) }))
	must(t, err)
	defer func() { _ = exp.Shutdown(context.Background()) }()
	at := time.Now()
	nan := metricdata.Metrics{Name: convention.NumberName("ratio"), Data: metricdata.Gauge[float64]{DataPoints: []metricdata.DataPoint[float64]{{Time: at, Value: math.NaN()}}}}
	inf := metricdata.Metrics{Name: convention.Uptime, Data: metricdata.Gauge[float64]{DataPoints: []metricdata.DataPoint[float64]{{Time: at, Value: math.Inf(1)}}}}
	empty := metricdata.Metrics{Name: convention.StringName("api_status"), Data: metricdata.Gauge[int64]{}}
	badName := metricdata.Metrics{Name: "heartbeat.status", Data: metricdata.Gauge[int64]{DataPoints: []metricdata.DataPoint[int64]{{Value: 1}}}}
	ok := metricdata.Metrics{Name: convention.NumberName("queue_size"), Data: metricdata.Gauge[int64]{DataPoints: []metricdata.DataPoint[int64]{{Value: 7}}}}
	for i := 0; i < 3; i++ {
		rm := &metricdata.ResourceMetrics{Resource: testResource("svc"), ScopeMetrics: []metricdata.ScopeMetrics{
			{Metrics: []metricdata.Metrics{nan, inf, empty, badName, ok}},
		}}
		rm.ScopeMetrics[0].Scope.Name = ScopeName
		must(t, exp.build(rm, false))
		b, err := wire.Marshal(&exp.msg)
		must(t, err)
		m, err := wire.Unmarshal(b)
		must(t, err)
		if len(m.Fields) != 1 || m.Fields[0].Key != "queue_size" || m.Has&wire.HasUptime != 0 {
			t.Fatalf("heartbeat %s", b)
		}
	}
	if len(reported) != 3 {
		t.Errorf("want NaN, Inf and the reserved name reported once each over three beats, got %d: %v", len(reported), reported)
	}
}

func TestMalformedSettingsAreNamed(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		opts []Option
		want string
	}{
		{"interval", map[string]string{"HEARTBEAT_INTERVAL": "soon"}, nil, "HEARTBEAT_INTERVAL"},
		{"interval zero", map[string]string{"HEARTBEAT_INTERVAL": "0"}, nil, "HEARTBEAT_INTERVAL"},
		{"port", map[string]string{"HEALTH_REDIS_PORT": "seventy"}, nil, "HEALTH_REDIS_PORT"},
		{"endpoint", map[string]string{"OTEL_EXPORTER_VALKEY_ENDPOINT": "ftp://u:hunter2@x"}, nil, "OTEL_EXPORTER_VALKEY_ENDPOINT"},
		{"latest state", map[string]string{"OTEL_EXPORTER_VALKEY_LATEST_STATE": "sometimes"}, nil, "OTEL_EXPORTER_VALKEY_LATEST_STATE"},
		{"channel prefix", map[string]string{"OTEL_EXPORTER_VALKEY_CHANNEL_PREFIX": "hb:*:"}, nil, "OTEL_EXPORTER_VALKEY_CHANNEL_PREFIX"},
		{"channel template", map[string]string{"OTEL_EXPORTER_VALKEY_CHANNEL": "health:service:heartbeat"}, nil, "OTEL_EXPORTER_VALKEY_CHANNEL: channel template"},
		{"channel and prefix", map[string]string{"OTEL_EXPORTER_VALKEY_CHANNEL": "a:{service_name}", "OTEL_EXPORTER_VALKEY_CHANNEL_PREFIX": "hb:"}, nil, "are both set"},
		{"option channel", nil, []Option{WithChannel("hb:{service}")}, "WithChannel"},
		{"option channel and prefix", nil, []Option{WithChannel("hb:{service_name}"), WithChannelPrefix("hb:")}, "WithChannel and WithChannelPrefix"},
		{"option empty prefix", nil, []Option{WithChannelPrefix("")}, "WithChannelPrefix: prefix is empty"},
		{"option interval", nil, []Option{WithInterval(-time.Second)}, "WithInterval"},
		{"option endpoint", nil, []Option{WithEndpoint("redis://u:hunter2@h:0")}, "WithEndpoint"},
		{"export timeout", map[string]string{"OTEL_METRIC_EXPORT_TIMEOUT": "abc"}, nil, "OTEL_METRIC_EXPORT_TIMEOUT"},
		{"export timeout negative", map[string]string{"OTEL_METRIC_EXPORT_TIMEOUT": "-5"}, nil, "OTEL_METRIC_EXPORT_TIMEOUT"},
		{"export timeout overflow", map[string]string{"OTEL_METRIC_EXPORT_TIMEOUT": "9223372036854775807"}, nil, "OTEL_METRIC_EXPORT_TIMEOUT"},
		{"export interval", map[string]string{"OTEL_METRIC_EXPORT_INTERVAL": "abc"}, nil, "OTEL_METRIC_EXPORT_INTERVAL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := append([]Option{withEnv(func(k string) string { return tt.env[k] })}, tt.opts...)
			exp, err := New(opts...)
			if err == nil {
				_ = exp.Shutdown(context.Background())
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q: want it to name %s and hide the password", err, tt.want)
			}
		})
	}
}

// The export timeout is OTEL_METRIC_EXPORT_TIMEOUT (milliseconds) when set,
// else the smaller of 30 s and the interval, read through the same
// environment as every other setting.
func TestExportTimeout(t *testing.T) {
	for _, tt := range []struct {
		env  map[string]string
		want time.Duration
	}{
		{map[string]string{}, 30 * time.Second},
		{map[string]string{"HEARTBEAT_INTERVAL": "5"}, 5 * time.Second},
		{map[string]string{"HEARTBEAT_INTERVAL": "5", "OTEL_METRIC_EXPORT_TIMEOUT": "250"}, 250 * time.Millisecond},
	} {
		exp, err := New(WithEndpoint("localhost:1"), withEnv(func(k string) string { return tt.env[k] }))
		must(t, err)
		if got := exp.ExportTimeout(); got != tt.want {
			t.Errorf("%v: export timeout %v, want %v", tt.env, got, tt.want)
		}
		must(t, exp.Shutdown(context.Background()))
	}
}

func TestOptionsWinOverEnvironment(t *testing.T) {
	env := map[string]string{
		"HEARTBEAT_INTERVAL":            "5",
		"OTEL_EXPORTER_VALKEY_ENDPOINT": "redis://env-host:1",
	}
	exp, err := New(withEnv(func(k string) string { return env[k] }), WithInterval(2*time.Second), WithEndpoint("opt-host:2"))
	must(t, err)
	defer func() { _ = exp.Shutdown(context.Background()) }()
	if exp.Interval() != 2*time.Second || exp.Endpoint() != "redis://opt-host:2" {
		t.Errorf("interval %v endpoint %s", exp.Interval(), exp.Endpoint())
	}
	exp2, err := New(withEnv(func(k string) string { return env[k] }))
	must(t, err)
	defer func() { _ = exp2.Shutdown(context.Background()) }()
	if exp2.Interval() != 5*time.Second || exp2.Endpoint() != "redis://env-host:1" {
		t.Errorf("interval %v endpoint %s", exp2.Interval(), exp2.Endpoint())
	}
}

func TestWithServiceNameOverridesTheResource(t *testing.T) {
	if _, err := New(WithServiceName("bad name"), withEnv(func(string) string { return "" })); err == nil || !strings.Contains(err.Error(), "WithServiceName") {
		t.Errorf("bad WithServiceName: %v", err)
	}
	srv := redistest.Start(t)
	msgs := subscribe(t, srv, "heartbeat:service:*")
	exp := newExporter(t, srv, WithServiceName("geofence_service"))
	must(t, exp.Export(context.Background(), collect(t, "resource_name")))
	if got := next(t, msgs).Channel; got != "heartbeat:service:geofence_service" {
		t.Errorf("channel %q", got)
	}
}

func TestReaderShutdownTwiceIsQuiet(t *testing.T) {
	srv := redistest.Start(t)
	r := NewReader(newExporter(t, srv))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r), sdkmetric.WithResource(testResource("svc")))
	registerSeedGauges(t, mp)
	must(t, r.Shutdown(context.Background()))
	// The provider shuts the reader down again; that is not an error.
	must(t, mp.Shutdown(context.Background()))
}

// With WithClient the exporter connects through the caller's client: an
// endpoint, credentials or TLS settings given beside it would do nothing,
// so they are refused by name rather than dropped.
func TestOptionsThatDoNothingWithWithClientAreRefused(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "localhost:1"})
	defer client.Close()
	for name, opt := range map[string]Option{
		"WithEndpoint":  WithEndpoint("localhost:2"),
		"WithAuth":      WithAuth("u", "hunter2"),
		"WithTLSConfig": WithTLSConfig(&tls.Config{}),
	} {
		exp, err := New(WithClient(client), opt, withEnv(func(string) string { return "" }))
		if err == nil {
			_ = exp.Shutdown(context.Background())
		}
		if err == nil || !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s with WithClient: want an error naming it, got %v", name, err)
		}
	}
}
