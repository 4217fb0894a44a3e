package main

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/leaktest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

// setenv points the check at a server for one test.
func setenv(t *testing.T, endpoint string) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "OTEL_") || strings.HasPrefix(k, "HEALTH_REDIS_") || k == "HEARTBEAT_INTERVAL" {
			t.Setenv(k, "")
		}
	}
	t.Setenv("OTEL_EXPORTER_VALKEY_ENDPOINT", endpoint)
}

func TestEveryModePassesOnAHealthyServer(t *testing.T) {
	srv := redistest.Start(t)
	setenv(t, srv.URL())
	var out, errOut bytes.Buffer
	code := run([]string{"--interval", "500ms"}, &out, &errOut)
	if code != 0 || !strings.Contains(out.String(), " passed, 0 failed") {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
	for _, mode := range modes {
		if !strings.Contains(out.String(), "PASS "+mode) {
			t.Errorf("no PASS line for %s", mode)
		}
	}
}

// An ACL user that may publish but not write keys: the check says which
// check failed and why.
func TestACLUserWithoutSETFailsTheLatestStateCheck(t *testing.T) {
	srv := redistest.Start(t)
	srv.Do(t, "ACL", "SETUSER", "checker", "on", ">checker-pw", "~heartbeat:instance:*", "&heartbeat:service:*",
		"+ping", "+hello", "+publish", "+subscribe", "+get", "+pttl", "+exists", "+del")
	setenv(t, "redis://checker:checker-pw@"+srv.Addr())
	var out bytes.Buffer
	code := run([]string{"--interval", "500ms", "basic"}, &out, &out)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out.String())
	}
	var failLine string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "FAIL") {
			failLine = l
			break
		}
	}
	if !strings.Contains(failLine, "latest-state key") || !strings.Contains(failLine, "NOPERM") {
		t.Errorf("first FAIL line %q, want the latest-state key and NOPERM\n%s", failLine, out.String())
	}
	if strings.Contains(out.String(), "checker-pw") {
		t.Error("the password was printed")
	}
	if !strings.Contains(out.String(), "PASS basic    final heartbeat says stopping") {
		t.Errorf("heartbeats should still be published:\n%s", out.String())
	}
}

func TestUnreachableAndUsage(t *testing.T) {
	port, _ := redistest.FreePort()
	setenv(t, "redis://127.0.0.1:"+strconv.Itoa(port))
	var out bytes.Buffer
	if code := run(nil, &out, &out); code != 2 || !strings.Contains(out.String(), "FAIL connect  cannot tell") || !strings.Contains(out.String(), "0 passed, 0 failed, 1 could not tell") {
		t.Errorf("unreachable: exit %d, want 2\n%s", code, out.String())
	}
	for _, args := range [][]string{{"nonsense"}, {"--interval", "0s"}, {"--name", "a b"}} {
		out.Reset()
		if code := run(args, &out, &out); code != 3 {
			t.Errorf("%v: exit %d\n%s", args, code, out.String())
		}
	}
	setenv(t, "redis://u:hunter2@h:99999")
	out.Reset()
	if code := run(nil, &out, &out); code != 3 || strings.Contains(out.String(), "hunter2") || !strings.Contains(out.String(), "OTEL_EXPORTER_VALKEY_ENDPOINT") {
		t.Errorf("bad endpoint: exit %d\n%s", code, out.String())
	}
}

// lineWriter calls on with every complete line written to it.
type lineWriter struct {
	buf bytes.Buffer
	all bytes.Buffer
	on  func(line string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.all.Write(p)
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.WriteString(line)
			return len(p), nil
		}
		w.on(strings.TrimSuffix(line, "\n"))
	}
}

// Valkey stalls while the monitor check waits for a crashed instance to
// go stale: the check cannot tell, and says so, exiting 2, never a
// verdict on the library.
func TestACheckThatCannotSeeExitsTwo(t *testing.T) {
	srv := redistest.Start(t)
	setenv(t, srv.URL())
	paused := false
	out := &lineWriter{on: func(line string) {
		if !paused && strings.Contains(line, "monitor received it") {
			paused = true
			srv.Pause()
		}
	}}
	var errOut bytes.Buffer
	code := run([]string{"--interval", "1s", "--timeout", "3s", "monitor"}, out, &errOut)
	if paused {
		srv.Resume()
	}
	if code != 2 || !strings.Contains(out.all.String(), "cannot tell") || strings.Contains(out.all.String(), "FAIL monitor  crashed") {
		t.Errorf("exit %d, want 2 saying it cannot tell, and no verdict\n%s%s", code, out.all.String(), errOut.String())
	}
}

// Valkey stalls for less than the monitor takes to say it is blind, or
// while the basic check waits for a heartbeat: the checks that fail for
// it say they cannot tell (exit 2), never a verdict on the library.
func TestAShortStallIsNoVerdict(t *testing.T) {
	for _, tc := range []struct {
		mode, at     string
		after, stall time.Duration
	}{
		{"monitor", "monitor received it", 400 * time.Millisecond, 1950 * time.Millisecond},
		{"basic", "PING", 200 * time.Millisecond, 4 * time.Second},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			srv := redistest.Start(t)
			setenv(t, srv.URL())
			var resumed sync.WaitGroup
			paused := false
			out := &lineWriter{on: func(line string) {
				if !paused && strings.Contains(line, tc.at) {
					paused = true
					resumed.Go(func() {
						<-time.After(tc.after)
						srv.Pause()
						<-time.After(tc.stall)
						srv.Resume()
					})
				}
			}}
			var errOut bytes.Buffer
			code := run([]string{"--interval", "1s", "--timeout", "3s", tc.mode}, out, &errOut)
			resumed.Wait()
			if code != 2 || !strings.Contains(out.all.String(), "cannot tell") {
				t.Errorf("exit %d, want 2 saying it cannot tell\n%s%s", code, out.all.String(), errOut.String())
			}
		})
	}
}
