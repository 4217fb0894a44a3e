package main

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/leaktest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/proctest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/testbin"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

const interval = time.Second

// judging is how long after the 1.5-interval mark the client may still
// pick a crashed instance: the monitor judges silence only up to its last
// answered probe of the subscription (every 100 ms), and the verdict then
// reaches the client's output.
const judging = 300 * time.Millisecond

type instance struct {
	id, addr string
	p        *proctest.Process
}

// seen is call's output so far, with when the test read each line.
type seen struct {
	t        *testing.T
	p        *proctest.Process
	requests []record
	left     map[string]record
	leftAt   map[string]time.Time
}

// read takes call's lines until cond holds, failing after timeout.
func (s *seen) read(timeout time.Duration, what string, cond func() bool) {
	s.t.Helper()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case l, ok := <-s.p.Lines:
			if !ok {
				s.t.Fatalf("call's output ended waiting for %s", what)
			}
			var r record
			if err := json.Unmarshal([]byte(l.Text), &r); err != nil {
				s.t.Fatalf("call wrote %q: %v", l.Text, err)
			}
			switch r.Type {
			case "request":
				s.requests = append(s.requests, r)
			case "left":
				s.left[r.Instance], s.leftAt[r.Instance] = r, l.At
			}
		case <-deadline:
			s.t.Fatalf("no %s within %v", what, timeout)
		}
	}
}

func (s *seen) served(id string) int {
	n := 0
	for _, r := range s.requests {
		if r.OK && r.Instance == id {
			n++
		}
	}
	return n
}

func parse(t *testing.T, s string) time.Time {
	t.Helper()
	ts, err := wire.ParseTimestamp(s)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// The client spreads requests over three instances of a service found by
// their heartbeats alone. It stops sending to one killed with SIGKILL
// within 1.5 intervals of the kill (plus the judging delay), retrying on
// another the requests the crash caught, and to one stopped with SIGTERM
// at once, without a request lost or retried: that instance's stopping
// heartbeat comes before it stops answering.
func TestClientFollowsTheAliveInstances(t *testing.T) {
	srv := redistest.Start(t)
	bin := testbin.Build(t, ".")
	environ := proctest.Env("OTEL_EXPORTER_VALKEY_ENDPOINT="+srv.URL(), "HEARTBEAT_INTERVAL=1")

	var inst []instance
	for i := 0; i < 3; i++ {
		p := proctest.Start(t, bin, environ, "serve", "--service", "geocoding_service", "--work", "5ms", "--drain", "1s")
		f := strings.Fields(p.Expect("serving geocoding_service", 10*time.Second).Text)
		inst = append(inst, instance{id: strings.Trim(f[2], "()"), addr: f[4], p: p})
	}
	crash, graceful, last := inst[0], inst[1], inst[2]

	call := proctest.Start(t, bin, environ, "call", "--service", "geocoding_service", "--json", "--every", "10ms", "--concurrency", "4")
	s := &seen{t: t, p: call, left: map[string]record{}, leftAt: map[string]time.Time{}}
	s.read(10*time.Second, "requests to every instance", func() bool {
		return s.served(crash.id) > 0 && s.served(graceful.id) > 0 && s.served(last.id) > 0
	})

	// SIGKILL: no stopping heartbeat; the instance is judged stale by its
	// silence.
	killedAt := time.Now()
	if err := crash.p.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.read(3*interval, "the crashed instance leaving", func() bool { return s.left[crash.id].Type != "" })
	if r := s.left[crash.id]; r.State != "stale" {
		t.Errorf("the crashed instance left as %q, want stale", r.State)
	}
	took := s.leftAt[crash.id].Sub(killedAt)
	t.Logf("SIGKILL: the client stopped picking the instance %v after the kill", took.Round(time.Millisecond))
	if limit := interval*3/2 + judging; took > limit {
		t.Errorf("the client picked the crashed instance for %v after SIGKILL, more than %v", took, limit)
	}

	// SIGTERM: the stopping heartbeat takes it out at once.
	n := len(s.requests)
	termAt := time.Now()
	if err := graceful.p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s.read(3*interval, "the stopped instance leaving", func() bool { return s.left[graceful.id].Type != "" })
	if r := s.left[graceful.id]; r.State != "stopped" {
		t.Errorf("the stopped instance left as %q, want stopped", r.State)
	}
	took = s.leftAt[graceful.id].Sub(termAt)
	t.Logf("SIGTERM: the client stopped picking the instance %v after the signal", took.Round(time.Millisecond))
	if took > interval/2 {
		t.Errorf("the client picked the stopped instance for %v after SIGTERM; it says it is stopping at once", took)
	}
	graceful.p.Expect("stopped geocoding_service", 10*time.Second)
	s.read(5*time.Second, "requests after the graceful stop", func() bool { return len(s.requests) > n+100 })

	crashLeft, gracefulLeft := parse(t, s.left[crash.id].At), parse(t, s.left[graceful.id].At)
	for _, r := range s.requests {
		if !r.OK {
			t.Errorf("a request was lost: %+v", r)
			continue
		}
		picked := parse(t, r.PickedAt)
		if r.Instance == crash.id && picked.After(crashLeft) {
			t.Errorf("picked the crashed instance after it left: %+v", r)
		}
		if r.Instance == graceful.id && picked.After(gracefulLeft) {
			t.Errorf("picked the stopped instance after it left: %+v", r)
		}
		for _, f := range r.FailedOn {
			if f == graceful.id {
				t.Errorf("a request failed on the instance that stopped gracefully: %+v", r)
			}
		}
	}
	if s.served(last.id) == 0 {
		t.Error("the last instance served nothing")
	}

	if err := call.Cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := call.Wait(10 * time.Second); err != nil {
		t.Errorf("call exited with %v", err)
	}
}
