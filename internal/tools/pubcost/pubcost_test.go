package pubcost

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/binary"
	"github.com/otel-heartbeat/heartbeat/internal/testing/leaktest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/testbin"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

// programs builds the library's and the hand-written publisher and finds
// Debian's Python with redis-py and psutil.
func programs(t testing.TB) []Program {
	python, err := binary.Python3.Find()
	if err == nil {
		if out, perr := exec.Command(python, "-c", "import redis.asyncio, psutil").CombinedOutput(); perr != nil {
			err = fmt.Errorf("%s cannot import redis.asyncio and psutil (Debian: apt-get install --no-install-recommends python3-redis python3-psutil, or run `make deps`, which does): %v: %s", python, perr, out)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	all := []Program{
		{Name: "library", Args: []string{testbin.Build(t, "./cmd/library")}},
		{Name: "handwritten", Args: []string{testbin.Build(t, "./cmd/handwritten")}},
		{Name: "python", Args: []string{python, "python/publisher.py"}},
	}
	// PUBCOST_PROGRAMS=library,python measures only those, to compare a
	// change quickly; the table needs all three.
	if only := os.Getenv("PUBCOST_PROGRAMS"); only != "" {
		var some []Program
		for _, p := range all {
			if slices.Contains(strings.Split(only, ","), p.Name) {
				some = append(some, p)
			}
		}
		return some
	}
	return all
}

func window(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			return d
		}
	}
	return def
}

// BenchmarkPublisherCost runs the three publishers one after the other
// against one redis-server, each alone, at a heartbeat every 20 ms for
// PUBCOST_WINDOW (30 s in `make bench`, 3 s by default) less a 2 s run, in
// PUBCOST_ROUNDS rounds (3 in `make bench`, 1 by default) that take the
// three in turn, so that a shared machine's slow minutes fall on all of
// them; it reports the median of each figure. Then each runs idle at the
// default 60 s interval over PUBCOST_IDLE_WINDOW (20 s in `make bench`, 3 s
// by default), and it reports what that costs a minute.
func BenchmarkPublisherCost(b *testing.B) {
	strace, err := binary.Strace.Find()
	if err != nil {
		b.Fatal(err)
	}
	srv := redistest.Start(b)
	progs := programs(b)
	env := Env{Endpoint: srv.URL(), Strace: strace, Dir: b.TempDir()}
	long := window("PUBCOST_WINDOW", 3*time.Second) + 2*time.Second
	idle := window("PUBCOST_IDLE_WINDOW", 3*time.Second)
	rounds := 1
	if n, err := strconv.Atoi(os.Getenv("PUBCOST_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	ctx := context.Background()
	for b.Loop() {
		costs := map[string][]Cost{}
		for round := range rounds {
			for _, p := range progs {
				c, err := Measure(ctx, env, p, 20*time.Millisecond, long, 2*time.Second)
				if err != nil {
					b.Fatal(err)
				}
				b.Logf("round %d, %s: %d heartbeats, %.0f µs, %.1f context switches, %.1f system calls each; busiest system calls of the long traced run: %v",
					round+1, p.Name, c.Heartbeats, float64(c.CPUPerHeartbeat.Nanoseconds())/1e3, c.CtxPerHeartbeat, c.SyscallsPerBeat, top(c.TopSyscallsPerRun, 8))
				costs[p.Name] = append(costs[p.Name], c)
			}
		}
		for _, p := range progs {
			cs := costs[p.Name]
			b.ReportMetric(median(cs, func(c Cost) float64 { return float64(c.CPUPerHeartbeat.Nanoseconds()) / 1e3 }), p.Name+"-cpu-µs/heartbeat")
			b.ReportMetric(median(cs, func(c Cost) float64 { return c.CtxPerHeartbeat }), p.Name+"-ctxsw/heartbeat")
			b.ReportMetric(median(cs, func(c Cost) float64 { return c.SyscallsPerBeat }), p.Name+"-syscalls/heartbeat")
			b.ReportMetric(median(cs, func(c Cost) float64 { return float64(c.MaxRSS) / 1e6 }), p.Name+"-rss-MB")
		}
		for _, p := range progs {
			i, err := MeasureIdle(ctx, env, p, time.Second, idle)
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("%s idle: system calls %v", p.Name, top(i.TopSyscalls, 8))
			b.ReportMetric(i.CtxPerMinute, p.Name+"-idle-ctxsw/min")
			b.ReportMetric(i.SyscallsPerMinute, p.Name+"-idle-syscalls/min")
		}
	}
}

// median is the middle of f over cs (the upper middle of an even count).
func median(cs []Cost, f func(Cost) float64) float64 {
	v := make([]float64, len(cs))
	for i, c := range cs {
		v[i] = f(c)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func top(s []SyscallCount, n int) []SyscallCount { return s[:min(n, len(s))] }

// The three programs send the same heartbeat: every documented key, the
// three service fields, and one PUBLISH with one SET per heartbeat.
func TestTheThreePublishersSendTheSameHeartbeat(t *testing.T) {
	srv := redistest.Start(t)
	env := Env{Endpoint: srv.URL(), Dir: t.TempDir()}
	ctx := context.Background()
	var keys string
	for _, p := range programs(t) {
		r, err := RunFor(ctx, env, p, 50*time.Millisecond, 700*time.Millisecond, false)
		if err != nil {
			t.Fatal(err)
		}
		if r.Heartbeats < 3 || r.CPU <= 0 || r.CtxSwitches <= 0 || r.MaxRSS <= 0 {
			t.Errorf("%s: run %+v", p.Name, r)
		}
		raw := r.Last
		hb, err := wire.Unmarshal([]byte(raw))
		if err != nil {
			t.Fatalf("%s: %v: %s", p.Name, err, raw)
		}
		if hb.ServiceName != "pubcost" || hb.HeartbeatCount < 1 {
			t.Errorf("%s: %+v", p.Name, hb)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			t.Fatal(err)
		}
		got := strings.Join(slices.Sorted(maps.Keys(m)), ",")
		if keys == "" {
			keys = got
		} else if got != keys {
			t.Errorf("%s sends keys %s, the library %s", p.Name, got, keys)
		}
	}
}

// The strace summary is read as strace writes it.
func TestReadStrace(t *testing.T) {
	path := t.TempDir() + "/s.txt"
	const summary = `% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 52.00    0.000520          10        52           futex
 30.00    0.000300           6        50        25 read
 18.00    0.000180           9        20           write
------ ----------- ----------- --------- --------- ----------------
100.00    0.001000           8       122        25 total
`
	if err := os.WriteFile(path, []byte(summary), 0o600); err != nil {
		t.Fatal(err)
	}
	total, each, err := ReadStrace(path)
	if err != nil || total != 122 || len(each) != 3 || each[0] != (SyscallCount{"futex", 52}) || each[1] != (SyscallCount{"read", 50}) {
		t.Fatalf("ReadStrace = %d, %v, %v", total, each, err)
	}
	if err := os.WriteFile(path, []byte("strace: nothing\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadStrace(path); err == nil {
		t.Error("a file without a total was read")
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if total, _, err := ReadStrace(path); err != nil || total != 0 {
		t.Errorf("an empty summary read as %d, %v; want no calls", total, err)
	}
}
