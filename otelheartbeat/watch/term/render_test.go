package term

import (
	"bytes"
	goldenfile "github.com/otel-heartbeat/heartbeat/internal/testing/golden"
	"os"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

func golden(t *testing.T, name string, got []byte) { t.Helper(); goldenfile.Check(t, name, got) }

func seedMessage(t *testing.T) *wire.Message {
	b, err := os.ReadFile("../../wire/testdata/seed_example.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := wire.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var at = time.Date(2025, 1, 16, 8, 30, 15, 0, time.UTC)

func TestSeedExampleInTheSeedsMonitorFormat(t *testing.T) {
	var b bytes.Buffer
	m := seedMessage(t)
	m.UptimeSeconds = 4320 // the original design's example output shows 1.2h for 72 heartbeats
	m.HeartbeatCount = 72
	Style{}.Heartbeat(&b, m, at)
	golden(t, "seed_example.txt", b.Bytes())
}

func TestTransitionsAndEvents(t *testing.T) {
	k := watch.Key{Service: "tracker_fetcher", Instance: "a1b2c3d4-e5f6-7890-abcd-ef1234567890"}
	var b bytes.Buffer
	s := Style{}
	for _, tr := range []watch.Transition{
		{Key: k, From: watch.Unknown, To: watch.Alive, At: at},
		{Key: k, From: watch.Alive, To: watch.Stale, At: at, Age: 90 * time.Second, Interval: time.Minute, IntervalSource: watch.IntervalSent},
		{Key: k, From: watch.Stale, To: watch.Dead, At: at, Age: 180 * time.Second, Interval: time.Minute, IntervalSource: watch.IntervalSent},
		// A seed-format sender: its interval inferred from its gaps, or
		// assumed until there is a gap to go by.
		{Key: k, From: watch.Alive, To: watch.Stale, At: at, Age: 1503 * time.Millisecond, Interval: 1002 * time.Millisecond, IntervalSource: watch.IntervalInferred},
		{Key: k, From: watch.Stale, To: watch.Dead, At: at, Age: 180 * time.Second, Interval: time.Minute, IntervalSource: watch.IntervalDefault},
		{Key: k, From: watch.Dead, To: watch.Alive, At: at},
		{Key: k, From: watch.Stale, To: watch.Alive, At: at},
		{Key: k, From: watch.Alive, To: watch.Stopped, At: at},
	} {
		s.Transition(&b, tr)
	}
	golden(t, "transitions.txt", b.Bytes())
}

func TestColourOnlyWhenAsked(t *testing.T) {
	var plain, coloured bytes.Buffer
	tr := watch.Transition{Key: watch.Key{Service: "s", Instance: "i"}, To: watch.Dead, At: at}
	Style{}.Transition(&plain, tr)
	Style{Color: true}.Transition(&coloured, tr)
	if bytes.Contains(plain.Bytes(), []byte("\x1b[")) || !bytes.Contains(coloured.Bytes(), []byte("\x1b[31m")) {
		t.Errorf("plain %q coloured %q", plain.String(), coloured.String())
	}
}

func TestJSONLines(t *testing.T) {
	var b bytes.Buffer
	raw := []byte(`{"service_name":"s","instance_id":"i","timestamp":"2025-01-16T08:30:00.000000+00:00"}`)
	m, _ := wire.Unmarshal(raw)
	_ = JSON(&b, watch.Event{Kind: watch.KindHeartbeat, At: at, Channel: "heartbeat:service:s", Message: m, Raw: raw})
	_ = JSON(&b, watch.Event{Kind: watch.KindTransition, At: at, Transition: watch.Transition{Key: watch.Key{Service: "s", Instance: "i"}, From: watch.Dead, To: watch.Alive, Age: 0, Interval: time.Second, IntervalSource: watch.IntervalInferred}})
	_ = JSON(&b, watch.Event{Kind: watch.KindRefresh, At: at})
	golden(t, "events.jsonl", b.Bytes())
}

func TestUptimeFormat(t *testing.T) {
	for sec, want := range map[float64]string{0: "0.0s", 45: "45.0s", 750: "12.5m", 3600.5: "1.0h", 4320: "1.2h", 3 * 86400: "3.0d"} {
		if got := FormatUptime(sec); got != want {
			t.Errorf("%v: %s, want %s", sec, got, want)
		}
	}
}

// An advertised address is shown under the figures, escaped like every
// string from the wire.
func TestHeartbeatShowsTheInstanceAddress(t *testing.T) {
	var b bytes.Buffer
	m := seedMessage(t)
	m.InstanceAddress = "http://10.0.0.7:8080/v1"
	Style{}.Heartbeat(&b, m, at)
	if !bytes.Contains(b.Bytes(), []byte("\n   Address: http://10.0.0.7:8080/v1\n")) {
		t.Errorf("no address line in\n%s", b.String())
	}
	b.Reset()
	Style{}.Heartbeat(&b, seedMessage(t), at)
	if bytes.Contains(b.Bytes(), []byte("Address:")) {
		t.Errorf("an address line without an address:\n%s", b.String())
	}
}
