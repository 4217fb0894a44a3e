// Command footprint measures what a running Publisher adds to a minimal
// process: resident memory and goroutines while idle between heartbeats,
// and CPU time per 1,000 heartbeats. It runs itself twice, once bare and
// once with a Publisher, so that both measurements come from the same
// binary and differ only by the Publisher.
//
//	OTEL_EXPORTER_VALKEY_ENDPOINT=redis://127.0.0.1:6379 go run ./internal/tools/footprint
//
// It prints one JSON object; the footprint benchmark runs it against a
// redis-server of its own.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat"
)

const modeEnv = "HEARTBEAT_FOOTPRINT_MODE"

// Sample is what one mode measures.
type Sample struct {
	RSSBytes   int64   `json:"rss_bytes"`
	Goroutines int     `json:"goroutines"`
	CPUSeconds float64 `json:"cpu_seconds"` // over the busy window
	Heartbeats int64   `json:"heartbeats"`  // sent in the busy window
}

// Result compares the two modes.
type Result struct {
	Bare, Publisher        Sample
	RSSDeltaMiB            float64 `json:"rss_delta_mib"`
	GoroutinesDelta        int     `json:"goroutines_delta"`
	CPUSecondsPer1000Beats float64 `json:"cpu_seconds_per_1000_heartbeats"`
}

func main() {
	settle := flag.Duration("settle", 2*time.Second, "wait before measuring idle memory")
	busy := flag.Duration("busy", 10*time.Second, "window over which CPU is measured")
	interval := flag.Duration("interval", 10*time.Millisecond, "heartbeat interval in the busy window")
	flag.Parse()
	if mode := os.Getenv(modeEnv); mode != "" {
		s, err := measure(mode, *settle, *busy, *interval)
		if err != nil {
			fmt.Fprintln(os.Stderr, "footprint:", err)
			os.Exit(1)
		}
		_ = json.NewEncoder(os.Stdout).Encode(s)
		return
	}
	var r Result
	for _, mode := range []string{"bare", "publisher"} {
		s, err := child(mode, os.Args[1:])
		if err != nil {
			fmt.Fprintln(os.Stderr, "footprint:", err)
			os.Exit(1)
		}
		if mode == "bare" {
			r.Bare = s
		} else {
			r.Publisher = s
		}
	}
	r.RSSDeltaMiB = float64(r.Publisher.RSSBytes-r.Bare.RSSBytes) / (1 << 20)
	r.GoroutinesDelta = r.Publisher.Goroutines - r.Bare.Goroutines
	if r.Publisher.Heartbeats > 0 {
		r.CPUSecondsPer1000Beats = (r.Publisher.CPUSeconds - r.Bare.CPUSeconds) / float64(r.Publisher.Heartbeats) * 1000
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(r)
}

func child(mode string, args []string) (Sample, error) {
	self, err := os.Executable()
	if err != nil {
		return Sample{}, err
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), modeEnv+"="+mode)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return Sample{}, fmt.Errorf("%s: %w", mode, err)
	}
	var s Sample
	return s, json.Unmarshal(out, &s)
}

// measure runs in the child: idle memory and goroutines after settling,
// then CPU over a busy window of frequent heartbeats.
func measure(mode string, settle, busy, interval time.Duration) (Sample, error) {
	ctx := context.Background()
	var p *otelheartbeat.Manager
	if mode == "publisher" {
		var err error
		p, err = otelheartbeat.NewManager("footprint", otelheartbeat.WithInterval(time.Hour))
		if err != nil {
			return Sample{}, err
		}
		_ = p.AddQueueSizeCollector(func() int { return 1380 })
		_ = p.AddAPIStatusCollector(func() string { return "authenticated" })
		_ = p.AddLastSuccessfulOperationCollector(time.Now)
		if err := p.Start(ctx); err != nil {
			return Sample{}, err
		}
		defer p.Stop(ctx)
	}
	time.Sleep(settle) // idle: nothing to wait for but time
	runtime.GC()
	s := Sample{Goroutines: runtime.NumGoroutine()}
	rss, err := residentBytes()
	if err != nil {
		return s, err
	}
	s.RSSBytes = rss

	// The busy window: heartbeats as fast as the interval allows, driven
	// the way the periodic reader drives them.
	cpu0 := cpuSeconds()
	deadline := time.Now().Add(busy)
	if p != nil {
		r := p.Reader()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for time.Now().Before(deadline) {
			<-tick.C
			if err := r.ForceFlush(ctx); err != nil {
				return s, err
			}
			s.Heartbeats++
		}
	} else {
		time.Sleep(busy)
	}
	s.CPUSeconds = cpuSeconds() - cpu0
	return s, nil
}

func residentBytes() (int64, error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, err
	}
	pages, err := strconv.ParseInt(strings.Fields(string(b))[1], 10, 64)
	return pages * int64(os.Getpagesize()), err
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
