package wire

import (
	"encoding/json"
	"testing"
	"time"
)

// benchMessage is a full heartbeat: every documented field and three
// service fields, as the tracker fetcher sends.
func benchMessage() *Message {
	m := seedMessage()
	m.IntervalSeconds, m.Status = 60, StatusRunning
	m.Has |= HasInterval
	m.Fields = []Field{
		{"api_status", String("authenticated")},
		{"last_successful_operation", Time(time.Date(2025, 1, 16, 8, 29, 45, 123456000, time.UTC))},
		{"queue_size", Int(1380)},
	}
	return m
}

// BenchmarkEncode is the exporter's encoder into a reused buffer.
func BenchmarkEncode(b *testing.B) {
	m := benchMessage()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendJSON(buf[:0], m); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkEncodeJSONMap is the baseline: encoding/json on the equivalent
// map, built per heartbeat as a hand-written publisher would.
func BenchmarkEncodeJSONMap(b *testing.B) {
	m := benchMessage()
	b.ReportAllocs()
	var out []byte
	for b.Loop() {
		v := map[string]any{
			"service_name":              m.ServiceName,
			"instance_id":               m.InstanceID,
			"timestamp":                 m.Timestamp.UTC().Format(TimestampLayout),
			"uptime_seconds":            m.UptimeSeconds,
			"heartbeat_count":           m.HeartbeatCount,
			"memory_usage_mb":           m.MemoryUsageMB,
			"cpu_usage_percent":         m.CPUUsagePercent,
			"interval_seconds":          m.IntervalSeconds,
			"status":                    m.Status,
			"api_status":                "authenticated",
			"last_successful_operation": m.Fields[1].Value.Time.UTC().Format(TimestampLayout),
			"queue_size":                1380,
		}
		var err error
		if out, err = json.Marshal(v); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(out)))
}

// BenchmarkDecode is what the monitor pays per message.
func BenchmarkDecode(b *testing.B) {
	raw, err := Marshal(benchMessage())
	if err != nil {
		b.Fatal(err)
	}
	var m Message
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if err := UnmarshalInto(raw, &m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeInterned is what a watcher pays per message: decoding
// with an Interner that has seen the fleet's names.
func BenchmarkDecodeInterned(b *testing.B) {
	raw, err := Marshal(benchMessage())
	if err != nil {
		b.Fatal(err)
	}
	in := NewInterner(4096)
	var m Message
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		m = Message{}
		if err := UnmarshalIntern(raw, &m, in); err != nil {
			b.Fatal(err)
		}
	}
}
