package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	goldenfile "github.com/otel-heartbeat/heartbeat/internal/testing/golden"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func golden(t *testing.T, name string, got []byte) { t.Helper(); goldenfile.Check(t, name, got) }

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// seedMessage is the example message of the original design document.
func seedMessage() *Message {
	return &Message{
		ServiceName:     "tracker_fetcher",
		InstanceID:      "a1b2c3d4-e5f6-7890-abcd-ef1234567890",
		Timestamp:       mustTime("2025-01-16T08:30:00.123456Z"),
		UptimeSeconds:   3600.5,
		HeartbeatCount:  60,
		MemoryUsageMB:   156.3,
		CPUUsagePercent: 12.5,
		Has:             HasUptime | HasHeartbeatCount | HasMemory | HasCPU,
		Fields: []Field{
			{"queue_size", Int(1380)},
			{"last_successful_operation", String("2025-01-16T08:29:45.123456+00:00")},
			{"api_status", String("authenticated")},
		},
	}
}

func TestSeedExampleEncodesToGolden(t *testing.T) {
	got, err := Marshal(seedMessage())
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "seed_example.golden", got)
}

func TestSeedExampleRoundTrips(t *testing.T) {
	for _, name := range []string{"seed_example.json", "seed_example.golden"} {
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			m, err := Unmarshal(in)
			if err != nil {
				t.Fatal(err)
			}
			out, err := Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "seed_example.golden", out)
		})
	}
}

func TestEveryKeyInDocumentedOrder(t *testing.T) {
	m := seedMessage()
	m.IntervalSeconds = 60
	m.Has |= HasInterval
	m.Status = StatusStopping
	m.InstanceAddress = "http://10.0.0.7:8080"
	ts, _ := ParseTimestamp("2025-01-16T08:29:45.123456+00:00")
	m.Fields = []Field{
		{"api_status", String("authenticated")},
		{"last_successful_operation", Time(ts)},
		{"queue_size", Int(1380)},
	}
	got, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "full.golden", got)
}

func TestNumbersAreWrittenAsDocumented(t *testing.T) {
	base := func() *Message {
		return &Message{ServiceName: "s", InstanceID: "i", Timestamp: time.Unix(0, 0)}
	}
	tests := []struct {
		name string
		edit func(*Message)
		want string
	}{
		{"uptime has one decimal", func(m *Message) { m.UptimeSeconds, m.Has = 3600.04, HasUptime }, `"uptime_seconds":3600.0`},
		{"memory rounds to one decimal", func(m *Message) { m.MemoryUsageMB, m.Has = 156.26, HasMemory }, `"memory_usage_mb":156.3`},
		{"cpu above one core", func(m *Message) { m.CPUUsagePercent, m.Has = 187.25, HasCPU }, `"cpu_usage_percent":187.2`},
		{"count is an integer", func(m *Message) { m.HeartbeatCount, m.Has = 1, HasHeartbeatCount }, `"heartbeat_count":1`},
		{"interval shortest form", func(m *Message) { m.IntervalSeconds, m.Has = 0.5, HasInterval }, `"interval_seconds":0.5`},
		{"service float shortest form", func(m *Message) { m.Fields = []Field{{"ratio", Float(0.1)}} }, `"ratio":0.1`},
		{"service float exponent", func(m *Message) { m.Fields = []Field{{"tiny", Float(1e-9)}} }, `"tiny":1e-9`},
		{"service negative int", func(m *Message) { m.Fields = []Field{{"delta", Int(-3)}} }, `"delta":-3`},
		{"timestamp in UTC with offset", func(m *Message) {
			m.Timestamp = time.Date(2025, 1, 16, 9, 30, 0, 5000, time.FixedZone("CET", 3600))
		}, `"timestamp":"2025-01-16T08:30:00.000005+00:00"`},
		{"string escaping", func(m *Message) { m.Fields = []Field{{"s", String("a\"b\\c\n\x01\u2028\xff")}} }, `"s":"a\"b\\c\n\u0001\u2028\ufffd"`},
		{"raw kept", func(m *Message) { m.Fields = []Field{{"tags", Value{Kind: KindRaw, Raw: []byte(`["a",1]`)}}} }, `"tags":["a",1]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := base()
			tt.edit(m)
			got, err := Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(got, []byte(tt.want)) {
				t.Errorf("got %s, want it to contain %s", got, tt.want)
			}
			if _, err := Unmarshal(got); err != nil {
				t.Errorf("own output does not decode: %v", err)
			}
		})
	}
}

func TestEncodeRefusesWhatItCannotWrite(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Message)
		wantKey string
	}{
		{"NaN cpu", func(m *Message) { m.CPUUsagePercent, m.Has = math.NaN(), HasCPU }, KeyCPUUsagePercent},
		{"Inf memory", func(m *Message) { m.MemoryUsageMB, m.Has = math.Inf(1), HasMemory }, KeyMemoryUsageMB},
		{"NaN service field", func(m *Message) { m.Fields = []Field{{"q", Float(math.NaN())}} }, "q"},
		{"glob in service name", func(m *Message) { m.ServiceName = "a*b" }, KeyServiceName},
		{"no instance id", func(m *Message) { m.InstanceID = "" }, KeyInstanceID},
		{"no timestamp", func(m *Message) { m.Timestamp = time.Time{} }, KeyTimestamp},
		{"field without kind", func(m *Message) { m.Fields = []Field{{"q", Value{}}} }, "q"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &Message{ServiceName: "s", InstanceID: "i", Timestamp: time.Unix(1, 0)}
			tt.edit(m)
			dst := []byte("prefix")
			out, err := AppendJSON(dst, m)
			if err == nil {
				t.Fatalf("encoded %s, want an error", out)
			}
			if !strings.HasPrefix(err.Error(), tt.wantKey+":") {
				t.Errorf("error %q does not name %s", err, tt.wantKey)
			}
			if string(out) != "prefix" {
				t.Errorf("dst changed to %q on error", out)
			}
		})
	}
}

func TestDecodeAcceptsWhatPythonSends(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		check func(*testing.T, *Message)
	}{
		{"keys in any order", `{"api_status":"ok","timestamp":"2025-01-16T08:30:00.123456+00:00","instance_id":"i","service_name":"s"}`,
			func(t *testing.T, m *Message) {
				if v, ok := m.Field("api_status"); !ok || v.Str != "ok" {
					t.Errorf("api_status = %+v", v)
				}
			}},
		{"Z offset", `{"service_name":"s","instance_id":"i","timestamp":"2025-01-16T08:30:00Z"}`,
			func(t *testing.T, m *Message) {
				if !m.Timestamp.Equal(mustTime("2025-01-16T08:30:00Z")) {
					t.Errorf("timestamp %v", m.Timestamp)
				}
			}},
		{"no fractional second", `{"service_name":"s","instance_id":"i","timestamp":"2025-01-16T08:30:00+00:00"}`, nil},
		{"naive timestamp is UTC", `{"service_name":"s","instance_id":"i","timestamp":"2025-01-16T08:30:00.5"}`,
			func(t *testing.T, m *Message) {
				if !m.Timestamp.Equal(mustTime("2025-01-16T08:30:00.5Z")) {
					t.Errorf("timestamp %v", m.Timestamp)
				}
			}},
		{"other offset converted to UTC", `{"service_name":"s","instance_id":"i","timestamp":"2025-01-16T09:30:00+01:00"}`,
			func(t *testing.T, m *Message) {
				if m.Timestamp.Location() != time.UTC || m.Timestamp.Hour() != 8 {
					t.Errorf("timestamp %v", m.Timestamp)
				}
			}},
		{"integer-valued floats for documented numbers", `{"service_name":"s","instance_id":"i","timestamp":"2025-01-16T08:30:00Z","uptime_seconds":3600,"memory_usage_mb":0,"cpu_usage_percent":0}`,
			func(t *testing.T, m *Message) {
				if m.Has != HasUptime|HasMemory|HasCPU || m.UptimeSeconds != 3600 {
					t.Errorf("got %+v", m)
				}
			}},
		{"unknown kinds kept", `{"service_name":"s","instance_id":"i","timestamp":"2025-01-16T08:30:00Z","n":7,"f":1.5,"b":true,"z":null,"o":{"a":[1]}}`,
			func(t *testing.T, m *Message) {
				kinds := []Kind{KindInt, KindFloat, KindRaw, KindRaw, KindRaw}
				if len(m.Fields) != len(kinds) {
					t.Fatalf("fields %+v", m.Fields)
				}
				for i, k := range kinds {
					if m.Fields[i].Value.Kind != k {
						t.Errorf("field %s kind %d, want %d", m.Fields[i].Key, m.Fields[i].Value.Kind, k)
					}
				}
			}},
		{"interval and status", `{"service_name":"s","instance_id":"i","timestamp":"2025-01-16T08:30:00Z","interval_seconds":1.5,"status":"stopping"}`,
			func(t *testing.T, m *Message) {
				if m.Interval() != 1500*time.Millisecond || m.Status != StatusStopping {
					t.Errorf("got %+v", m)
				}
			}},
		{"instance address", `{"service_name":"s","instance_id":"i","timestamp":"2025-01-16T08:30:00Z","instance_address":"[::1]:8080"}`,
			func(t *testing.T, m *Message) {
				if m.InstanceAddress != "[::1]:8080" {
					t.Errorf("got %+v", m)
				}
			}},
		{"a bad address is left out, the heartbeat kept", `{"service_name":"s","instance_id":"i","timestamp":"2025-01-16T08:30:00Z","instance_address":"http://u:pw@h:1"}`,
			func(t *testing.T, m *Message) {
				if m.InstanceAddress != "" || m.ServiceName != "s" {
					t.Errorf("got %+v", m)
				}
			}},
		{"an address of another type is left out", `{"service_name":"s","instance_id":"i","timestamp":"2025-01-16T08:30:00Z","instance_address":{"x":[1]}}`,
			func(t *testing.T, m *Message) {
				if m.InstanceAddress != "" {
					t.Errorf("got %+v", m)
				}
			}},
		{"missing interval means sixty seconds", `{"service_name":"s","instance_id":"i","timestamp":"2025-01-16T08:30:00Z"}`,
			func(t *testing.T, m *Message) {
				if m.Interval() != 60*time.Second {
					t.Errorf("interval %v", m.Interval())
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Unmarshal([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, m)
			}
		})
	}
}

func TestDecodeRejectsMalformedInput(t *testing.T) {
	const ok = `"service_name":"s","instance_id":"i","timestamp":"2025-01-16T08:30:00Z"`
	tests := []struct {
		name    string
		in      string
		wantKey string
		wantMsg string
	}{
		{"empty", ``, "", "not JSON"},
		{"not JSON", `hello`, "", "not JSON"},
		{"array", `[1,2]`, "", "not a JSON object"},
		{"string", `"x"`, "", "not a JSON object"},
		{"truncated", `{"service_name":"s"`, "", "not JSON"},
		{"unknown status", `{` + ok + `,"status":"dead"}`, "status", `want "running" or "stopping"`},
		{"address twice", `{` + ok + `,"instance_address":"h:1","instance_address":"h:2"}`, KeyInstanceAddress, "twice"},
		{"disguised status", `{` + ok + `,"status":"\u202erunning"}`, "status", `want "running" or "stopping"`},
		{"trailing data", `{` + ok + `}{}`, "", "data after"},
		{"missing service name", `{"instance_id":"i","timestamp":"2025-01-16T08:30:00Z"}`, KeyServiceName, "missing"},
		{"missing instance id", `{"service_name":"s","timestamp":"2025-01-16T08:30:00Z"}`, KeyInstanceID, "missing"},
		{"missing timestamp", `{"service_name":"s","instance_id":"i"}`, KeyTimestamp, "missing"},
		{"service name not a string", `{"service_name":5,"instance_id":"i","timestamp":"2025-01-16T08:30:00Z"}`, KeyServiceName, "want a string, got a number"},
		{"service name with glob", `{"service_name":"a*","instance_id":"i","timestamp":"2025-01-16T08:30:00Z"}`, KeyServiceName, "glob"},
		{"service name empty", `{"service_name":"","instance_id":"i","timestamp":"2025-01-16T08:30:00Z"}`, KeyServiceName, "empty"},
		{"instance id with colon", `{"service_name":"s","instance_id":"a:b","timestamp":"2025-01-16T08:30:00Z"}`, KeyInstanceID, "':'"},
		{"bad timestamp", `{"service_name":"s","instance_id":"i","timestamp":"yesterday"}`, KeyTimestamp, "not ISO 8601"},
		{"timestamp a number", `{"service_name":"s","instance_id":"i","timestamp":1737016200}`, KeyTimestamp, "want a string"},
		{"uptime a string", `{` + ok + `,"uptime_seconds":"1h"}`, KeyUptimeSeconds, "want a number, got a string"},
		{"memory negative", `{` + ok + `,"memory_usage_mb":-1}`, KeyMemoryUsageMB, "non-negative"},
		{"count fractional", `{` + ok + `,"heartbeat_count":1.5}`, KeyHeartbeatCount, "want an integer"},
		{"count negative", `{` + ok + `,"heartbeat_count":-1}`, KeyHeartbeatCount, "non-negative"},
		{"count null", `{` + ok + `,"heartbeat_count":null}`, KeyHeartbeatCount, "got null"},
		{"interval zero", `{` + ok + `,"interval_seconds":0}`, KeyIntervalSeconds, "outside 0.01 to 86400 seconds"},
		// 5e9 s kept an instance alive for 158 years; 1e10 s overflows
		// time.Duration. A publisher sends 10 ms to 24 h.
		{"interval of 158 years", `{` + ok + `,"interval_seconds":5e9}`, KeyIntervalSeconds, "outside 0.01 to 86400 seconds"},
		{"interval past time.Duration", `{` + ok + `,"interval_seconds":1e10}`, KeyIntervalSeconds, "outside 0.01 to 86400 seconds"},
		{"interval just past a day", `{` + ok + `,"interval_seconds":86400.001}`, KeyIntervalSeconds, "outside 0.01 to 86400 seconds"},
		{"interval under 10 ms", `{` + ok + `,"interval_seconds":0.009}`, KeyIntervalSeconds, "outside 0.01 to 86400 seconds"},
		{"more service fields than a publisher sends", `{` + ok + manyFields(MaxFields+1) + `}`, "", "more than 64 service fields"},
		{"5000 service fields", `{` + ok + manyFields(5000) + `}`, "", "more than 64 service fields"},
		{"string value longer than a publisher sends", `{` + ok + `,"note":"` + strings.Repeat("x", MaxStringLength+1) + `"}`, "note", "1025 bytes, more than 1024"},
		{"escaped string value longer than a publisher sends", `{` + ok + `,"note":"` + strings.Repeat(`\u00e9`, MaxStringLength/2+1) + `"}`, "note", "more than 1024"},
		{"status not a string", `{` + ok + `,"status":true}`, KeyStatus, "got a boolean"},
		{"duplicate key", `{` + ok + `,"queue_size":1,"queue_size":2}`, "queue_size", "twice"},
		{"oversized", `{` + ok + `,"pad":"` + strings.Repeat("x", MaxMessageSize) + `"}`, "", "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Unmarshal([]byte(tt.in))
			if err == nil {
				t.Fatalf("decoded %s (%s) with %d fields, want an error", m.ServiceName, m.InstanceID, len(m.Fields))
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T is not a *DecodeError", err)
			}
			if de.Key != tt.wantKey || !strings.Contains(de.Reason, tt.wantMsg) {
				t.Errorf("error %q: want key %q and reason containing %q", err, tt.wantKey, tt.wantMsg)
			}
		})
	}
}

// manyFields returns n service fields, each with a leading comma.
func manyFields(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `,"f%d":%d`, i, i)
	}
	return b.String()
}

// The bounds themselves are what a publisher may send, and are accepted.
func TestDecodeAcceptsTheLimitsAPublisherCanReach(t *testing.T) {
	const ok = `"service_name":"s","instance_id":"i","timestamp":"2025-01-16T08:30:00Z"`
	for name, in := range map[string]string{
		"10 ms interval":       `{` + ok + `,"interval_seconds":0.01}`,
		"24 h interval":        `{` + ok + `,"interval_seconds":86400}`,
		"64 service fields":    `{` + ok + manyFields(MaxFields) + `}`,
		"1024-byte string":     `{` + ok + `,"note":"` + strings.Repeat("x", MaxStringLength) + `"}`,
		"1024 bytes unescaped": `{` + ok + `,"note":"` + strings.Repeat(`\u00e9`, MaxStringLength/2) + `"}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Unmarshal([]byte(in)); err != nil {
				t.Error(err)
			}
		})
	}
}

// A message built in code, not decoded, still cannot overflow a duration.
func TestIntervalIsClamped(t *testing.T) {
	for secs, want := range map[float64]time.Duration{
		1e10: MaxInterval, 5e9: MaxInterval, 1e-9: MinInterval, 1.5: 1500 * time.Millisecond,
	} {
		m := &Message{IntervalSeconds: secs, Has: HasInterval}
		if got := m.Interval(); got != want {
			t.Errorf("Interval() of %v s = %v, want %v", secs, got, want)
		}
	}
}

func TestNameRules(t *testing.T) {
	long := strings.Repeat("a", MaxNameLength+1)
	for _, tt := range []struct {
		name, in string
		valid    bool
	}{
		{"seed name", "tracker_fetcher", true},
		{"dotted and dashed", "geo-coding.v2", true},
		{"unicode", "dienst_ü", true},
		{"empty", "", false},
		{"too long", long, false},
		{"star", "svc*", false},
		{"question", "svc?", false},
		{"brackets", "svc[1]", false},
		{"backslash", `svc\`, false},
		{"space", "my service", false},
		{"tab", "svc\t", false},
		{"newline", "svc\n", false},
		{"nul", "svc\x00", false},
		{"invalid utf8", "svc\xff", false},
		// Names that display as another name, or as nothing.
		{"zero-width space", "pay\u200bments", false},
		{"only a zero-width space", "\u200b", false},
		{"right-to-left override", "pay\u202ements", false},
		{"word joiner", "payments\u2060", false},
		{"byte order mark", "\ufeffpayments", false},
		{"combining grapheme joiner", "payments\u034f", false},
		{"hangul filler", "payments\u115f", false},
		{"variation selector", "payments\ufe0f", false},
		{"blank braille pattern", "payments\u2800", false},
		{"visible accent", "cafe\u0301", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateServiceName(tt.in)
			if (err == nil) != tt.valid {
				t.Errorf("ValidateServiceName(%q) = %v, want valid=%v", tt.in, err, tt.valid)
			}
			if err != nil && tt.in != "" && !strings.Contains(err.Error(), "service name") {
				t.Errorf("error %q does not say what was wrong", err)
			}
		})
	}
	// Every ASCII byte: printable ones are taken, but for the glob
	// characters; whitespace, control characters and DEL are not.
	for c := range byte(0x80) {
		valid := c > ' ' && c != 0x7f && !strings.ContainsRune(`*?[]\`, rune(c))
		if err := ValidateServiceName("a" + string(c) + "b"); (err == nil) != valid {
			t.Errorf("ValidateServiceName with byte %#x = %v, want valid=%v", c, err, valid)
		}
	}
	for _, tt := range []struct {
		in    string
		valid bool
	}{
		{"queue_size", true}, {"apiStatus2", true}, {"", false}, {"_x", false}, {"2x", false},
		{"queue-size", false}, {"queue.size", false}, {"queue size", false}, {"ünicode", false},
		{strings.Repeat("a", MaxFieldNameLength+1), false},
		{"service_name", false}, {"heartbeat_count", false}, {"status", false}, {"interval_seconds", false},
	} {
		if err := ValidateFieldName(tt.in); (err == nil) != tt.valid {
			t.Errorf("ValidateFieldName(%q) = %v, want valid=%v", tt.in, err, tt.valid)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, name := range []string{"seed_example.json", "seed_example.golden", "full.golden"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"service_name":"s","instance_id":"i","timestamp":"2025-01-16T08:30:00Z","x":[1,{"y":null}],"n":-0,"f":1e400}`))
	f.Add([]byte(`{"service_name":"s","instance_id":"i","timestamp":"2025-01-16 08:30:00","uptime_seconds":1e308}`))
	f.Add([]byte(`{"service_name":"s","instance_id":"i","timestamp":"2025-01-16T08:30:00Z","interval_seconds":5e9}`))
	f.Add([]byte(`{"service_name":"s","instance_id":"i","timestamp":"2025-01-16T08:30:00Z"` + manyFields(MaxFields+1) + `}`))
	f.Add([]byte(`{"service_name":"s","instance_id":"i","timestamp":"2025-01-16T08:30:00Z","s":"` + strings.Repeat("x", MaxStringLength+1) + `"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Unmarshal(data)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a *DecodeError", err)
			}
			return
		}
		withinPublisherLimits(t, data, m)
		// What was accepted must encode, and encoding is a fixpoint after
		// the first normalisation (timestamps to microseconds, documented
		// numbers to one decimal).
		first, err := Marshal(m)
		if err != nil {
			t.Fatalf("accepted %q but cannot encode it: %v", data, err)
		}
		m2, err := Unmarshal(first)
		if err != nil {
			t.Fatalf("own output %q does not decode: %v", first, err)
		}
		second, err := Marshal(m2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, second) {
			t.Fatalf("encoding is not stable:\n%s\n%s", first, second)
		}
	})
}

// FuzzDecoderAgreesWithEncodingJSON holds the hand-written scanner to
// encoding/json: it refuses what encoding/json calls invalid, never calls
// valid JSON "not JSON" (unless nested beyond maxDepth), and unescapes
// strings the same way.
func FuzzDecoderAgreesWithEncodingJSON(f *testing.F) {
	for _, name := range []string{"seed_example.json", "full.golden"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"service_name":"s\u00e9","instance_id":"i","timestamp":"2025-01-16T08:30:00Z","x":"\ud83d\ude00 \ud800 \"\\\/\b\f\n\r\t","y":[1,-0.5e+3,{"z":null}],"w":true}`))
	f.Add([]byte(`{"service_name":"s","instance_id":"i","timestamp":"2025-01-16T08:30:00Z","n":01}`))
	f.Add([]byte("{\"service_name\":\"s\xff\",\"a\":\"\xed\xa0\x80\"}"))
	f.Add([]byte(`{"service_name":"s","instance_id":"i","timestamp":"2025-01-16T08:30:00Z","interval_seconds":1e10}`))
	f.Add([]byte(`{"service_name":"s","instance_id":"i","timestamp":"2025-01-16T08:30:00Z"` + manyFields(MaxFields) + `,"f0":1}`))
	f.Add([]byte(`{"service_name":"s","instance_id":"i","timestamp":"2025-01-16T08:30:00Z","s":"` + strings.Repeat(`\u00e9`, MaxStringLength/2+1) + `"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > MaxMessageSize {
			return
		}
		m, err := Unmarshal(data)
		valid := json.Valid(data)
		if !valid {
			if err == nil {
				t.Fatalf("accepted invalid JSON %q", data)
			}
			return
		}
		if err != nil {
			var de *DecodeError
			if errors.As(err, &de) && strings.HasPrefix(de.Reason, "not JSON") && !strings.Contains(de.Reason, "nested more than") {
				t.Fatalf("valid JSON %q called %v", data, err)
			}
			if de != nil && strings.Contains(de.Reason, "what a publisher can send") {
				limitRefusalIsTrue(t, data, de)
			}
			return
		}
		withinPublisherLimits(t, data, m)
		var ref map[string]json.RawMessage
		if err := json.Unmarshal(data, &ref); err != nil {
			t.Fatalf("accepted %q, which encoding/json refuses as an object: %v", data, err)
		}
		if _, service := firstValues(t, data); service != len(m.Fields) {
			t.Fatalf("%d service fields, encoding/json reads %d", len(m.Fields), service)
		}
		var name string
		if err := json.Unmarshal(ref["service_name"], &name); err != nil || name != m.ServiceName {
			t.Fatalf("service_name %q, encoding/json says %q", m.ServiceName, name)
		}
		for _, fl := range m.Fields {
			if fl.Value.Kind != KindString {
				continue
			}
			var want string
			if err := json.Unmarshal(ref[fl.Key], &want); err != nil || want != fl.Value.Str {
				t.Fatalf("%s = %q, encoding/json says %q", fl.Key, fl.Value.Str, want)
			}
		}
	})
}

// firstValues reads a JSON object as encoding/json does, keeping the first
// value of each key (the decoder refuses at the first occurrence; a
// map would keep the last) and counting the keys that are not documented.
func firstValues(t *testing.T, data []byte) (map[string]json.RawMessage, int) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("%q is not an object to encoding/json: %v", data, err)
	}
	first := make(map[string]json.RawMessage)
	service := 0
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		key := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		if _, ok := first[key]; !ok {
			first[key] = v
		}
		if !reserved[key] {
			service++
		}
	}
	return first, service
}

// limitRefusalIsTrue checks a refusal for exceeding what a publisher can
// send against encoding/json's reading of the same input, so that the
// differential fuzzer expects these refusals instead of ignoring them.
func limitRefusalIsTrue(t *testing.T, data []byte, de *DecodeError) {
	t.Helper()
	first, service := firstValues(t, data)
	switch {
	case de.Key == KeyIntervalSeconds:
		var f float64
		if err := json.Unmarshal(first[KeyIntervalSeconds], &f); err != nil {
			t.Fatalf("%v, but encoding/json reads no number: %v", de, err)
		}
		if f >= MinInterval.Seconds() && f <= MaxInterval.Seconds() {
			t.Fatalf("%v, but encoding/json reads %v", de, f)
		}
	case de.Key == KeyStatus:
		var st string
		if err := json.Unmarshal(first[KeyStatus], &st); err == nil && (st == StatusRunning || st == StatusStopping) {
			t.Fatalf("%v, but encoding/json reads %q", de, st)
		}
	case strings.Contains(de.Reason, "service fields"):
		if service <= MaxFields {
			t.Fatalf("%v, but encoding/json reads %d service fields", de, service)
		}
	case strings.Contains(de.Reason, "string of"):
		var s string
		if err := json.Unmarshal(first[de.Key], &s); err != nil || len(s) <= MaxStringLength {
			t.Fatalf("%v, but encoding/json reads %d bytes (%v)", de, len(s), err)
		}
	default:
		t.Fatalf("refusal %v is not one of the publisher's limits", de)
	}
}

// withinPublisherLimits checks an accepted message against the limits.
func withinPublisherLimits(t *testing.T, data []byte, m *Message) {
	t.Helper()
	if len(m.Fields) > MaxFields {
		t.Fatalf("accepted %d service fields from %q", len(m.Fields), data)
	}
	if m.Has&HasInterval != 0 && (m.IntervalSeconds < MinInterval.Seconds() || m.IntervalSeconds > MaxInterval.Seconds()) {
		t.Fatalf("accepted interval_seconds %v from %q", m.IntervalSeconds, data)
	}
	for _, f := range m.Fields {
		if f.Value.Kind == KindString && len(f.Value.Str) > MaxStringLength {
			t.Fatalf("accepted a string of %d bytes in %s", len(f.Value.Str), f.Key)
		}
	}
	if d := m.Interval(); d < MinInterval || d > MaxInterval {
		t.Fatalf("Interval() = %v", d)
	}
}

// Decoding with an Interner into a message without room for fields
// allocates its fields once, at their number: a watcher that keeps the
// message keeps no spare room, and no copies made while they grew.
func TestDecodingWithAnInternerAllocatesTheFieldsOnce(t *testing.T) {
	data := []byte(`{"service_name":"tracker_fetcher","instance_id":"a1b2","timestamp":"2025-01-16T08:30:00.000000+00:00",` +
		`"uptime_seconds":3600,"heartbeat_count":60,"memory_usage_mb":45.2,"cpu_usage_percent":2.5,` +
		`"queue_size":1380,"api_status":"authenticated","last_successful_fetch":"2025-01-16T08:29:55.000000+00:00"}`)
	in := NewInterner(64)
	var m Message
	if err := UnmarshalIntern(data, &m, in); err != nil { // names interned
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		m = Message{}
		if err := UnmarshalIntern(data, &m, in); err != nil {
			t.Fatal(err)
		}
	}); n != 2 {
		t.Errorf("%v allocations, want 2: the instance id and the fields", n)
	}
	if len(m.Fields) != 3 || cap(m.Fields) != 3 {
		t.Errorf("%d fields with room for %d, want 3 and 3", len(m.Fields), cap(m.Fields))
	}
	// The room the decoder grew them in is its own: the next message
	// decoded does not change this one.
	first := m
	var next Message
	other := bytes.Replace(data, []byte(`1380`), []byte(`7`), 1)
	if err := UnmarshalIntern(other, &next, in); err != nil {
		t.Fatal(err)
	}
	if v, _ := first.Field("queue_size"); v.Int != 1380 {
		t.Errorf("the first message's queue_size became %d", v.Int)
	}
	// A message with room of its own is decoded into it, as before.
	own := Message{Fields: make([]Field, 0, 8)}
	if err := UnmarshalIntern(data, &own, in); err != nil || cap(own.Fields) != 8 {
		t.Errorf("decoded into %d of room, %v; want the message's own 8", cap(own.Fields), err)
	}
}

// A heartbeat whose documented keys are written as the encoder writes
// them is read as the same heartbeat written any other way JSON allows:
// keys escaped, spaced, reordered; and a documented key read ahead is
// still refused the second time it appears.
func TestKeysAreReadAlikeHoweverTheyAreWritten(t *testing.T) {
	m := seedMessage()
	m.IntervalSeconds, m.Status, m.InstanceAddress = 30, StatusRunning, "10.0.0.7:8080"
	m.Has |= HasInterval
	canonical, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	in := NewInterner(64)
	decode := func(data []byte) (Message, error) {
		var got Message
		err := UnmarshalIntern(data, &got, in)
		return got, err
	}
	want, err := decode(canonical)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(want.Fields, m.Fields) || want.ServiceName != m.ServiceName || want.InstanceAddress != m.InstanceAddress || want.Status != m.Status {
		t.Fatalf("decoded %+v, want %+v", want, m)
	}
	// The same members, in reverse order.
	var members []string
	body := string(canonical[1 : len(canonical)-1])
	for rest := body; rest != ""; {
		// Members end at a comma outside a string; the seed's values hold none.
		i := strings.Index(rest, `,"`)
		if i < 0 {
			members, rest = append(members, rest), ""
			continue
		}
		members, rest = append(members, rest[:i]), rest[i+1:]
	}
	slices.Reverse(members)
	for name, variant := range map[string]string{
		"reordered":         "{" + strings.Join(members, ",") + "}",
		"key escaped":       strings.Replace(string(canonical), `"service_name"`, `"service\u005fname"`, 1),
		"space before ':'":  strings.Replace(string(canonical), `"timestamp":`, `"timestamp" :`, 1),
		"space after ':'":   strings.ReplaceAll(string(canonical), `":`, "\":\n\t "),
		"spaces everywhere": strings.ReplaceAll(strings.ReplaceAll(string(canonical), `,"`, ` , "`), `":`, `" : `),
	} {
		got, err := decode([]byte(variant))
		byKey := func(a, b Field) int { return strings.Compare(a.Key, b.Key) }
		slices.SortFunc(got.Fields, byKey) // a service's fields come in the order written
		w := want
		w.Fields = slices.SortedFunc(slices.Values(want.Fields), byKey)
		if err != nil || !reflect.DeepEqual(got, w) {
			t.Errorf("%s: decoded %+v, %v; want %+v", name, got, err, w)
		}
	}
	// A service field whose name begins as a documented key's is its own.
	prefixed := `{"service_name":"s","instance_id":"i","timestamp":"2026-01-01T00:00:00.000000+00:00","status_code":1,"uptime_seconds_total":2}`
	if got, err := decode([]byte(prefixed)); err != nil || got.Status != "" || got.Has&HasUptime != 0 || len(got.Fields) != 2 {
		t.Errorf("fields named after documented keys: decoded %+v, %v", got, err)
	}
	for _, key := range []string{KeyServiceName, KeyTimestamp, KeyStatus, KeyInstanceAddress} {
		twice := strings.Replace(string(canonical), "}", `,"`+key+`":"x"}`, 1)
		if _, err := decode([]byte(twice)); err == nil || !strings.Contains(err.Error(), "twice") {
			t.Errorf("%s written twice: %v, want it refused", key, err)
		}
	}
}

// An Interner remembers the service names that passed, to check each
// once; a name refused is refused in every heartbeat, and past the
// interner's bound every name is still checked.
func TestAnInternerRemembersOnlyTheServiceNamesThatPassed(t *testing.T) {
	message := func(svc string) []byte {
		return []byte(`{"service_name":"` + svc + `","instance_id":"i","timestamp":"2026-01-01T00:00:00.000000+00:00"}`)
	}
	decode := func(in *Interner, svc string) error {
		var m Message
		err := UnmarshalIntern(message(svc), &m, in)
		if err == nil && !strings.Contains(svc, `\`) && m.ServiceName != svc {
			t.Fatalf("decoded %s as %q", svc, m.ServiceName)
		}
		return err
	}
	in := NewInterner(64)
	for i := range 3 {
		for _, bad := range []string{`bad*`, `pay\u200bments`, `a\u0000b`} {
			if err := decode(in, bad); err == nil || !strings.Contains(err.Error(), KeyServiceName) {
				t.Errorf("heartbeat %d of %s: %v, want it refused for its service name", i, bad, err)
			}
		}
		if err := decode(in, "good"); err != nil {
			t.Fatalf("heartbeat %d of a good name: %v", i, err)
		}
	}
	if len(in.services) != 1 {
		t.Errorf("the interner remembers %d service names, want 1: the good one", len(in.services))
	}
	// Past the interner's bound, every name is still checked.
	in = NewInterner(1)
	for i := range 3 {
		if err := decode(in, "good"); err != nil {
			t.Fatalf("heartbeat %d of a good name: %v", i, err)
		}
		if err := decode(in, "other"); err != nil {
			t.Errorf("heartbeat %d of another good name: %v", i, err)
		}
		if err := decode(in, "other?"); err == nil {
			t.Errorf("heartbeat %d of other?: accepted past the interner's bound", i)
		}
	}
}

// indexAllocs is what decoding data allocates for its duplicate-key index
// (a message of many fields has one) into a message with room of its own.
func indexAllocs(t *testing.T, data []byte, in *Interner) float64 {
	own := Message{Fields: make([]Field, 0, MaxFields)}
	return testing.AllocsPerRun(20, func() {
		own.Fields = own.Fields[:0]
		if err := UnmarshalIntern(data, &own, in); err != nil {
			t.Fatal(err)
		}
	})
}

// The room an Interner gathers fields in holds nothing of a message once
// it is decoded, however many fields it had or wherever it failed, and
// lasts for the largest message a publisher can send.
func TestAnInternersRoomKeepsNothingOfAMessage(t *testing.T) {
	message := func(n int, value string) []byte {
		var b strings.Builder
		b.WriteString(`{"service_name":"s","instance_id":"i","timestamp":"2026-01-01T00:00:00.000000+00:00"`)
		for i := range n {
			fmt.Fprintf(&b, `,"k%02d":%s`, i, value)
		}
		return []byte(b.String() + "}")
	}
	big := `["` + strings.Repeat("v", 1000) + `"]`
	in := NewInterner(256)
	empty := func(when string) {
		t.Helper()
		for i, f := range in.fields[:cap(in.fields)] {
			if f.Key != "" || f.Value.Str != "" || f.Value.Raw != nil {
				t.Fatalf("%s: the room holds field %d (%q) of a decoded message", when, i, f.Key)
			}
		}
	}
	for _, n := range []int{3, 40, MaxFields} {
		var m Message
		if err := UnmarshalIntern(message(n, big), &m, in); err != nil || len(m.Fields) != n {
			t.Fatalf("%d fields: %d decoded, %v", n, len(m.Fields), err)
		}
		empty(fmt.Sprintf("after %d fields", n))
		small := message(n, "1")
		if a := testing.AllocsPerRun(20, func() {
			m = Message{}
			if err := UnmarshalIntern(small, &m, in); err != nil {
				t.Fatal(err)
			}
		}); a > 1+indexAllocs(t, small, in) {
			t.Errorf("%d fields: %v allocations, want 1 (the fields: the names are interned) and the duplicate-key index's", n, a)
		}
	}
	var m Message
	if err := UnmarshalIntern(message(MaxFields+1, big), &m, in); err == nil || m.Fields != nil {
		t.Fatalf("%d fields: %v, %d kept", MaxFields+1, err, len(m.Fields))
	}
	empty("after a message of too many fields")
}

// A message's footprint counts its room for fields, used or not: a
// message decoded into again keeps the room of the last one.
func TestFootprintCountsTheRoomForFields(t *testing.T) {
	m := Message{ServiceName: "s", InstanceID: "1"}
	bare := m.Footprint()
	m.Fields = make([]Field, 0, 8)
	if got := m.Footprint(); got != bare+8*fieldSize {
		t.Errorf("room for 8 fields: %d bytes, want %d", got, bare+8*fieldSize)
	}
	m.Fields = append(m.Fields, Field{Key: "queue_size", Value: Int(3)})
	if got := m.Footprint(); got != bare+8*fieldSize+len("queue_size") {
		t.Errorf("one field of 8: %d bytes, want %d", got, bare+8*fieldSize+len("queue_size"))
	}
}
