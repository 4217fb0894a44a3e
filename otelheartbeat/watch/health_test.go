package watch

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

func TestHealthRulesParseAsWritten(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want HealthRule
		text string
	}{
		{"tracker_fetcher: last_successful_operation older than 5m",
			HealthRule{Service: "tracker_fetcher", Field: "last_successful_operation", Op: OlderThan, Age: 5 * time.Minute},
			"tracker_fetcher: last_successful_operation older than 5m0s"},
		{"tracker_fetcher: queue_size > 1000 for 2m",
			HealthRule{Service: "tracker_fetcher", Field: "queue_size", Op: Greater, Number: 1000, For: 2 * time.Minute},
			"tracker_fetcher: queue_size > 1000 for 2m0s"},
		{"  *:memory_usage_mb>=512.5  ", HealthRule{}, ""}, // operators need spaces around them
		{"geo*: cpu_usage_percent <= 0.5",
			HealthRule{Service: "geo*", Field: "cpu_usage_percent", Op: LessOrEqual, Number: 0.5},
			"geo*: cpu_usage_percent <= 0.5"},
		{"tracker_fetcher: api_status != authenticated",
			HealthRule{Service: "tracker_fetcher", Field: "api_status", Op: NotEqual, Text: "authenticated"},
			"tracker_fetcher: api_status != authenticated"},
		{`tracker_fetcher: api_status != "logged in" for 30s`,
			HealthRule{Service: "tracker_fetcher", Field: "api_status", Op: NotEqual, Text: "logged in", For: 30 * time.Second},
			`tracker_fetcher: api_status != "logged in" for 30s`},
	} {
		got, err := ParseHealthRule(tt.in)
		if tt.text == "" {
			if err == nil {
				t.Errorf("%q: parsed as %+v", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q: %+v, %v; want %+v", tt.in, got, err, tt.want)
			continue
		}
		if got.String() != tt.text {
			t.Errorf("%q: written %q, want %q", tt.in, got.String(), tt.text)
		}
		again, err := ParseHealthRule(got.String())
		if err != nil || again != got {
			t.Errorf("%q: does not read back: %+v, %v", got.String(), again, err)
		}
	}
}

func TestMalformedHealthRulesSayWhatIsWrong(t *testing.T) {
	for in, want := range map[string]string{
		"queue_size > 10":                      "no 'SERVICE:'",
		": queue_size > 10":                    "no 'SERVICE:'",
		"svc[: queue_size > 10":                "not a service name or pattern",
		"svc: queue_size":                      "want 'SERVICE: FIELD older than",
		"svc: queue_size ~ 10":                 `"~" is not an operator`,
		"svc: queue_size > ten":                `"ten" is not a number`,
		"svc: queue_size > NaN":                `"NaN" is not a number`,
		"svc: last older than soon":            "not a positive duration",
		"svc: last older than -5m":             "not a positive duration",
		"svc: queue_size > 10 for ever":        "'for ever' is not a positive duration",
		"svc: api_status != logged in":         "quote a value with spaces",
		`svc: api_status != "unterminated`:     "is not a quoted string",
		"svc: queue_size > 10 11":              "want 'SERVICE: FIELD older than",
		"svc: last_op older than 5m and more":  "want 'SERVICE: FIELD older than",
		"svc: \"quoted field\" > 1":            "is not a heartbeat field name",
		"svc: queue\x7fsize > 1":               "is not a heartbeat field name",
		"svc: queue_size > 1 for 0s":           "not a positive duration",
		"svc: queue_size older than 5m for 1h": "",
	} {
		_, err := ParseHealthRule(in)
		if want == "" {
			if err != nil {
				t.Errorf("%q: %v", in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to say %q", in, err, want)
		}
	}
	_, err := ParseHealthRules([]string{"a: x > 1", "b: y >", "c: z older than never"})
	if err == nil || !strings.Contains(err.Error(), `"b: y >"`) || !strings.Contains(err.Error(), `"c: z older than never"`) {
		t.Errorf("ParseHealthRules names every bad rule: %v", err)
	}
}

func mustRules(t *testing.T, specs ...string) []HealthRule {
	t.Helper()
	rs, err := ParseHealthRules(specs)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// fetcherBeat is the seed's tracker fetcher heartbeat, sent at sent on
// the sender's clock.
func fetcherBeat(id string, count int64, sent, lastOp time.Time, queue int64, status string) *wire.Message {
	m := withInterval(beat("tracker_fetcher", id, count), 10*time.Second)
	m.Timestamp = sent
	m.Fields = []wire.Field{
		{Key: "last_successful_operation", Value: wire.String(string(wire.AppendTimestamp(nil, lastOp)))},
		{Key: "queue_size", Value: wire.Int(queue)},
		{Key: "api_status", Value: wire.String(status)},
	}
	return m
}

func TestAStuckWorkLoopIsDegradedThoughItBeats(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock), WithHealthRules(mustRules(t, "tracker_fetcher: last_successful_operation older than 1m")...))
	k := Key{"tracker_fetcher", "f1"}
	// The sender's clock is an hour ahead: ages are read on its own clock.
	skew := time.Hour
	lastOp := t0.Add(skew)
	for i := int64(1); i <= 12; i++ {
		tr.Observe(fetcherBeat("f1", i, clock.Now().Add(skew), lastOp, 0, "authenticated"))
		in, _ := tr.Get(k)
		age := clock.Now().Sub(t0)
		if in.State != Alive {
			t.Fatalf("at %v: %v, want alive: it beats on time", age, in.State)
		}
		if got, want := in.Degraded(clock.Now()), age >= time.Minute; got != want {
			t.Fatalf("with its last operation %v old: degraded %v, want %v", age, got, want)
		}
		// Between heartbeats, the age keeps growing on the tracker's clock.
		if mid := clock.Now().Add(5 * time.Second); !in.Degraded(mid) && mid.Sub(t0) > time.Minute {
			t.Fatalf("at %v since its last operation: not degraded between heartbeats", mid.Sub(t0))
		}
		clock.Advance(10 * time.Second)
	}
	in, _ := tr.Get(k)
	broken := in.Health.Broken(clock.Now())
	if len(broken) != 1 || !broken[0].BrokenSince().Equal(t0.Add(time.Minute)) {
		t.Fatalf("broken: %+v, want the one rule, since a minute after the last operation", broken)
	}
	// Work resumes: healthy at the next heartbeat.
	tr.Observe(fetcherBeat("f1", 13, clock.Now().Add(skew), clock.Now().Add(skew), 0, "authenticated"))
	if in, _ := tr.Get(k); in.Degraded(clock.Now()) {
		t.Fatalf("degraded after its work resumed: %+v", in.Health)
	}
}

func TestANumberRuleBreaksAfterItsFor(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock), WithHealthRules(mustRules(t, "tracker_fetcher: queue_size > 1000 for 30s")...))
	k := Key{"tracker_fetcher", "f1"}
	queue := []int64{10, 2000, 3000, 2500, 4000, 5000, 900, 2000}
	want := []CheckStatus{CheckHolds, CheckPending, CheckPending, CheckPending, CheckBroken, CheckBroken, CheckHolds, CheckPending}
	for i, q := range queue {
		tr.Observe(fetcherBeat("f1", int64(i+1), clock.Now(), clock.Now(), q, "authenticated"))
		in, _ := tr.Get(k)
		if got := in.Health.Checks[0].Status(clock.Now()); got != want[i] {
			t.Errorf("heartbeat %d (queue %d) at %v: %v, want %v", i+1, q, clock.Now().Sub(t0), got, want[i])
		}
		if got := in.Degraded(clock.Now()); got != (want[i] == CheckBroken) {
			t.Errorf("heartbeat %d: degraded %v", i+1, got)
		}
		clock.Advance(10 * time.Second)
	}
}

func TestAFieldNotSentIsUnknownNotABreach(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock), WithHealthRules(mustRules(t,
		"tracker_fetcher: api_status != authenticated",
		"tracker_fetcher: queue_size > 10",
		"tracker_fetcher: last_successful_operation older than 1s",
		"geocoding_service: queue_size > 10")...))
	m := fetcherBeat("f1", 1, t0, t0.Add(-time.Hour), 0, "authenticated")
	m.Fields = []wire.Field{{Key: "queue_size", Value: wire.String("many")}} // not a number, and the others absent
	tr.Observe(m)
	in, _ := tr.Get(Key{"tracker_fetcher", "f1"})
	if in.Degraded(t0) || len(in.Health.Checks) != 3 {
		t.Fatalf("degraded on fields it does not send: %+v", in.Health)
	}
	for _, c := range in.Health.Checks {
		if c.Status(t0) != CheckUnknown {
			t.Errorf("%s: %v, want unknown", c.Rule, c.Status(t0))
		}
	}
	// A service no rule applies to has no health at all.
	tr.Observe(beat("discovery", "d1", 1))
	if in, _ := tr.Get(Key{"discovery", "d1"}); in.Health != nil {
		t.Fatalf("health without rules: %+v", in.Health)
	}
}

func TestAServiceIsDegradedWhenAllItsUpInstancesAre(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock), WithHealthRules(mustRules(t, "tracker_fetcher: api_status != authenticated")...))
	tr.Observe(fetcherBeat("f1", 1, t0, t0, 0, "expired"))
	tr.Observe(fetcherBeat("f2", 1, t0, t0, 0, "authenticated"))
	counts := func() Counts {
		var c Counts
		for _, in := range tr.Snapshot() {
			c.Count(&in, clock.Now())
		}
		return c
	}
	if c := counts(); c.Degraded != 1 || c.State(1) != ServiceUp {
		t.Fatalf("one of two degraded: %+v %v, want up", c, c.State(1))
	}
	tr.Observe(fetcherBeat("f2", 2, t0, t0, 0, "rate_limited"))
	if c := counts(); c.Degraded != 2 || c.State(1) != ServiceDegraded {
		t.Fatalf("both degraded: %+v %v, want degraded", c, c.State(1))
	}
	// A dead instance is dead, not degraded; the service is down when too
	// few are up, however healthy.
	clock.Advance(25 * time.Second)
	tr.Observe(fetcherBeat("f2", 3, clock.Now(), clock.Now(), 0, "rate_limited"))
	clock.Advance(10 * time.Second)
	tr.Tick()
	if in, _ := tr.Get(Key{"tracker_fetcher", "f1"}); in.State != Dead || in.Degraded(clock.Now()) {
		t.Fatalf("f1: %v degraded=%v", in.State, in.Degraded(clock.Now()))
	}
	if c := counts(); c.State(2) != ServiceDown || c.State(1) != ServiceDegraded {
		t.Fatalf("%+v: min 2 %v, min 1 %v", c, c.State(2), c.State(1))
	}
}

func TestAHealthCopyIsNotChangedByLaterHeartbeats(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock), WithHealthRules(mustRules(t, "tracker_fetcher: api_status != authenticated")...))
	tr.Observe(fetcherBeat("f1", 1, t0, t0, 0, "expired"))
	before, _ := tr.Get(Key{"tracker_fetcher", "f1"})
	tr.Observe(fetcherBeat("f1", 2, t0, t0, 0, "authenticated"))
	if !before.Degraded(t0) {
		t.Fatal("a copy taken before the instance recovered changed under its reader")
	}
}

// Each change of verdict is reported once, at the moment it happens: at
// a heartbeat, or with time alone when a rule's for passes or a
// timestamp field grows too old; a death is the transition's to say, not
// a return to health, and an instance that comes back degraded is said
// degraded again.
func TestHealthChangesAreReportedOnceWhenTheyHappen(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock), WithHealthRules(mustRules(t,
		"tracker_fetcher: last_successful_operation older than 32s",
		"tracker_fetcher: queue_size > 100 for 15s")...))
	k := Key{"tracker_fetcher", "f1"}
	type said struct {
		at       time.Duration
		degraded bool
		rules    int
	}
	var got []said
	lastOp, queue, count, working := t0, int64(0), int64(0), true
	step := func(until time.Duration, beat bool) {
		for clock.Now().Before(t0.Add(until)) {
			clock.Advance(time.Second)
			if beat && clock.Now().Sub(t0)%(5*time.Second) == 0 {
				if working {
					lastOp = clock.Now()
				}
				count++
				tr.Observe(fetcherBeat("f1", count, clock.Now(), lastOp, queue, "authenticated"))
			}
			tr.Tick()
			// The tracker says when it next has something to do: never
			// later than a change.
			if next, ok := tr.NextDeadline(); ok && next.Before(clock.Now()) {
				t.Fatalf("at %v the next deadline %v is past", clock.Now().Sub(t0), next.Sub(t0))
			}
			for _, h := range tr.HealthAt(clock.Now()) {
				if h.Key != k {
					t.Fatalf("a change of %v", h.Key)
				}
				got = append(got, said{h.At.Sub(t0), h.Degraded, len(h.Broken)})
			}
		}
	}
	step(20*time.Second, true) // working: nothing to say
	queue = 500                // from the 25 s heartbeat, broken 15 s later
	step(50*time.Second, true)
	queue = 0 // the 55 s heartbeat: healthy again
	step(60*time.Second, true)
	working = false // the last operation is the 60 s one: too old at 92 s, between heartbeats
	step(100*time.Second, true)
	step(140*time.Second, false) // silent from 100 s: stale, then dead, not "healthy"
	count = 0
	step(150*time.Second, true) // back at 145 s, still stuck: degraded again
	want := []said{
		{40 * time.Second, true, 1},
		{55 * time.Second, false, 0},
		{92 * time.Second, true, 1},
		{145 * time.Second, true, 1},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("said %+v\nwant %+v", got, want)
	}
	if in, _ := tr.Get(k); in.State != Alive || !in.Degraded(clock.Now()) {
		t.Errorf("at the end: %v, degraded %v", in.State, in.Degraded(clock.Now()))
	}
	// Forgotten, it leaves nothing behind.
	tr.remove(tr.instances[k])
	if len(tr.healthOf) != 0 || len(tr.healthDue) != 0 {
		t.Errorf("after the instance left: %d health states, %d due", len(tr.healthOf), len(tr.healthDue))
	}
}
