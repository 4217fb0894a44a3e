package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/poll"
	"github.com/otel-heartbeat/heartbeat/internal/testing/proctest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/testbin"
)

// What `go run ./examples/demo` compiles before it can print anything is
// this package and its imports: the standard library alone, a few seconds
// on a fresh machine. The demo itself, a minute's compile, is built after
// the launcher has said so.
func TestTheLauncherImportsOnlyTheStandardLibrary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p != "github.com/otel-heartbeat/heartbeat/examples/demo" {
			t.Errorf("the launcher imports %s: the first run would compile it before saying anything", p)
		}
	}
}

// The first thing the demo says is what the first run costs, before it
// compiles; then the demo runs with the arguments given, and its exit
// status is the launcher's: 0 for --help, 2 for a wrong flag.
func TestTheLauncherSaysWhatTheFirstRunCostsFirst(t *testing.T) {
	bin := testbin.Build(t, ".")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, 0, "-stay"},
		{[]string{"--interval", "1ns"}, 2, "--interval"},
	} {
		cmd := exec.Command(bin, c.args...)
		cmd.Env = proctest.Env()
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stderr)
		var lines []string
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		err = cmd.Wait()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		text := strings.Join(lines, "\n")
		if len(lines) == 0 || !regexp.MustCompile(`^compiling the demo \(first run: about \d+ s on 2 cores, then cached\)`).MatchString(lines[0]) {
			t.Errorf("%q: the first line is not what the first run costs:\n%s", c.args, text)
		}
		if code != c.code || !strings.Contains(text, c.want) {
			t.Errorf("%q: exit %d, stderr:\n%s\nwant exit %d and %q", c.args, code, text, c.code, c.want)
		}
	}
}

var pidsRe = regexp.MustCompile(`\(pids (\d+), (\d+), (\d+)\)`)

// startDemo runs the launcher at a 400 ms interval with args, compiling
// into tmp, until it has started the services; it returns their pids.
func startDemo(t *testing.T, bin, tmp string, args ...string) (*proctest.Process, []int) {
	t.Helper()
	p := proctest.Start(t, bin, proctest.Env("TMPDIR="+tmp), append([]string{"--interval", "400ms"}, args...)...)
	m := pidsRe.FindStringSubmatch(p.Expect("(pids ", 2*time.Minute).Text)
	if m == nil {
		t.Fatal("no pids on the line that starts the services")
	}
	var pids []int
	for _, s := range m[1:] {
		pid, _ := strconv.Atoi(s)
		pids = append(pids, pid)
	}
	return p, pids
}

// Ctrl-C or SIGTERM reaches the demo through the launcher: everything
// stops, the exit status is the demo's, and neither a service nor the
// compiled demo is left.
func TestTheLauncherPassesTheStopOn(t *testing.T) {
	bin := testbin.Build(t, ".")
	tmp := t.TempDir()
	p, pids := startDemo(t, bin, tmp, "--panel", "127.0.0.1:0", "--stay")
	p.Expect("stays up at", time.Minute)
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(time.Minute); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	proctest.Gone(t, "after the demo ended, service", pids)
	if left, err := os.ReadDir(tmp); err != nil || len(left) != 0 {
		t.Errorf("left in TMPDIR: %v %v", left, err)
	}
}

// Killed outright, the launcher cannot pass a stop on: the demo and its
// services still end (the kernel sends them SIGTERM), and what the
// launcher compiled is removed by the next run.
func TestAKilledLauncherLeavesNothingRunning(t *testing.T) {
	bin := testbin.Build(t, ".")
	tmp := t.TempDir()
	p, pids := startDemo(t, bin, tmp, "--panel", "", "--forever")
	if err := p.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.Wait(time.Minute)
	for _, pid := range pids {
		// The services stop gracefully, a heartbeat's time at most; the
		// story reaps them, and init reaps the story.
		if !poll.Within(30*time.Second, func() bool { return !proctest.Running(pid) }) {
			t.Errorf("service process %d still runs after its launcher was killed", pid)
		}
	}
	if left, err := os.ReadDir(tmp); err != nil || len(left) != 1 {
		t.Fatalf("a killed launcher left %v in TMPDIR (%v), want its one directory", left, err)
	}
	cmd := exec.Command(bin, "--help")
	cmd.Env = proctest.Env("TMPDIR=" + tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	if left, err := os.ReadDir(tmp); err != nil || len(left) != 0 {
		t.Errorf("the next run left %v in TMPDIR (%v)", left, err)
	}
}
