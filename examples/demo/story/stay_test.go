package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/poll"
	"github.com/otel-heartbeat/heartbeat/internal/testing/proctest"
)

// lines is the demo's stdout as the test reads it: every line on a
// channel, and the whole text.
type lines struct {
	mu      sync.Mutex
	all     bytes.Buffer
	partial []byte
	ch      chan string
	ended   chan struct{} // closed when the demo has returned
}

func newLines() *lines { return &lines{ch: make(chan string, 10_000), ended: make(chan struct{})} }

func (l *lines) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(b)
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			return len(b), nil
		}
		l.ch <- string(l.partial[:i])
		l.partial = l.partial[i+1:]
	}
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

// expect returns the first line matching re, and its submatches.
func (l *lines) expect(t *testing.T, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case line := <-l.ch:
			if m := re.FindStringSubmatch(line); m != nil {
				return m
			}
		case <-l.ended:
			for {
				select {
				case line := <-l.ch:
					if m := re.FindStringSubmatch(line); m != nil {
						return m
					}
				default:
					t.Fatalf("the demo ended without a line matching %s:\n%s", re, l.String())
				}
			}
		case <-deadline:
			t.Fatalf("no line matching %s within %v:\n%s", re, timeout, l.String())
		}
	}
}

var pidsRe = regexp.MustCompile(`\(pids (\d+), (\d+), (\d+)\)`)

// pids are the services' process ids, from the line that starts them.
func (l *lines) pids(t *testing.T) []int {
	t.Helper()
	m := l.expect(t, pidsRe, 60*time.Second)
	var out []int
	for _, s := range m[1:] {
		n, _ := strconv.Atoi(s)
		out = append(out, n)
	}
	return out
}

// fleet is what the panel's API says of the three services.
func fleetState(url string) (map[string]struct{ Alive, Dead, Stopped int }, error) {
	resp, err := http.Get(url + "api/v1/services")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Services []struct {
			Name   string
			Counts struct{ Alive, Dead, Stopped int }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	out := map[string]struct{ Alive, Dead, Stopped int }{}
	for _, s := range body.Services {
		out[s.Name] = s.Counts
	}
	return out, nil
}

// trackerHeartbeats is the heartbeat count of tracker_fetcher's instance,
// as the panel last received it.
func trackerHeartbeats(url string) int64 {
	resp, err := http.Get(url + "api/v1/services/tracker_fetcher")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var body struct{ Instances []struct{ Heartbeats int64 } }
	if json.NewDecoder(resp.Body).Decode(&body) != nil || len(body.Instances) != 1 {
		return -1
	}
	return body.Instances[0].Heartbeats
}

var stayRe = regexp.MustCompile(`the admin panel stays up at (http://127\.0\.0\.1:\d+/); Ctrl-C to stop`)

// In a terminal the story ends with the admin panel still up, showing it,
// with the broker and the service that survived; Ctrl-C (here, the
// context the signal would cancel) stops everything: the demo returns 0,
// no service process is left (the package's leak check sees to the
// goroutines). Out of a terminal the demo ends by itself, as in CI;
// --stay decides either way.
func TestDemoStaysUpInATerminalUntilStopped(t *testing.T) {
	for _, c := range []struct {
		name        string
		interactive bool
		flags       []string
		stays       bool
	}{
		{"terminal", true, nil, true},
		{"terminal, --stay=false", true, []string{"--stay=false"}, false},
		{"no terminal", false, nil, false},
		{"no terminal, --stay", false, []string{"--stay"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := newLines()
			var errb syncBuffer
			done := make(chan int, 1)
			args := append([]string{"--interval", "400ms", "--panel", "127.0.0.1:0"}, c.flags...)
			go func() {
				code := runDemo(ctx, args, out, &errb, c.interactive)
				close(out.ended)
				done <- code
			}()
			pids := out.pids(t)
			defer proctest.Gone(t, "after the demo ended, service", pids)
			defer func() {
				cancel()
				select {
				case <-done:
				case <-time.After(60 * time.Second):
					t.Fatal("the demo did not end within 60 s of its stop")
				}
			}()
			out.expect(t, regexp.MustCompile(`✔ the crash was told from the graceful stop`), 90*time.Second)

			if !c.stays {
				select {
				case code := <-done:
					done <- code
					if code != 0 {
						t.Errorf("exit %d\n%s\nstderr:\n%s", code, out.String(), errb.String())
					}
				case <-time.After(30 * time.Second):
					t.Fatalf("the demo did not end by itself:\n%s", out.String())
				}
				if strings.Contains(out.String(), "stays up") {
					t.Errorf("the demo said it stays up:\n%s", out.String())
				}
				return
			}

			url := out.expect(t, stayRe, 10*time.Second)[1]
			fleet, err := fleetState(url)
			if err != nil {
				t.Fatalf("the admin panel does not answer after the story: %v", err)
			}
			if f := fleet["geofence_service"]; f.Dead != 1 {
				t.Errorf("geofence_service: %+v; want dead", f)
			}
			if f := fleet["geocoding_service"]; f.Stopped != 1 {
				t.Errorf("geocoding_service: %+v; want stopped", f)
			}
			// tracker_fetcher still runs and publishes through the broker.
			first := trackerHeartbeats(url)
			poll.Until(t, 10*time.Second, "new heartbeat of tracker_fetcher after the story", func() bool {
				return first > 0 && trackerHeartbeats(url) >= first+2
			})
			select {
			case code := <-done:
				t.Fatalf("the demo ended by itself (exit %d):\n%s", code, out.String())
			default:
			}

			cancel()
			select {
			case code := <-done:
				done <- code
				if code != 0 {
					t.Errorf("exit %d after the stop\n%s\nstderr:\n%s", code, out.String(), errb.String())
				}
			case <-time.After(60 * time.Second):
				t.Fatalf("the demo did not end within 60 s of its stop:\n%s", out.String())
			}
			if _, err := http.Get(url); err == nil {
				t.Errorf("the admin panel still answers at %s after the stop", url)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer several goroutines write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A terminal is what the demo stays up for: not a pipe, a file or
// /dev/null, where it ends by itself.
func TestOnlyATerminalIsInteractive(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	file, err := os.Create(t.TempDir() + "/out")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	for name, f := range map[string]*os.File{"pipe": w, "/dev/null": null, "file": file} {
		if isTerminal(f) {
			t.Errorf("%s is taken for a terminal", name)
		}
	}
}
