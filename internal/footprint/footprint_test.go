package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/otel-heartbeat/heartbeat/internal/leaktest"
	"github.com/otel-heartbeat/heartbeat/internal/redistest"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

// BenchmarkIdleFootprint runs the footprint program against a redis-server
// of its own and reports what a running Publisher adds to a minimal process.
func BenchmarkIdleFootprint(b *testing.B) {
	srv := redistest.Start(b)
	bin := filepath.Join(b.TempDir(), "footprint")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
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
	bin := filepath.Join(t.TempDir(), "footprint")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
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
	if r.Publisher.Heartbeats == 0 || r.Bare.RSSBytes == 0 || r.Publisher.Goroutines <= r.Bare.Goroutines-1 {
		t.Errorf("result %+v", r)
	}
}
