package wire

import (
	"encoding/json"
	"time"
	"unsafe"
)

// The documented keys, in the order they are written.
const (
	KeyServiceName     = "service_name"
	KeyInstanceID      = "instance_id"
	KeyTimestamp       = "timestamp"
	KeyUptimeSeconds   = "uptime_seconds"
	KeyHeartbeatCount  = "heartbeat_count"
	KeyMemoryUsageMB   = "memory_usage_mb"
	KeyCPUUsagePercent = "cpu_usage_percent"
	KeyIntervalSeconds = "interval_seconds"
	KeyStatus          = "status"
	// KeyInstanceAddress is where the instance serves, for consumers that
	// use heartbeats for service discovery: absent unless the publisher is
	// given one, so the wire stays the original design's.
	KeyInstanceAddress = "instance_address"
)

// documented are the documented keys, in the order they are written.
var documented = [...]string{KeyServiceName, KeyInstanceID, KeyTimestamp, KeyUptimeSeconds, KeyHeartbeatCount,
	KeyMemoryUsageMB, KeyCPUUsagePercent, KeyIntervalSeconds, KeyStatus, KeyInstanceAddress}

// Status values carried in the status key.
const (
	// StatusRunning is sent on every heartbeat of a running instance.
	StatusRunning = "running"
	// StatusStopping is sent on the final heartbeat of a graceful stop, so
	// that a deploy is not mistaken for a crash.
	StatusStopping = "stopping"
)

// Default names on the wire. The defaults never change; a deployment may
// choose other prefixes.
const (
	DefaultChannelPrefix = "heartbeat:service:"
	DefaultKeyPrefix     = "heartbeat:instance:"
	// DefaultRegistryKey is the set of service names that publishers in
	// sharded mode add themselves to, so that monitors can learn the shard
	// channels: they have no pattern subscription.
	DefaultRegistryKey = "heartbeat:services"
)

// MaxFields bounds the service fields of one heartbeat, and MaxStringLength
// a string field's value in bytes: the collectors refuse or cut past them,
// and the exporter enforces them again for gauges registered by hand.
const (
	MaxFields       = 64
	MaxStringLength = 1024
)

// MaxMessageSize bounds a message the decoder accepts. Heartbeats are a few
// hundred bytes; anything near this size is a mistake or an attack.
const MaxMessageSize = 64 << 10

// DefaultInterval is the original design's HEARTBEAT_INTERVAL.
const DefaultInterval = 60 * time.Second

// MinInterval and MaxInterval bound the interval a publisher of this
// library can be configured with (valkeyconf refuses anything else). A
// decoded interval_seconds outside them is malformed: 5e9 s would keep an
// instance alive for 158 years, 1e10 s overflows time.Duration.
const (
	MinInterval = 10 * time.Millisecond
	MaxInterval = 24 * time.Hour
)

// Presence records which optional documented fields a message carries. A
// collector that failed leaves its field out rather than sending a made-up
// value.
type Presence uint8

// The optional documented fields.
const (
	HasUptime Presence = 1 << iota
	HasHeartbeatCount
	HasMemory
	HasCPU
	HasInterval
)

// Message is one heartbeat.
type Message struct {
	ServiceName string
	InstanceID  string
	// Timestamp is when the heartbeat was collected, on the sender's clock.
	Timestamp time.Time
	// UptimeSeconds, HeartbeatCount, MemoryUsageMB, CPUUsagePercent and
	// IntervalSeconds are meaningful only when Has says so.
	UptimeSeconds   float64
	HeartbeatCount  int64
	MemoryUsageMB   float64
	CPUUsagePercent float64
	IntervalSeconds float64
	// Status is StatusRunning, StatusStopping, or empty when absent.
	Status string
	// InstanceAddress is where the instance serves (ValidateAddress), or
	// empty when absent.
	InstanceAddress string
	Has             Presence
	// Fields are the service-specific values, in the order they are written.
	Fields []Field
}

// Field is one service-specific key and its value.
type Field struct {
	Key   string
	Value Value
}

// Kind says how a Value is carried.
type Kind uint8

// The kinds of service values.
const (
	KindInt Kind = iota + 1
	KindFloat
	KindString
	// KindTime is written as a string in the timestamp format.
	KindTime
	// KindRaw is any other JSON value (bool, null, array, object) kept as the
	// sender wrote it.
	KindRaw
)

// Value is a service-specific value.
type Value struct {
	Kind  Kind
	Int   int64
	Float float64
	Str   string
	Time  time.Time
	Raw   json.RawMessage
}

// Int returns an integer value.
func Int(v int64) Value { return Value{Kind: KindInt, Int: v} }

// Float returns a floating-point value.
func Float(v float64) Value { return Value{Kind: KindFloat, Float: v} }

// String returns a string value.
func String(v string) Value { return Value{Kind: KindString, Str: v} }

// Time returns a timestamp value.
func Time(v time.Time) Value { return Value{Kind: KindTime, Time: v} }

// Field returns the service field named key and whether it is present.
func (m *Message) Field(key string) (Value, bool) {
	for _, f := range m.Fields {
		if f.Key == key {
			return f.Value, true
		}
	}
	return Value{}, false
}

// Interval returns the sender's heartbeat interval, or DefaultInterval when
// the message does not say. The decoder refuses an interval outside
// MinInterval to MaxInterval; one set in code is clamped to them, so that the
// result never overflows.
func (m *Message) Interval() time.Duration {
	if m.Has&HasInterval == 0 || !(m.IntervalSeconds > 0) {
		return DefaultInterval
	}
	switch {
	case m.IntervalSeconds >= MaxInterval.Seconds():
		return MaxInterval
	case m.IntervalSeconds <= MinInterval.Seconds():
		return MinInterval
	}
	return time.Duration(m.IntervalSeconds * float64(time.Second))
}

// Key returns the latest-state key of one instance.
func Key(prefix, serviceName, instanceID string) string {
	return prefix + serviceName + ":" + instanceID
}

// Sizes of a Message's parts on a 64-bit heap, for Footprint.
var (
	messageSize = int(unsafe.Sizeof(Message{}))
	fieldSize   = int(unsafe.Sizeof(Field{}))
)

// Footprint estimates the heap bytes a decoded message holds: the
// message, its strings and its fields, and its room for more fields (a
// message decoded into again keeps its room). Strings it shares with
// others (an interned key, a status) are counted as its own, so the
// estimate errs high. A consumer that keeps or queues messages bounds what
// it holds by this, whatever the heartbeats carry.
func (m *Message) Footprint() int {
	n := messageSize + len(m.ServiceName) + len(m.InstanceID) + len(m.Status) + len(m.InstanceAddress) +
		(cap(m.Fields)-len(m.Fields))*fieldSize
	for _, f := range m.Fields {
		n += FieldFootprint(f)
	}
	return n
}

// FieldFootprint estimates the heap bytes one service field holds in a
// message's Fields.
func FieldFootprint(f Field) int { return fieldSize + len(f.Key) + len(f.Value.Str) + len(f.Value.Raw) }
