package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/otel-heartbeat/heartbeat/internal/testing/poll"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/internal/testing/acl"
	"github.com/otel-heartbeat/heartbeat/internal/testing/leaktest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/proctest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
	"github.com/otel-heartbeat/heartbeat/valkeyexporter"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds the monitor and the tracker fetcher once per test run.
func binaries(t *testing.T) (monitorBin, trackerBin string) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "monitor-test")
		if buildErr != nil {
			return
		}
		for _, pkg := range []string{".", "../trackerfetcher"} {
			out := filepath.Join(binDir, filepath.Base(pkg))
			if pkg == "." {
				out = filepath.Join(binDir, "monitor")
			}
			if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
				buildErr = errors.New(string(b))
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatalf("build: %v", buildErr)
	}
	return filepath.Join(binDir, "monitor"), filepath.Join(binDir, "trackerfetcher")
}

func TestMain(m *testing.M) {
	code := leaktest.Run(m)
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// env returns the environment pointing the tools at srv.
func env(srv *redistest.Server, extra ...string) []string {
	return proctest.Env(append([]string{"OTEL_EXPORTER_VALKEY_ENDPOINT=" + srv.URL()}, extra...)...)
}

type jsonEvent struct {
	Type      string          `json:"type"`
	At        string          `json:"at"`
	Service   string          `json:"service"`
	Instance  string          `json:"instance"`
	To        string          `json:"to"`
	Age       float64         `json:"age_seconds"`
	Interval  float64         `json:"interval_seconds"`
	Source    string          `json:"interval_source"`
	Heartbeat json.RawMessage `json:"heartbeat"`
	Degraded  *bool           `json:"degraded"`
	Rules     []string        `json:"rules"`
}

// nextJSON returns the next event matching match, with when it was read.
func nextJSON(t *testing.T, p *proctest.Process, timeout time.Duration, match func(jsonEvent) bool) (jsonEvent, time.Time) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-p.Lines:
			if !ok {
				t.Fatal("monitor output ended")
			}
			var e jsonEvent
			if err := json.Unmarshal([]byte(l.Text), &e); err != nil {
				t.Fatalf("not JSON: %q", l.Text)
			}
			if match(e) {
				return e, l.At
			}
		case <-deadline:
			t.Fatalf("no matching event within %v", timeout)
		}
	}
}

// A crash (SIGKILL, so no final heartbeat) is reported stale after 1.5
// intervals and dead after 3, by the monitor's own timing; a graceful stop
// is reported as stopped, never dead.
func TestCrashIsStaleThenDeadAndGracefulStopIsStopped(t *testing.T) {
	monitorBin, trackerBin := binaries(t)
	srv := redistest.Start(t)
	mon := proctest.Start(t, monitorBin, env(srv), "--json")
	nextJSON(t, mon, 10*time.Second, func(e jsonEvent) bool { return e.Type == "loaded" })

	// The tolerance on when a line appears: these machines are shared.
	const tolerance = 700 * time.Millisecond
	crashing := proctest.Start(t, trackerBin, env(srv, "HEARTBEAT_INTERVAL=1", "OTEL_RESOURCE_ATTRIBUTES=service.instance.id=crash-1"))
	var lastBeat time.Time
	for i := 0; i < 2; i++ {
		_, lastBeat = nextJSON(t, mon, 10*time.Second, func(e jsonEvent) bool { return e.Type == "heartbeat" })
	}
	if err := crashing.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	isTransition := func(to string) func(jsonEvent) bool {
		return func(e jsonEvent) bool { return e.Type == "transition" && e.Instance == "crash-1" && e.To == to }
	}
	stale, staleAt := nextJSON(t, mon, 10*time.Second, isTransition("stale"))
	dead, deadAt := nextJSON(t, mon, 10*time.Second, isTransition("dead"))
	if stale.Age != 1.5 || dead.Age != 3 {
		t.Errorf("ages at the transitions %v and %v, want 1.5 and 3", stale.Age, dead.Age)
	}
	if d := staleAt.Sub(lastBeat); d < 1500*time.Millisecond-tolerance || d > 1500*time.Millisecond+tolerance {
		t.Errorf("stale reported %v after the last heartbeat arrived, want 1.5s ± %v", d, tolerance)
	}
	if d := deadAt.Sub(lastBeat); d < 3*time.Second-tolerance || d > 3*time.Second+tolerance {
		t.Errorf("dead reported %v after the last heartbeat arrived, want 3s ± %v", d, tolerance)
	}

	graceful := proctest.Start(t, trackerBin, env(srv, "HEARTBEAT_INTERVAL=1", "OTEL_RESOURCE_ATTRIBUTES=service.instance.id=graceful-1"))
	nextJSON(t, mon, 10*time.Second, func(e jsonEvent) bool {
		return e.Type == "heartbeat" && strings.Contains(string(e.Heartbeat), "graceful-1")
	})
	if err := graceful.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	nextJSON(t, mon, 10*time.Second, func(e jsonEvent) bool {
		if e.Type == "transition" && e.Instance == "graceful-1" && (e.To == "stale" || e.To == "dead") {
			t.Errorf("graceful stop reported as %s", e.To)
		}
		return e.Type == "transition" && e.Instance == "graceful-1" && e.To == "stopped"
	})
	// Past the dead threshold, a stopped instance is still stopped.
	quiet := time.After(3500 * time.Millisecond)
	for {
		select {
		case l := <-mon.Lines:
			if strings.Contains(l.Text, "graceful-1") && strings.Contains(l.Text, "transition") {
				t.Errorf("after stop: %s", l.Text)
			}
			continue
		case <-quiet:
		}
		break
	}
}

// A tracker fetcher whose work loop hangs (SIGUSR1) beats on: the
// monitor says it is degraded, naming the rule, within the rule's age and
// a heartbeat, and healthy again once the loop is freed (SIGUSR2); as text, and as
// JSON. A malformed rule is refused, naming the flag.
func TestAStuckWorkLoopIsSaidDegraded(t *testing.T) {
	monitorBin, trackerBin := binaries(t)
	srv := redistest.Start(t)
	const rule = "tracker_fetcher: last_successful_operation older than 2s"
	mon := proctest.Start(t, monitorBin, env(srv), "--json", "--health-rule", rule)
	text := proctest.Start(t, monitorBin, env(srv), "--health-rule", rule)
	nextJSON(t, mon, 10*time.Second, func(e jsonEvent) bool { return e.Type == "loaded" })
	fetcher := proctest.Start(t, trackerBin, env(srv, "HEARTBEAT_INTERVAL=0.5", "OTEL_RESOURCE_ATTRIBUTES=service.instance.id=stuck-1"))
	for i := 0; i < 4; i++ {
		nextJSON(t, mon, 10*time.Second, func(e jsonEvent) bool { return e.Type == "heartbeat" })
	}
	if err := fetcher.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	hung := time.Now()
	e, at := nextJSON(t, mon, 10*time.Second, func(e jsonEvent) bool { return e.Type == "health" })
	if e.Instance != "stuck-1" || e.Degraded == nil || !*e.Degraded || len(e.Rules) != 1 || e.Rules[0] != rule {
		t.Errorf("the health event: %+v", e)
	}
	if d := at.Sub(hung); d < 1500*time.Millisecond || d > 5*time.Second {
		t.Errorf("said degraded %v after the loop hung, want about the rule's 2 s", d)
	}
	text.Expect("stuck-1) is degraded: it beats, but breaks "+rule, 10*time.Second)
	if err := fetcher.Cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	e, _ = nextJSON(t, mon, 10*time.Second, func(e jsonEvent) bool { return e.Type == "health" })
	if e.Degraded == nil || *e.Degraded {
		t.Errorf("after the loop was freed: %+v", e)
	}
	text.Expect("stuck-1) is healthy: it keeps to its health rules again", 10*time.Second)

	if code, out := runOnce(t, env(srv), "--health-rule", rule); code != exitUsage || !strings.Contains(out, "--health-rule does not apply to --once") {
		t.Errorf("--once with a health rule: exit %d, %q", code, out)
	}
	var stderr strings.Builder
	cmd := exec.Command(monitorBin, "--health-rule", "tracker_fetcher: queue_size >> 5")
	cmd.Env, cmd.Stderr = env(srv), &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), `-health-rule: "tracker_fetcher: queue_size >> 5": ">>" is not an operator`) {
		t.Errorf("a malformed rule: %v, %q", err, stderr.String())
	}
}

func runOnce(t *testing.T, environ []string, args ...string) (int, string) {
	t.Helper()
	monitorBin, _ := binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Where no latest-state key answers, --once listens for one default
	// interval: a second here, unless a test says otherwise.
	cmd := exec.CommandContext(ctx, monitorBin, append([]string{"--once", "--default-interval", "1s"}, args...)...)
	cmd.Env = environ
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("run: %v", err)
	return -1, ""
}

func latest(service, id string, count int64) string {
	b, err := wire.Marshal(&wire.Message{ServiceName: service, InstanceID: id, Timestamp: time.Now(),
		HeartbeatCount: count, IntervalSeconds: 60, Has: wire.HasHeartbeatCount | wire.HasInterval, Status: "running"})
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestOnceExitCodes(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	c.Set(ctx, "heartbeat:instance:tracker_fetcher:aaaa1111", latest("tracker_fetcher", "aaaa1111", 5), 3*time.Minute)
	c.Set(ctx, "heartbeat:instance:geocoding_service:bbbb2222", latest("geocoding_service", "bbbb2222", 9), 170*time.Second)

	code, out := runOnce(t, env(srv))
	if code != 0 || !strings.Contains(out, "tracker_fetcher") || !strings.Contains(out, "alive") {
		t.Errorf("all alive: exit %d\n%s", code, out)
	}

	// The geocoding key was written 100 s ago: stale at a 60 s interval.
	c.Set(ctx, "heartbeat:instance:geocoding_service:bbbb2222", latest("geocoding_service", "bbbb2222", 9), 80*time.Second)
	code, out = runOnce(t, env(srv))
	if code != 1 || !strings.Contains(out, "stale") {
		t.Errorf("one stale: exit %d\n%s", code, out)
	}
	code, _ = runOnce(t, env(srv), "--service", "tracker_fetcher")
	if code != 0 {
		t.Errorf("--service tracker_fetcher: exit %d", code)
	}
	// A service whose every instance is dead has no key left.
	code, out = runOnce(t, env(srv), "--service", "geofence_service")
	if code != 1 || !strings.Contains(out, "none alive") {
		t.Errorf("dead service: exit %d\n%s", code, out)
	}

	port, _ := redistest.FreePort()
	code, out = runOnce(t, env(srv, "OTEL_EXPORTER_VALKEY_ENDPOINT=redis://127.0.0.1:"+strconv.Itoa(port)))
	if code != 2 || !strings.Contains(out, "cannot reach Valkey") {
		t.Errorf("no Valkey: exit %d\n%s", code, out)
	}
	if strings.Contains(out, "pool.go") {
		t.Errorf("go-redis log lines leak into the output:\n%s", out)
	}
	code, out = runOnce(t, env(srv, "HEALTH_REDIS_PORT=seventy", "OTEL_EXPORTER_VALKEY_ENDPOINT="))
	if code != 3 || !strings.Contains(out, "HEALTH_REDIS_PORT") {
		t.Errorf("bad variable: exit %d\n%s", code, out)
	}
}

// startPublisher runs a Publisher on srv until the test ends.
func startPublisher(t *testing.T, srv *redistest.Server, service string, interval time.Duration) *otelheartbeat.Publisher {
	t.Helper()
	p, err := otelheartbeat.NewPublisher(service, otelheartbeat.WithInterval(interval),
		otelheartbeat.WithExporterOptions(valkeyexporter.WithEndpoint(srv.URL())))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	return p
}

// A monitor started after the services shows them at once, from the
// latest-state keys, without waiting for their next heartbeat.
func TestStartedLateShowsInstancesAtOnce(t *testing.T) {
	monitorBin, _ := binaries(t)
	srv := redistest.Start(t)
	p := startPublisher(t, srv, "tracker_fetcher", time.Hour)

	mon := proctest.Start(t, monitorBin, env(srv))
	mon.Expect("🟢 tracker_fetcher ("+p.InstanceID()[:8]+") is alive", 10*time.Second)
	mon.Expect("read 1 latest-state keys", 10*time.Second)
}

func TestSurvivesAServerRestart(t *testing.T) {
	monitorBin, _ := binaries(t)
	srv := redistest.Start(t)
	startPublisher(t, srv, "geocoding_service", 200*time.Millisecond)

	mon := proctest.Start(t, monitorBin, env(srv))
	mon.Expect("🔄 geocoding_service", 10*time.Second)
	srv.Restart()
	mon.Expect("disconnected from Valkey", 10*time.Second)
	mon.Expect("reconnected", 15*time.Second)
	mon.Expect("🔄 geocoding_service", 10*time.Second)
}

func TestTableAndUsage(t *testing.T) {
	monitorBin, _ := binaries(t)
	srv := redistest.Start(t)
	c := srv.Client(t)
	c.Set(context.Background(), "heartbeat:instance:tracker_fetcher:aaaa1111", latest("tracker_fetcher", "aaaa1111", 5), 3*time.Minute)
	mon := proctest.Start(t, monitorBin, env(srv), "--table", "--refresh", "100ms")
	mon.Expect("SERVICE", 10*time.Second)
	row := mon.Expect("tracker_fetcher  aaaa1111", 10*time.Second)
	if strings.Contains(row.Text, "\x1b[") {
		t.Errorf("colour codes in non-terminal output: %q", row.Text)
	}
	mon.Expect("tracker_fetcher: 1 alive, 0 stale, 0 dead, 0 stopped", 10*time.Second)

	for _, args := range [][]string{{"--table", "--json"}, {"--service", "a b"}, {"--refresh", "0s"}, {"extra"}} {
		cmd := exec.Command(monitorBin, args...)
		cmd.Env = env(srv)
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitUsage {
			t.Errorf("%v: %v, want exit %d", args, err, exitUsage)
		}
	}
}

func TestLeastPrivilegeMonitorACL(t *testing.T) {
	monitorBin, _ := binaries(t)
	srv := redistest.Start(t)
	srv.Do(t, acl.SetUser("monitor", "monitor-secret", acl.Monitor)...)
	c := srv.Client(t)
	c.Set(context.Background(), "heartbeat:instance:tracker_fetcher:aaaa1111", latest("tracker_fetcher", "aaaa1111", 5), 3*time.Minute)
	environ := env(srv, "OTEL_EXPORTER_VALKEY_ENDPOINT=redis://monitor:monitor-secret@"+srv.Addr())

	code, out := runOnce(t, environ)
	if code != 0 || !strings.Contains(out, "aaaa1111 alive") || strings.Contains(out, "NOPERM") {
		t.Errorf("--once with the monitor rule: exit %d\n%s", code, out)
	}
	mon := proctest.Start(t, monitorBin, environ, "--json")
	nextJSON(t, mon, 10*time.Second, func(e jsonEvent) bool { return e.Type == "loaded" })
	c.Publish(context.Background(), "heartbeat:service:tracker_fetcher", latest("tracker_fetcher", "aaaa1111", 6))
	nextJSON(t, mon, 10*time.Second, func(e jsonEvent) bool {
		if e.Type == "malformed" || e.Type == "disconnected" {
			t.Errorf("event %+v", e)
		}
		return e.Type == "heartbeat"
	})
	// Read-only: the monitor's user cannot write a heartbeat key.
	w := srv.Client(t, func(o *redis.Options) { o.Username, o.Password = "monitor", "monitor-secret" })
	if err := w.Set(context.Background(), "heartbeat:instance:x:y", "{}", 0).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("SET as the monitor user: %v", err)
	}
}

// A monitor that cannot read (SIGSTOP) while a flood arrives is cut off by
// the server's output-buffer limit; resumed, it reports the disconnection
// and the lost messages, reconnects, and goes on.
func TestOutputBufferOverflowIsReportedAndSurvived(t *testing.T) {
	monitorBin, _ := binaries(t)
	srv := redistest.Start(t, "--client-output-buffer-limit", "pubsub 256kb 128kb 1")
	mon := proctest.Start(t, monitorBin, env(srv), "--json")
	nextJSON(t, mon, 10*time.Second, func(e jsonEvent) bool { return e.Type == "loaded" })
	c := srv.Client(t)
	ctx := context.Background()

	if err := mon.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 1000)
	payload := strings.Replace(latest("flood", "ffff0000", 1), `"status":"running"`, `"status":"running","pad":"`+pad+`"`, 1)
	// Enough to fill the kernel's socket buffers and then the server's limit.
	for batch := 0; batch < 40; batch++ {
		p := c.Pipeline()
		for i := 0; i < 1000; i++ {
			p.Publish(ctx, "heartbeat:service:flood", payload)
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		if n, _ := c.Do(ctx, "PUBSUB", "NUMPAT").Int(); n == 0 {
			break // the server has cut the monitor off
		}
	}
	if n, _ := c.Do(ctx, "PUBSUB", "NUMPAT").Int(); n != 0 {
		t.Fatal("the server did not disconnect the stalled monitor")
	}
	if err := mon.Cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	nextJSON(t, mon, 60*time.Second, func(e jsonEvent) bool { return e.Type == "disconnected" })
	nextJSON(t, mon, 30*time.Second, func(e jsonEvent) bool { return e.Type == "reconnected" })
	c.Publish(ctx, "heartbeat:service:tracker_fetcher", latest("tracker_fetcher", "aaaa1111", 9))
	nextJSON(t, mon, 10*time.Second, func(e jsonEvent) bool {
		return e.Type == "heartbeat" && strings.Contains(string(e.Heartbeat), "aaaa1111")
	})
}

// terminalSafe fails when text holds anything a terminal would act on or
// not show: ESC and other controls, C1 controls, format characters (Unicode
// Cf: zero-width, bidi), or bytes that are not UTF-8. The output under test
// is not a terminal, so it has no colour codes either.
func terminalSafe(t *testing.T, what, text string) {
	t.Helper()
	if !utf8.ValidString(text) {
		t.Errorf("%s: invalid UTF-8 in %q", what, text)
	}
	for _, r := range text {
		if r != '\n' && (unicode.IsControl(r) || unicode.Is(unicode.Cf, r)) {
			t.Errorf("%s: %U reaches the terminal raw in %q", what, r, text)
			return
		}
	}
}

// A publisher's strings reach no terminal raw, in any output mode: names
// with a zero-width space or a bidi override, escape sequences in field
// keys and values, in channel and key names, and in the decode errors that
// quote them.
func TestHostileStringsAreEscapedInEveryOutput(t *testing.T) {
	monitorBin, _ := binaries(t)
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	const service, id = "payments\u200b", "\u202eevil-0001"
	// The names are refused by the library (they would pass for others),
	// so a hostile publisher writes them by hand.
	hostile := func(count int64) string {
		b, err := wire.Marshal(&wire.Message{ServiceName: "payments", InstanceID: "evil-0001", Timestamp: time.Now(),
			HeartbeatCount: count, IntervalSeconds: 60, Has: wire.HasHeartbeatCount | wire.HasInterval,
			Fields: []wire.Field{
				{Key: "k\x1b[2J", Value: wire.String("\x1b]0;owned\x07\u009b31mred\u2066")},
				{Key: "raw", Value: wire.Value{Kind: wire.KindRaw, Raw: []byte("[\"\u009b2J\u200f\"]")}},
			}})
		if err != nil {
			t.Fatal(err)
		}
		return strings.NewReplacer(`"payments"`, `"`+service+`"`, `"evil-0001"`, `"`+id+`"`).Replace(string(b))
	}
	c.Set(ctx, wire.Key(wire.DefaultKeyPrefix, service, id), hostile(1), 3*time.Minute)
	c.Set(ctx, "heartbeat:instance:x\x1b[2J:y", "{not json", 3*time.Minute)

	_, out := runOnce(t, env(srv))
	terminalSafe(t, "--once", out)
	if !strings.Contains(out, `payments\u200b`) || !strings.Contains(out, `heartbeat:instance:x\x1b[2J:y`) {
		t.Errorf("--once does not show the escaped names:\n%s", out)
	}

	duplicate := `{"service_name":"s","instance_id":"i","timestamp":"2025-01-16T08:30:00Z","\u001b[2J\u200b":1,"\u001b[2J\u200b":2}`
	sentinel := latest("tracker_fetcher", "aaaa1111", 1)
	for _, mode := range [][]string{nil, {"--json"}} {
		mon := proctest.Start(t, monitorBin, env(srv), mode...)
		if mode == nil {
			mon.Expect("latest-state keys", 10*time.Second)
		} else {
			nextJSON(t, mon, 10*time.Second, func(e jsonEvent) bool { return e.Type == "loaded" })
		}
		c.Publish(ctx, "heartbeat:service:"+service, hostile(2))
		c.Publish(ctx, "heartbeat:service:\x1b[31mred\u009b", duplicate)
		c.Publish(ctx, "heartbeat:service:tracker_fetcher", sentinel)
		var all []string
		for done := false; !done; {
			select {
			case l, ok := <-mon.Lines:
				if !ok {
					t.Fatal("monitor output ended")
				}
				all = append(all, l.Text)
				done = strings.Contains(l.Text, "aaaa1111")
			case <-time.After(10 * time.Second):
				t.Fatalf("%v: no sentinel heartbeat; got\n%s", mode, strings.Join(all, "\n"))
			}
		}
		text := strings.Join(all, "\n")
		terminalSafe(t, fmt.Sprint(mode), text)
		if mode != nil {
			for _, l := range all {
				if !json.Valid([]byte(l)) {
					t.Errorf("not JSON: %q", l)
				}
			}
		}
		for _, want := range []string{`payments\u200b`, `\u009b`, `\u001b[2J\u200b`} {
			if !strings.Contains(text, want) && !strings.Contains(text, strings.ReplaceAll(want, `\u001b`, `\x1b`)) {
				t.Errorf("%v: no %s in\n%s", mode, want, text)
			}
		}
	}
}

// --service payments is payments only: an alive payments:worker, whose key
// also matches heartbeat:instance:payments:*, does not make it alive.
func TestOnceServiceMatchesExactly(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	c.Set(ctx, wire.Key(wire.DefaultKeyPrefix, "payments:worker", "bbbb2222"), latest("payments:worker", "bbbb2222", 3), 3*time.Minute)
	code, out := runOnce(t, env(srv), "--service", "payments")
	if code != exitNotAlive || !strings.Contains(out, "no instance of payments") || strings.Contains(out, "bbbb2222") {
		t.Errorf("payments without an instance: exit %d\n%s", code, out)
	}
	c.Set(ctx, wire.Key(wire.DefaultKeyPrefix, "payments", "aaaa1111"), latest("payments", "aaaa1111", 3), 3*time.Minute)
	code, out = runOnce(t, env(srv), "--service", "payments")
	if code != exitOK || !strings.Contains(out, "aaaa1111") || strings.Contains(out, "bbbb2222") {
		t.Errorf("payments with an instance: exit %d\n%s", code, out)
	}
}

// --once that could not read the keys has not seen "all alive": a user
// refused SCAN or GET, a key of another type, or nothing but malformed
// keys exit 2 and say why, naming the endpoint but never the password.
func TestOnceExitsTwoWhenItCannotSee(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	c.Set(ctx, "heartbeat:instance:tracker_fetcher:aaaa1111", latest("tracker_fetcher", "aaaa1111", 5), 3*time.Minute)
	user := func(name, without string) []string {
		rule := strings.Replace(acl.Monitor, " "+without, "", 1)
		if rule == acl.Monitor {
			t.Fatalf("the monitor rule has no %s", without)
		}
		srv.Do(t, acl.SetUser(name, "secret-"+name, rule)...)
		return env(srv, "OTEL_EXPORTER_VALKEY_ENDPOINT=redis://"+name+":secret-"+name+"@"+srv.Addr())
	}
	for _, tt := range []struct {
		name    string
		environ []string
		want    string
	}{
		{"GETRANGE refused", user("nogetrange", "+getrange"), "NOPERM"},
		{"SCAN refused", user("noscan", "+scan"), "NOPERM"},
		{"STRLEN refused", user("nostrlen", "+strlen"), "NOPERM"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out := runOnce(t, tt.environ)
			if code != exitUnreachable || !strings.Contains(out, tt.want) || !strings.Contains(out, srv.Addr()) || !strings.Contains(out, "cannot tell") {
				t.Errorf("exit %d, want %d with %s, the endpoint and why:\n%s", code, exitUnreachable, tt.want, out)
			}
			if strings.Contains(out, "secret-") {
				t.Errorf("the password is shown:\n%s", out)
			}
		})
	}

	c.HSet(ctx, "heartbeat:instance:hash:0001", "service_name", "hash")
	code, out := runOnce(t, env(srv))
	if code != exitUnreachable || !strings.Contains(out, "WRONGTYPE") || !strings.Contains(out, "heartbeat:instance:hash:0001") {
		t.Errorf("a key of another type: exit %d\n%s", code, out)
	}
	c.Del(ctx, "heartbeat:instance:hash:0001", "heartbeat:instance:tracker_fetcher:aaaa1111")
	c.Set(ctx, "heartbeat:instance:broken:0001", "{not json", time.Minute)
	c.Set(ctx, "heartbeat:instance:forever:0002", latest("forever", "0002", 1), 0)
	code, out = runOnce(t, env(srv))
	if code != exitUnreachable || !strings.Contains(out, "all 2 latest-state keys") || !strings.Contains(out, "has no TTL") {
		t.Errorf("only malformed keys: exit %d\n%s", code, out)
	}
	// One malformed key beside an alive instance is reported, and the
	// verdict is the instance's.
	c.Set(ctx, "heartbeat:instance:tracker_fetcher:aaaa1111", latest("tracker_fetcher", "aaaa1111", 5), 3*time.Minute)
	code, out = runOnce(t, env(srv))
	if code != exitOK || !strings.Contains(out, "aaaa1111 alive") || !strings.Contains(out, "heartbeat:instance:broken:0001") {
		t.Errorf("malformed keys beside an alive instance: exit %d\n%s", code, out)
	}
}

// seedPublisher publishes heartbeats exactly as the original design's Python
// publisher does, with no interval_seconds and no latest-state key, every
// period until stop is called.
func seedPublisher(t *testing.T, srv *redistest.Server, service string, period time.Duration) (stop func()) {
	t.Helper()
	c := srv.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(period)
		defer tk.Stop()
		start := time.Now()
		for n := 1; ; n++ {
			msg := fmt.Sprintf(`{"service_name":%q,"instance_id":"a1b2c3d4-e5f6-7890-abcd-%012d","timestamp":%q,"uptime_seconds":%.1f,"heartbeat_count":%d,"memory_usage_mb":156.3,"cpu_usage_percent":12.5,"queue_size":1380}`,
				service, len(service), time.Now().UTC().Format("2006-01-02T15:04:05.000000+00:00"), time.Since(start).Seconds(), n)
			c.Publish(ctx, "heartbeat:service:"+service, msg)
			select {
			case <-tk.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

// Publishers in the original design's format send no interval_seconds: each is judged
// by the interval its own heartbeats show (1 s and 2 s here), stale at 1.5
// and dead at 3 of it, not by a fixed 90 s and 180 s; the output says the
// interval was inferred. --once, with no latest-state key to read, listens
// and finds a healthy one alive.
func TestSeedFormatPublishersAreJudgedByTheirOwnInterval(t *testing.T) {
	monitorBin, _ := binaries(t)
	srv := redistest.Start(t)
	mon := proctest.Start(t, monitorBin, env(srv), "--json")
	nextJSON(t, mon, 10*time.Second, func(e jsonEvent) bool { return e.Type == "loaded" })
	periods := map[string]time.Duration{"seed_1s": time.Second, "seed_2s": 2 * time.Second}
	var stops []func()
	for name, period := range periods {
		stops = append(stops, seedPublisher(t, srv, name, period))
	}
	// Four heartbeats of the slower one: three gaps to go by.
	heard := map[string]int{}
	for heard["seed_2s"] < 4 {
		e, _ := nextJSON(t, mon, 20*time.Second, func(e jsonEvent) bool { return e.Type == "heartbeat" })
		var m struct {
			Service string `json:"service_name"`
		}
		_ = json.Unmarshal(e.Heartbeat, &m)
		heard[m.Service]++
	}
	code, out := runOnce(t, env(srv), "--service", "seed_1s", "--default-interval", "10s")
	if code != 0 || !strings.Contains(out, "listening") || !strings.Contains(out, "alive") {
		t.Errorf("--once on a healthy seed-format publisher: exit %d\n%s", code, out)
	}
	for _, stop := range stops {
		stop()
	}
	stopped := time.Now()
	const tolerance = 700 * time.Millisecond
	got := map[string]jsonEvent{}
	for len(got) < 4 {
		e, at := nextJSON(t, mon, 30*time.Second, func(e jsonEvent) bool { return e.Type == "transition" && (e.To == "stale" || e.To == "dead") })
		got[e.Service+" "+e.To] = e
		period := periods[e.Service]
		want := time.Duration(1.5 * float64(period))
		if e.To == "dead" {
			want = 3 * period
		}
		if e.Source != "inferred" || math.Abs(e.Interval-period.Seconds()) > 0.3 {
			t.Errorf("%s %s judged by interval %vs (%s), want about %v inferred", e.Service, e.To, e.Interval, e.Source, period)
		}
		if d := at.Sub(stopped); d > want+tolerance {
			t.Errorf("%s %s reported %v after it stopped, want within %v", e.Service, e.To, d, want+tolerance)
		}
	}
}

// --once --json writes one JSON object per instance on stdout and nothing
// else there, whether the state came from a latest-state key or, for a
// publisher in the original design's format, from the channel.
func TestOnceJSONIsJSON(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	c.Set(ctx, "heartbeat:instance:tracker_fetcher:aaaa1111", latest("tracker_fetcher", "aaaa1111", 5), 3*time.Minute)
	monitorBin, _ := binaries(t)
	cmd := exec.Command(monitorBin, "--once", "--json")
	cmd.Env = env(srv)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("--once --json: %v", err)
	}
	var got struct {
		Type, Service, State, From string
		Interval                   float64 `json:"interval_seconds"`
	}
	if err := json.Unmarshal(out, &got); err != nil || got.Type != "instance" || got.Service != "tracker_fetcher" || got.State != "alive" || got.Interval != 60 || got.From != "latest_state_key" {
		t.Errorf("--once --json wrote %q (%v)", out, err)
	}

	stop := seedPublisher(t, srv, "seed_1s", 200*time.Millisecond)
	defer stop()
	cmd = exec.Command(monitorBin, "--once", "--json", "--service", "seed_1s", "--default-interval", "5s")
	cmd.Env = env(srv)
	if out, err = cmd.Output(); err != nil {
		t.Fatalf("--once --json --service seed_1s: %v", err)
	}
	if err := json.Unmarshal(out, &got); err != nil || got.Service != "seed_1s" || got.State != "alive" || got.From != "channel" {
		t.Errorf("--once --json from the channel wrote %q (%v)", out, err)
	}
}

// --once listening on the channel (no latest-state key) could not see when
// Valkey stalled while it listened, or when all it heard was malformed:
// it exits 2 and says why, with --json too, never "no instances" and 0.
func TestOnceListeningBlindExitsTwo(t *testing.T) {
	monitorBin, _ := binaries(t)
	srv := redistest.Start(t)
	for _, args := range [][]string{{}, {"--json"}, {"--sharded"}} {
		t.Run("stalled"+strings.Join(args, ""), func(t *testing.T) {
			p := proctest.Start(t, monitorBin, env(srv), append([]string{"--once", "--default-interval", "8s"}, args...)...)
			// The listening line goes to stderr: the subscription shows on the server.
			poll.Until(t, 10*time.Second, "the monitor subscribed", func() bool {
				if slices.Contains(args, "--sharded") {
					// An empty registry: nothing to subscribe to, only
					// the registry to read.
					var clients string
					clients, _ = srv.Client(t).ClientList(context.Background()).Result()
					return strings.Count(clients, "\n") >= 3
				}
				n, _ := srv.Client(t).PubSubNumPat(context.Background()).Result()
				return n > 0
			})
			srv.Pause()
			paused := time.Now()
			err := p.Wait(20 * time.Second)
			<-time.After(6*time.Second - time.Since(paused)) // Valkey stays stopped for 6 s
			srv.Resume()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitUnreachable {
				t.Errorf("exit %v, want %d: it could not see", err, exitUnreachable)
			}
		})
	}
	t.Run("malformed only", func(t *testing.T) {
		c := srv.Client(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			tk := time.NewTicker(100 * time.Millisecond)
			defer tk.Stop()
			for {
				c.Publish(ctx, "heartbeat:service:broken", `{"service_name":"broken","instance_id":`)
				select {
				case <-tk.C:
				case <-ctx.Done():
					return
				}
			}
		}()
		defer func() { cancel(); <-done }()
		for _, args := range [][]string{{}, {"--json"}, {"--service", "broken"}} {
			code, out := runOnce(t, env(srv), args...)
			if code != exitUnreachable || !strings.Contains(out, "malformed") || strings.Contains(out, "no instances") {
				t.Errorf("%v: exit %d, want %d naming the malformed messages\n%s", args, code, exitUnreachable, out)
			}
		}
	})
}
