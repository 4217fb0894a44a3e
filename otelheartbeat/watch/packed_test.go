package watch

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// A kept heartbeat comes back from its packed bytes as it was observed:
// every documented field, every kind of service value at its edges, in
// order; times in UTC, the same instants.
func TestAPackedHeartbeatUnpacksAsItWasKept(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	full := &wire.Message{
		ServiceName: "geo", InstanceID: "a", Timestamp: time.Date(2025, 1, 16, 9, 30, 0, 123456789, cet),
		UptimeSeconds: 3600.5, HeartbeatCount: 1 << 40, MemoryUsageMB: 45.25, CPUUsagePercent: 0, IntervalSeconds: 0.25,
		Status: wire.StatusRunning, InstanceAddress: "http://[::1]:8080/é",
		Has: wire.HasUptime | wire.HasHeartbeatCount | wire.HasMemory | wire.HasCPU | wire.HasInterval,
		Fields: []wire.Field{
			{Key: "min", Value: wire.Int(math.MinInt64)},
			{Key: "max", Value: wire.Int(math.MaxInt64)},
			{Key: "zero", Value: wire.Int(0)},
			{Key: "negative zero", Value: wire.Float(math.Copysign(0, -1))},
			{Key: "huge", Value: wire.Float(math.MaxFloat64)},
			{Key: "tiny", Value: wire.Float(math.SmallestNonzeroFloat64)},
			{Key: "", Value: wire.String("")},
			{Key: "é\x00\"", Value: wire.String("\u202e\x00ok")},
			{Key: "when", Value: wire.Time(time.Date(1600, 2, 29, 23, 59, 59, 999999999, cet))},
			{Key: "never", Value: wire.Time(time.Time{})},
			{Key: "shards", Value: wire.Value{Kind: wire.KindRaw, Raw: json.RawMessage(`[1,{"a":null}]`)}},
			{Key: "flag", Value: wire.Value{Kind: wire.KindRaw, Raw: json.RawMessage(`true`)}},
			{Key: "kindless", Value: wire.Value{Int: 5, Str: "lost"}},
		},
	}
	bare := &wire.Message{ServiceName: "geo", InstanceID: "b", Status: "draining"}
	stopping := &wire.Message{ServiceName: "geo", InstanceID: "c", Timestamp: t0, Status: wire.StatusStopping, Has: wire.HasHeartbeatCount, HeartbeatCount: 9}

	tr := NewTracker(WithHeartbeats())
	for _, m := range []*wire.Message{full, bare, stopping} {
		tr.Observe(m)
		in, _ := tr.Get(Key{Service: m.ServiceName, Instance: m.InstanceID})
		want := *m
		want.Timestamp = utc(m.Timestamp)
		want.Fields = nil
		for _, f := range m.Fields {
			switch f.Value.Kind {
			case wire.KindTime:
				f.Value.Time = utc(f.Value.Time)
			case 0:
				f.Value = wire.Value{} // only what its kind names
			}
			want.Fields = append(want.Fields, f)
		}
		got := in.Heartbeat()
		if !reflect.DeepEqual(got, &want) {
			t.Errorf("%s: kept\n%+v\nwant\n%+v", m.InstanceID, got, &want)
		}
		if v, _ := got.Field("negative zero"); m == full && !math.Signbit(v.Float) {
			t.Error("-0 came back as +0")
		}
	}
	if in, _ := tr.Get(Key{Service: "geo", Instance: "a"}); in.Cut != 0 {
		t.Errorf("cut %d fields that fit", in.Cut)
	}
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

// Each call unpacks a message of its own: a reader who changes its raw
// value changes neither the next reader's nor the tracker's.
func TestAnUnpackedHeartbeatIsTheReaders(t *testing.T) {
	tr := NewTracker(WithHeartbeats())
	m := beat("geo", "a", 1)
	m.Fields = []wire.Field{{Key: "shards", Value: wire.Value{Kind: wire.KindRaw, Raw: json.RawMessage(`[1,2]`)}}}
	tr.Observe(m)
	in, _ := tr.Get(Key{Service: "geo", Instance: "a"})
	first := in.Heartbeat()
	first.Fields[0].Value.Raw[1] = '9'
	first.Fields[0].Key = "changed"
	if again := in.Heartbeat(); string(again.Fields[0].Value.Raw) != "[1,2]" || again.Fields[0].Key != "shards" {
		t.Errorf("a reader's change reached the next reader: %s %s", again.Fields[0].Key, again.Fields[0].Value.Raw)
	}
}

// Bytes the packing did not make unpack to nothing rather than to a
// panic or a field read past the end.
func TestTruncatedPackedBytesUnpackToNothing(t *testing.T) {
	m := beat("geo", "a", 1)
	m.InstanceAddress = "10.0.0.7:80"
	m.Status = "draining"
	m.Fields = []wire.Field{{Key: "queue_size", Value: wire.Int(300)}, {Key: "note", Value: wire.String("ok")}, {Key: "at", Value: wire.Time(t0)}}
	p, _ := keep(&keepScratch{}, m, 1<<20)
	in := Instance{Key: Key{Service: "geo", Instance: "a"}, Has: m.Has}
	b := p.bytes()
	if unpack(b, &in) == nil {
		t.Fatal("whole bytes unpacked to nothing")
	}
	for n := range len(b) {
		if got := unpack(b[:n], &in); got != nil {
			t.Errorf("%d of %d bytes unpacked to %+v", n, len(b), got)
		}
	}
	if got := unpack(b+"x", &in); got != nil {
		t.Errorf("bytes and one more unpacked to %+v", got)
	}
}

// FuzzAKeptHeartbeatMarshalsAsReceived: any heartbeat the decoder accepts
// is kept, and written again, as it came; what keep cuts is counted.
func FuzzAKeptHeartbeatMarshalsAsReceived(f *testing.F) {
	f.Add([]byte(`{"service_name":"geo","instance_id":"a","timestamp":"2025-01-16T08:30:00.123456+00:00","uptime_seconds":1.5,` +
		`"heartbeat_count":3,"memory_usage_mb":45.2,"cpu_usage_percent":2.5,"interval_seconds":10,"status":"running",` +
		`"instance_address":"10.0.0.7:8080","queue_size":-1,"api_status":"ok","last":"2025-01-16T08:29:45.000000+00:00","x":[1,null],"y":false}`))
	f.Add([]byte(`{"service_name":"s","instance_id":"i","timestamp":"2025-01-16T08:30:00.000000-05:00","status":"stopping","f":1e300}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := wire.Unmarshal(data)
		if err != nil {
			return
		}
		want, err := wire.Marshal(m)
		if err != nil {
			return
		}
		tr := NewTracker(WithHeartbeats(), WithHeartbeatBudget(1<<20, 1<<20))
		tr.Observe(m)
		in, ok := tr.Get(Key{Service: m.ServiceName, Instance: m.InstanceID})
		if !ok {
			t.Fatal("not tracked")
		}
		hb := in.Heartbeat()
		got, err := wire.Marshal(hb)
		if err != nil {
			t.Fatalf("the kept heartbeat does not marshal: %v", err)
		}
		if in.Cut == 0 && !bytes.Equal(got, want) {
			t.Fatalf("kept\n%s\nreceived\n%s", got, want)
		}
		if in.Cut > 0 && len(hb.Fields)+in.Cut < len(m.Fields) {
			t.Fatalf("%d of %d fields kept and %d counted cut", len(hb.Fields), len(m.Fields), in.Cut)
		}
	})
}

// Packed bytes come back whole whatever their length, which they begin
// with in one byte or several.
func TestPackedBytesOfAnyLengthComeBack(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 16383, 16384, 1 << 21} {
		b := bytes.Repeat([]byte{0x80}, n)
		if got := makePacked(b).bytes(); got != string(b) {
			t.Errorf("%d bytes came back as %d", n, len(got))
		}
	}
	if got := (packed{}).bytes(); got != "" {
		t.Errorf("none came back as %q", got)
	}
}
