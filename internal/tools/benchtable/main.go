// Command benchtable turns `go test -bench` output on standard input into
// the performance table of docs/performance.md: each figure is the median over the runs,
// set beside its baseline from the same run and its target.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// results maps benchmark name (without the -N suffix) and unit to values.
type results map[string]map[string][]float64

func parse(r io.Reader) results {
	res := results{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndex(name, "-"); i > 0 {
			name = name[:i]
		}
		if res[name] == nil {
			res[name] = map[string][]float64{}
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			res[name][f[i+1]] = append(res[name][f[i+1]], v)
		}
	}
	return res
}

func (r results) get(name, unit string) (float64, bool) {
	v := r[name][unit]
	if len(v) == 0 {
		return 0, false
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2], true
}

// of reads name's figures by unit, 0 for one it did not report: for a
// row whose presence the benchmark's own is checked for.
func (r results) of(name string) func(unit string) float64 {
	return func(unit string) float64 { v, _ := r.get(name, unit); return v }
}

// The fleets of BenchmarkPanelAtTheLimit that make bench runs.
const (
	limit100k    = "BenchmarkPanelAtTheLimit/100000@10s"
	limit100kOne = "BenchmarkPanelAtTheLimit/100000@10s_in_1_service"
	limit1M      = "BenchmarkPanelAtTheLimit/1000000@1m0s"
)

type row struct {
	measure, result, baseline, ratio, target, verdict string
}

// memoryRow is the row of a panel's resident memory per tracked instance
// of the BenchmarkPanelAtTheLimit fleet name, described as fleet: the
// mean of a sample a second over the measured window, judged against
// the target, beside the sample at its end; false when the benchmark
// reported no mean.
func memoryRow(r results, name, fleet string) (row, bool) {
	l := r.of(name)
	mean, ok := r.get(name, "panel-mean-rss-KiB/instance")
	return row{fleet + ", resident memory per tracked instance (the mean over the window)", fmt.Sprintf("%.2f KiB", mean),
		fmt.Sprintf("%.2f KiB at the window's end, %.0f MiB in all, %.2f KiB an instance of it anonymous, the rest the executable's pages",
			l("panel-rss-KiB/instance"), l("panel-rss-MiB"), l("panel-anon-rss-KiB/instance")), "", "≤ 1 KiB", verdictOf(mean <= 1)}, ok
}

// verdictOf is a row's verdict.
func verdictOf(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

// run writes the table for the benchmark output on in. Every row is
// required: a benchmark that failed or was skipped is an error naming it,
// so that a broken benchmark cannot leave a silently shorter table.
func run(in io.Reader, w io.Writer) error {
	r := parse(in)
	var rows []row
	var missing []string
	need := func(names ...string) {
		for _, n := range names {
			if len(r[n]) == 0 {
				missing = append(missing, n)
			}
		}
	}
	need("BenchmarkHeartbeatCycleInterleaved", "BenchmarkHeartbeatCycle", "BenchmarkHeartbeatCycleBaseline",
		"BenchmarkEncode", "BenchmarkEncodeJSONMap", "BenchmarkDecode", "BenchmarkIdleFootprint",
		"BenchmarkIngest", "BenchmarkDecodeAndTrack", "BenchmarkClusterPubSub", "BenchmarkTickNothingDue", "BenchmarkObserve", "BenchmarkObserveAndTick",
		"BenchmarkMemoryPerInstance", "BenchmarkMemoryPerInstanceAServiceEach", "BenchmarkMemoryPerInstanceKeepingHeartbeats", "BenchmarkHistoryCachePerInstance", "BenchmarkIDFlood", "BenchmarkFatHeartbeatFlood", "BenchmarkLoadFatLatestKeys", "BenchmarkPanelAtTenThousandInstances",
		"BenchmarkPanelUnderFatHeartbeats", "BenchmarkPublisherCost", limit100k, limit100kOne, limit1M, "BenchmarkEvaluateAtOneHundredThousand",
		"BenchmarkWriterFlush", "BenchmarkWriterAdd",
		"BenchmarkBytesPerInstanceDay/quiet", "BenchmarkBytesPerInstanceDay/churning", "BenchmarkSeriesBytesPerInstanceDay", "BenchmarkThirtyDays",
		"BenchmarkPanelWindows/windows", "BenchmarkPanelWindows/compute-each", "BenchmarkDecodeInterned",
		"BenchmarkUptimeOfAFleetThatRuns/kept", "BenchmarkUptimeOfAFleetThatRuns/worked_out")
	verdict := verdictOf
	num := func(v float64, unit string) string {
		switch {
		case v >= 1e6:
			return fmt.Sprintf("%.2fM %s", v/1e6, unit)
		case v >= 1e4:
			return fmt.Sprintf("%.0fk %s", v/1e3, unit)
		case v >= 100:
			return fmt.Sprintf("%.0f %s", v, unit)
		}
		return fmt.Sprintf("%.3g %s", v, unit)
	}

	if lib, ok := r.get("BenchmarkHeartbeatCycleInterleaved", "library-ns/heartbeat"); ok {
		base, _ := r.get("BenchmarkHeartbeatCycleInterleaved", "baseline-ns/heartbeat")
		ratio, _ := r.get("BenchmarkHeartbeatCycleInterleaved", "time-ratio")
		rows = append(rows, row{"heartbeat cycle, time (interleaved)", num(lib/1e3, "µs"), num(base/1e3, "µs"), fmt.Sprintf("%.2fx", ratio), "≤ 1.3x", verdict(ratio <= 1.3)})
	}
	if lib, ok := r.get("BenchmarkHeartbeatCycle", "allocs/op"); ok {
		base, _ := r.get("BenchmarkHeartbeatCycleBaseline", "allocs/op")
		rows = append(rows, row{"heartbeat cycle, allocations", num(lib, "allocs"), num(base, "allocs"), fmt.Sprintf("%.2fx", lib/base), "≤ 1x", verdict(lib <= base)})
	}
	if enc, ok := r.get("BenchmarkEncode", "ns/op"); ok {
		base, _ := r.get("BenchmarkEncodeJSONMap", "ns/op")
		rows = append(rows, row{"encoder, time", num(enc, "ns"), num(base, "ns"), fmt.Sprintf("%.1fx faster", base/enc), "≥ 3x faster", verdict(base/enc >= 3)})
		allocs, _ := r.get("BenchmarkEncode", "allocs/op")
		balloc, _ := r.get("BenchmarkEncodeJSONMap", "allocs/op")
		rows = append(rows, row{"encoder, allocations", num(allocs, "allocs"), num(balloc, "allocs"), "", "≤ 1 per heartbeat", verdict(allocs <= 1)})
	}
	if dec, ok := r.get("BenchmarkDecode", "ns/op"); ok {
		allocs, _ := r.get("BenchmarkDecode", "allocs/op")
		rows = append(rows, row{"decoder (monitor, per message)", num(dec, "ns") + ", " + num(allocs, "allocs"), "", "", "", ""})
	}
	if dec, ok := r.get("BenchmarkDecodeInterned", "ns/op"); ok {
		allocs, _ := r.get("BenchmarkDecodeInterned", "allocs/op")
		rows = append(rows, row{"decoder with an interner that has seen the fleet's names (a watcher's, per message)", num(dec, "ns") + ", " + num(allocs, "allocs"), "", "", "", ""})
	}
	if rss, ok := r.get("BenchmarkIdleFootprint", "rss-MiB"); ok {
		g, _ := r.get("BenchmarkIdleFootprint", "goroutines")
		cpu, _ := r.get("BenchmarkIdleFootprint", "cpu-s/1000-heartbeats")
		rows = append(rows,
			row{"idle Publisher, resident memory added", fmt.Sprintf("%.1f MiB", rss), "bare process", "", "≤ 4 MiB", verdict(rss <= 4)},
			row{"idle Publisher, goroutines added", fmt.Sprintf("%.0f", g), "bare process", "", "≤ 4", verdict(g <= 4)},
			row{"CPU per 1,000 heartbeats", fmt.Sprintf("%.2f s", cpu), "", "", "", ""})
	}
	if lib, ok := r.get("BenchmarkPublisherCost", "library-cpu-µs/heartbeat"); ok {
		pc := func(prog, unit string) float64 { v, _ := r.get("BenchmarkPublisherCost", prog+"-"+unit); return v }
		beside := func(unit, format string) string {
			return fmt.Sprintf(format+" (Go by hand), "+format+" (Python)", pc("handwritten", unit), pc("python", unit))
		}
		ratio := func(a, b float64) string {
			if b == 0 {
				return ""
			}
			return fmt.Sprintf("%.2fx", a/b)
		}
		hand, py := pc("handwritten", "cpu-µs/heartbeat"), pc("python", "syscalls/heartbeat")
		ctx, hctx := pc("library", "ctxsw/heartbeat"), pc("handwritten", "ctxsw/heartbeat")
		sys := pc("library", "syscalls/heartbeat")
		ictx, ihctx := pc("library", "idle-ctxsw/min"), pc("handwritten", "idle-ctxsw/min")
		isys, ipy := pc("library", "idle-syscalls/min"), pc("python", "idle-syscalls/min")
		rows = append(rows,
			row{"publisher process, CPU per heartbeat (every 20 ms, 3 service fields)", fmt.Sprintf("%.0f µs", lib), beside("cpu-µs/heartbeat", "%.0f µs"), ratio(lib, hand), "≤ 1x Go by hand", verdict(lib <= hand)},
			row{"publisher process, context switches per heartbeat", fmt.Sprintf("%.1f", ctx), beside("ctxsw/heartbeat", "%.1f"), ratio(ctx, hctx), "≤ 1x Go by hand", verdict(ctx <= hctx)},
			row{"publisher process, system calls per heartbeat (strace -f)", fmt.Sprintf("%.1f", sys), beside("syscalls/heartbeat", "%.1f"), ratio(sys, py), "≤ 1x Python", verdict(sys <= py)},
			row{"publisher process, peak resident memory", fmt.Sprintf("%.1f MB", pc("library", "rss-MB")), beside("rss-MB", "%.1f MB"), "", "", ""},
			row{"publisher idle at 60 s, context switches a minute", fmt.Sprintf("%.1f", ictx), beside("idle-ctxsw/min", "%.1f"), ratio(ictx, ihctx), "≤ 1x Go by hand", verdict(ictx <= ihctx)},
			row{"publisher idle at 60 s, system calls a minute", fmt.Sprintf("%.1f", isys), beside("idle-syscalls/min", "%.1f"), ratio(isys, ipy), "≤ Python", verdict(isys <= ipy)})
	}
	if ratio, ok := r.get("BenchmarkIngest", "monitor/bare"); ok {
		mon, _ := r.get("BenchmarkIngest", "monitor-msgs/s")
		bare, _ := r.get("BenchmarkIngest", "bare-msgs/s")
		lost, _ := r.get("BenchmarkIngest", "lost")
		rows = append(rows, row{"monitor ingest at 100,000 instances", num(mon, "msgs/s"), num(bare, "msgs/s") + " (bare PSUBSCRIBE)", fmt.Sprintf("%.0f%%", ratio*100), "≥ 100%", verdict(ratio >= 1)})
		if shown, ok := r.get("BenchmarkIngest", "monitor-with-events-msgs/s"); ok {
			rows = append(rows, row{"monitor ingest at 100,000 instances, every heartbeat handed to a renderer", num(shown, "msgs/s"), num(bare, "msgs/s") + " (bare PSUBSCRIBE)", fmt.Sprintf("%.0f%%", shown/bare*100), "", ""})
		}
		rows = append(rows, row{"heartbeats the tracker missed in that run", fmt.Sprintf("%.0f", lost), "", "", "0", verdict(lost == 0)})
		if dt, ok := r.get("BenchmarkDecodeAndTrack", "msgs/s"); ok {
			rows = append(rows, row{"monitor decode and track, in memory, 100,000 instances", num(dt, "msgs/s"), num(bare, "msgs/s") + " (bare PSUBSCRIBE drain)", fmt.Sprintf("%.2fx", dt/bare), "≥ 1x", verdict(dt >= bare)})
		}
	}
	if pub, ok := r.get("BenchmarkClusterPubSub", "publish-msgs/s"); ok {
		spub, _ := r.get("BenchmarkClusterPubSub", "spublish-msgs/s")
		pubCPU, _ := r.get("BenchmarkClusterPubSub", "publish-server-µs/heartbeat")
		spubCPU, _ := r.get("BenchmarkClusterPubSub", "spublish-server-µs/heartbeat")
		rows = append(rows,
			row{"3-primary cluster, sharded SPUBLISH throughput", num(spub, "msgs/s"), num(pub, "msgs/s") + " (global PUBLISH)", fmt.Sprintf("%.1fx", spub/pub), "", ""},
			row{"3-primary cluster, server CPU per heartbeat (all nodes)", fmt.Sprintf("%.1f µs (SPUBLISH)", spubCPU), fmt.Sprintf("%.1f µs (PUBLISH)", pubCPU), fmt.Sprintf("%.2fx", spubCPU/pubCPU), "", ""})
	}
	if tick, ok := r.get("BenchmarkTickNothingDue", "ns/op"); ok {
		rows = append(rows, row{"liveness tick, 1,000,000 instances, nothing due", num(tick, "ns"), "", "", "≪ 1 ms", verdict(tick < 1e5)})
	}
	if obs, ok := r.get("BenchmarkObserve", "ns/op"); ok {
		rows = append(rows, row{"liveness, one heartbeat at 100,000 instances", num(obs, "ns"), "", "", "", ""})
	}
	if obs, ok := r.get("BenchmarkObserveAndTick", "ns/op"); ok {
		refiles, _ := r.get("BenchmarkObserveAndTick", "refiles/heartbeat")
		rows = append(rows, row{"liveness, one heartbeat at 100,000 instances with the ticks that re-file it, and the re-filings a heartbeat", num(obs, "ns") + fmt.Sprintf(", %.2f", refiles), "", "", "", ""})
	}
	if mem, ok := r.get("BenchmarkMemoryPerInstance", "B/instance"); ok {
		rows = append(rows, row{"liveness memory per tracked instance", fmt.Sprintf("%.0f B", mem), "", "", "≤ 1 KiB", verdict(mem <= 1024)})
	}
	if mem, ok := r.get("BenchmarkMemoryPerInstanceAServiceEach", "B/instance"); ok {
		rows = append(rows, row{"liveness memory per tracked instance, each the only one of its service (its service's names and counts included), 100,000 instances", fmt.Sprintf("%.0f B", mem), "", "", "", ""})
	}
	if mem, ok := r.get("BenchmarkMemoryPerInstanceKeepingHeartbeats", "B/instance"); ok {
		rows = append(rows, row{"liveness memory per tracked instance, keeping its heartbeat (the original design's, three service fields), 100,000 instances", fmt.Sprintf("%.0f B", mem), "", "", "", ""})
	}
	if mem, ok := r.get("BenchmarkHistoryCachePerInstance", "B/instance"); ok {
		rows = append(rows, row{"admin panel's history cache per instance that has run since it appeared, 100,000 instances", fmt.Sprintf("%.0f B", mem), "", "", "", ""})
	}
	if peak, ok := r.get("BenchmarkIDFlood", "peak-heap-MiB"); ok {
		// The cap BenchmarkIDFlood enforces and package watch documents:
		// 512 B per tracked instance plus 16 MiB, at the default bound.
		const bound, perInstance, overheadMiB = 1_000_000, 512, 16
		capMiB := float64(bound*perInstance)/(1<<20) + overheadMiB
		per, _ := r.get("BenchmarkIDFlood", "heap-B/instance")
		tracked, _ := r.get("BenchmarkIDFlood", "tracked")
		evicted, _ := r.get("BenchmarkIDFlood", "evicted")
		rows = append(rows,
			row{"watcher under a flood of 2,000,000 distinct ids, peak live heap", fmt.Sprintf("%.0f MiB", peak), "", "", fmt.Sprintf("≤ %.0f MiB", capMiB), verdict(peak <= capMiB)},
			row{"watcher under that flood, heap per tracked instance", fmt.Sprintf("%.0f B", per), "", "", fmt.Sprintf("≤ %d B", perInstance), verdict(per <= perInstance)},
			row{"instances tracked and evicted after that flood", fmt.Sprintf("%.0f tracked, %.0f evicted", tracked, evicted), "", "", "= bound, 2M − bound", verdict(tracked == bound && evicted == 2_000_000-bound)})
	}
	if peak, ok := r.get("BenchmarkFatHeartbeatFlood", "peak-heap-MiB"); ok {
		// The cap BenchmarkFatHeartbeatFlood enforces: 5,000 instances
		// tracked, 512 B and 4 KiB of kept heartbeat each, 16 MiB of
		// queue, 16 MiB.
		capMiB := 5_000*(512+4096)/float64(1<<20) + 16 + 16
		kept, _ := r.get("BenchmarkFatHeartbeatFlood", "kept-B/instance")
		rows = append(rows,
			row{"watcher keeping heartbeats under 60 KB heartbeats of 10,000 ids (5,000 tracked), peak live heap", fmt.Sprintf("%.0f MiB", peak), "", "", fmt.Sprintf("≤ %.0f MiB", capMiB), verdict(peak <= capMiB)},
			row{"heartbeat kept per instance in that flood", fmt.Sprintf("%.0f B", kept), "60 KB sent", "", "≤ 4096 B", verdict(kept <= 4096)})
	}
	if peak, ok := r.get("BenchmarkLoadFatLatestKeys", "peak-heap-MiB"); ok {
		whole, _ := r.get("BenchmarkLoadFatLatestKeys", "all-at-once-peak-heap-MiB")
		// The cap it enforces: 3,000 kept heartbeats of 4 KiB, a batch of
		// 100 keys read and decoded, 16 MiB.
		capMiB := (3_000*4096+100*2*65536)/float64(1<<20) + 16
		rows = append(rows, row{"watcher reading 3,000 latest-state keys of 60 KB at start, peak live heap", fmt.Sprintf("%.0f MiB", peak),
			fmt.Sprintf("%.0f MiB (read all at once)", whole), fmt.Sprintf("%.2fx", peak/whole), fmt.Sprintf("≤ %.0f MiB", capMiB), verdict(peak <= capMiB)})
	}
	if after, ok := r.get("BenchmarkPanelUnderFatHeartbeats", "rss-after-MiB"); ok {
		before, _ := r.get("BenchmarkPanelUnderFatHeartbeats", "rss-before-MiB")
		// The bound BenchmarkPanelUnderFatHeartbeats enforces on the growth.
		const ids = 5_000
		bound := 2*(ids*4.0/1024+16) + ids*2.0/1024 + 16
		rows = append(rows, row{"admin panel under 60 KB heartbeats of 5,000 ids, resident memory", fmt.Sprintf("%.0f MiB", after),
			fmt.Sprintf("%.0f MiB before the flood", before), fmt.Sprintf("+%.0f MiB", after-before), fmt.Sprintf("≤ +%.0f MiB", bound), verdict(after-before <= bound)})
	}
	if cpu, ok := r.get("BenchmarkPanelAtTenThousandInstances", "cpu-%"); ok {
		rss, _ := r.get("BenchmarkPanelAtTenThousandInstances", "rss-MiB")
		fleetMs, _ := r.get("BenchmarkPanelAtTenThousandInstances", "fleet-api-ms")
		svcMs, _ := r.get("BenchmarkPanelAtTenThousandInstances", "service-api-ms")
		rows = append(rows,
			row{"admin panel at 10,000 instances every 60 s, CPU", fmt.Sprintf("%.1f%% of a core", cpu), "", "", "≤ 5%", verdict(cpu <= 5)},
			row{"admin panel at 10,000 instances, resident memory", fmt.Sprintf("%.0f MiB", rss), "", "", "≤ 200 MiB", verdict(rss <= 200)},
			row{"admin panel at 10,000 instances, GET /api/v1/services", fmt.Sprintf("%.0f ms", fleetMs), "", "", "≤ 200 ms", verdict(fleetMs <= 200)},
			row{"admin panel, GET /api/v1/services/NAME with 500 instances", fmt.Sprintf("%.0f ms", svcMs), "", "", "≤ 200 ms", verdict(svcMs <= 200)})
	}
	// memory is the memory row of a fleet, its mean required.
	memory := func(name, fleet string) row {
		m, ok := memoryRow(r, name, fleet)
		if !ok {
			missing = append(missing, name+" panel-mean-rss-KiB/instance")
		}
		return m
	}
	if cpu, ok := r.get(limit100k, "panel-cpu-µs/heartbeat"); ok {
		l := r.of(limit100k)
		drain, mon := l("drain-cpu-µs/heartbeat"), l("monitor-cpu-µs/heartbeat")
		rows = append(rows,
			row{"admin panel at 100,000 instances every 10 s (10,000 heartbeats a second), CPU per heartbeat", fmt.Sprintf("%.1f µs", cpu),
				fmt.Sprintf("%.1f µs (redis-cli PSUBSCRIBE drain), %.1f µs (monitor)", drain, mon), fmt.Sprintf("%.1fx the drain", cpu/drain), "≤ 5x the drain", verdict(cpu <= 5*drain)},
			memory(limit100k, "admin panel at 100,000 instances"),
			row{"admin panel at 100,000 instances, peak resident memory since it started", fmt.Sprintf("%.0f MiB", l("panel-peak-rss-MiB")), "", "", "", ""},
			row{"admin panel at 100,000 instances, Valkey's CPU per heartbeat while it runs (the fleet's publications, and values over time written)", fmt.Sprintf("%.1f µs, %.0f%% of a core", l("server-cpu-µs/heartbeat-panel"), l("server-cpu-%-panel")),
				fmt.Sprintf("%.1f µs (while the drain runs), %.1f µs (the monitor)", l("server-cpu-µs/heartbeat-drain"), l("server-cpu-µs/heartbeat-monitor")), fmt.Sprintf("%.1fx the monitor's", l("server-cpu-µs/heartbeat-panel")/l("server-cpu-µs/heartbeat-monitor")), "", ""},
			row{"admin panel at 100,000 instances, GET /api/v1/services", fmt.Sprintf("%.0f ms", l("fleet-api-ms")), "", "", "≤ 50 ms", verdict(l("fleet-api-ms") <= 50)},
			row{"admin panel at 100,000 instances, GET /api/v1/services/NAME of 2,000 instances, first page", fmt.Sprintf("%.0f ms, %.0f KiB", l("service-view-ms"), l("service-view-KiB")),
				"", "", "paged", verdict(l("service-view-KiB") <= 1024)})
	}
	if cpu, ok := r.get(limit100kOne, "panel-cpu-µs/heartbeat"); ok {
		l := r.of(limit100kOne)
		drain := l("drain-cpu-µs/heartbeat")
		rows = append(rows,
			row{"admin panel at 100,000 instances in one service, CPU per heartbeat", fmt.Sprintf("%.1f µs", cpu),
				fmt.Sprintf("%.1f µs (redis-cli PSUBSCRIBE drain)", drain), fmt.Sprintf("%.1fx the drain", cpu/drain), "≤ 5x the drain", verdict(cpu <= 5*drain)},
			memory(limit100kOne, "admin panel at 100,000 instances in one service"),
			row{"admin panel at 100,000 instances in one service, GET /api/v1/services/NAME, first page", fmt.Sprintf("%.0f ms, %.0f KiB", l("service-view-ms"), l("service-view-KiB")),
				"", "", "paged", verdict(l("service-view-KiB") <= 1024)})
	}
	if cpu, ok := r.get(limit1M, "panel-cpu-%"); ok {
		l := r.of(limit1M)
		drain, pc := l("drain-cpu-µs/heartbeat"), l("panel-cpu-µs/heartbeat")
		rows = append(rows,
			row{"admin panel at 1,000,000 instances every 60 s (values over time off), CPU", fmt.Sprintf("%.0f%% of a core (%.1f µs a heartbeat)", cpu, pc),
				fmt.Sprintf("%.1f µs (drain), %.1f µs (monitor)", drain, l("monitor-cpu-µs/heartbeat")), fmt.Sprintf("%.1fx the drain", pc/drain), "< 1 core", verdict(cpu < 100)},
			row{"admin panel at 1,000,000 instances, resident memory", fmt.Sprintf("%.0f MiB", l("panel-rss-MiB")), "", "", "≤ 1.5 GB", verdict(l("panel-rss-MiB")*(1<<20) <= 1.5e9)},
			row{"admin panel at 1,000,000 instances, GET /api/v1/services", fmt.Sprintf("%.0f ms", l("fleet-api-ms")), "", "", "", ""})
	}
	if ms, ok := r.get("BenchmarkEvaluateAtOneHundredThousand", "ms/evaluation"); ok {
		snap, _ := r.get("BenchmarkEvaluateAtOneHundredThousand", "snapshot-ms")
		rows = append(rows, row{"alert rules over 100,000 instances, one evaluation (every second)", fmt.Sprintf("%.1f ms", ms),
			fmt.Sprintf("%.1f ms (a copy of every instance, what each evaluation paid first)", snap), fmt.Sprintf("%.2fx", ms/snap), "", ""})
	}
	if flush, ok := r.get("BenchmarkWriterFlush", "cpu-ns/value"); ok {
		add, _ := r.get("BenchmarkWriterAdd", "ns/op")
		srv, _ := r.get("BenchmarkWriterFlush", "server-cpu-ns/value")
		cmds, _ := r.get("BenchmarkWriterFlush", "server-commands/value")
		rows = append(rows,
			row{"values over time: queueing a heartbeat of four values, and flushing a value (panel CPU)", fmt.Sprintf("%.0f ns, %.1f µs", add, flush/1e3), "", "", "", ""},
			row{"values over time: merging a value into its instance's records, heartbeats of four values every 10 s (Valkey's CPU, and the commands the script runs)", fmt.Sprintf("%.1f µs, %.2f commands", srv/1e3, cmds), "", "", "", ""})
	}
	if quiet, ok := r.get("BenchmarkBytesPerInstanceDay/quiet", "B/instance-day"); ok {
		churn, _ := r.get("BenchmarkBytesPerInstanceDay/churning", "B/instance-day")
		rows = append(rows,
			row{"history in Valkey, an instance that runs all day (once, not per day)", fmt.Sprintf("%.0f B", quiet), "", "", "", ""},
			row{"history in Valkey per instance per day, one restart and two lost heartbeats a day", fmt.Sprintf("%.0f B", churn), "", "", "≤ 1 KiB", verdict(churn <= 1024)})
	}
	if b, ok := r.get("BenchmarkSeriesBytesPerInstanceDay", "B/instance/day"); ok {
		// The bound of the package's doc: a record of both rings (120 +
		// 288 a day) of 4 bytes and 12 a field, 15% for the allocator,
		// 250 bytes a key (two rings and the columns).
		bound := (4+12*4)*(120+288)*1.15 + 3*250
		rows = append(rows, row{"values over time in Valkey per instance, a day kept, four numeric fields", fmt.Sprintf("%.0f B", b), "", "",
			fmt.Sprintf("≤ %.0f B", bound), verdict(b <= bound)})
	}
	if ns, ok := r.get("BenchmarkThirtyDays", "ns/op"); ok {
		rows = append(rows, row{"30-day uptime, 1,000 instances (120,000 history entries), computed", fmt.Sprintf("%.0f ms", ns/1e6), "", "", "≤ 1 s", verdict(ns <= 1e9)})
	}
	if ns, ok := r.get("BenchmarkPanelWindows/windows", "ns/op"); ok {
		each, _ := r.get("BenchmarkPanelWindows/compute-each", "ns/op")
		mb, _ := r.get("BenchmarkPanelWindows/windows", "B/op")
		eachMB, _ := r.get("BenchmarkPanelWindows/compute-each", "B/op")
		rows = append(rows, row{"uptime of a 100,000-instance service over four windows, as the panel computes it every 10 s", fmt.Sprintf("%.0f ms, %.0f MB allocated", ns/1e6, mb/1e6),
			fmt.Sprintf("%.0f ms, %.0f MB (one computation a window)", each/1e6, eachMB/1e6), fmt.Sprintf("%.2fx", ns/each), "", ""})
	}
	if ns, ok := r.get("BenchmarkUptimeOfAFleetThatRuns/kept", "ns/op"); ok {
		all, _ := r.get("BenchmarkUptimeOfAFleetThatRuns/worked_out", "ns/op")
		rows = append(rows, row{"uptime of 100,000 instances in 50 services that run, one computation of the panel's", fmt.Sprintf("%.0f ms", ns/1e6),
			fmt.Sprintf("%.0f ms (every instance worked out)", all/1e6), fmt.Sprintf("%.2fx", ns/all), "", ""})
	}
	if len(missing) > 0 {
		return fmt.Errorf("no results for %s: each failed, was skipped or was not run", strings.Join(missing, ", "))
	}
	fmt.Fprintln(w, "| measure | result | baseline (same run) | ratio | target | |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, x := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", x.measure, x.result, x.baseline, x.ratio, x.target, x.verdict)
	}
	return nil
}
