// Package pubcost measures what a heartbeat costs a publishing process, side
// by side: the library (cmd/library), the same heartbeat written by hand in
// Go (cmd/handwritten) and the original design's Python shape
// (python/publisher.py: asyncio, redis-py, psutil). Each program runs alone
// as its own process against one redis-server; CPU time, context switches
// and peak resident memory come from the kernel's accounting of the
// process (wait4), system calls from strace -f, all threads counted.
//
// A busy measurement runs a program twice, for a long window and for a
// short one, at the same interval, and divides the difference by the
// difference in heartbeats received: start-up and shutdown cancel out. An
// idle measurement starts a program at the default 60 s interval and
// counts what it does between two heartbeats, per minute.
//
// BenchmarkPublisherCost runs all of it; `make bench` prints the table.
package pubcost

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// Program is one publisher to measure: the command that runs it.
type Program struct {
	Name string
	Args []string // Args[0] is the executable
}

// Run is what one run of a program cost, in all.
type Run struct {
	Heartbeats  int64
	CPU         time.Duration // user + system
	CtxSwitches int64         // voluntary + involuntary
	MaxRSS      int64         // bytes
	Syscalls    int64         // under strace only
	TopSyscalls []SyscallCount
	Last        string // the last heartbeat received
}

// SyscallCount is one line of strace's summary.
type SyscallCount struct {
	Name  string
	Calls int64
}

// Cost is a per-heartbeat figure: the long run less the short one.
type Cost struct {
	Heartbeats        int64
	CPUPerHeartbeat   time.Duration
	CtxPerHeartbeat   float64
	SyscallsPerBeat   float64
	MaxRSS            int64
	TopSyscallsPerRun []SyscallCount // the long traced run's, for a reader of the log
}

// Env is where programs run: the server's URL and anything else.
type Env struct {
	Endpoint string
	Strace   string // the strace binary; empty measures no system calls
	Dir      string // for strace's output files
}

func (e Env) environ(interval time.Duration) []string {
	return append(os.Environ(),
		"OTEL_EXPORTER_VALKEY_ENDPOINT="+e.Endpoint,
		"HEARTBEAT_INTERVAL="+strconv.FormatFloat(interval.Seconds(), 'f', -1, 64),
		"OTEL_SERVICE_NAME=pubcost",
		"PYTHONDONTWRITEBYTECODE=1",
	)
}

// Channel is where every program publishes.
const Channel = "heartbeat:service:pubcost"

// Measure runs p for long and for short at interval, then the same under
// strace when env.Strace is set, and returns the cost of one heartbeat.
func Measure(ctx context.Context, env Env, p Program, interval, long, short time.Duration) (Cost, error) {
	var runs [4]Run
	for i, spec := range []struct {
		window time.Duration
		traced bool
	}{{long, false}, {short, false}, {long, true}, {short, true}} {
		if spec.traced && env.Strace == "" {
			continue
		}
		r, err := RunFor(ctx, env, p, interval, spec.window, spec.traced)
		if err != nil {
			return Cost{}, err
		}
		runs[i] = r
	}
	beats := runs[0].Heartbeats - runs[1].Heartbeats
	if beats <= 0 {
		return Cost{}, fmt.Errorf("%s: %d heartbeats in the long run, %d in the short one", p.Name, runs[0].Heartbeats, runs[1].Heartbeats)
	}
	c := Cost{
		Heartbeats:      beats,
		CPUPerHeartbeat: (runs[0].CPU - runs[1].CPU) / time.Duration(beats),
		CtxPerHeartbeat: float64(runs[0].CtxSwitches-runs[1].CtxSwitches) / float64(beats),
		MaxRSS:          runs[0].MaxRSS,
	}
	if env.Strace != "" {
		tb := runs[2].Heartbeats - runs[3].Heartbeats
		if tb <= 0 {
			return Cost{}, fmt.Errorf("%s under strace: %d heartbeats in the long run, %d in the short one", p.Name, runs[2].Heartbeats, runs[3].Heartbeats)
		}
		c.SyscallsPerBeat = float64(runs[2].Syscalls-runs[3].Syscalls) / float64(tb)
		c.TopSyscallsPerRun = runs[2].TopSyscalls
	}
	return c, nil
}

// RunFor runs p at interval for window, counting the heartbeats that reach
// the channel, then stops it with SIGTERM and reads its accounting.
func RunFor(ctx context.Context, env Env, p Program, interval, window time.Duration, traced bool) (Run, error) {
	sub, err := subscribe(ctx, env.Endpoint)
	if err != nil {
		return Run{}, err
	}
	defer sub.Close()
	args := p.Args
	var out string
	if traced {
		out = filepath.Join(env.Dir, fmt.Sprintf("strace-%s-%d.txt", p.Name, time.Now().UnixNano()))
		args = append([]string{env.Strace, "-f", "-c", "-qq", "-o", out, "--"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env.environ(interval)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return Run{}, fmt.Errorf("%s: %w", p.Name, err)
	}
	var beats int64
	var last string
	ch := sub.Channel(redis.WithChannelSize(1 << 16))
	timer := time.NewTimer(window)
	defer timer.Stop()
counting:
	for {
		select {
		case m := <-ch:
			beats++
			last = m.Payload
		case <-timer.C:
			break counting
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return Run{}, ctx.Err()
		}
	}
	target := cmd.Process.Pid
	if traced {
		// The program is strace's child: signal it, not strace.
		pid, err := tracee(target)
		if err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return Run{}, fmt.Errorf("%s: %w", p.Name, err)
		}
		target = pid
	}
	if err := syscall.Kill(target, syscall.SIGTERM); err != nil {
		return Run{}, fmt.Errorf("%s: %w", p.Name, err)
	}
	if err := waitStopped(cmd, target, 10*time.Second); err != nil {
		return Run{}, fmt.Errorf("%s: %w: %s", p.Name, err, stderr.String())
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return Run{}, errors.New("no resource usage for the child")
	}
	r := Run{
		Heartbeats:  beats,
		CPU:         time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		CtxSwitches: ru.Nvcsw + ru.Nivcsw,
		MaxRSS:      ru.Maxrss << 10,
		Last:        last,
	}
	if traced {
		total, top, err := ReadStrace(out)
		if err != nil {
			return Run{}, fmt.Errorf("%s: %w", p.Name, err)
		}
		r.Syscalls, r.TopSyscalls = total, top
	}
	return r, nil
}

// subscription is the benchmark's own subscriber to Channel.
type subscription struct {
	*redis.PubSub
	client *redis.Client
}

// subscribe subscribes to Channel on the server at endpoint and waits for
// the server to confirm it, so that no heartbeat published after it returns
// is missed.
func subscribe(ctx context.Context, endpoint string) (*subscription, error) {
	opts, err := redis.ParseURL(endpoint)
	if err != nil {
		return nil, err
	}
	client := redis.NewClient(opts)
	sub := client.Subscribe(ctx, Channel)
	if _, err := sub.Receive(ctx); err != nil {
		sub.Close()
		client.Close()
		return nil, fmt.Errorf("subscribe to %s: %w", Channel, err)
	}
	return &subscription{sub, client}, nil
}

// Close ends the subscription and its connection.
func (s *subscription) Close() error { return errors.Join(s.PubSub.Close(), s.client.Close()) }

// waitStopped waits for cmd, whose program (pid, cmd's own or its child
// under strace) was sent SIGTERM, to end; a program still running after
// grace is killed, and that is an error.
func waitStopped(cmd *exec.Cmd, pid int, grace time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		_ = syscall.Kill(pid, syscall.SIGKILL)
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("still running %v after SIGTERM; killed", grace)
	}
}

// tracee returns the one child of strace's process pid.
func tracee(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0, fmt.Errorf("strace's child: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) != 1 {
		return 0, fmt.Errorf("strace has %d children, not 1", len(f))
	}
	return strconv.Atoi(f[0])
}

// ReadStrace reads the summary strace -c wrote: the total of calls and the
// calls of each system call, most first. An empty file is no calls: strace
// writes no table for a process that made none while it was attached.
func ReadStrace(path string) (int64, []SyscallCount, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	var total int64 = -1
	var each []SyscallCount
	lines := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines++
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || fields[0] == "%" || strings.HasPrefix(fields[0], "-") {
			continue
		}
		calls, err := strconv.ParseInt(fields[3], 10, 64)
		if err != nil {
			continue
		}
		name := fields[len(fields)-1]
		if name == "total" {
			total = calls
			continue
		}
		each = append(each, SyscallCount{name, calls})
	}
	if err := sc.Err(); err != nil {
		return 0, nil, err
	}
	if lines == 0 {
		return 0, nil, nil // strace writes nothing when nothing was called
	}
	if total < 0 {
		return 0, nil, fmt.Errorf("%s: no total in strace's summary", path)
	}
	sort.Slice(each, func(i, j int) bool { return each[i].Calls > each[j].Calls })
	return total, each, nil
}

// Idle is what a program does between two heartbeats at the default 60 s
// interval, per minute.
type Idle struct {
	CtxPerMinute      float64
	SyscallsPerMinute float64
	TopSyscalls       []SyscallCount
}

// MeasureIdle starts p at the default interval, waits for its first
// heartbeat and settle, then counts its context switches from /proc over
// window, then its system calls with strace attached over
// another window. Both windows must end before the second heartbeat: 2
// windows and settle under 60 s.
func MeasureIdle(ctx context.Context, env Env, p Program, settle, window time.Duration) (Idle, error) {
	if settle+2*window >= 55*time.Second {
		return Idle{}, fmt.Errorf("idle windows of %v after %v reach the second heartbeat", window, settle)
	}
	sub, err := subscribe(ctx, env.Endpoint)
	if err != nil {
		return Idle{}, err
	}
	defer sub.Close()
	cmd := exec.Command(p.Args[0], p.Args[1:]...)
	cmd.Env = env.environ(60 * time.Second)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return Idle{}, fmt.Errorf("%s: %w", p.Name, err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = waitStopped(cmd, cmd.Process.Pid, 10*time.Second)
	}()
	wait := func(d time.Duration) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	first := time.NewTimer(10 * time.Second)
	defer first.Stop()
	select {
	case <-sub.Channel():
	case <-first.C:
		return Idle{}, fmt.Errorf("%s: no first heartbeat in 10 s: %s", p.Name, stderr.String())
	case <-ctx.Done():
		return Idle{}, ctx.Err()
	}
	if err := wait(settle); err != nil {
		return Idle{}, err
	}
	pid := cmd.Process.Pid
	ctx0, err := Switches(pid)
	if err != nil {
		return Idle{}, err
	}
	if err := wait(window); err != nil {
		return Idle{}, err
	}
	ctx1, err := Switches(pid)
	if err != nil {
		return Idle{}, err
	}
	perMinute := float64(time.Minute) / float64(window)
	idle := Idle{CtxPerMinute: float64(ctx1-ctx0) * perMinute}
	if env.Strace == "" {
		return idle, nil
	}
	out := filepath.Join(env.Dir, fmt.Sprintf("strace-idle-%s-%d.txt", p.Name, time.Now().UnixNano()))
	st := exec.Command(env.Strace, "-f", "-c", "-qq", "-o", out, "-p", strconv.Itoa(pid))
	st.Stderr = &stderr
	if err := st.Start(); err != nil {
		return Idle{}, err
	}
	if err := wait(window); err != nil {
		_ = st.Process.Kill()
		_ = st.Wait()
		return Idle{}, err
	}
	// SIGINT detaches strace, which writes its summary and then ends by
	// the signal: its exit status says nothing, its summary does.
	_ = st.Process.Signal(syscall.SIGINT)
	werr := st.Wait()
	total, top, err := ReadStrace(out)
	if err != nil {
		return Idle{}, fmt.Errorf("strace -p %d: %w (%v: %s)", pid, err, werr, stderr.String())
	}
	idle.SyscallsPerMinute = float64(total) * perMinute
	idle.TopSyscalls = top
	return idle, nil
}

// Switches reads the context switches, voluntary and not, of every thread
// of process pid. (Idle CPU time is not measured: /proc counts it in 10 ms
// ticks, which a publisher idle for a minute does not reach.)
func Switches(pid int) (int64, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil {
		return 0, err
	}
	if len(tasks) == 0 {
		return 0, fmt.Errorf("process %d has no threads in /proc", pid)
	}
	var switches int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // a thread that ended meanwhile
		}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				switches += n
			}
		}
	}
	return switches, nil
}
