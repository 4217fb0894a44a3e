// Package proctest runs a command as its own process for a test, as an
// operator would, and streams its output lines with the time each was
// read.
package proctest

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/logtail"
)

// Line is one line of output and when the test read it.
type Line struct {
	Text string
	At   time.Time
}

// Process is a running command.
type Process struct {
	t     testing.TB
	Cmd   *exec.Cmd
	Lines chan Line // stdout, closed at its end
	done  chan struct{}
	err   error // cmd.Wait's, once done is closed
}

// Start starts bin with args in environ and streams its stdout. The last
// lines of its stderr are logged if the test fails. The process is killed,
// if still running, when the test ends.
func Start(t testing.TB, bin string, environ []string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = environ
	errs := logtail.New(30)
	w := errs.Writer("", nil)
	cmd.Stderr = w
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Process{t: t, Cmd: cmd, Lines: make(chan Line, 10_000), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.Lines <- Line{sc.Text(), time.Now()}
		}
		close(p.Lines)
	}()
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s stderr, last lines:\n%s%s", bin, errs, w.Partial())
		}
	})
	return p
}

// Expect returns the first line containing want, failing after timeout.
func (p *Process) Expect(want string, timeout time.Duration) Line {
	p.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-p.Lines:
			if !ok {
				p.t.Fatalf("output ended without %q", want)
			}
			if strings.Contains(l.Text, want) {
				return l
			}
		case <-deadline:
			p.t.Fatalf("no line with %q within %v", want, timeout)
		}
	}
}

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.done }

// Wait returns how the process exited, failing the test if it has not
// within timeout.
func (p *Process) Wait(timeout time.Duration) error {
	p.t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.t.Fatalf("%s still running after %v", p.Cmd.Path, timeout)
		return nil
	}
}

// Env returns the test process's environment without the library's
// variables (OTEL_*, HEALTH_REDIS_*, HEARTBEAT_*, NO_COLOR), plus extra.
func Env(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OTEL_") && !strings.HasPrefix(kv, "HEALTH_REDIS_") && !strings.HasPrefix(kv, "HEARTBEAT_") && !strings.HasPrefix(kv, "NO_COLOR") {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}
