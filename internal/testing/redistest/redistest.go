// Package redistest starts real redis-server (or valkey-server) processes for
// tests, on free loopback ports, and can kill, restart, pause and resume
// them to prove what happens to heartbeats when Valkey misbehaves.
//
// The binary is found as $REDIS_SERVER, else valkey-server, else
// redis-server on PATH. When there is none the test fails with a message
// saying how to install one: wire behaviour is never skipped.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/daemon"

	"github.com/otel-heartbeat/heartbeat/internal/testing/binary"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// startTimeout bounds how long a server may take to say it is ready.
const startTimeout = 15 * time.Second

// Server is one redis-server process owned by a test.
type Server struct {
	t    testing.TB
	bin  string
	args []string
	dir  string
	port int
	// config, when set, is a configuration file passed first (a sentinel
	// needs one it can rewrite), and ready the log line that says the
	// server is up.
	config string
	ready  string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	paused  bool
	logTail *tail
}

// Binary returns the server binary the tests will use, or an error that says
// how to install one.
func Binary() (string, error) { return binary.RedisServer.Find() }

// Start starts a server for t on a free loopback port and stops it when the
// test ends. extra are additional configuration directives as command-line
// arguments, e.g. "--requirepass", "secret".
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, bin: bin, args: extra, dir: t.TempDir()}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if s.port, err = FreePort(); err != nil {
			t.Fatal(err)
		}
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.stop)
			return s
		}
	}
	t.Fatalf("redistest: %v", lastErr)
	return nil
}

// StartOnPort is Start on a given port, for a test that must point a client
// at an address before the server exists.
func StartOnPort(t testing.TB, port int, extra ...string) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, bin: bin, args: extra, dir: t.TempDir(), port: port}
	if err := s.start(); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.stop)
	return s
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) { return daemon.FreePort() }

// Addr returns host:port of the server.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port returns the server's port.
func (s *Server) Port() int { return s.port }

// URL returns a redis:// URL of the server.
func (s *Server) URL() string { return "redis://" + s.Addr() }

// portPlaceholder in extra arguments is replaced by the server's port.
const portPlaceholder = "{port}"

func (s *Server) start() error {
	extra := make([]string, len(s.args))
	for i, a := range s.args {
		extra[i] = strings.ReplaceAll(a, portPlaceholder, strconv.Itoa(s.port))
	}
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--logfile", "",
		"--loglevel", "notice",
	}
	if s.config != "" {
		args = append([]string{s.config, "--sentinel"}, args...)
	} else {
		args = append(args, "--save", "", "--appendonly", "no")
	}
	args = append(args, extra...)
	readyLine := s.ready
	if readyLine == "" {
		readyLine = "Ready to accept connections"
	}
	cmd := exec.Command(s.bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	ready := make(chan struct{})
	logTail := newTail(40)
	go func() {
		sc := bufio.NewScanner(out)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			logTail.add(line)
			if !signalled && strings.Contains(line, readyLine) {
				close(ready)
				signalled = true
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	select {
	case <-ready:
	case <-exited:
		return fmt.Errorf("%s exited at start on port %d:\n%s", s.bin, s.port, logTail)
	case <-time.After(startTimeout):
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("%s did not become ready in %v:\n%s", s.bin, startTimeout, logTail)
	}
	s.mu.Lock()
	s.cmd, s.exited, s.paused, s.logTail = cmd, exited, false, logTail
	s.mu.Unlock()
	return nil
}

// Kill ends the server with SIGKILL, as a crash would, and waits until it
// has exited. Connections to it are reset.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, exited, paused := s.cmd, s.exited, s.paused
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	if paused {
		_ = cmd.Process.Signal(syscall.SIGCONT)
	}
	<-exited
}

// Restart starts the server again on the same port after Kill. Its data is
// gone, as after a crash without persistence.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = s.start(); err == nil {
			return
		}
	}
	s.t.Fatalf("redistest: restart: %v", err)
}

// Pause stops the server with SIGSTOP: connections stay open and the kernel
// still accepts new ones, but nothing is answered, as with a stalled server.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP, true) }

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume() { s.signal(syscall.SIGCONT, false) }

func (s *Server) signal(sig syscall.Signal, paused bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("redistest: %v on a server that is not running", sig)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("redistest: %v: %v", sig, err)
	}
	s.paused = paused
}

func (s *Server) stop() {
	s.mu.Lock()
	failed := s.t.Failed()
	logTail := s.logTail
	s.mu.Unlock()
	s.Kill()
	if failed && logTail != nil {
		s.t.Logf("redis-server on port %d, last log lines:\n%s", s.port, logTail)
	}
}

// Client returns a plain client of the server for a test's own assertions,
// closed when the test ends.
func (s *Server) Client(t testing.TB, opts ...func(*redis.Options)) *redis.Client {
	o := &redis.Options{
		Addr:                     s.Addr(),
		MaxRetries:               -1,
		DialTimeout:              2 * time.Second,
		ReadTimeout:              2 * time.Second,
		WriteTimeout:             2 * time.Second,
		ContextTimeoutEnabled:    true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	for _, f := range opts {
		f(o)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Do runs one command on a fresh admin connection, for set-up such as ACL
// SETUSER or CLIENT KILL, and fails the test on error.
func (s *Server) Do(t testing.TB, args ...any) any {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr: s.Addr(), MaxRetries: -1,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := c.Do(ctx, args...).Result()
	if err != nil {
		t.Fatalf("redistest: %v: %v", args, err)
	}
	return v
}

// Calls is how many times the server has run command (lower case, as
// INFO commandstats names it: "publish", "evalsha"), 0 before the first.
func (s *Server) Calls(t testing.TB, command string) int64 {
	t.Helper()
	info, _ := s.Do(t, "INFO", "commandstats").(string)
	for _, l := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(l, "cmdstat_"+command+":calls="); ok {
			n, err := strconv.ParseInt(rest[:strings.IndexByte(rest+",", ',')], 10, 64)
			if err != nil {
				t.Fatalf("redistest: INFO commandstats: %q: %v", l, err)
			}
			return n
		}
	}
	return 0
}

// CPU is the CPU time the server has used since it started, user and
// system (INFO cpu): what the commands it was sent cost it.
func (s *Server) CPU(t testing.TB) time.Duration {
	t.Helper()
	info, _ := s.Do(t, "INFO", "cpu").(string)
	var sum float64
	seen := 0
	for _, l := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(l), ":")
		if k != "used_cpu_sys" && k != "used_cpu_user" {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("redistest: INFO cpu: %q: %v", l, err)
		}
		sum += f
		seen++
	}
	if seen != 2 {
		t.Fatalf("redistest: INFO cpu has no used_cpu_sys and used_cpu_user: %q", info)
	}
	return time.Duration(sum * float64(time.Second))
}

// tail keeps the last lines of a server's log for failure messages, and
// tells waiters when a line they expect appears.
type tail struct {
	mu      sync.Mutex
	lines   []string
	max     int
	waiters []waiter
}

type waiter struct {
	substr string
	seen   chan struct{}
}

func newTail(max int) *tail { return &tail{max: max} }

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == t.max {
		t.lines = append(t.lines[:0], t.lines[1:]...)
	}
	t.lines = append(t.lines, line)
	kept := t.waiters[:0]
	for _, w := range t.waiters {
		if strings.Contains(line, w.substr) {
			close(w.seen)
		} else {
			kept = append(kept, w)
		}
	}
	t.waiters = kept
}

// Expect returns a channel closed when the server logs a line containing
// substr from now on: register before doing what should make it log.
func (s *Server) Expect(substr string) <-chan struct{} {
	s.mu.Lock()
	t := s.logTail
	s.mu.Unlock()
	w := waiter{substr: substr, seen: make(chan struct{})}
	t.mu.Lock()
	t.waiters = append(t.waiters, w)
	t.mu.Unlock()
	return w.seen
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// PSubscribe subscribes a new client of the server to pattern and returns
// once the server has confirmed, so that nothing published afterwards is
// missed. The subscription is closed when the test ends.
func (s *Server) PSubscribe(t testing.TB, patterns ...string) *redis.PubSub {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ps := s.Client(t).PSubscribe(ctx, patterns...)
	for range patterns {
		if _, err := ps.Receive(ctx); err != nil {
			t.Fatalf("redistest: PSUBSCRIBE %v: %v", patterns, err)
		}
	}
	t.Cleanup(func() { _ = ps.Close() })
	return ps
}
