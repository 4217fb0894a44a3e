package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/panel"

	"github.com/otel-heartbeat/heartbeat/internal/testing/proctest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/testbin"
)

// limitConfig is one fleet of BenchmarkPanelAtTheLimit.
type limitConfig struct {
	instances, services int
	interval, window    time.Duration
}

// String names the fleet as its sub-benchmark: INSTANCES@INTERVAL for
// 50 services, the default, and _in_N_services after it for another
// number (make bench runs one service too).
func (c limitConfig) String() string {
	name := fmt.Sprintf("%d@%v", c.instances, c.interval)
	switch c.services {
	case 50:
		return name
	case 1:
		return name + "_in_1_service"
	}
	return fmt.Sprintf("%s_in_%d_services", name, c.services)
}

// limitsFromEnv reads BenchmarkPanelAtTheLimit's fleets from the
// environment: PANEL_LIMIT_FLEETS, comma-separated INSTANCES@INTERVAL
// (default 20000@10s, what make test runs once), PANEL_LIMIT_SERVICES
// (50), PANEL_LIMIT_WINDOW (10s) and PANEL_LIMIT_ARGS, flags added to the
// panel's (e.g. --series-retention 0: values over time take about 24 KB
// of Valkey an instance, 24 GB at a million), PANEL_LIMIT_PANEL_ENV,
// variables added to the panel's environment (e.g. GOMEMLIMIT=1300MiB, the
// memory an operator gives it), PANEL_LIMIT_SERVER_ARGS, the
// redis-server's (e.g. --client-output-buffer-limit pubsub 0 0 0), and
// PANEL_LIMIT_BASELINE, a git revision whose panel is measured too, in
// the same run (see BenchmarkPanelAtTheLimit).
func limitsFromEnv(b *testing.B) []limitConfig {
	services, window := 50, 10*time.Second
	if v := os.Getenv("PANEL_LIMIT_SERVICES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("PANEL_LIMIT_SERVICES=%q: want a whole number of at least 1", v)
		}
		services = n
	}
	if v := os.Getenv("PANEL_LIMIT_WINDOW"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			b.Fatalf("PANEL_LIMIT_WINDOW=%q: want a positive duration", v)
		}
		window = d
	}
	fleets := cmp.Or(os.Getenv("PANEL_LIMIT_FLEETS"), "20000@10s")
	var out []limitConfig
	for _, f := range strings.Split(fleets, ",") {
		n, iv, ok := strings.Cut(strings.TrimSpace(f), "@")
		instances, err := strconv.Atoi(n)
		interval, derr := time.ParseDuration(iv)
		if !ok || err != nil || derr != nil || instances < services || interval <= 0 {
			b.Fatalf("PANEL_LIMIT_FLEETS: %q: want INSTANCES@INTERVAL, e.g. 100000@10s, with at least one instance a service", f)
		}
		out = append(out, limitConfig{instances: instances, services: services, interval: interval, window: window})
	}
	return out
}

// consumer is one process reading the heartbeats while the fleet runs.
type consumer struct {
	name string
	pid  int
	stop func()
}

// quietly starts a consumer whose output nobody reads (it goes to
// /dev/null, as a drain's does), killed when the benchmark ends.
func quietly(b *testing.B, name, bin string, environ []string, args ...string) consumer {
	cmd := exec.Command(bin, args...)
	cmd.Env = environ
	if err := cmd.Start(); err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	b.Cleanup(stop)
	return consumer{name: name, pid: cmd.Process.Pid, stop: stop}
}

// BenchmarkPanelAtTheLimit measures what reading a large fleet costs, per
// heartbeat, three ways in one run against one real redis-server: the
// bare drain (redis-cli PSUBSCRIBE, its output thrown away), the monitor
// (--json, thrown away) and the admin panel as shipped (recorder on:
// history, uptime, alerts, values over time). For each fleet of
// PANEL_LIMIT_FLEETS (a sub-benchmark each) a loadgen process publishes
// its instances, of PANEL_LIMIT_SERVICES services, at its interval, with
// latest-state keys; each consumer runs alone, is given one interval to settle (and the panel
// until it sees every instance alive), and is measured over
// PANEL_LIMIT_WINDOW. Heartbeats are counted by the server's own PUBLISH
// count over the same window. It reports each consumer's CPU per
// heartbeat, the panel's ratio to the drain, its resident memory per
// tracked instance at the end of the window (and of that, its anonymous
// memory: the rest is its executable's pages) and its peak since it started
// (reading the fleet's latest-state keys at start, say), how long the
// fleet overview and the first page of a service view take, with the
// page's size, and the server's CPU per heartbeat over each consumer's
// window: the publications alone cost it what it spends beside the drain.
// With PANEL_LIMIT_BASELINE=REV it builds the panel of that revision too
// and measures it just before the working tree's, against the same fleet
// and server, reporting its figures as baseline-* and the ratio of the
// two panels' CPU (panel/baseline-cpu): a change's cost in one command,
// on the same minutes of a shared machine's load.
func BenchmarkPanelAtTheLimit(b *testing.B) {
	for _, cfg := range limitsFromEnv(b) {
		b.Run(cfg.String(), func(b *testing.B) { panelAtTheLimit(b, cfg) })
	}
}

func panelAtTheLimit(b *testing.B, cfg limitConfig) {
	srv := redistest.Start(b, strings.Fields(os.Getenv("PANEL_LIMIT_SERVER_ARGS"))...)
	panelBin := testbin.Build(b, ".")
	baselineBin := buildBaseline(b)
	monitorBin := testbin.Build(b, "../monitor")
	loadgenBin := testbin.Build(b, "../../internal/tools/loadgen")
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		b.Fatalf("redis-cli (Debian's redis-tools, beside redis-server): %v", err)
	}
	environ := proctest.Env("OTEL_EXPORTER_VALKEY_ENDPOINT=" + srv.URL())
	gen := quietly(b, "loadgen", loadgenBin, environ, "--instances", strconv.Itoa(cfg.instances),
		"--services", strconv.Itoa(cfg.services), "--interval", cfg.interval.String())
	defer gen.stop()
	client := srv.Client(b)
	ctx := context.Background()
	// The first round is sent at once: wait until every latest-state key is
	// there, and one more interval for the paced rounds to settle.
	// Minutes to spare, and one more a 100,000 instances: a million take
	// a while to publish, and the panel to read.
	spare := 5*time.Minute + time.Duration(cfg.instances/100_000)*time.Minute
	deadline := time.Now().Add(cfg.interval + spare)
	for n := int64(0); n < int64(cfg.instances); {
		n, _ = client.DBSize(ctx).Result()
		if time.Now().After(deadline) {
			b.Fatalf("loadgen wrote %d of %d latest-state keys", n, cfg.instances)
		}
		time.Sleep(200 * time.Millisecond) // another process's progress: poll
	}
	patterns := func() int64 { n, _ := client.PubSubNumPat(ctx).Result(); return n }

	// measure runs c over the window once it is subscribed and settled,
	// and returns its CPU per heartbeat in µs, and the server's over the
	// same window: the fleet's publications, and what c asks of it;
	// sample, when not nil, is called every second of the window and
	// at its end, so at least once however short the window.
	measure := func(c consumer, settled, sample func()) (float64, float64) {
		for patterns() == 0 {
			if time.Now().After(deadline) {
				b.Fatalf("%s never subscribed", c.name)
			}
			time.Sleep(50 * time.Millisecond) // another process's subscription: poll
		}
		settled()
		cpu0, pub0, srv0 := cpuSeconds(b, c.pid), float64(srv.Calls(b, "publish")), srv.CPU(b)
		t := time.NewTimer(cfg.window)
		every := time.NewTicker(time.Second)
	window:
		for {
			select {
			case <-every.C:
				if sample != nil {
					sample()
				}
			case <-t.C:
				break window
			}
		}
		every.Stop()
		if sample != nil {
			sample()
		}
		cpu, pub, srvCPU := cpuSeconds(b, c.pid)-cpu0, float64(srv.Calls(b, "publish"))-pub0, srv.CPU(b)-srv0
		if pub == 0 {
			b.Fatalf("%s: no heartbeat published in the window", c.name)
		}
		return cpu / pub * 1e6, srvCPU.Seconds() / pub * 1e6
	}
	oneInterval := func() { t := time.NewTimer(cfg.interval); <-t.C }

	// runPanel runs the panel built at bin alone, measures it, and stops it.
	runPanel := func(bin string) panelFigures {
		p := proctest.Start(b, bin, append(slices.Clip(environ), strings.Fields(os.Getenv("PANEL_LIMIT_PANEL_ENV"))...), append([]string{"--listen", "127.0.0.1:0"}, strings.Fields(os.Getenv("PANEL_LIMIT_ARGS"))...)...)
		url := strings.TrimSuffix(strings.Fields(strings.TrimPrefix(p.Expect("admin panel on ", 30*time.Second).Text, "admin panel on "))[0], "/")
		deadline = time.Now().Add(spare)
		var (
			f      panelFigures
			meanOf float64 // the samples of resident memory so far
		)
		sample := func() {
			meanOf++
			f.meanRSS += (rssMiB(b, p.Cmd.Process.Pid) - f.meanRSS) / meanOf
		}
		f.cpu, f.server = measure(consumer{name: "adminpanel", pid: p.Cmd.Process.Pid}, func() {
			for alive := 0; alive < cfg.instances; {
				var fleet panel.FleetJSON
				if resp, err := http.Get(url + "/api/v1/services"); err == nil {
					_ = decodeJSON(resp, &fleet)
				}
				alive = 0
				for _, s := range fleet.Services {
					alive += s.Counts.Alive
				}
				if time.Now().After(deadline) {
					b.Fatalf("the panel sees %d of %d alive", alive, cfg.instances)
				}
				time.Sleep(500 * time.Millisecond) // another process's state: poll
			}
			oneInterval()
		}, sample)
		f.rss, f.anon, f.peak = rssMiB(b, p.Cmd.Process.Pid), anonRSSMiB(b, p.Cmd.Process.Pid), peakRSSMiB(b, p.Cmd.Process.Pid)
		f.fleet, _ = sized(b, url+"/api/v1/services")
		f.view, f.viewBytes = sized(b, url+"/api/v1/services/service_000")
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		if err := p.Wait(30 * time.Second); err != nil {
			b.Errorf("the panel's stop: %v", err)
		}
		return f
	}

	for b.Loop() {
		deadline = time.Now().Add(spare)
		c := quietly(b, "redis-cli", cli, environ, "-p", strconv.Itoa(srv.Port()), "psubscribe", "heartbeat:service:*")
		drain, drainSrv := measure(c, func() {}, nil)
		c.stop()
		deadline = time.Now().Add(spare)
		c = quietly(b, "monitor", monitorBin, environ, "--json")
		mon, monSrv := measure(c, oneInterval, nil)
		c.stop()

		// The baseline, when there is one, first: the same fleet, the
		// same server, the same minutes of the machine's load.
		var base panelFigures
		if baselineBin != "" {
			base = runPanel(baselineBin)
		}
		f := runPanel(panelBin)
		// ofACore is the share of a core that µs a heartbeat takes at
		// the fleet's rate, in percent.
		ofACore := func(µs float64) float64 { return µs * float64(cfg.instances) / cfg.interval.Seconds() / 1e6 * 100 }
		b.ReportMetric(drain, "drain-cpu-µs/heartbeat")
		b.ReportMetric(mon, "monitor-cpu-µs/heartbeat")
		b.ReportMetric(f.cpu, "panel-cpu-µs/heartbeat")
		b.ReportMetric(f.cpu/drain, "panel/drain")
		b.ReportMetric(ofACore(f.cpu), "panel-cpu-%")
		b.ReportMetric(f.rss, "panel-rss-MiB")
		b.ReportMetric(f.rss*1024/float64(cfg.instances), "panel-rss-KiB/instance")
		b.ReportMetric(f.meanRSS*1024/float64(cfg.instances), "panel-mean-rss-KiB/instance")
		b.ReportMetric(f.anon*1024/float64(cfg.instances), "panel-anon-rss-KiB/instance")
		b.ReportMetric(f.peak, "panel-peak-rss-MiB")
		b.ReportMetric(float64(f.fleet.Microseconds())/1000, "fleet-api-ms")
		b.ReportMetric(float64(f.view.Microseconds())/1000, "service-view-ms")
		b.ReportMetric(float64(f.viewBytes)/1024, "service-view-KiB")
		b.ReportMetric(float64(cfg.instances), "instances")
		// What each consumer costs the server, beside what the fleet's
		// publications do: Valkey is single-threaded and shared.
		b.ReportMetric(drainSrv, "server-cpu-µs/heartbeat-drain")
		b.ReportMetric(monSrv, "server-cpu-µs/heartbeat-monitor")
		b.ReportMetric(f.server, "server-cpu-µs/heartbeat-panel")
		b.ReportMetric(ofACore(f.server), "server-cpu-%-panel")
		if baselineBin != "" {
			b.ReportMetric(base.cpu, "baseline-panel-cpu-µs/heartbeat")
			b.ReportMetric(base.cpu/drain, "baseline-panel/drain")
			b.ReportMetric(f.cpu/base.cpu, "panel/baseline-cpu")
			b.ReportMetric(base.rss*1024/float64(cfg.instances), "baseline-panel-rss-KiB/instance")
			b.ReportMetric(base.meanRSS*1024/float64(cfg.instances), "baseline-panel-mean-rss-KiB/instance")
			b.ReportMetric(base.anon*1024/float64(cfg.instances), "baseline-panel-anon-rss-KiB/instance")
			b.ReportMetric(base.peak, "baseline-panel-peak-rss-MiB")
			b.ReportMetric(base.server, "server-cpu-µs/heartbeat-baseline-panel")
		}
	}
}

// panelFigures is what BenchmarkPanelAtTheLimit measures of one panel.
type panelFigures struct {
	cpu, server float64 // µs a heartbeat: the panel's, the server's meanwhile
	rss, peak   float64 // MiB, at the window's end
	// meanRSS is the mean of its resident memory sampled every second of
	// the window and at its end, in MiB: what it holds in a steady state. A sample at
	// one moment moves by a tenth with where the collector is in its
	// cycle.
	meanRSS     float64
	anon        float64 // MiB of rss the process's own, not its executable's pages (see anonRSSMiB)
	fleet, view time.Duration
	viewBytes   int64
}

// buildBaseline builds the panel of PANEL_LIMIT_BASELINE, a git revision
// of this repository, for BenchmarkPanelAtTheLimit to measure in the same
// run as the panel of the working tree; "" when it is not set.
func buildBaseline(b *testing.B) string {
	rev := os.Getenv("PANEL_LIMIT_BASELINE")
	if rev == "" {
		return ""
	}
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		b.Fatalf("PANEL_LIMIT_BASELINE=%s: this is not a git checkout: %v", rev, err)
	}
	dir := b.TempDir()
	archive := exec.Command("git", "-C", strings.TrimSpace(string(root)), "archive", "--format=tar", rev)
	untar := exec.Command("tar", "-x", "-C", dir)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	untar.Stdin = pipe
	var stderr strings.Builder
	archive.Stderr = &stderr
	if err := untar.Start(); err != nil {
		b.Fatalf("tar: %v", err)
	}
	if err := archive.Run(); err != nil {
		b.Fatalf("PANEL_LIMIT_BASELINE=%s: git archive: %v: %s", rev, err, strings.TrimSpace(stderr.String()))
	}
	if err := untar.Wait(); err != nil {
		b.Fatalf("PANEL_LIMIT_BASELINE=%s: tar: %v", rev, err)
	}
	bin := filepath.Join(b.TempDir(), "adminpanel-baseline")
	build := exec.Command("go", "build", "-o", bin, "./examples/adminpanel")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("PANEL_LIMIT_BASELINE=%s: go build: %v\n%s", rev, err, out)
	}
	return bin
}

// sized fetches url and returns how long it took and how many bytes came.
func sized(b *testing.B, url string) (time.Duration, int64) {
	start := time.Now()
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	n, _ := io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 {
		b.Fatalf("%s: %s", url, resp.Status)
	}
	return time.Since(start), n
}
