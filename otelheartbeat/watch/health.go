package watch

// Health rules: an instance that beats on time can still be stuck. Its
// heartbeat says so in its fields (a last_successful_operation that stopped
// moving, a queue_size that keeps growing, an api_status that is not
// "authenticated"), and a rule on one of them turns an alive instance
// degraded. Liveness stays the age rule alone: health is a second verdict
// on the up instances, from what their last heartbeat carries.

import (
	"cmp"
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// Op is how a health rule compares a field.
type Op uint8

// Health rule operators.
const (
	// OlderThan: a timestamp field is older than the rule's Age.
	OlderThan Op = iota + 1
	Greater
	Less
	GreaterOrEqual
	LessOrEqual
	// NotEqual: a string field is not the rule's Text.
	NotEqual
)

var opNames = map[Op]string{OlderThan: "older than", Greater: ">", Less: "<", GreaterOrEqual: ">=", LessOrEqual: "<=", NotEqual: "!="}

func (o Op) String() string { return opNames[o] }

// HealthRule is one rule an instance's heartbeat must keep to:
//
//	SERVICE: FIELD older than DURATION [for DURATION]
//	SERVICE: FIELD > NUMBER [for DURATION]   (also <, >=, <=)
//	SERVICE: FIELD != VALUE [for DURATION]
//
// SERVICE is a service name or a pattern (MatchService: "*" is every
// service); it ends at the first ": ", or at the first ":" when there is
// none. FIELD is a service field (no ':' in it), or for numbers one of
// the documented memory_usage_mb, cpu_usage_percent, uptime_seconds,
// heartbeat_count and interval_seconds. An older-than field is a
// timestamp (as the wire writes them) or Unix seconds; its age is read on
// the sender's clock, against the heartbeat's own timestamp, so a skewed
// sender is judged right, and a field more than a minute after that
// timestamp is no time this sender's clock agrees with: unknown. VALUE is
// a word or a JSON string. Integers are compared exactly. Durations are
// at most MaxHealthDuration. The rule is broken once its condition has
// held for For, through every heartbeat of an instance that stayed up:
// an instance that breaks one is degraded.
type HealthRule struct {
	Service string
	Field   string
	Op      Op
	Number  float64       // for >, <, >=, <=
	Text    string        // for !=
	Age     time.Duration // for older than
	For     time.Duration
	// integer is Number when it is a whole number int64 holds, so that
	// integer fields are compared exactly.
	integer    int64
	hasInteger bool
}

// MaxHealthDuration bounds a rule's durations: a year.
const MaxHealthDuration = 365 * 24 * time.Hour

// MaxHealthRules bounds the rules of one tracker: each that applies to a
// service costs each of its instances a check (about 40 bytes).
const MaxHealthRules = 100

// maxFieldAge is the oldest a timestamp field may be and still be read
// as a time: a century (so that ages never overflow).
const maxFieldAge = 100 * 365 * 24 * time.Hour

// futureSlack is how far after its heartbeat's timestamp a timestamp
// field may be and still be read as a time (as no age at all).
const futureSlack = time.Minute

// String writes the rule as ParseHealthRule reads it.
func (r HealthRule) String() string {
	var b strings.Builder
	b.WriteString(r.Service + ": " + r.Field + " " + r.Op.String() + " ")
	switch r.Op {
	case OlderThan:
		b.WriteString(r.Age.String())
	case NotEqual:
		if isWord(r.Text) {
			b.WriteString(r.Text)
		} else {
			q, _ := json.Marshal(r.Text)
			b.Write(q)
		}
	default:
		b.WriteString(formatRuleNumber(r.Number))
	}
	if r.For > 0 {
		b.WriteString(" for " + r.For.String())
	}
	return b.String()
}

// formatRuleNumber writes a number as an operator would: 1000000, not
// 1e+06, except far from 1.
func formatRuleNumber(n float64) string {
	if a := math.Abs(n); a == 0 || a >= 1e-6 && a < 1e21 {
		return strconv.FormatFloat(n, 'f', -1, 64)
	}
	return strconv.FormatFloat(n, 'g', -1, 64)
}

// Applies reports whether the rule is about service.
func (r HealthRule) Applies(service string) bool { return MatchService(r.Service, service) }

// MatchService reports whether a service name matches pattern, in
// path.Match's syntax except that '/', which service names may hold, is
// an ordinary character: "*" matches every name. A malformed pattern
// matches nothing.
func MatchService(pattern, name string) bool {
	ok, _ := path.Match(strings.ReplaceAll(pattern, "/", "\x00"), strings.ReplaceAll(name, "/", "\x00"))
	return ok
}

func isWord(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(c rune) bool { return unicode.IsSpace(c) || c == '"' || c == '\\' || c < ' ' }) && s != "for"
}

const healthRuleForm = "want 'SERVICE: FIELD older than DURATION', 'SERVICE: FIELD > NUMBER' (or <, >=, <=) or 'SERVICE: FIELD != VALUE', each optionally followed by 'for DURATION'"

// numericKeys are the documented fields a number rule may read.
var numericKeys = map[string]bool{wire.KeyMemoryUsageMB: true, wire.KeyCPUUsagePercent: true, wire.KeyUptimeSeconds: true,
	wire.KeyHeartbeatCount: true, wire.KeyIntervalSeconds: true}

// documentedKeys are every documented field.
var documentedKeys = map[string]bool{wire.KeyServiceName: true, wire.KeyInstanceID: true, wire.KeyTimestamp: true,
	wire.KeyStatus: true, wire.KeyInstanceAddress: true}

func healthDuration(s, what string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil || d <= 0:
		return 0, fmt.Errorf("'%s %s' is not a positive duration such as 5m", what, s)
	case d > MaxHealthDuration:
		return 0, fmt.Errorf("'%s %s' is more than a year", what, s)
	}
	return d, nil
}

// ParseHealthRule reads a rule as HealthRule documents it. The error says
// what is wrong with it; the caller names where the rule came from.
func ParseHealthRule(s string) (HealthRule, error) {
	var r HealthRule
	fail := func(format string, args ...any) (HealthRule, error) {
		return HealthRule{}, fmt.Errorf("%q: "+format, append([]any{s}, args...)...)
	}
	i := strings.Index(s, ": ")
	if i < 0 {
		i = strings.Index(s, ":")
	}
	svc := ""
	if i >= 0 {
		svc = strings.TrimSpace(s[:i])
	}
	if svc == "" {
		return HealthRule{}, fmt.Errorf("%q has no 'SERVICE:' before the condition; %s", s, healthRuleForm)
	}
	if _, err := path.Match(svc, ""); err != nil || strings.ContainsFunc(svc, func(c rune) bool { return unicode.IsSpace(c) || c < ' ' }) ||
		len(svc) > wire.MaxNameLength {
		return fail("service %q is not a service name or pattern", svc)
	}
	r.Service = svc
	rest := strings.TrimSpace(s[i+1:])
	field, rest, _ := strings.Cut(rest, " ")
	rest = strings.TrimSpace(rest)
	r.Field = field
	switch {
	case field == "" || rest == "":
		return fail("%s", healthRuleForm)
	case !validField(field):
		return fail("field %q is not a heartbeat field name", field)
	}
	// The condition, then what is left: nothing, or "for DURATION".
	var tail string
	word := func(s string) (string, string) {
		w, t, _ := strings.Cut(strings.TrimSpace(s), " ")
		return w, strings.TrimSpace(t)
	}
	op, after := word(rest)
	switch {
	case op == "older":
		than, t := word(after)
		d, t2 := word(t)
		if than != "than" || d == "" {
			return fail("%s", healthRuleForm)
		}
		age, err := healthDuration(d, "older than")
		if err != nil {
			return fail("%v", err)
		}
		r.Op, r.Age, tail = OlderThan, age, t2
	case op == "!=":
		after = strings.TrimSpace(after)
		if strings.HasPrefix(after, `"`) {
			dec := json.NewDecoder(strings.NewReader(after))
			if err := dec.Decode(&r.Text); err != nil {
				return fail("%s is not a JSON string", after)
			}
			tail = strings.TrimSpace(after[dec.InputOffset():])
		} else {
			r.Text, tail = word(after)
			if r.Text == "" {
				return fail("%s", healthRuleForm)
			}
			if tail != "" && !strings.HasPrefix(tail, "for ") {
				return fail("quote a value with spaces as a JSON string: \"%s %s\"", r.Text, tail)
			}
		}
		r.Op = NotEqual
	default:
		for o, name := range opNames {
			if name == op && o != NotEqual && o != OlderThan {
				r.Op = o
			}
		}
		if r.Op == 0 {
			return fail("%q is not an operator (>, <, >=, <=, != or older than)", op)
		}
		num, t := word(after)
		n, err := strconv.ParseFloat(num, 64)
		if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
			return fail("%q is not a number", num)
		}
		if mant, _, _ := strings.Cut(strings.ToLower(num), "e"); n == 0 && strings.ContainsAny(mant, "123456789") {
			return fail("%q is too small to tell from 0", num)
		}
		r.Number, tail = n, t
		if v, err := strconv.ParseInt(num, 10, 64); err == nil {
			r.integer, r.hasInteger = v, true
		} else if n == math.Trunc(n) && math.Abs(n) < 1<<53 {
			r.integer, r.hasInteger = int64(n), true
		}
	}
	if tail != "" {
		f, d := word(tail)
		if f != "for" || d == "" || strings.Contains(d, " ") {
			return fail("%s", healthRuleForm)
		}
		dur, err := healthDuration(d, "for")
		if err != nil {
			return fail("%v", err)
		}
		r.For = dur
	}
	switch {
	case documentedKeys[r.Field]:
		return fail("%s is not a field a rule can read: a rule reads service fields, and for numbers %s", r.Field, numericList())
	case numericKeys[r.Field] && (r.Op == OlderThan || r.Op == NotEqual):
		return fail("%s is a number: compare it with >, <, >= or <=", r.Field)
	}
	return r, nil
}

func numericList() string {
	keys := make([]string, 0, len(numericKeys))
	for k := range numericKeys {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return strings.Join(keys, ", ")
}

func validField(f string) bool {
	if f == "" || len(f) > 128 {
		return false
	}
	for _, c := range f {
		if c <= ' ' || c == '"' || c == '\\' || c == ':' || c == 0x7f || unicode.IsSpace(c) {
			return false
		}
	}
	return true
}

// ParseHealthRules reads several rules; the error names each bad one.
func ParseHealthRules(specs []string) ([]HealthRule, error) {
	var out []HealthRule
	var errs []error
	for _, s := range specs {
		r, err := ParseHealthRule(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, r)
	}
	if len(out) > MaxHealthRules {
		errs = append(errs, fmt.Errorf("%d health rules: at most %d", len(out), MaxHealthRules))
	}
	return out, errors.Join(errs...)
}

// breach reads the rule's field from m, received at receivedAt, and
// returns when its condition began to fail (zero while it holds); known
// is false when m does not carry the field as the rule reads it.
func (r *HealthRule) breach(m *wire.Message, receivedAt time.Time) (breachAt time.Time, known bool) {
	if r.Op == OlderThan {
		at, ok := timeField(m, r.Field)
		// A time after the heartbeat's own, or more than a century before
		// it, is no time this sender's clock agrees with.
		if !ok || m.Timestamp.IsZero() || at.After(m.Timestamp.Add(futureSlack)) || m.Timestamp.Sub(at) > maxFieldAge {
			return time.Time{}, false
		}
		// How old it was when sent, on the sender's clock, then on ours.
		return receivedAt.Add(r.Age - max(m.Timestamp.Sub(at), 0)), true
	}
	if r.Op == NotEqual {
		v, ok := m.Field(r.Field)
		if !ok || v.Kind != wire.KindString {
			return time.Time{}, false
		}
		if v.Str != r.Text {
			return receivedAt, true
		}
		return time.Time{}, true
	}
	n, i, isInt, ok := numberField(m, r.Field)
	if !ok {
		return time.Time{}, false
	}
	c := cmp.Compare(n, r.Number)
	if isInt && r.hasInteger {
		c = cmp.Compare(i, r.integer) // exactly, past 2^53
	}
	broken := false
	switch r.Op {
	case Greater:
		broken = c > 0
	case Less:
		broken = c < 0
	case GreaterOrEqual:
		broken = c >= 0
	case LessOrEqual:
		broken = c <= 0
	}
	if broken {
		return receivedAt, true
	}
	return time.Time{}, true
}

// ValueIn returns the field the rule reads, as m carries it: a service
// field, or a documented number; false when m does not carry it.
func (r *HealthRule) ValueIn(m *wire.Message) (wire.Value, bool) {
	if v, ok := m.Field(r.Field); ok {
		return v, true
	}
	f, i, isInt, ok := numberField(m, r.Field)
	switch {
	case !ok || !numericKeys[r.Field]:
		return wire.Value{}, false
	case isInt:
		return wire.Int(i), true
	}
	return wire.Float(f), true
}

// numberField reads a numeric field, a service field or a documented one:
// as a float, and as an integer when it is one (isInt).
func numberField(m *wire.Message, key string) (f float64, i int64, isInt, ok bool) {
	switch key {
	case wire.KeyMemoryUsageMB:
		return m.MemoryUsageMB, 0, false, m.Has&wire.HasMemory != 0
	case wire.KeyCPUUsagePercent:
		return m.CPUUsagePercent, 0, false, m.Has&wire.HasCPU != 0
	case wire.KeyUptimeSeconds:
		return m.UptimeSeconds, 0, false, m.Has&wire.HasUptime != 0
	case wire.KeyHeartbeatCount:
		return float64(m.HeartbeatCount), m.HeartbeatCount, true, m.Has&wire.HasHeartbeatCount != 0
	case wire.KeyIntervalSeconds:
		return m.IntervalSeconds, 0, false, m.Has&wire.HasInterval != 0
	}
	v, present := m.Field(key)
	if !present {
		return 0, 0, false, false
	}
	switch v.Kind {
	case wire.KindInt:
		return float64(v.Int), v.Int, true, true
	case wire.KindFloat:
		return v.Float, 0, false, true
	}
	return 0, 0, false, false
}

// timeField reads a timestamp field: a time, a timestamp string, or Unix
// seconds.
func timeField(m *wire.Message, key string) (time.Time, bool) {
	v, ok := m.Field(key)
	if !ok {
		return time.Time{}, false
	}
	switch v.Kind {
	case wire.KindTime:
		return v.Time, true
	case wire.KindString:
		t, err := wire.ParseTimestamp(v.Str)
		return t, err == nil
	case wire.KindInt:
		if v.Int > 0 && v.Int < 1e11 { // seconds, not milliseconds: 1e11 s is the year 5138
			return time.Unix(v.Int, 0), true
		}
	case wire.KindFloat:
		if v.Float > 0 && v.Float < 1e11 {
			sec, frac := math.Modf(v.Float)
			return time.Unix(int64(sec), int64(frac*1e9)), true
		}
	}
	return time.Time{}, false
}

// Health is how an instance stands against the health rules that apply
// to its service (WithHealthRules), from its last heartbeat. It is shared
// by copies of the instance: read it, never change it.
type Health struct {
	Checks []Check
}

// Check is one rule against one instance.
type Check struct {
	Rule *HealthRule
	// Unknown: the instance's last heartbeat does not carry the field (or
	// not as the rule reads it): not a breach, and not known to hold.
	Unknown bool
	// Since is when the rule's condition began to fail (for older than,
	// when the field got too old, which may be after now); zero while it
	// holds or is unknown. The rule is broken from Since + For.
	Since time.Time
}

// CheckStatus is a check's outcome at a moment.
type CheckStatus uint8

// Check outcomes.
const (
	CheckUnknown CheckStatus = iota
	CheckHolds
	// CheckPending: the condition fails, for less than the rule's For.
	CheckPending
	CheckBroken
)

func (s CheckStatus) String() string {
	switch s {
	case CheckHolds:
		return "holds"
	case CheckPending:
		return "pending"
	case CheckBroken:
		return "broken"
	}
	return "unknown"
}

// Status is the check's outcome at now.
func (c Check) Status(now time.Time) CheckStatus {
	switch {
	case c.Unknown:
		return CheckUnknown
	case c.Since.IsZero() || now.Before(c.Since):
		return CheckHolds
	case now.Before(c.Since.Add(c.Rule.For)):
		return CheckPending
	}
	return CheckBroken
}

// BrokenSince is when the rule became broken (Since + For).
func (c Check) BrokenSince() time.Time { return c.Since.Add(c.Rule.For) }

// Broken returns the checks broken at now.
func (h *Health) Broken(now time.Time) []Check {
	if h == nil {
		return nil
	}
	var out []Check
	for _, c := range h.Checks {
		if c.Status(now) == CheckBroken {
			out = append(out, c)
		}
	}
	return out
}

// Degraded reports whether the instance is degraded at now: it is up
// (alive or stale) and breaks at least one health rule.
func (i *Instance) Degraded(now time.Time) bool { return degraded(i.State, i.Health, now) }

// degraded is Degraded of an instance in state st with health h.
func degraded(st State, h *Health, now time.Time) bool {
	if !st.Up() || h == nil {
		return false
	}
	for _, c := range h.Checks {
		if c.Status(now) == CheckBroken {
			return true
		}
	}
	return false
}

// WithHealthRules sets the health rules the tracker judges heartbeats by
// (Instance.Health, Instance.Degraded). Default: none.
func WithHealthRules(rules ...HealthRule) TrackerOption {
	rules = append([]HealthRule(nil), rules...)
	return trackerOptionFunc(func(t *Tracker) { t.healthRules = rules })
}

// rulesFor returns the rules that apply to service.
func (t *Tracker) rulesFor(service string) []*HealthRule {
	var out []*HealthRule
	for i := range t.healthRules {
		if t.healthRules[i].Applies(service) {
			out = append(out, &t.healthRules[i])
		}
	}
	return out
}

// judgeHealth sets e's health from m, received at receivedAt. A check is
// replaced, never changed in place, so copies handed out stay as they were.
func (t *Tracker) judgeHealth(e *entry, svc *serviceName, m *wire.Message, receivedAt time.Time) {
	if len(svc.rules) == 0 {
		return
	}
	var prev []Check
	if e.Health != nil {
		prev = e.Health.Checks
	}
	var buf [8]Check
	next := buf[:0]
	if len(svc.rules) > len(buf) {
		next = make([]Check, 0, len(svc.rules))
	}
	next = next[:len(svc.rules)]
	same := len(prev) == len(next)
	for i, r := range svc.rules {
		at, known := r.breach(m, receivedAt)
		c := Check{Rule: r, Unknown: !known, Since: at}
		// A condition that keeps failing, on an instance that stayed up,
		// keeps the moment it began.
		if r.Op != OlderThan && known && !at.IsZero() && e.State.Up() && len(prev) == len(next) && !prev[i].Unknown && !prev[i].Since.IsZero() {
			c.Since = prev[i].Since
		}
		next[i] = c
		if same && prev[i] != c {
			same = false
		}
	}
	if !same {
		e.Health = &Health{Checks: slices.Clone(next)}
	}
	t.markHealth(e)
}

// HealthChange is a change of an up instance's health verdict: it turned
// degraded (Broken names the rules), or healthy again; or, degraded still,
// the rules it breaks changed.
type HealthChange struct {
	Key
	Degraded bool
	At       time.Time
	Broken   []Check
}

// healthState is what the tracker keeps of an instance judged by health
// rules, to report each change of its verdict once: at its heartbeats,
// and at the moments a rule breaks with no heartbeat (its for has passed,
// or a timestamp field grew too old).
type healthState struct {
	said  bool   // degraded, as last reported
	rules uint64 // which rules were broken, as last reported (the first 64)
	due   int64  // Unix nanoseconds of the next change with no heartbeat; 0: none
	index int    // in the tracker's healthDue, or -1
	dirty bool   // judged since last reported: in healthDirty
}

// markHealth queues e's verdict to be reported by HealthAt.
func (t *Tracker) markHealth(e *entry) {
	hs := t.healthOf[e]
	if hs == nil {
		if e.Health == nil {
			return
		}
		hs = &healthState{index: -1}
		t.healthOf[e] = hs
	}
	if !hs.dirty {
		hs.dirty = true
		t.healthDirty = append(t.healthDirty, e)
	}
}

// forgetHealth drops what the tracker keeps of e's health.
func (t *Tracker) forgetHealth(e *entry) {
	if hs := t.healthOf[e]; hs != nil {
		if hs.index >= 0 {
			heap.Remove(&t.healthDue, hs.index)
		}
		delete(t.healthOf, e)
	}
}

// HealthAt reports the changes of health verdicts up to at, oldest
// judged first: of instances heard since the last call, and of those
// whose rules broke with time alone. A watcher passes the time up to
// which it has received everything, as for TickAt, so that a heartbeat
// still on its way cannot be taken for a field grown too old. An
// instance that is not up is not degraded, and its leaving is not
// reported as healthy: its transition says it.
func (t *Tracker) HealthAt(at time.Time) []HealthChange {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []HealthChange
	for _, e := range t.healthDirty {
		if hs := t.healthOf[e]; hs != nil {
			hs.dirty = false
			// Judged no earlier than the heartbeat that made it dirty:
			// a watcher's seen time may be a moment before it arrived.
			out = t.reportHealth(e, hs, maxTime(at, timeOf(e.seen)), out)
		}
	}
	clear(t.healthDirty)
	t.healthDirty = t.healthDirty[:0]
	for len(t.healthDue) > 0 && t.healthDue[0].hs.due <= at.UnixNano() {
		out = t.reportHealth(t.healthDue[0].e, t.healthDue[0].hs, at, out)
	}
	return out
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (t *Tracker) reportHealth(e *entry, hs *healthState, at time.Time, out []HealthChange) []HealthChange {
	deg := degraded(e.State, e.Health, at)
	var rules uint64
	if deg {
		for i, c := range e.Health.Checks {
			if i < 64 && c.Status(at) == CheckBroken {
				rules |= 1 << i
			}
		}
	}
	// A change of verdict, or of which rules a degraded instance breaks.
	if deg != hs.said || rules != hs.rules {
		hs.said, hs.rules = deg, rules
		if e.State.Up() {
			out = append(out, HealthChange{Key: e.Key, Degraded: deg, At: at, Broken: e.Health.Broken(at)})
		}
	}
	// When the verdict may next change with no heartbeat.
	var next int64
	if e.State.Up() && e.Health != nil {
		for _, c := range e.Health.Checks {
			for _, m := range []time.Time{c.Since, c.BrokenSince()} {
				if !c.Unknown && !c.Since.IsZero() && m.After(at) && (next == 0 || m.UnixNano() < next) {
					next = m.UnixNano()
				}
			}
		}
	}
	hs.due = next
	switch {
	case next == 0 && hs.index >= 0:
		heap.Remove(&t.healthDue, hs.index)
	case next != 0 && hs.index >= 0:
		heap.Fix(&t.healthDue, hs.index)
	case next != 0:
		heap.Push(&t.healthDue, healthItem{e: e, hs: hs})
	}
	return out
}

// healthItem is an instance in the heap of health changes due.
type healthItem struct {
	e  *entry
	hs *healthState
}

type healthHeap []healthItem

func (h healthHeap) Len() int           { return len(h) }
func (h healthHeap) Less(i, j int) bool { return h[i].hs.due < h[j].hs.due }
func (h healthHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hs.index = i
	h[j].hs.index = j
}
func (h *healthHeap) Push(x any) {
	it := x.(healthItem)
	it.hs.index = len(*h)
	*h = append(*h, it)
}
func (h *healthHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = healthItem{}
	it.hs.index = -1
	*h = old[:len(old)-1]
	return it
}
