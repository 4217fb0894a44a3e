package collectors

import (
	"context"
	"errors"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/otel-heartbeat/heartbeat/internal/convention"
	"github.com/otel-heartbeat/heartbeat/internal/testing/leaktest"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

func newProvider(t *testing.T) (*sdkmetric.MeterProvider, *sdkmetric.ManualReader) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return mp, r
}

// collect returns the heartbeat scope's metrics by name.
func collect(t *testing.T, r *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("collect: %v", err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != convention.ScopeName {
			continue
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// residentBytes reads this process's RSS from /proc, independently of gopsutil.
func residentBytes(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	pages, err := strconv.ParseInt(strings.Fields(string(b))[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return pages * int64(os.Getpagesize())
}

func TestProcessObservesUptimeMemoryAndCPU(t *testing.T) {
	mp, r := newProvider(t)
	p, err := NewProcess(WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Unregister()
	// Use enough CPU to be seen at the kernel's 10 ms accounting grain,
	// measured independently of gopsutil.
	x := 0.0
	for cpuSeconds(t) < 0.05 {
		for i := 0; i < 100_000; i++ {
			x += math.Sqrt(float64(i))
		}
	}
	sink = x
	ms := collect(t, r)

	up := ms["process.uptime"].Data.(metricdata.Gauge[float64]).DataPoints[0].Value
	if up <= 0 || up > 3600 {
		t.Errorf("uptime %v s", up)
	}
	if u := ms["process.uptime"].Unit; u != "s" {
		t.Errorf("uptime unit %q", u)
	}
	rss := ms["process.memory.usage"].Data.(metricdata.Sum[int64]).DataPoints[0].Value
	if want := residentBytes(t); math.Abs(float64(rss-want)) > 0.2*float64(want) {
		t.Errorf("memory %d bytes, /proc says %d", rss, want)
	}
	cpu := ms["process.cpu.time"].Data.(metricdata.Sum[float64])
	modes := map[string]float64{}
	for _, dp := range cpu.DataPoints {
		mode, _ := dp.Attributes.Value("cpu.mode")
		modes[mode.AsString()] = dp.Value
	}
	if len(modes) != 2 || modes["user"] < 0 || modes["system"] < 0 || !cpu.IsMonotonic {
		t.Errorf("cpu time %v", modes)
	}
	if total, want := modes["user"]+modes["system"], cpuSeconds(t); total < 0.03 || total > want+0.05 {
		t.Errorf("cpu time %.3fs, getrusage says %.3fs", total, want)
	}

	if err := p.Unregister(); err != nil {
		t.Fatal(err)
	}
	if _, ok := collect(t, r)["process.uptime"]; ok {
		t.Error("observed after Unregister")
	}
	if err := p.Unregister(); err != nil {
		t.Errorf("second Unregister: %v", err)
	}
}

var sink float64

// cpuSeconds is this process's user and system CPU time from getrusage.
func cpuSeconds(t *testing.T) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func TestServiceValuesFollowTheGaugeConvention(t *testing.T) {
	mp, r := newProvider(t)
	f := NewFields(WithMeterProvider(mp))
	defer f.Unregister(context.Background())
	last := time.Date(2025, 1, 16, 8, 29, 45, 123456000, time.UTC)
	must(t, f.Add("queue_size", Int(func() int64 { return 1380 })))
	must(t, f.Add("hit_ratio", Float(func() float64 { return 0.75 })))
	must(t, f.Add("api_status", String(func() string { return "authenticated" })))
	must(t, f.Add("last_successful_operation", Timestamp(func() time.Time { return last })))
	must(t, f.Add("never_done", Timestamp(func() time.Time { return time.Time{} })))
	ms := collect(t, r)

	if v := ms["heartbeat.queue_size"].Data.(metricdata.Gauge[int64]).DataPoints[0].Value; v != 1380 {
		t.Errorf("queue_size %d", v)
	}
	if v := ms["heartbeat.hit_ratio"].Data.(metricdata.Gauge[float64]).DataPoints[0].Value; v != 0.75 {
		t.Errorf("hit_ratio %v", v)
	}
	dp := ms["heartbeat.api_status.info"].Data.(metricdata.Gauge[int64]).DataPoints[0]
	if v, _ := dp.Attributes.Value("heartbeat.value"); dp.Value != 1 || v.AsString() != "authenticated" {
		t.Errorf("api_status %v %v", dp.Value, v.AsString())
	}
	ts := ms["heartbeat.last_successful_operation.timestamp"]
	if v := ts.Data.(metricdata.Gauge[float64]).DataPoints[0].Value; v != float64(last.UnixMicro())/1e6 || ts.Unit != "s" {
		t.Errorf("last_successful_operation %v %q", v, ts.Unit)
	}
	if m, ok := ms["heartbeat.never_done.timestamp"]; ok && len(m.Data.(metricdata.Gauge[float64]).DataPoints) > 0 {
		t.Error("a zero time was observed")
	}
	if got := strings.Join(f.Names(), ","); got != "api_status,hit_ratio,last_successful_operation,never_done,queue_size" {
		t.Errorf("Names() = %s", got)
	}
}

func TestStringStateChangesReplaceTheOldValue(t *testing.T) {
	mp, r := newProvider(t)
	f := NewFields(WithMeterProvider(mp))
	defer f.Unregister(context.Background())
	var state atomic.Value
	state.Store("authenticating")
	must(t, f.Add("api_status", String(func() string { return state.Load().(string) })))
	collect(t, r)
	state.Store("authenticated")
	dps := collect(t, r)["heartbeat.api_status.info"].Data.(metricdata.Gauge[int64]).DataPoints
	if len(dps) != 1 {
		t.Fatalf("%d data points; the old state lingers", len(dps))
	}
	if v, _ := dps[0].Attributes.Value("heartbeat.value"); v.AsString() != "authenticated" {
		t.Errorf("state %q", v.AsString())
	}
}

func TestFailingCollectorsLoseOnlyTheirOwnField(t *testing.T) {
	mp, r := newProvider(t)
	var mu sync.Mutex
	var reported []string
	handler := func(err error) { mu.Lock(); reported = append(reported, err.Error()); mu.Unlock() }
	f := NewFields(WithMeterProvider(mp), WithTimeout(50*time.Millisecond), WithErrorHandler(handler))

	release := make(chan struct{})
	var blockedStarts atomic.Int32
	must(t, f.Add("queue_size", Int(func() int64 { return 7 })))
	must(t, f.Add("panics", Int(func() int64 { panic("boom") })))
	must(t, f.Add("fails", IntFunc(func(context.Context) (int64, error) { return 0, errors.New("backend down") })))
	must(t, f.Add("not_a_number", Float(func() float64 { return math.NaN() })))
	must(t, f.Add("infinite", Float(func() float64 { return math.Inf(-1) })))
	must(t, f.Add("blocks", Int(func() int64 { blockedStarts.Add(1); <-release; return 1 })))

	for beat := 0; beat < 3; beat++ {
		ms := collect(t, r)
		if dps := ms["heartbeat.queue_size"].Data.(metricdata.Gauge[int64]).DataPoints; len(dps) != 1 || dps[0].Value != 7 {
			t.Fatalf("beat %d: the healthy field is missing", beat)
		}
		for _, name := range []string{"heartbeat.panics", "heartbeat.fails", "heartbeat.not_a_number", "heartbeat.infinite", "heartbeat.blocks"} {
			if m, ok := ms[name]; ok && dataPoints(m) > 0 {
				t.Errorf("beat %d: %s was observed", beat, name)
			}
		}
	}
	if n := blockedStarts.Load(); n != 1 {
		t.Errorf("the blocked collector was started %d times; want once while it is stuck", n)
	}
	mu.Lock()
	got := strings.Join(reported, "\n")
	n := len(reported)
	mu.Unlock()
	if n != 5 {
		t.Errorf("want each of the five failures reported once over three beats, got %d:\n%s", n, got)
	}
	for _, want := range []string{"panics: panicked: boom", "fails: backend down", "not_a_number: NaN", "infinite: -Inf", "blocks: collector did not return within 50ms"} {
		if !strings.Contains(got, want) {
			t.Errorf("reports lack %q:\n%s", want, got)
		}
	}

	// Unregister names the collector that ignores its context.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	err := f.Unregister(ctx)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "blocks") {
		t.Errorf("Unregister with a stuck collector: %v", err)
	}
	close(release)
	if err := f.Unregister(context.Background()); err != nil {
		t.Errorf("Unregister after release: %v", err)
	}
}

func TestUnregisterCancelsCollectorsThatHonourTheirContext(t *testing.T) {
	mp, r := newProvider(t)
	f := NewFields(WithMeterProvider(mp), WithTimeout(time.Hour))
	started := make(chan struct{})
	must(t, f.Add("waits", IntFunc(func(ctx context.Context) (int64, error) {
		close(started)
		<-ctx.Done()
		return 0, ctx.Err()
	})))
	collected := make(chan struct{})
	go func() { collect(t, r); close(collected) }()
	<-started
	if err := f.Unregister(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-collected
	if err := f.Add("late", Int(func() int64 { return 1 })); !errors.Is(err, ErrUnregistered) {
		t.Errorf("Add after Unregister: %v", err)
	}
}

func TestFieldNamesAreChecked(t *testing.T) {
	mp, _ := newProvider(t)
	f := NewFields(WithMeterProvider(mp))
	defer f.Unregister(context.Background())
	ok := Int(func() int64 { return 1 })
	for _, tt := range []struct {
		name string
		c    Collector
		want string
	}{
		{"heartbeat_count", ok, "clashes with a documented heartbeat field"},
		{"memory_usage_mb", ok, "clashes"},
		{"status", ok, "clashes"},
		{"queue size", ok, "may hold only"},
		{"queue.size", ok, "may hold only"},
		{"", ok, "empty"},
		{"1st", ok, "must start with"},
		{"q", Collector{}, "collector is empty"},
	} {
		err := f.Add(tt.name, tt.c)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Add(%q) = %v, want %q", tt.name, err, tt.want)
		}
	}
	must(t, f.Add("queue_size", ok))
	if err := f.Add("queue_size", ok); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Errorf("duplicate: %v", err)
	}
	for i := 1; i < MaxFields; i++ {
		must(t, f.Add("f"+strconv.Itoa(i), ok))
	}
	if err := f.Add("one_too_many", ok); err == nil || !strings.Contains(err.Error(), "at most 64") {
		t.Errorf("field %d: %v", MaxFields+1, err)
	}
}

func TestLongStringsAreCut(t *testing.T) {
	mp, r := newProvider(t)
	f := NewFields(WithMeterProvider(mp))
	defer f.Unregister(context.Background())
	must(t, f.Add("status_text", String(func() string { return strings.Repeat("é", MaxStringLength) })))
	dp := collect(t, r)["heartbeat.status_text.info"].Data.(metricdata.Gauge[int64]).DataPoints[0]
	v, _ := dp.Attributes.Value(attribute.Key("heartbeat.value"))
	if len(v.AsString()) > MaxStringLength || !strings.HasPrefix(v.AsString(), "éé") || strings.ContainsRune(v.AsString(), '\uFFFD') {
		t.Errorf("cut to %d bytes", len(v.AsString()))
	}
}

func dataPoints(m metricdata.Metrics) int {
	switch d := m.Data.(type) {
	case metricdata.Gauge[int64]:
		return len(d.DataPoints)
	case metricdata.Gauge[float64]:
		return len(d.DataPoints)
	}
	return 0
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
