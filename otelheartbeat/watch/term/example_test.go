package term_test

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch/term"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

var at = time.Date(2025, 1, 16, 8, 31, 45, 0, time.UTC)

var crashed = watch.Transition{
	Key:  watch.Key{Service: "geofence_service", Instance: "01287bb6-5a8e-4f4e-9f7a-3c1d2e4f5a6b"},
	From: watch.Alive, To: watch.Stale, At: at,
	Age: 90 * time.Second, Interval: time.Minute, IntervalSource: watch.IntervalSent,
}

// A transition for people, as the monitor prints it.
func ExampleStyle_Transition() {
	term.Style{}.Transition(os.Stdout, crashed)
	inferred := crashed
	inferred.To, inferred.Age, inferred.Interval, inferred.IntervalSource = watch.Dead, 6*time.Second, 2*time.Second, watch.IntervalInferred
	term.Style{}.Transition(os.Stdout, inferred)
	// Output:
	// ⚠️  geofence_service (01287bb6) is stale: no heartbeat for 1m30s (interval 1m0s) - 08:31:45
	// 💀 geofence_service (01287bb6) is dead: no heartbeat for 6s (interval 2s, inferred) - 08:31:45
}

// A heartbeat in the original design's monitor format.
func ExampleStyle_Heartbeat() {
	m, err := wire.Unmarshal([]byte(`{"service_name":"tracker_fetcher","instance_id":"a1b2c3d4-e5f6-7890-abcd-ef1234567890",` +
		`"timestamp":"2025-01-16T08:30:00.123456+00:00","uptime_seconds":4320,"heartbeat_count":72,` +
		`"memory_usage_mb":156.3,"cpu_usage_percent":12.5,"queue_size":1380,"api_status":"authenticated"}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	term.Style{}.Heartbeat(os.Stdout, m, time.Date(2025, 1, 16, 8, 30, 15, 0, time.UTC))
	// Output:
	// 🔄 tracker_fetcher (a1b2c3d4) - 08:30:15
	//    Uptime: 1.2h | Heartbeats: 72 | Memory: 156.3MB | CPU: 12.5%
	//    Service Data:
	//      queue_size: 1380
	//      api_status: authenticated
}

// An event as one line of JSON, for scripts.
func ExampleJSON() {
	_ = term.JSON(os.Stdout, watch.Event{Kind: watch.KindTransition, At: at, Transition: crashed})
	// Output:
	// {"type":"transition","at":"2025-01-16T08:31:45.000000+00:00","service":"geofence_service","instance":"01287bb6-5a8e-4f4e-9f7a-3c1d2e4f5a6b","from":"alive","to":"stale","age_seconds":90,"interval_seconds":60,"interval_source":"sent"}
}

// Strings from the wire are shown, never obeyed: an escape sequence that
// would set the window title and a zero-width space that would make
// "payments\u200b" look like "payments" are written visibly.
func ExampleEscape() {
	fmt.Println(term.Escape("payments\x1b]0;pwned\x07"))
	fmt.Println(term.Escape("payments\u200b"))
	fmt.Println(term.Escape("tracker_fetcher"))
	// Output:
	// payments\x1b]0;pwned\x07
	// payments\u200b
	// tracker_fetcher
}

// The first eight bytes of an instance id, as the original design's monitor shows it.
func ExampleShortID() {
	fmt.Println(term.ShortID("a1b2c3d4-e5f6-7890-abcd-ef1234567890"))
	// Output:
	// a1b2c3d4
}

// How long an instance has run, as the monitor shows it.
func ExampleFormatUptime() {
	fmt.Println(term.FormatUptime(42), term.FormatUptime(4320), term.FormatUptime(2*86400))
	// Output:
	// 42.0s 1.2h 2.0d
}

// What an instance is judged by, and where that comes from.
func ExampleIntervalText() {
	fmt.Println(term.IntervalText(time.Second, watch.IntervalSent))
	fmt.Println(term.IntervalText(2*time.Second, watch.IntervalInferred))
	fmt.Println(term.IntervalText(time.Minute, watch.IntervalDefault))
	// Output:
	// 1s
	// 2s, inferred
	// 1m0s, assumed
}

// One instance's state as monitor --once --json writes it.
func ExampleInstanceJSON() {
	_ = term.InstanceJSON(os.Stdout, term.InstanceLine{Service: "tracker_fetcher", Instance: "a1b2c3d4",
		State: watch.Alive, Age: 12 * time.Second, Interval: time.Minute, Source: watch.IntervalSent, Count: 72,
		From: "latest_state_key"})
	// Output:
	// {"type":"instance","service":"tracker_fetcher","instance":"a1b2c3d4","state":"alive","age_seconds":12,"interval_seconds":60,"interval_source":"sent","heartbeat_count":72,"from":"latest_state_key"}
}

// Any event for people: here, the watcher saying it cannot see, rather
// than declaring the fleet dead.
func ExampleStyle_Event() {
	term.Style{}.Event(os.Stdout, watch.Event{Kind: watch.KindBlind, At: at, Downtime: 2 * time.Second})
	// Output:
	// ⚠️  no answer from Valkey for 2s (a stalled broker, or this monitor is behind): no instance is judged until it answers - 08:31:45
}

// Colour is off for anything that is not a terminal, and under NO_COLOR.
func ExampleColour() {
	fmt.Println(term.Colour(&bytes.Buffer{}))
	// Output:
	// false
}

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

// The live table, drawn from the tracker.
func ExampleStyle_Table() {
	c := &clock{now: at}
	tr := watch.NewTracker(watch.WithClock(c))
	tr.Observe(&wire.Message{ServiceName: "tracker_fetcher", InstanceID: "a1b2c3d4-e5f6", Timestamp: at,
		UptimeSeconds: 4320, HeartbeatCount: 72, MemoryUsageMB: 156.3, CPUUsagePercent: 12.5, IntervalSeconds: 60,
		Has: wire.HasUptime | wire.HasHeartbeatCount | wire.HasMemory | wire.HasCPU | wire.HasInterval})
	c.now = c.now.Add(5 * time.Second)
	term.Style{}.Table(os.Stdout, tr, watch.Stats{Received: 1}, c.now)
	// Output:
	// SERVICE          INSTANCE  STATE     AGE  INTERVAL  UPTIME  BEATS  MEMORY   CPU    LOST
	// tracker_fetcher  a1b2c3d4  alive     5s   1m0s      1.2h    72     156.3MB  12.5%  0
	//
	// tracker_fetcher: 1 alive, 0 stale, 0 dead, 0 stopped
	// received 1, malformed 0, not shown 0, evicted 0, disconnects 0, blind 0 - 08:31:50
}
