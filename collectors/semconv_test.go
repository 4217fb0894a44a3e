package collectors

import (
	"context"
	"fmt"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/semconv/v1.43.0/processconv"
)

// shape is what a backend sees of an instrument's kind: the data type,
// monotonic or not for sums, and the unit.
func shape(md metricdata.Metrics) string {
	switch d := md.Data.(type) {
	case metricdata.Sum[int64]:
		return fmt.Sprintf("Sum[int64] monotonic=%v unit=%s", d.IsMonotonic, md.Unit)
	case metricdata.Sum[float64]:
		return fmt.Sprintf("Sum[float64] monotonic=%v unit=%s", d.IsMonotonic, md.Unit)
	}
	return fmt.Sprintf("%T unit=%s", md.Data, md.Unit)
}

func collectAll(t *testing.T, r *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, md := range sm.Metrics {
			out[md.Name] = md
		}
	}
	return out
}

// The process instruments are the semantic conventions' own, as otel-go's
// semconv package declares them, so that a backend that also receives the
// Collector's process metrics sees one type per name. The reference is
// built with processconv, not with this package's constants.
func TestProcessInstrumentsFollowTheSemanticConventions(t *testing.T) {
	ref := sdkmetric.NewManualReader()
	refMP := sdkmetric.NewMeterProvider(sdkmetric.WithReader(ref))
	defer refMP.Shutdown(context.Background())
	m := refMP.Meter("reference")
	uptime, err := processconv.NewUptimeObservable(m)
	must(t, err)
	mem, err := processconv.NewMemoryUsageObservable(m)
	must(t, err)
	cpu, err := processconv.NewCPUTime(m)
	must(t, err)
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveFloat64(uptime.Inst(), 1)
		o.ObserveInt64(mem.Inst(), 1)
		o.ObserveFloat64(cpu.Inst(), 1, metric.WithAttributes(cpu.AttrCPUMode(processconv.CPUModeUser)))
		return nil
	}, uptime.Inst(), mem.Inst(), cpu.Inst())
	must(t, err)
	want := collectAll(t, ref)

	ours := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(ours))
	defer mp.Shutdown(context.Background())
	p, err := NewProcess(WithMeterProvider(mp))
	must(t, err)
	defer p.Unregister()
	got := collectAll(t, ours)

	for _, name := range []string{uptime.Name(), mem.Name(), cpu.Name()} {
		w, ok := want[name]
		if !ok {
			t.Fatalf("the reference has no %s", name)
		}
		g, ok := got[name]
		if !ok {
			t.Errorf("the process collector has no %s", name)
			continue
		}
		if shape(g) != shape(w) {
			t.Errorf("%s: %s, the semantic conventions say %s", name, shape(g), shape(w))
		}
		if g.Description != w.Description {
			t.Errorf("%s: description %q, the semantic conventions say %q", name, g.Description, w.Description)
		}
	}
	if sum, ok := got[cpu.Name()].Data.(metricdata.Sum[float64]); ok {
		modes := map[attribute.Value]bool{}
		for _, dp := range sum.DataPoints {
			v, _ := dp.Attributes.Value(attribute.Key("cpu.mode"))
			modes[v] = true
		}
		for _, m := range []processconv.CPUModeAttr{processconv.CPUModeUser, processconv.CPUModeSystem} {
			if !modes[cpu.AttrCPUMode(m).Value] {
				t.Errorf("%s has no data point with %v (has %v)", cpu.Name(), cpu.AttrCPUMode(m), modes)
			}
		}
	}
}
