package wire_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// A heartbeat as the original design's Python services send it: no interval_seconds,
// no status, three service fields.
const seed = `{"service_name":"tracker_fetcher","instance_id":"a1b2c3d4-e5f6-7890-abcd-ef1234567890",` +
	`"timestamp":"2025-01-16T08:30:00.123456+00:00","uptime_seconds":3600.5,"heartbeat_count":60,` +
	`"memory_usage_mb":156.3,"cpu_usage_percent":12.5,"queue_size":1380,` +
	`"last_successful_operation":"2025-01-16T08:29:45.123456+00:00","api_status":"authenticated"}`

// Decode one heartbeat: the documented keys are typed fields, the service
// fields a list of typed values.
func ExampleUnmarshal() {
	m, err := wire.Unmarshal([]byte(seed))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.ServiceName, m.InstanceID)
	fmt.Println(m.Timestamp.Format(time.RFC3339Nano), m.HeartbeatCount, m.MemoryUsageMB, m.CPUUsagePercent)
	fmt.Println("sent an interval:", m.Has&wire.HasInterval != 0, "so judged by", m.Interval())
	for _, f := range m.Fields {
		switch f.Value.Kind {
		case wire.KindInt:
			fmt.Println(f.Key, "int", f.Value.Int)
		case wire.KindString:
			fmt.Println(f.Key, "string", f.Value.Str)
		}
	}
	// A timestamp-valued field arrives as a string in TimestampLayout.
	if v, ok := m.Field("last_successful_operation"); ok {
		t, err := wire.ParseTimestamp(v.Str)
		fmt.Println("last success", m.Timestamp.Sub(t), "before the heartbeat", err)
	}
	// Output:
	// tracker_fetcher a1b2c3d4-e5f6-7890-abcd-ef1234567890
	// 2025-01-16T08:30:00.123456Z 60 156.3 12.5
	// sent an interval: false so judged by 1m0s
	// queue_size int 1380
	// last_successful_operation string 2025-01-16T08:29:45.123456+00:00
	// api_status string authenticated
	// last success 15s before the heartbeat <nil>
}

// A message that would mislead a consumer is refused, naming the key.
func ExampleUnmarshal_malformed() {
	_, err := wire.Unmarshal([]byte(`{"service_name":"tracker_fetcher","instance_id":"a1","timestamp":"2025-01-16T08:30:00+00:00","interval_seconds":5e9}`))
	var de *wire.DecodeError
	fmt.Println(errors.As(err, &de), de.Key)
	// Output:
	// true interval_seconds
}

// Encode a heartbeat exactly as publishers send it: the documented keys
// first, in order, then interval_seconds and status, then the service
// fields.
func ExampleMarshal() {
	m := &wire.Message{
		ServiceName: "geocoding_service", InstanceID: "0b6e2c1a-0000-4000-8000-000000000001",
		Timestamp:     time.Date(2025, 1, 16, 8, 30, 0, 123456789, time.UTC),
		UptimeSeconds: 12.34, HeartbeatCount: 3, MemoryUsageMB: 48.25, CPUUsagePercent: 0.5,
		IntervalSeconds: 2, Status: wire.StatusRunning,
		Has:    wire.HasUptime | wire.HasHeartbeatCount | wire.HasMemory | wire.HasCPU | wire.HasInterval,
		Fields: []wire.Field{{Key: "cache_size", Value: wire.Int(120)}, {Key: "pending_requests", Value: wire.Int(4)}},
	}
	b, err := wire.Marshal(m)
	fmt.Println(string(b), err)
	// Output:
	// {"service_name":"geocoding_service","instance_id":"0b6e2c1a-0000-4000-8000-000000000001","timestamp":"2025-01-16T08:30:00.123456+00:00","uptime_seconds":12.3,"heartbeat_count":3,"memory_usage_mb":48.2,"cpu_usage_percent":0.5,"interval_seconds":2,"status":"running","cache_size":120,"pending_requests":4} <nil>
}

// The channel of a service under the default template and under the
// original design's other spelling, the pattern a consumer subscribes to, and the
// service a channel belongs to.
func ExampleChannelTemplate() {
	var def wire.ChannelTemplate // the zero template is the default
	fmt.Println(def.Channel("tracker_fetcher"), def.Pattern())

	t, err := wire.ParseChannelTemplate("health:service:{service_name}:heartbeat")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(t.Channel("tracker_fetcher"), t.Pattern())
	fmt.Println(t.Service("health:service:geofence_service:heartbeat"))
	fmt.Println(t.Service("heartbeat:service:geofence_service"))

	_, err = wire.ParseChannelTemplate("health:{service}:heartbeat")
	fmt.Println(err)
	// Output:
	// heartbeat:service:tracker_fetcher heartbeat:service:*
	// health:service:tracker_fetcher:heartbeat health:service:*:heartbeat
	// geofence_service true
	//  false
	// channel template "health:{service}:heartbeat" does not hold {service_name}
}

// The latest-state key of an instance, with the default prefix.
func ExampleKey() {
	fmt.Println(wire.Key(wire.DefaultKeyPrefix, "tracker_fetcher", "a1b2c3d4"))
	// Output:
	// heartbeat:instance:tracker_fetcher:a1b2c3d4
}

// A service name that would break PSUBSCRIBE heartbeat:service:* is
// refused.
func ExampleValidateServiceName() {
	for _, name := range []string{"tracker_fetcher", "payments*", ""} {
		fmt.Printf("%q: %v\n", name, wire.ValidateServiceName(name))
	}
	// Output:
	// "tracker_fetcher": <nil>
	// "payments*": service name "payments*" holds the glob character '*', which breaks pattern subscribers
	// "": service name is empty
}
