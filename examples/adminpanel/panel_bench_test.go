package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/panel"

	"github.com/otel-heartbeat/heartbeat/internal/testing/proctest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/testbin"
	"github.com/otel-heartbeat/heartbeat/internal/tools/loadgen/fleet"
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

func rssMiB(b *testing.B, pid int) float64 { return statusMiB(b, pid, "VmRSS") }

// anonRSSMiB is the part of a process's resident memory that is its own
// (heap, stacks), not the pages of its executable and libraries mapped
// from files, which the kernel shares and can drop.
func anonRSSMiB(b *testing.B, pid int) float64 { return statusMiB(b, pid, "RssAnon") }

// peakRSSMiB is a process's peak resident memory so far, in MiB.
func peakRSSMiB(b *testing.B, pid int) float64 { return statusMiB(b, pid, "VmHWM") }

// statusMiB is one of a process's memory figures in /proc (VmRSS, VmHWM, RssAnon),
// in MiB.
func statusMiB(b *testing.B, pid int, field string) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// BenchmarkPanelAtTenThousandInstances runs the panel as its own process
// beside 10,000 simulated instances of 20 services heartbeating every
// 60 s (167 heartbeats a second), and measures its CPU over a window
// (PANEL_BENCH_WINDOW, default 15 s), its resident memory, and how long
// the fleet overview and a 500-instance service view take to answer.
// PANEL_BENCH_ARGS adds flags to the panel's (e.g. --series-retention 0,
// to measure what keeping values over time costs against a baseline).
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
	bin := testbin.Build(b, ".")
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
	p := proctest.Start(b, bin, proctest.Env("OTEL_EXPORTER_VALKEY_ENDPOINT="+srv.URL()),
		append([]string{"--listen", "127.0.0.1:0"}, strings.Fields(os.Getenv("PANEL_BENCH_ARGS"))...)...)
	url := strings.TrimSuffix(strings.Fields(strings.TrimPrefix(p.Expect("admin panel on ", 10*time.Second).Text, "admin panel on "))[0], "/")
	running := make(chan struct{})
	go func() { defer close(running); _, _ = fl.Run(ctx, c) }()
	defer func() { cancel(); <-running }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var fleet panel.FleetJSON
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
		fleetT, _ := sized(b, url+"/api/v1/services")
		svcT, _ := sized(b, url+"/api/v1/services/service_000")
		b.ReportMetric(float64(fleetT.Microseconds())/1000, "fleet-api-ms")
		b.ReportMetric(float64(svcT.Microseconds())/1000, "service-api-ms")
	}
}

// fatHeartbeat is a heartbeat of about 60 KB: the documented fields and
// 58 service fields of 1,000-byte strings, what a hostile or careless
// publisher can send within the wire's limits.
func fatHeartbeat(service, id string, count int64) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `{"service_name":%q,"instance_id":%q,"timestamp":"2026-12-04T10:00:00.000000+00:00","uptime_seconds":1.0,"heartbeat_count":%d,"memory_usage_mb":10.0,"cpu_usage_percent":1.0,"interval_seconds":60,"status":"running"`, service, id, count)
	filler := strings.Repeat("x", 1000)
	for i := range 58 {
		fmt.Fprintf(&b, `,"field_%02d":"%s"`, i, filler)
	}
	b.WriteString("}")
	return []byte(b.String())
}

// BenchmarkPanelUnderFatHeartbeats runs the panel as its own process and
// floods it with 5,000 instance ids publishing 60 KB heartbeats, twice
// each, through a real redis-server: what the panel keeps per instance is
// bounded by bytes, not by the size of the heartbeats, so its resident
// memory grows by a few KB per instance (once: 15 MB to 422 MB, and 2 GB
// when the flood outran the panel's event queue). It reports the panel's
// RSS before (the baseline, same run) and after, and fails when the
// growth passes the stated bound: the kept heartbeats' 4 KiB per instance
// and the monitor's event queue's 16 MiB, twice over for the garbage
// collector's headroom, plus 2 KiB per instance of the panel's own and
// 16 MiB that does not grow with the fleet.
func BenchmarkPanelUnderFatHeartbeats(b *testing.B) {
	const ids, rounds = 5_000, 2
	srv := redistest.Start(b)
	bin := testbin.Build(b, ".")
	c := srv.Client(b)
	p := proctest.Start(b, bin, proctest.Env("OTEL_EXPORTER_VALKEY_ENDPOINT="+srv.URL()), "--listen", "127.0.0.1:0")
	url := strings.TrimSuffix(strings.Fields(strings.TrimPrefix(p.Expect("admin panel on ", 10*time.Second).Text, "admin panel on "))[0], "/")
	pid := p.Cmd.Process.Pid
	ctx := context.Background()
	for b.Loop() {
		before := rssMiB(b, pid)
		for round := range rounds {
			pipe := c.Pipeline()
			for i := range ids {
				pipe.Publish(ctx, "heartbeat:service:fat", fatHeartbeat("fat", fmt.Sprintf("fat-%05d", i), int64(round+1)))
				if pipe.Len() == 100 {
					if _, err := pipe.Exec(ctx); err != nil {
						b.Fatal(err)
					}
				}
			}
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
		deadline := time.Now().Add(60 * time.Second)
		for alive := 0; alive != ids; {
			// The fleet's counts: the service view of 5,000 instances would
			// itself cost the panel what is measured here.
			var f panel.FleetJSON
			resp, err := http.Get(url + "/api/v1/services")
			if err == nil {
				_ = decodeJSON(resp, &f)
			}
			for _, s := range f.Services {
				if s.Name == "fat" {
					alive = s.Counts.Alive
				}
			}
			if time.Now().After(deadline) {
				b.Fatalf("the panel sees %d of %d alive", alive, ids)
			}
			time.Sleep(100 * time.Millisecond) // another process's state: poll
		}
		after := rssMiB(b, pid)
		b.ReportMetric(before, "rss-before-MiB")
		b.ReportMetric(after, "rss-after-MiB")
		b.ReportMetric((after-before)*1024/ids, "KiB/instance")
		if bound := 2*(ids*4.0/1024+16) + ids*2.0/1024 + 16; after-before > bound {
			b.Fatalf("the panel grew by %.0f MiB under %d fat heartbeats of %d instances, more than the bound of %.0f MiB", after-before, ids*rounds, ids, bound)
		}
	}
}
