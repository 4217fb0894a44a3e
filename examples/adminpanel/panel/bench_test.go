package panel

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/examples/loadgen/fleet"
	"github.com/otel-heartbeat/heartbeat/internal/proctest"
	"github.com/otel-heartbeat/heartbeat/internal/redistest"
	"github.com/otel-heartbeat/heartbeat/internal/testbin"
)

// cpuSeconds reads a process's user and system CPU time from /proc.
func cpuSeconds(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

func rssMiB(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

func timed(b *testing.B, url string) time.Duration {
	start := time.Now()
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var n int64
	buf := make([]byte, 64<<10)
	for {
		k, err := resp.Body.Read(buf)
		n += int64(k)
		if err != nil {
			break
		}
	}
	if resp.StatusCode != 200 {
		b.Fatalf("%s: %s", url, resp.Status)
	}
	return time.Since(start)
}

// BenchmarkPanelAtTenThousandInstances runs the panel as its own process
// beside 10,000 simulated instances of 20 services heartbeating every
// 60 s (167 heartbeats a second), and measures its CPU over a window
// (PANEL_BENCH_WINDOW, default 15 s), its resident memory, and how long
// the fleet overview and a 500-instance service view take to answer.
func BenchmarkPanelAtTenThousandInstances(b *testing.B) {
	window := 15 * time.Second
	if v := os.Getenv("PANEL_BENCH_WINDOW"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatal(err)
		}
		window = d
	}
	srv := redistest.Start(b)
	bin := testbin.Build(b, "..")
	fl, err := fleet.New(fleet.Config{Services: 20, Instances: 10_000, Interval: time.Minute, LatestState: true})
	if err != nil {
		b.Fatal(err)
	}
	c := srv.Client(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := fl.Round(ctx, c); err != nil {
		b.Fatal(err)
	}
	p := proctest.Start(b, bin, proctest.Env("OTEL_EXPORTER_VALKEY_ENDPOINT="+srv.URL()), "--listen", "127.0.0.1:0")
	url := strings.TrimSuffix(strings.Fields(strings.TrimPrefix(p.Expect("admin panel on ", 10*time.Second).Text, "admin panel on "))[0], "/")
	running := make(chan struct{})
	go func() { defer close(running); _, _ = fl.Run(ctx, c) }()
	defer func() { cancel(); <-running }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var fleet FleetJSON
		resp, err := http.Get(url + "/api/v1/services")
		if err == nil {
			_ = decodeJSON(resp, &fleet)
		}
		n := 0
		for _, s := range fleet.Services {
			n += s.Counts.Alive
		}
		if n == 10_000 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the panel sees %d of 10,000 alive", n)
		}
		time.Sleep(100 * time.Millisecond) // another process's state: poll
	}
	pid := p.Cmd.Process.Pid
	for b.Loop() {
		before, start := cpuSeconds(b, pid), time.Now()
		t := time.NewTimer(window)
		<-t.C
		cpu := (cpuSeconds(b, pid) - before) / time.Since(start).Seconds()
		b.ReportMetric(cpu*100, "cpu-%")
		b.ReportMetric(rssMiB(b, pid), "rss-MiB")
		b.ReportMetric(float64(timed(b, url+"/api/v1/services").Microseconds())/1000, "fleet-api-ms")
		b.ReportMetric(float64(timed(b, url+"/api/v1/services/service_000").Microseconds())/1000, "service-api-ms")
	}
}
