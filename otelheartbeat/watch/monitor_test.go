package watch

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/leaktest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

type running struct {
	t      *testing.T
	m      *Monitor
	events chan Event
	stop   func()
}

// start runs a monitor on srv until the test ends.
func start(t *testing.T, srv *redistest.Server, opts ...Option) *running {
	t.Helper()
	return runMonitor(t, Connection{Client: srv.Client(t)}, opts...)
}

// waitFor returns the first event of kind, failing after 10 s.
func (r *running) waitFor(kind Kind) Event {
	r.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-r.events:
			if e.Kind == kind {
				return e
			}
		case <-deadline:
			r.t.Fatalf("no event of kind %d within 10s", kind)
		}
	}
}

func message(service, id string, interval time.Duration, count int64) []byte {
	m := &wire.Message{ServiceName: service, InstanceID: id, Timestamp: time.Now(),
		HeartbeatCount: count, IntervalSeconds: interval.Seconds(), Status: wire.StatusRunning,
		Has: wire.HasHeartbeatCount | wire.HasInterval}
	b, err := wire.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func TestInstancesAppearAtOnceFromLatestStateKeys(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	// Alive: written just now with the exporter's TTL of three intervals.
	c.Set(ctx, "heartbeat:instance:tracker_fetcher:aaaa", message("tracker_fetcher", "aaaa", time.Minute, 7), 3*time.Minute)
	// Stale: its TTL says it was written 100 s ago.
	c.Set(ctx, "heartbeat:instance:geocoding_service:bbbb", message("geocoding_service", "bbbb", time.Minute, 3), 80*time.Second)
	// Expired before the monitor looks: not invented. The server says
	// when it has expired the key.
	srv.Do(t, "CONFIG", "SET", "notify-keyspace-events", "Ex")
	expired := srv.Client(t).Subscribe(ctx, "__keyevent@0__:expired")
	defer expired.Close()
	if _, err := expired.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	c.Set(ctx, "heartbeat:instance:geofence_service:cccc", message("geofence_service", "cccc", time.Minute, 1), time.Millisecond)
	// Malformed, and a key holding another instance's heartbeat.
	c.Set(ctx, "heartbeat:instance:broken:dddd", "{not json", time.Minute)
	c.Set(ctx, "heartbeat:instance:tracker_fetcher:eeee", message("tracker_fetcher", "ffff", time.Minute, 1), time.Minute)
	if msg, err := expired.ReceiveMessage(ctx); err != nil || msg.Payload != "heartbeat:instance:geofence_service:cccc" {
		t.Fatalf("expiry event %v, %v", msg, err)
	}

	r := start(t, srv)
	loaded := r.waitFor(KindLoaded)
	if loaded.Count != 2 {
		t.Errorf("loaded %d instances, want 2", loaded.Count)
	}
	r.stop()
	snap := r.m.Tracker().Snapshot()
	if len(snap) != 2 || snap[0].Service != "geocoding_service" || snap[0].State != Stale ||
		snap[1].Service != "tracker_fetcher" || snap[1].State != Alive || snap[1].Count != 7 {
		t.Errorf("snapshot %+v", snap)
	}
	if s := r.m.Stats(); s.Malformed != 2 {
		t.Errorf("malformed %d, want 2", s.Malformed)
	}
}

func TestMalformedMessagesAreCountedNeverFatal(t *testing.T) {
	srv := redistest.Start(t)
	r := start(t, srv)
	r.waitFor(KindLoaded)
	c := srv.Client(t)
	ctx := context.Background()
	bad := map[string]string{
		"not JSON":        "hello",
		"wrong shape":     `[1,2,3]`,
		"wrong type":      `{"service_name":"a","instance_id":"i","timestamp":"2025-01-16T08:30:00Z","heartbeat_count":"many"}`,
		"another service": string(message("b", "i", time.Minute, 1)),
		"huge":            `{"service_name":"a","pad":"` + strings.Repeat("x", 70_000) + `"}`,
	}
	for _, payload := range bad {
		c.Publish(ctx, "heartbeat:service:a", payload)
	}
	c.Publish(ctx, "heartbeat:service:a", message("a", "i", time.Minute, 1))
	var reasons []string
	for i := 0; i < len(bad); i++ {
		e := r.waitFor(KindMalformed)
		reasons = append(reasons, e.Err.Error())
		if len(e.Raw) > 200 {
			t.Errorf("kept %d bytes of a malformed message", len(e.Raw))
		}
	}
	if hb := r.waitFor(KindHeartbeat); hb.Message.ServiceName != "a" {
		t.Errorf("heartbeat %+v", hb.Message)
	}
	all := strings.Join(reasons, "\n")
	for _, want := range []string{"not JSON", "not a JSON object", "heartbeat_count: want an integer", `service_name "b" arrived on channel "heartbeat:service:a"`, "more than"} {
		if !strings.Contains(all, want) {
			t.Errorf("no reason mentions %q:\n%s", want, all)
		}
	}
}

func TestReconnectsAndRereadsKeysAfterBeingDisconnected(t *testing.T) {
	srv := redistest.Start(t)
	r := start(t, srv)
	r.waitFor(KindLoaded)
	c := srv.Client(t)
	ctx := context.Background()
	// An instance that appeared while the monitor was not listening.
	c.Set(ctx, "heartbeat:instance:late:1111", message("late", "1111", time.Minute, 1), 3*time.Minute)
	srv.Do(t, "CLIENT", "KILL", "TYPE", "pubsub")
	r.waitFor(KindDisconnected)
	re := r.waitFor(KindReconnected)
	if re.Count != 1 {
		t.Errorf("re-read %d keys, want 1", re.Count)
	}
	c.Publish(ctx, "heartbeat:service:late", message("late", "1111", time.Minute, 2))
	r.waitFor(KindHeartbeat)

	srv.Restart()
	r.waitFor(KindDisconnected)
	r.waitFor(KindReconnected)
	c.Publish(ctx, "heartbeat:service:late", message("late", "1111", time.Minute, 3))
	if hb := r.waitFor(KindHeartbeat); hb.Message.HeartbeatCount != 3 {
		t.Errorf("after restart: %+v", hb.Message)
	}
	r.stop()
	if d := r.m.Stats().Disconnects; d != 2 {
		t.Errorf("disconnects %d, want 2", d)
	}
}

// A flood faster than the renderer: every heartbeat is tracked, what the
// renderer could not be shown is counted, and the queue stays bounded.
func TestAFloodIsTrackedAndWhatIsNotShownIsCounted(t *testing.T) {
	srv := redistest.Start(t)
	release := make(chan struct{})
	m, err := New(Connection{Client: srv.Client(t)}, WithQueue(4, 0), WithoutLatestState())
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	all := make(chan struct{})
	var ingested int
	m.afterIngest = func() {
		if ingested++; ingested == n {
			close(all)
		}
	}
	r := runStuckOnFirstHeartbeat(t, m, release)
	r.waitFor(KindLoaded)

	c := srv.Client(t)
	ctx := context.Background()
	p := c.Pipeline()
	for i := 1; i <= n; i++ {
		p.Publish(ctx, "heartbeat:service:flood", message("flood", "1", time.Minute, int64(i)))
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	<-all // every one tracked while the renderer is stuck
	// The bound counts events, in batches or not: four heartbeats, and
	// the transition the first made, which is never dropped.
	if q := m.queuedEvents.Load(); q > 4+1 {
		t.Errorf("%d events queued, past the bound of 4 and a transition", q)
	}
	in, _ := m.Tracker().Get(Key{Service: "flood", Instance: "1"})
	if in.Count != n || in.Lost != 0 {
		t.Errorf("tracked up to heartbeat %d with %d lost, want %d and 0", in.Count, in.Lost, n)
	}
	close(release)
	dropped := r.waitFor(KindDropped)
	r.stop()
	s := m.Stats()
	if s.Received != n || s.Dropped == 0 || int64(dropped.Count) > s.Dropped {
		t.Errorf("received %d, not shown %d (reported %d)", s.Received, s.Dropped, dropped.Count)
	}
	if s.Dropped > n-1 {
		t.Errorf("not shown %d of %d: the queue of 4 showed nothing", s.Dropped, n)
	}
}

func TestServiceFilter(t *testing.T) {
	srv := redistest.Start(t)
	r := start(t, srv, WithService("wanted"))
	r.waitFor(KindLoaded)
	if got := r.m.Subscription(); got != "heartbeat:service:wanted" {
		t.Errorf("pattern %q", got)
	}
	c := srv.Client(t)
	ctx := context.Background()
	c.Publish(ctx, "heartbeat:service:other", message("other", "1", time.Minute, 1))
	c.Publish(ctx, "heartbeat:service:wanted", message("wanted", "1", time.Minute, 1))
	if hb := r.waitFor(KindHeartbeat); hb.Message.ServiceName != "wanted" {
		t.Errorf("got %s", hb.Message.ServiceName)
	}
	if _, err := New(Connection{Client: srv.Client(t)}, WithService("bad*")); err == nil {
		t.Error("glob service accepted")
	}
}

// A monitor whose tracker keeps heartbeats hands each instance its own
// message, from the latest-state keys and from the subscription alike,
// even when it shows no heartbeat (NoHeartbeats reuses messages
// otherwise).
func TestMonitorKeepsEachInstancesOwnHeartbeat(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	withAddr := func(id string, count int64) []byte {
		m, err := wire.Unmarshal(message("geocoding_service", id, time.Minute, count))
		if err != nil {
			t.Fatal(err)
		}
		m.InstanceAddress = "10.0.0." + id + ":8080"
		b, err := wire.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if err := c.Set(ctx, wire.Key(wire.DefaultKeyPrefix, "geocoding_service", "1"), withAddr("1", 1), 3*time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	r := start(t, srv, WithTracker(WithHeartbeats()), WithoutHeartbeatEvents())
	r.waitFor(KindLoaded)
	for _, id := range []string{"2", "3"} {
		c.Publish(ctx, "heartbeat:service:geocoding_service", withAddr(id, 1))
	}
	deadline := time.After(10 * time.Second)
	for len(r.m.Tracker().Alive("geocoding_service")) < 3 {
		select {
		case e := <-r.events:
			if e.Kind == KindMalformed {
				t.Errorf("malformed: %v", e.Err)
			}
		case <-deadline:
			t.Fatalf("alive: %+v", r.m.Tracker().Alive("geocoding_service"))
		}
	}
	for _, in := range r.m.Tracker().Alive("geocoding_service") {
		if in.Heartbeat() == nil || in.Heartbeat().InstanceID != in.Instance || in.Heartbeat().InstanceAddress != "10.0.0."+in.Instance+":8080" {
			t.Errorf("%s: heartbeat %+v", in.Instance, in.Heartbeat())
		}
	}
}
