// Package daemon starts a real server program for a test (Alertmanager,
// Prometheus) on a free loopback port, waits until it answers ready over
// HTTP, keeps the last lines of its log, and stops it when the test ends:
// one way to run each, so that each fails alike when it cannot start.
package daemon

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/logtail"
)

const (
	// startTimeout bounds how long a program may take to answer ready.
	startTimeout = 15 * time.Second
	// stopTimeout is how long it may take to end after SIGTERM before it
	// is killed.
	stopTimeout = 5 * time.Second
	// attempts is how many free ports are tried: another process may take
	// one between its choice and the program's bind.
	attempts = 5
)

// Spec says how to run one program.
type Spec struct {
	Name  string // for messages, such as "alertmanager"
	Bin   string
	Ready string // the path that answers 200 once it serves, such as /-/ready
	// Args are its arguments to listen on addr (127.0.0.1:PORT), with
	// attempt numbering the tries (for a data directory of its own).
	Args func(addr string, attempt int) []string
}

// Daemon is one running program owned by a test.
type Daemon struct {
	// URL is its base URL, http://127.0.0.1:PORT, without a trailing slash.
	URL string
	// Addr is 127.0.0.1:PORT.
	Addr string

	t      testing.TB
	spec   Spec
	cmd    *exec.Cmd
	exited chan struct{}
	log    *logtail.Tail
}

// Start starts spec for t on a free loopback port, waits until it is
// ready, and stops it when the test ends, logging its last lines if the
// test failed.
func Start(t testing.TB, spec Spec) *Daemon {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < attempts; attempt++ {
		d, err := try(t, spec, attempt)
		if err == nil {
			return d
		}
		lastErr = err
	}
	t.Fatalf("%s: %v", spec.Name, lastErr)
	return nil
}

// Try starts spec once, on one free port, and returns why it could not
// start: its own last log lines when it exited.
func Try(t testing.TB, spec Spec) (*Daemon, error) { return try(t, spec, 0) }

func try(t testing.TB, spec Spec, attempt int) (*Daemon, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	d, err := start(t, spec, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), attempt)
	if err != nil {
		return nil, err
	}
	t.Cleanup(d.stop)
	return d, nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func start(t testing.TB, spec Spec, addr string, attempt int) (*Daemon, error) {
	cmd := exec.Command(spec.Bin, spec.Args(addr, attempt)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Bin, err)
	}
	d := &Daemon{URL: "http://" + addr, Addr: addr, t: t, spec: spec, cmd: cmd, exited: make(chan struct{}), log: logtail.New(60)}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			d.log.Add(sc.Text())
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() {
		<-copied // Wait closes the pipe: read it to the end first
		_ = cmd.Wait()
		close(d.exited)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		if ready(ctx, client, d.URL+spec.Ready) {
			return d, nil
		}
		select {
		case <-d.exited:
			return nil, fmt.Errorf("%s exited at start on %s:\n%s", spec.Bin, addr, d.log)
		case <-ctx.Done():
			d.kill()
			return nil, fmt.Errorf("%s not ready in %v on %s:\n%s", spec.Bin, startTimeout, addr, d.log)
		case <-time.After(25 * time.Millisecond): // polling readiness: it says so only over HTTP
		}
	}
}

func ready(ctx context.Context, c *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// stop ends the program with SIGTERM, then SIGKILL if it has not exited
// after stopTimeout.
func (d *Daemon) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(stopTimeout):
		d.t.Errorf("%s: no exit %v after SIGTERM; killed", d.spec.Name, stopTimeout)
		d.kill()
	}
	if d.t.Failed() {
		d.t.Logf("%s at %s, last log lines:\n%s", d.spec.Name, d.URL, d.log)
	}
}

func (d *Daemon) kill() {
	_ = d.cmd.Process.Kill()
	<-d.exited
}

// Log returns its last log lines.
func (d *Daemon) Log() string { return d.log.String() }
