package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"testing"

	"github.com/otel-heartbeat/heartbeat/internal/testing/leaktest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/testbin"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

// BenchmarkIdleFootprint runs the footprint program against a redis-server
// of its own and reports what a running Publisher adds to a minimal process.
func BenchmarkIdleFootprint(b *testing.B) {
	srv := redistest.Start(b)
	bin := testbin.Build(b, ".")
	for b.Loop() {
		cmd := exec.Command(bin, "--busy", "5s")
		cmd.Env = append(os.Environ(), "OTEL_EXPORTER_VALKEY_ENDPOINT="+srv.URL())
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			b.Fatal(err)
		}
		var r Result
		if err := json.Unmarshal(out, &r); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		b.ReportMetric(r.RSSDeltaMiB, "rss-MiB")
		b.ReportMetric(float64(r.GoroutinesDelta), "goroutines")
		b.ReportMetric(r.CPUSecondsPer1000Beats, "cpu-s/1000-heartbeats")
	}
}

// The program itself works: both modes run and the publisher sends.
func TestFootprintProgram(t *testing.T) {
	srv := redistest.Start(t)
	bin := testbin.Build(t, ".")
	cmd := exec.Command(bin, "--settle", "100ms", "--busy", "300ms")
	cmd.Env = append(os.Environ(), "OTEL_EXPORTER_VALKEY_ENDPOINT="+srv.URL())
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var r Result
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	if r.Publisher.Heartbeats == 0 || r.Bare.RSSBytes == 0 || r.Publisher.Goroutines < r.Bare.Goroutines {
		t.Errorf("result %+v", r)
	}
}
