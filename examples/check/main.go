// Command check proves a deployment's heartbeat wiring end to end: the Go
// counterpart of the original design's test_heartbeat_system.py. It publishes real
// heartbeats through the library to the configured Valkey, watches them
// arrive on the channel and in the latest-state key, checks every field, and
// prints one PASS or FAIL line per check with the reason.
//
//	check                  every mode
//	check basic            Publisher: documented fields, key, count, stop
//	check manager          Manager: the seven common service fields
//	check tracker          the tracker fetcher's heartbeat
//	check monitor          liveness: alive, stale and dead after a crash,
//	                       stopped after a graceful stop
//
// It reads the same variables as the library (OTEL_EXPORTER_VALKEY_*,
// HEALTH_REDIS_*), so running it with a service's environment proves that
// service's Valkey, TLS and ACL user. Its services are named
// heartbeat_check_<mode> so they never mix with real ones. Exit status: 0
// when every check passed, 1 when any failed, 2 when it could not tell
// (Valkey unreachable, or stalled while a check watched), 3 for a usage
// error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

var modes = []string{"basic", "manager", "tracker", "monitor"}

func main() {
	watch.QuietGoRedis() // failures are reported as FAIL lines
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type checker struct {
	out            io.Writer
	interval       time.Duration
	timeout        time.Duration
	prefix         string
	endpoint       string
	channel        wire.ChannelTemplate
	keyPrefix      string
	client         redis.UniversalClient
	passed, failed int
	unseen         int       // checks it could not judge: Valkey did not answer
	lag            *lagWatch // how late Valkey answered
	modeStart      time.Time // when the mode running began
	reported       []error   // from otel.Handle, for reasons

	// The check instances running, each with what ends it gracefully:
	// an interrupt ends them all before the check exits, so that no
	// watcher is left with an instance that looks crashed.
	mu      sync.Mutex
	running map[int]func() error
	nextEnd int
}

// own registers end, which ends a check instance gracefully; the returned
// release runs it, once, at the instance's normal end, and says so when
// it failed. An interrupt runs every end not yet released.
func (c *checker) own(name string, end func() error) (release func()) {
	var once sync.Once
	var err error
	run := func() error {
		once.Do(func() { err = end() })
		return err
	}
	c.mu.Lock()
	if c.running == nil {
		c.running = map[int]func() error{}
	}
	id := c.nextEnd
	c.nextEnd++
	c.running[id] = run
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		_, mine := c.running[id]
		delete(c.running, id)
		c.mu.Unlock()
		if mine {
			if err := run(); err != nil {
				c.mu.Lock()
				fmt.Fprintf(c.out, "NOTE     %s ended without its stopping heartbeat (%v): watchers see it crash\n", name, err)
				c.mu.Unlock()
			}
		}
	}
}

// endAll ends every check instance still running; it returns how many it
// ended and why the others could not be.
func (c *checker) endAll() (ended int, failed []error) {
	c.mu.Lock()
	ends := make([]func() error, 0, len(c.running))
	for _, end := range c.running {
		ends = append(ends, end)
	}
	c.running = nil
	c.mu.Unlock()
	errs := make([]error, len(ends))
	var wg sync.WaitGroup
	for i, end := range ends {
		wg.Go(func() { errs[i] = end() })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	return len(ends) - len(failed), failed
}

// exitOnInterrupt ends every check instance gracefully at SIGINT or
// SIGTERM and exits 2: an interrupted check cannot tell. A second signal
// while they end exits at once. The returned func stops listening.
func (c *checker) exitOnInterrupt(stdout io.Writer) (stop func()) {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		var s os.Signal
		select {
		case s = <-sig:
		case <-done:
			return
		}
		type result struct {
			n      int
			failed []error
		}
		c.mu.Lock()
		if n := len(c.running); n > 0 {
			fmt.Fprintf(stdout, "interrupted (%v): ending %d check instances, within --timeout %v (interrupt again to exit at once)\n", s, n, c.timeout)
		}
		c.mu.Unlock()
		r := make(chan result, 1)
		go func() {
			n, failed := c.endAll()
			r <- result{n, failed}
		}()
		select {
		case res := <-r:
			switch {
			case len(res.failed) == 0:
				fmt.Fprintf(stdout, "interrupted (%v): ended %d check instances gracefully\n", s, res.n)
			default:
				fmt.Fprintf(stdout, "interrupted (%v): ended %d of %d check instances gracefully; %d sent no stopping heartbeat (%v): watchers see them crash\n",
					s, res.n, res.n+len(res.failed), len(res.failed), errors.Join(res.failed...))
			}
		case again := <-sig:
			fmt.Fprintf(stdout, "interrupted (%v), then again (%v): exiting without ending the check instances; watchers may see them crash\n", s, again)
		}
		os.Exit(2)
	}()
	return func() {
		signal.Stop(sig)
		close(done)
		<-ended
	}
}

func (c *checker) pass(mode, format string, args ...any) {
	c.passed++
	fmt.Fprintf(c.out, "PASS %-8s %s\n", mode, fmt.Sprintf(format, args...))
}

// fail records a check that failed; or, when Valkey answered late since
// the mode began, one it cannot tell of: the failure may be Valkey's.
func (c *checker) fail(mode, format string, args ...any) {
	if c.lag != nil {
		if lag := c.lag.since(c.modeStart); lag >= slowValkey {
			c.cannotTell(mode, format+", and Valkey took %v to answer meanwhile", append(args, lag.Round(time.Millisecond))...)
			return
		}
	}
	c.failed++
	fmt.Fprintf(c.out, "FAIL %-8s %s\n", mode, fmt.Sprintf(format, args...))
}

// cannotTell records a check it could not judge because Valkey could not
// be seen: neither a pass nor a verdict on the library.
func (c *checker) cannotTell(mode, format string, args ...any) {
	c.unseen++
	fmt.Fprintf(c.out, "FAIL %-8s cannot tell: %s\n", mode, fmt.Sprintf(format, args...))
}

// exit prints the summary and returns the exit status.
func (c *checker) exit() int {
	fmt.Fprintf(c.out, "%d passed, %d failed", c.passed, c.failed)
	if c.unseen > 0 {
		fmt.Fprintf(c.out, ", %d could not tell", c.unseen)
	}
	fmt.Fprintln(c.out)
	switch {
	case c.failed > 0:
		return 1
	case c.unseen > 0:
		return 2
	}
	return 0
}

// check records a PASS when err is nil, else a FAIL with err as the
// reason.
func (c *checker) check(mode, what string, err error) bool {
	if err != nil {
		c.fail(mode, "%s: %v", what, err)
		return false
	}
	c.pass(mode, "%s", what)
	return true
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: check [flags] [%s]...\n", strings.Join(modes, "|"))
		fs.PrintDefaults()
	}
	c := &checker{out: stdout}
	fs.DurationVar(&c.interval, "interval", time.Second, "heartbeat interval of the checks")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Second, "how long to wait for each heartbeat beyond its interval")
	fs.StringVar(&c.prefix, "name", "heartbeat_check", "prefix of the checks' service names")
	if err := fs.Parse(args); err != nil {
		return 3
	}
	selected := fs.Args()
	if len(selected) == 0 {
		selected = modes
	}
	for _, m := range selected {
		if !contains(modes, m) {
			fmt.Fprintf(stderr, "check: unknown mode %q (want %s)\n", m, strings.Join(modes, ", "))
			return 3
		}
	}
	if err := watch.CheckInterval(c.interval); err != nil || c.timeout <= 0 {
		fmt.Fprintf(stderr, "check: --interval %v / --timeout %v: must be positive and within the library's bounds\n", c.interval, c.timeout)
		return 3
	}
	if err := wire.ValidateServiceName(c.prefix); err != nil {
		fmt.Fprintf(stderr, "check: --name: %v\n", err)
		return 3
	}
	conn, err := watch.ConnectFromEnv(watch.WithCommandTimeout(c.timeout))
	if err != nil {
		fmt.Fprintf(stderr, "check: %v\n", err)
		return 3
	}
	c.client, c.endpoint, c.channel, c.keyPrefix = conn.Client, conn.Endpoint, conn.Channel, conn.KeyPrefix
	defer c.client.Close()
	// From here an interrupt says so and exits 2, even while Valkey has
	// not answered yet.
	defer c.exitOnInterrupt(stdout)()
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { c.reported = append(c.reported, err) }))

	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	err = c.client.Ping(ctx).Err()
	cancel()
	if err != nil {
		c.cannotTell("connect", "PING %s: %v", c.endpoint, err)
		return c.exit()
	}
	c.pass("connect", "PING %s", c.endpoint)
	c.lag = watchLag(c.client)
	defer c.lag.stop()
	for _, m := range selected {
		c.modeStart = time.Now()
		switch m {
		case "basic":
			c.basic()
		case "manager":
			c.manager()
		case "tracker":
			c.tracker()
		case "monitor":
			c.monitor()
		}
	}
	return c.exit()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// subscription is one service's channel, subscribed to by watch.
type subscription struct {
	ps *redis.PubSub
	ch <-chan *redis.Message
}

func (c *checker) watch(mode, service string) (*subscription, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	channel := c.channel.Channel(service)
	ps := c.client.Subscribe(ctx, channel)
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		c.fail(mode, "SUBSCRIBE %s: %v (the ACL user may lack &%s or +subscribe)", channel, err, c.channel.Pattern())
		return nil, false
	}
	c.pass(mode, "SUBSCRIBE %s", channel)
	return &subscription{ps: ps, ch: ps.Channel()}, true
}

func (w *subscription) close() { _ = w.ps.Close() }

// next waits for the next heartbeat.
func (w *subscription) next(timeout time.Duration) (string, time.Time, error) {
	select {
	case m := <-w.ch:
		return m.Payload, time.Now(), nil
	case <-time.After(timeout):
		return "", time.Time{}, fmt.Errorf("no heartbeat within %v", timeout)
	}
}

// documentedKeys is the order of the documented keys on the wire.
var documentedKeys = []string{
	wire.KeyServiceName, wire.KeyInstanceID, wire.KeyTimestamp,
	wire.KeyUptimeSeconds, wire.KeyHeartbeatCount, wire.KeyMemoryUsageMB,
	wire.KeyCPUUsagePercent,
}

// checkMessage checks every documented field of one heartbeat.
func (c *checker) checkMessage(mode, raw, service string, count int64, status string) *wire.Message {
	m, err := wire.Unmarshal([]byte(raw))
	if !c.check(mode, fmt.Sprintf("heartbeat #%d decodes", count), err) {
		return nil
	}
	keys, err := jsonKeys(raw)
	if err == nil && (len(keys) < len(documentedKeys) || strings.Join(keys[:len(documentedKeys)], ",") != strings.Join(documentedKeys, ",")) {
		err = fmt.Errorf("keys %v, want %v first", keys, documentedKeys)
	}
	c.check(mode, "documented keys first, in order", err)

	var problems []string
	want := func(ok bool, format string, args ...any) {
		if !ok {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	want(m.ServiceName == service, "service_name %q, want %q", m.ServiceName, service)
	want(len(m.InstanceID) == 36 && strings.Count(m.InstanceID, "-") == 4, "instance_id %q is not a UUID", m.InstanceID)
	skew := time.Since(m.Timestamp)
	want(skew > -time.Minute && skew < time.Minute, "timestamp %v is %v from this machine's clock", m.Timestamp, skew.Round(time.Millisecond))
	want(strings.Contains(raw, `+00:00"`), "timestamp is not in the +00:00 form")
	want(m.Has&wire.HasUptime != 0 && m.UptimeSeconds >= 0, "uptime_seconds missing")
	want(m.HeartbeatCount == count, "heartbeat_count %d, want %d", m.HeartbeatCount, count)
	want(m.Has&wire.HasMemory != 0 && m.MemoryUsageMB > 0, "memory_usage_mb missing or zero")
	want(m.Has&wire.HasCPU != 0 && m.CPUUsagePercent >= 0, "cpu_usage_percent missing")
	want(m.IntervalSeconds == c.interval.Seconds(), "interval_seconds %v, want %v", m.IntervalSeconds, c.interval.Seconds())
	want(m.Status == status, "status %q, want %q", m.Status, status)
	var err2 error
	if len(problems) > 0 {
		err2 = errors.New(strings.Join(problems, "; "))
	}
	c.check(mode, fmt.Sprintf("heartbeat #%d fields (uptime %.1fs, memory %.1fMB, cpu %.1f%%)", count, m.UptimeSeconds, m.MemoryUsageMB, m.CPUUsagePercent), err2)
	return m
}

func jsonKeys(raw string) ([]string, error) {
	dec := json.NewDecoder(strings.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, err
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// checkLatest checks the latest-state key holds raw with a TTL of at most
// three intervals.
func (c *checker) checkLatest(mode string, m *wire.Message, raw string) {
	key := wire.Key(c.keyPrefix, m.ServiceName, m.InstanceID)
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	got, err := c.client.Get(ctx, key).Result()
	switch {
	case errors.Is(err, redis.Nil):
		err = fmt.Errorf("missing%s", c.reportedReason("SET"))
	case err == nil && got != raw:
		err = errors.New("holds another heartbeat than the one published")
	}
	if err == nil {
		var ttl time.Duration
		ttl, err = c.client.PTTL(ctx, key).Result()
		if err == nil && (ttl <= 0 || ttl > 3*c.interval) {
			err = fmt.Errorf("TTL %v, want (0, %v]", ttl, 3*c.interval)
		}
	}
	c.check(mode, "latest-state key "+key, err)
}

// reportedReason returns the library's last report about command, if any.
func (c *checker) reportedReason(command string) string {
	for i := len(c.reported) - 1; i >= 0; i-- {
		if strings.Contains(c.reported[i].Error(), command+" ") {
			return " (" + c.reported[i].Error() + ")"
		}
	}
	return ""
}

func (c *checker) checkGone(mode string, m *wire.Message) {
	key := wire.Key(c.keyPrefix, m.ServiceName, m.InstanceID)
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	n, err := c.client.Exists(ctx, key).Result()
	if err == nil && n != 0 {
		err = errors.New("still there after Stop")
	}
	c.check(mode, "latest-state key deleted on Stop", err)
}
