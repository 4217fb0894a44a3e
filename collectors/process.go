package collectors

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/process"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/semconv/v1.43.0/processconv"

	"github.com/otel-heartbeat/heartbeat/internal/report"
)

var (
	cpuModeUser   = []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(processconv.CPUTime{}.AttrCPUMode(processconv.CPUModeUser)))}
	cpuModeSystem = []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(processconv.CPUTime{}.AttrCPUMode(processconv.CPUModeSystem)))}
)

// Process observes this process's uptime, resident memory and CPU time,
// with the semantic conventions' instruments, built by otel-go's semconv
// package (processconv) so that kinds, units and descriptions are theirs:
//
//	process.uptime        gauge, s: seconds since the process started
//	process.memory.usage  up-down counter, By: resident set size
//	                      (gopsutil's MemoryInfo().RSS)
//	process.cpu.time      counter, s: user and system CPU seconds
//	                      (gopsutil's Times()), attribute cpu.mode
//
// On Linux, memory and CPU time come from one read of /proc/self/stat,
// kept open, which holds the very counters gopsutil reads from two files
// it opens each time: one system call a heartbeat instead of about twenty.
// Elsewhere, and should that read fail, gopsutil reads them.
//
// A value gopsutil cannot read is left out of that collection and reported
// once; uptime never fails.
type Process struct {
	proc     *process.Process
	stat     *statFile // Linux: CPU and memory in one read; nil elsewhere
	started  time.Time // monotonic
	offset   time.Duration
	reporter *report.Reporter
	reg      metric.Registration
	once     sync.Once
}

// NewProcess registers the process instruments on the heartbeat scope of the
// configured MeterProvider. Unregister stops observing them.
func NewProcess(opts ...Option) (*Process, error) {
	cfg := newConfig(opts)
	p := &Process{started: time.Now(), reporter: &report.Reporter{Handle: cfg.handle}}
	proc, err := process.NewProcess(int32(os.Getpid()))
	if err != nil {
		p.reporter.Fail("process", fmt.Errorf("collectors: gopsutil cannot read this process: %w; memory and CPU are left out", err))
	} else {
		p.proc = proc
		if s, err := openStat(); err == nil {
			p.stat = s
		}
		// Uptime counts from the process's start, not from ours, as the
		// semantic convention says; it then advances on the monotonic clock.
		if ms, err := proc.CreateTime(); err == nil && ms > 0 {
			if d := time.Since(time.UnixMilli(ms)); d > 0 {
				p.offset = d
			}
		}
	}

	m := cfg.meter()
	uptime, err := processconv.NewUptimeObservable(m)
	if err != nil {
		return nil, fmt.Errorf("collectors: %s: %w", uptime.Name(), err)
	}
	mem, err := processconv.NewMemoryUsageObservable(m)
	if err != nil {
		return nil, fmt.Errorf("collectors: %s: %w", mem.Name(), err)
	}
	cpu, err := processconv.NewCPUTime(m)
	if err != nil {
		return nil, fmt.Errorf("collectors: %s: %w", cpu.Name(), err)
	}
	p.reg, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		p.observe(ctx, o, uptime.Inst(), mem.Inst(), cpu.Inst())
		return nil
	}, uptime.Inst(), mem.Inst(), cpu.Inst())
	if err != nil {
		return nil, fmt.Errorf("collectors: register process callback: %w", err)
	}
	return p, nil
}

// Uptime is the uptime it observes: the time since this process started.
func (p *Process) Uptime() time.Duration { return p.offset + time.Since(p.started) }

func (p *Process) observe(ctx context.Context, o metric.Observer, uptime metric.Float64Observable, mem metric.Int64Observable, cpu metric.Float64Observable) {
	defer func() {
		if r := recover(); r != nil {
			p.reporter.Fail("panic", fmt.Errorf("collectors: process collector panicked: %v", r))
		}
	}()
	o.ObserveFloat64(uptime, p.Uptime().Seconds())
	if p.proc == nil {
		return
	}
	if p.stat != nil {
		if user, system, rss, err := p.stat.read(); err == nil {
			p.reporter.OK("memory")
			p.reporter.OK("cpu")
			o.ObserveInt64(mem, rss)
			o.ObserveFloat64(cpu, user, cpuModeUser...)
			o.ObserveFloat64(cpu, system, cpuModeSystem...)
			return
		}
		// gopsutil below says what is wrong, value by value.
	}
	if mi, err := p.proc.MemoryInfoWithContext(ctx); err != nil {
		p.reporter.Fail("memory", fmt.Errorf("collectors: read resident memory: %w", err))
	} else {
		p.reporter.OK("memory")
		o.ObserveInt64(mem, int64(mi.RSS))
	}
	if t, err := p.proc.TimesWithContext(ctx); err != nil {
		p.reporter.Fail("cpu", fmt.Errorf("collectors: read CPU time: %w", err))
	} else {
		p.reporter.OK("cpu")
		o.ObserveFloat64(cpu, t.User, cpuModeUser...)
		o.ObserveFloat64(cpu, t.System, cpuModeSystem...)
	}
}

// Unregister stops observing the process instruments. It is safe to call
// more than once.
func (p *Process) Unregister() error {
	var err error
	p.once.Do(func() {
		err = p.reg.Unregister()
		if p.stat != nil {
			_ = p.stat.close()
		}
	})
	return err
}
