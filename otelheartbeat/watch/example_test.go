package watch_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// clock is a fake clock: the tracker's timing is its own, so a test or an
// example moves it by hand.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func heartbeat(id string, count int64, interval float64, status string) *wire.Message {
	m := &wire.Message{ServiceName: "geofence_service", InstanceID: id, HeartbeatCount: count,
		Timestamp: time.Date(2025, 1, 16, 8, 30, 0, 0, time.UTC), Has: wire.HasHeartbeatCount, Status: status}
	if interval > 0 {
		m.IntervalSeconds, m.Has = interval, m.Has|wire.HasInterval
	}
	return m
}

func print(ts []watch.Transition) {
	for _, t := range ts {
		fmt.Printf("%s %s: %s -> %s after %v (interval %v, %s)\n",
			t.Service, t.Instance, t.From, t.To, t.Age, t.Interval, t.IntervalSource)
	}
}

// The liveness rule at the default 60 s interval: the original design's 90 s and 180 s.
func ExampleClassify() {
	for _, age := range []time.Duration{30 * time.Second, 90 * time.Second, 179 * time.Second, 180 * time.Second} {
		fmt.Println(age, watch.Classify(age, wire.DefaultInterval))
	}
	// Output:
	// 30s alive
	// 1m30s stale
	// 2m59s stale
	// 3m0s dead
}

// A Tracker judges silence by its own clock: an instance that sends every
// second is stale after 1.5 s without a heartbeat and dead after 3 s; one
// that says "stopping" is stopped, never dead.
func ExampleNewTracker() {
	c := &clock{now: time.Date(2025, 1, 16, 8, 30, 0, 0, time.UTC)}
	tr := watch.NewTracker(watch.WithClock(c))

	print(tr.Observe(heartbeat("crashes", 1, 1, wire.StatusRunning)))
	print(tr.Observe(heartbeat("deploys", 1, 1, wire.StatusRunning)))
	c.now = c.now.Add(time.Second)
	print(tr.Observe(heartbeat("deploys", 2, 1, wire.StatusStopping)))
	c.now = c.now.Add(500 * time.Millisecond)
	print(tr.Tick())
	c.now = c.now.Add(1500 * time.Millisecond)
	print(tr.Tick())
	// Output:
	// geofence_service crashes: unknown -> alive after 0s (interval 1s, sent)
	// geofence_service deploys: unknown -> alive after 0s (interval 1s, sent)
	// geofence_service deploys: alive -> stopped after 0s (interval 1s, sent)
	// geofence_service crashes: alive -> stale after 1.5s (interval 1s, sent)
	// geofence_service crashes: stale -> dead after 3s (interval 1s, sent)
}

// A publisher in the original design's format sends no interval_seconds: its interval
// is inferred from the gaps between its own heartbeats, and a lost
// heartbeat (a gap of two in heartbeat_count) does not double it.
func ExampleWithDefaultInterval() {
	c := &clock{now: time.Date(2025, 1, 16, 8, 30, 0, 0, time.UTC)}
	tr := watch.NewTracker(watch.WithClock(c), watch.WithDefaultInterval(time.Minute))
	key := watch.Key{Service: "geofence_service", Instance: "python-1"}
	show := func() {
		i, _ := tr.Get(key)
		fmt.Println(i.Interval, i.IntervalSource)
	}
	tr.Observe(heartbeat("python-1", 1, 0, ""))
	show()
	c.now = c.now.Add(2 * time.Second)
	tr.Observe(heartbeat("python-1", 2, 0, ""))
	show()
	c.now = c.now.Add(4 * time.Second) // heartbeat 3 was lost
	tr.Observe(heartbeat("python-1", 4, 0, ""))
	show()
	c.now = c.now.Add(3 * time.Second)
	print(tr.Tick())
	// Output:
	// 1m0s default
	// 2s inferred
	// 2s inferred
	// geofence_service python-1: alive -> stale after 3s (interval 2s, inferred)
}

// Service discovery: the alive instances of a service with their last
// heartbeats, to spread requests by instance_address and a load field. An
// instance leaves the answer when it goes stale or says it is stopping.
func ExampleTracker_Alive() {
	c := &clock{now: time.Date(2025, 1, 16, 8, 30, 0, 0, time.UTC)}
	tr := watch.NewTracker(watch.WithClock(c), watch.WithHeartbeats())
	beat := func(id, addr string, pending int64, status string) {
		m := heartbeat(id, 1, 1, status)
		m.InstanceAddress = addr
		m.Fields = []wire.Field{{Key: "pending_requests", Value: wire.Int(pending)}}
		tr.Observe(m)
	}
	show := func() {
		var line []string
		for _, in := range tr.Alive("geofence_service") {
			hb := in.Heartbeat()
			pending, _ := hb.Field("pending_requests")
			line = append(line, fmt.Sprintf("%s at %s, %d pending", in.Instance, hb.InstanceAddress, pending.Int))
		}
		fmt.Println(strings.Join(line, "; "))
	}
	beat("a", "10.0.0.7:8080", 4, wire.StatusRunning)
	beat("b", "10.0.0.8:8080", 1, wire.StatusRunning)
	beat("c", "10.0.0.9:8080", 0, wire.StatusRunning)
	show()
	beat("c", "10.0.0.9:8080", 0, wire.StatusStopping) // a graceful stop: gone at once
	show()
	c.now = c.now.Add(1500 * time.Millisecond) // a and b silent for 1.5 intervals
	beat("b", "10.0.0.8:8080", 2, wire.StatusRunning)
	tr.Tick()
	show()
	// Output:
	// a at 10.0.0.7:8080, 4 pending; b at 10.0.0.8:8080, 1 pending; c at 10.0.0.9:8080, 0 pending
	// a at 10.0.0.7:8080, 4 pending; b at 10.0.0.8:8080, 1 pending
	// b at 10.0.0.8:8080, 2 pending
}

// Connect with the publishers' variables (here from a map instead of the
// process environment), then watch with the same channel, keys and mode:
// here the original design's other channel spelling. No
// command is sent until the monitor runs.
func ExampleConnectFromEnv() {
	vars := map[string]string{
		watch.EnvEndpoint: "rediss://monitor:PASSWORD@cache.example.com:6379",
		watch.EnvChannel:  "health:service:{service_name}:heartbeat",
	}
	conn, err := watch.ConnectFromEnv(watch.WithGetenv(func(k string) string { return vars[k] }),
		watch.WithCommandTimeout(2*time.Second))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Client.Close()
	fmt.Println(conn.Endpoint, conn.Channel, conn.KeyPrefix, conn.Sharded)

	m, err := watch.New(conn, watch.WithService("tracker_fetcher"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Subscription())
	// Output:
	// rediss://monitor@cache.example.com:6379 health:service:{service_name}:heartbeat heartbeat:instance: false
	// health:service:tracker_fetcher:heartbeat
}

// A malformed variable is an error that names it.
func ExampleParseInterval() {
	fmt.Println(watch.ParseInterval("0.5"))
	_, err := watch.ParseInterval("soon")
	fmt.Println(err != nil)
	// Output:
	// 500ms <nil>
	// true
}

// KeySlot is the cluster slot of a key or channel: a sharded watcher
// subscribes to each service's channel on the node that owns its slot.
func ExampleKeySlot() {
	fmt.Println(watch.KeySlot("foo"), watch.KeySlot("heartbeat:service:tracker_fetcher"))
	fmt.Println(watch.KeySlot("{user1000}.following") == watch.KeySlot("{user1000}.followers"))
	// Output:
	// 12182 15543
	// true
}

// An admin panel: connect with the library's variables, show current state
// from the latest-state keys at once, then follow heartbeats and
// transitions until interrupted. It needs a Valkey, so it is compiled here,
// not run.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	conn, err := watch.ConnectFromEnv()
	if err != nil {
		fmt.Println(err) // names the malformed variable, never a password
		return
	}
	defer conn.Client.Close()

	latest, err := watch.ReadLatest(ctx, conn.Client, conn.KeyPrefix, "")
	if err != nil {
		fmt.Println("reading latest-state keys from", conn.Endpoint, "failed:", err)
	}
	for _, l := range latest {
		if l.Err == nil {
			fmt.Println(l.Message.ServiceName, l.Message.InstanceID, l.State(), l.Age)
		}
	}

	m, err := watch.New(conn)
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = m.Run(ctx, func(e watch.Event) {
		switch e.Kind {
		case watch.KindTransition:
			t := e.Transition
			fmt.Println(t.Service, t.Instance, t.From, "->", t.To)
		case watch.KindBlind, watch.KindDisconnected:
			fmt.Println("cannot see the fleet: verdicts held")
		}
	})
	for _, i := range m.Tracker().Snapshot() {
		fmt.Println(i.Service, i.Instance, i.State, i.Interval, i.IntervalSource)
	}
}
