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
		if err != nil || !sameRule(got, tt.want) {
			t.Errorf("%q: %+v, %v; want %+v", tt.in, got, err, tt.want)
			continue
		}
		if got.String() != tt.text {
			t.Errorf("%q: written %q, want %q", tt.in, got.String(), tt.text)
		}
		again, err := ParseHealthRule(got.String())
		if err != nil || !sameRule(again, got) {
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
		`svc: api_status != "unterminated`:     "is not a JSON string",
		"svc: queue_size > 10 11":              "want 'SERVICE: FIELD older than",
		"svc: last_op older than 5m and more":  "want 'SERVICE: FIELD older than",
		"svc: \"quoted field\" > 1":            "is not a heartbeat field name",
		"svc: q > 1 for 2500000h":              "more than a year",
		"svc: last older than 9000h":           "more than a year",
		"svc: q > 1e-400":                      "too small to tell from 0",
		"svc: status != running":               "status is not a field a rule can read",
		"svc: timestamp older than 5m":         "timestamp is not a field a rule can read",
		"svc: instance_address != x":           "instance_address is not a field a rule can read",
		"svc: memory_usage_mb older than 5m":   "memory_usage_mb is a number",
		"payments:worker: older than 5m":       `"than" is not an operator`,
		`svc: f != "\x41"`:                     "is not a JSON string",
		"svc: a:b > 1":                         "is not a heartbeat field name",
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

// sameRule compares what a rule says, not how it holds it.
func sameRule(a, b HealthRule) bool {
	return a.Service == b.Service && a.Field == b.Field && a.Op == b.Op && a.Number == b.Number && a.Text == b.Text &&
		a.Age == b.Age && a.For == b.For
}

// Rules are read as they are written: a service may hold '/' or ':', a
// quoted value is JSON and kept exactly, numbers are written as an
// operator would.
func TestHealthRulesAreReadAsWritten(t *testing.T) {
	for in, want := range map[string]HealthRule{
		"payments:worker: queue > 1":       {Service: "payments:worker", Field: "queue", Op: Greater, Number: 1},
		"team/api: q > 5":                  {Service: "team/api", Field: "q", Op: Greater, Number: 5},
		`svc: f != "logged  in"`:           {Service: "svc", Field: "f", Op: NotEqual, Text: "logged  in"},
		`svc: f != "a for 5m" for 1m`:      {Service: "svc", Field: "f", Op: NotEqual, Text: "a for 5m", For: time.Minute},
		`svc: f != "a\/b\tc"`:              {Service: "svc", Field: "f", Op: NotEqual, Text: "a/b\tc"},
		"svc: interval_seconds > 120":      {Service: "svc", Field: "interval_seconds", Op: Greater, Number: 120},
		"svc:q>=1000000":                   {},
		"svc: queue_size > 1000000 for 1m": {Service: "svc", Field: "queue_size", Op: Greater, Number: 1e6, For: time.Minute},
	} {
		got, err := ParseHealthRule(in)
		if want == (HealthRule{}) {
			if err == nil {
				t.Errorf("%q: read as %+v", in, got)
			}
			continue
		}
		if err != nil || !sameRule(got, want) {
			t.Errorf("%q: %+v, %v; want %+v", in, got, err, want)
			continue
		}
		if again, err := ParseHealthRule(got.String()); err != nil || !sameRule(again, got) {
			t.Errorf("%q written %q reads back as %+v, %v", in, got.String(), again, err)
		}
	}
	if r, _ := ParseHealthRule("svc: queue_size > 1000000"); r.String() != "svc: queue_size > 1000000" {
		t.Errorf("written %q", r.String())
	}
	if _, err := ParseHealthRules(make([]string, MaxHealthRules+1)); err == nil {
		t.Error("more rules than the bound were taken")
	}
	for _, c := range []struct {
		pattern, name string
		want          bool
	}{{"*", "team/api", true}, {"team/*", "team/api", true}, {"*", "payments:worker", true}, {"geo*", "team/geo", false}, {"[", "x", false}} {
		if got := MatchService(c.pattern, c.name); got != c.want {
			t.Errorf("MatchService(%q, %q) = %v", c.pattern, c.name, got)
		}
	}
}

// A timestamp field past its heartbeat's own timestamp (far in the
// future, or Unix milliseconds) or more than a century before it is
// unknown, never broken and never a hang; an old one is broken since it
// grew too old; integers are compared exactly.
func TestOddTimesAndNumbersAreJudgedSanely(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock), WithHealthRules(mustRules(t,
		"svc: lso older than 5m",
		"svc: q > 9007199254740992")...))
	judge := func(id string, lso wire.Value, q int64) Instance {
		t.Helper()
		m := withInterval(beat("svc", id, 1), time.Second)
		m.Fields = []wire.Field{{Key: "lso", Value: lso}, {Key: "q", Value: wire.Int(q)}}
		tr.Observe(m)
		done := make(chan []HealthChange, 1)
		go func() { done <- tr.HealthAt(clock.Now()) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: HealthAt does not return", id)
		}
		if next, ok := tr.NextDeadline(); ok && next.Before(t0.Add(-time.Hour)) {
			t.Fatalf("%s: the next deadline is %v", id, next)
		}
		in, _ := tr.Get(Key{"svc", id})
		return in
	}
	for id, v := range map[string]wire.Value{
		"future":  wire.String("2300-01-01T00:00:00Z"),
		"last":    wire.String("9999-12-31T23:59:59Z"),
		"millis":  wire.Int(1_796_436_134_000),
		"millisf": wire.Float(1_796_436_134_000),
	} {
		if in := judge(id, v, 1); in.Health.Checks[0].Status(clock.Now()) != CheckUnknown || in.Degraded(clock.Now()) {
			t.Errorf("%s: %v, want unknown", id, in.Health.Checks[0].Status(clock.Now()))
		}
	}
	if in := judge("ancient", wire.String("0001-01-01T00:00:00Z"), 1); in.Health.Checks[0].Status(clock.Now()) != CheckUnknown {
		t.Errorf("the year 1: %v, want unknown", in.Health.Checks[0].Status(clock.Now()))
	}
	in := judge("old", wire.String("2000-01-01T00:00:00Z"), 1)
	if c := in.Health.Checks[0]; c.Status(clock.Now()) != CheckBroken || !c.Since.Equal(time.Date(2000, 1, 1, 0, 5, 0, 0, time.UTC)) {
		t.Errorf("the year 2000: %v since %v", c.Status(clock.Now()), c.Since)
	}
	if in := judge("exact", wire.String(string(wire.AppendTimestamp(nil, t0))), 9007199254740993); in.Health.Checks[1].Status(clock.Now()) != CheckBroken {
		t.Errorf("9007199254740993 > 9007199254740992: %v", in.Health.Checks[1].Status(clock.Now()))
	}
}

// A condition seen before an instance died does not count towards its
// for after it comes back: the for is of an instance that stayed up.
func TestAPendingForDoesNotCarryThroughADeath(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock), WithHealthRules(mustRules(t, "svc: q > 5 for 3s")...))
	send := func(n int64) {
		m := withInterval(beat("svc", "a", n), time.Second)
		m.Fields = []wire.Field{{Key: "q", Value: wire.Int(9)}}
		tr.Observe(m)
	}
	send(1)
	clock.Advance(12 * time.Second)
	tr.Tick() // dead
	send(2)
	in, _ := tr.Get(Key{"svc", "a"})
	if c := in.Health.Checks[0]; c.Status(clock.Now()) != CheckPending || !c.Since.Equal(clock.Now()) {
		t.Errorf("back from the dead: %v since %v, want pending since now", c.Status(clock.Now()), c.Since.Sub(t0))
	}
}

// A degraded instance that breaks other rules than before is said again,
// naming the rules it breaks now; a change is never stamped before the
// heartbeat that caused it.
func TestAChangeOfTheRulesBrokenIsSaid(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock), WithHealthRules(mustRules(t, "svc: a > 5", "svc: b > 5")...))
	var said []string
	send := func(n, a, b int64) {
		m := withInterval(beat("svc", "x", n), time.Second)
		m.Fields = []wire.Field{{Key: "a", Value: wire.Int(a)}, {Key: "b", Value: wire.Int(b)}}
		tr.ObserveAt(m, clock.Now())
		for _, h := range tr.HealthAt(clock.Now().Add(-100 * time.Millisecond)) { // the watcher's seen: a moment before
			if h.At.Before(clock.Now()) {
				t.Errorf("a change at %v, before the heartbeat at %v", h.At.Sub(t0), clock.Now().Sub(t0))
			}
			var rules []string
			for _, c := range h.Broken {
				rules = append(rules, c.Rule.Field)
			}
			said = append(said, fmt.Sprint(h.Degraded, rules))
		}
		clock.Advance(time.Second)
	}
	send(1, 9, 1)
	send(2, 9, 9)
	send(3, 1, 9)
	send(4, 1, 9)
	send(5, 1, 1)
	if want := []string{"true [a]", "true [a b]", "true [b]", "false []"}; fmt.Sprint(said) != fmt.Sprint(want) {
		t.Errorf("said %v, want %v", said, want)
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
	e, _ := tr.lookup(k)
	tr.remove(e)
	if len(tr.healthOf) != 0 || len(tr.healthDue) != 0 {
		t.Errorf("after the instance left: %d health states, %d due", len(tr.healthOf), len(tr.healthDue))
	}
}

// A rule's value is the field it reads, a service field or a documented
// number, as the heartbeat carries it.
func TestARuleReadsItsValue(t *testing.T) {
	m := fetcherBeat("f1", 7, t0, t0, 42, "expired")
	m.MemoryUsageMB, m.Has = 12.5, m.Has|wire.HasMemory
	for spec, want := range map[string]string{
		"tracker_fetcher: queue_size > 1":          "42",
		"tracker_fetcher: api_status != ok":        `"expired"`,
		"tracker_fetcher: memory_usage_mb > 1":     "12.5",
		"tracker_fetcher: heartbeat_count > 1":     "7",
		"tracker_fetcher: cpu_usage_percent > 1":   "",
		"tracker_fetcher: not_sent older than 10m": "",
	} {
		r, err := ParseHealthRule(spec)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if v, ok := r.ValueIn(m); ok {
			b, _ := wire.AppendValue(nil, v)
			got = string(b)
		}
		if got != want {
			t.Errorf("%s: %q, want %q", spec, got, want)
		}
	}
}
