package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/poll"
	"github.com/otel-heartbeat/heartbeat/internal/testing/proctest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/testbin"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// lastWords follows every heartbeat on the channel and keeps each
// instance's last status, as a watcher would judge it.
type lastWords struct {
	mu     sync.Mutex
	last   map[string]string  // service/instance -> status of its last heartbeat
	uptime map[string]float64 // service/instance -> uptime_seconds of its last heartbeat
	back   []string           // heartbeats whose uptime went backwards
	done   chan struct{}
}

func listen(t *testing.T, srv *redistest.Server) *lastWords {
	t.Helper()
	ps := srv.Client(t).PSubscribe(context.Background(), "heartbeat:service:*")
	if _, err := ps.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	l := &lastWords{last: map[string]string{}, uptime: map[string]float64{}, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for msg := range ps.Channel() {
			m, err := wire.Unmarshal([]byte(msg.Payload))
			if err != nil {
				continue
			}
			k := m.ServiceName + "/" + m.InstanceID
			l.mu.Lock()
			if prev, ok := l.uptime[k]; ok && m.UptimeSeconds < prev {
				l.back = append(l.back, fmt.Sprintf("%s: %s after %.1f s", k, m.Status, prev))
			}
			l.last[k], l.uptime[k] = m.Status, m.UptimeSeconds
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() { _ = ps.Close(); <-l.done })
	return l
}

// running lists the instances whose last heartbeat did not say stopping:
// a watcher judges each of them dead a moment later, and pages for it.
func (l *lastWords) running() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for k, st := range l.last {
		if st != wire.StatusStopping {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func (l *lastWords) heard() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.last)
}

// leftBehind checks that nothing the check published can page anyone:
// every instance's last heartbeat said stopping, and no latest-state key
// is left.
func leftBehind(t *testing.T, srv *redistest.Server, l *lastWords) {
	t.Helper()
	// The last heartbeats are on their way to the listener: wait for the
	// PING behind them to come back on the same server.
	if err := srv.Client(t).Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	poll.Within(5*time.Second, func() bool { return len(l.running()) == 0 })
	if l.heard() == 0 {
		t.Fatal("the listener heard nothing")
	}
	if r := l.running(); len(r) > 0 {
		t.Errorf("instances left running, each a dead instance to every watcher: %v", r)
	}
	l.mu.Lock()
	if len(l.back) > 0 {
		t.Errorf("heartbeats whose uptime went backwards, as if another process sent them: %v", l.back)
	}
	l.mu.Unlock()
	keys, err := srv.Client(t).Keys(context.Background(), "heartbeat:instance:*").Result()
	if err != nil || len(keys) > 0 {
		t.Errorf("latest-state keys left: %v %v", keys, err)
	}
}

// The check proves a deployment without paging anyone: its crashed
// instance too ends with a stopping heartbeat once the crash was judged.
func TestACheckLeavesNothingToPage(t *testing.T) {
	srv := redistest.Start(t)
	setenv(t, srv.URL())
	l := listen(t, srv)
	var out bytes.Buffer
	if code := run([]string{"--interval", "500ms"}, &out, &out); code != 0 {
		t.Fatalf("exit %d\n%s", code, out.String())
	}
	leftBehind(t, srv, l)
}

// Interrupted in the middle (Ctrl-C while a publisher runs, or while its
// crashed instance is being judged), the check ends every instance it
// started gracefully before it exits, and says so.
func TestAnInterruptedCheckEndsItsInstances(t *testing.T) {
	bin := testbin.Build(t, ".")
	for _, at := range []string{"first heartbeat", "monitor received it"} {
		t.Run(at, func(t *testing.T) {
			srv := redistest.Start(t)
			l := listen(t, srv)
			p := proctest.Start(t, bin, proctest.Env("OTEL_EXPORTER_VALKEY_ENDPOINT="+srv.URL()), "--interval", "1s")
			p.Expect(at, 30*time.Second)
			if err := p.Cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			err := p.Wait(15 * time.Second)
			if code := p.Cmd.ProcessState.ExitCode(); code != 2 {
				t.Errorf("exit %d (%v), want 2: an interrupted check cannot tell", code, err)
			}
			var said []string
			for line := range p.Lines {
				said = append(said, line.Text)
			}
			if !strings.Contains(strings.Join(said, "\n"), "interrupted") {
				t.Errorf("output after the interrupt:\n%s", strings.Join(said, "\n"))
			}
			leftBehind(t, srv, l)
		})
	}
}

// An interrupt while Valkey has not answered the first PING yet still
// says so and exits 2: the check could not tell.
func TestAnInterruptBeforeValkeyAnswers(t *testing.T) {
	bin := testbin.Build(t, ".")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c // held open, never answered
		}
	}()
	p := proctest.Start(t, bin, proctest.Env("OTEL_EXPORTER_VALKEY_ENDPOINT=redis://"+ln.Addr().String()), "--timeout", "30s")
	select {
	case c := <-accepted:
		defer c.Close()
	case <-time.After(30 * time.Second):
		t.Fatal("the check never connected")
	}
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = p.Wait(15 * time.Second)
	if code := p.Cmd.ProcessState.ExitCode(); code != 2 {
		t.Errorf("exit %d (%v), want 2: an interrupted check cannot tell", code, err)
	}
	var said []string
	for line := range p.Lines {
		said = append(said, line.Text)
	}
	if out := strings.Join(said, "\n"); !strings.Contains(out, "interrupted (terminated): ended 0 check instances") {
		t.Errorf("output after the interrupt:\n%s", out)
	}
}

// Interrupted while Valkey does not answer, the check does not claim it
// ended its instances gracefully: it says which sent no stopping
// heartbeat, and a second Ctrl-C exits at once.
func TestAnInterruptThatCannotEndItsInstancesSaysSo(t *testing.T) {
	bin := testbin.Build(t, ".")
	for _, again := range []bool{false, true} {
		t.Run(fmt.Sprintf("second interrupt %v", again), func(t *testing.T) {
			srv := redistest.Start(t)
			timeout := "2s"
			if again {
				timeout = "60s" // the second interrupt does not wait for it
			}
			p := proctest.Start(t, bin, proctest.Env("OTEL_EXPORTER_VALKEY_ENDPOINT="+srv.URL()), "--interval", "1s", "--timeout", timeout, "basic")
			p.Expect("first heartbeat", 30*time.Second)
			srv.Pause()
			defer srv.Resume()
			if err := p.Cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			want := "sent no stopping heartbeat"
			if again {
				p.Expect("interrupt again to exit at once", 15*time.Second)
				if err := p.Cmd.Process.Signal(syscall.SIGINT); err != nil {
					t.Fatal(err)
				}
				want = "exiting without ending the check instances"
			}
			line := p.Expect(want, 15*time.Second)
			t.Logf("%s", line.Text)
			if strings.Contains(line.Text, "ended 1 check instances gracefully") {
				t.Errorf("claims a graceful end: %s", line.Text)
			}
			err := p.Wait(15 * time.Second)
			if code := p.Cmd.ProcessState.ExitCode(); code != 2 {
				t.Errorf("exit %d (%v), want 2", code, err)
			}
		})
	}
}
