package watch

// Health rules: an instance that beats on time can still be stuck. Its
// heartbeat says so in its fields (a last_successful_operation that stopped
// moving, a queue_size that keeps growing, an api_status that is not
// "authenticated"), and a rule on one of them turns an alive instance
// degraded. Liveness stays the age rule alone: health is a second verdict
// on the up instances, from what their last heartbeat carries.

import (
	"container/heap"
	"errors"
	"fmt"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

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
// SERVICE is a service name or a path.Match pattern ("*" is every
// service). FIELD is a service field, or one of the documented numbers
// (memory_usage_mb, cpu_usage_percent, uptime_seconds, heartbeat_count).
// An older-than field is a timestamp (as the wire writes them) or Unix
// seconds; its age is read on the sender's clock, against the heartbeat's
// own timestamp, so a skewed sender is judged right. VALUE is a bare word
// or a JSON string. The rule is broken once its condition has held for
// For: an instance that breaks one is degraded.
type HealthRule struct {
	Service string
	Field   string
	Op      Op
	Number  float64       // for >, <, >=, <=
	Text    string        // for !=
	Age     time.Duration // for older than
	For     time.Duration
}

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
			b.WriteString(strconv.Quote(r.Text))
		}
	default:
		b.WriteString(strconv.FormatFloat(r.Number, 'g', -1, 64))
	}
	if r.For > 0 {
		b.WriteString(" for " + r.For.String())
	}
	return b.String()
}

// Applies reports whether the rule is about service.
func (r HealthRule) Applies(service string) bool {
	ok, _ := path.Match(r.Service, service)
	return ok
}

func isWord(s string) bool {
	return s != "" && !strings.ContainsAny(s, " \t\"") && s != "for"
}

const healthRuleForm = "want 'SERVICE: FIELD older than DURATION', 'SERVICE: FIELD > NUMBER' (or <, >=, <=) or 'SERVICE: FIELD != VALUE', each optionally followed by 'for DURATION'"

// ParseHealthRule reads a rule as HealthRule documents it. The error says
// what is wrong with it; the caller names where the rule came from.
func ParseHealthRule(s string) (HealthRule, error) {
	var r HealthRule
	svc, rest, ok := strings.Cut(s, ":")
	svc = strings.TrimSpace(svc)
	if !ok || svc == "" {
		return r, fmt.Errorf("%q has no 'SERVICE:' before the condition; %s", s, healthRuleForm)
	}
	if _, err := path.Match(svc, ""); err != nil || strings.ContainsAny(svc, " \t") {
		return r, fmt.Errorf("%q: service %q is not a service name or pattern", s, svc)
	}
	r.Service = svc
	words := strings.Fields(rest)
	// A trailing "for DURATION".
	if n := len(words); n >= 2 && words[n-2] == "for" {
		d, err := time.ParseDuration(words[n-1])
		if err != nil || d <= 0 {
			return r, fmt.Errorf("%q: 'for %s' is not a positive duration such as 5m", s, words[n-1])
		}
		r.For, words = d, words[:n-2]
	}
	if len(words) < 3 {
		return r, fmt.Errorf("%q: %s", s, healthRuleForm)
	}
	r.Field = words[0]
	if !validField(r.Field) {
		return r, fmt.Errorf("%q: field %q is not a heartbeat field name", s, r.Field)
	}
	switch {
	case len(words) == 4 && words[1] == "older" && words[2] == "than":
		d, err := time.ParseDuration(words[3])
		if err != nil || d <= 0 {
			return r, fmt.Errorf("%q: 'older than %s' is not a positive duration such as 10m", s, words[3])
		}
		r.Op, r.Age = OlderThan, d
	case words[1] == "!=":
		v := strings.Join(words[2:], " ")
		if strings.HasPrefix(v, `"`) {
			u, err := strconv.Unquote(v)
			if err != nil {
				return r, fmt.Errorf("%q: %s is not a quoted string", s, v)
			}
			v = u
		} else if len(words) > 3 {
			return r, fmt.Errorf("%q: quote a value with spaces: %s", s, strconv.Quote(v))
		}
		r.Op, r.Text = NotEqual, v
	case len(words) == 3:
		for op, name := range opNames {
			if name == words[1] && op != NotEqual && op != OlderThan {
				r.Op = op
			}
		}
		if r.Op == 0 {
			return r, fmt.Errorf("%q: %q is not an operator (>, <, >=, <=, != or older than)", s, words[1])
		}
		n, err := strconv.ParseFloat(words[2], 64)
		if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
			return r, fmt.Errorf("%q: %q is not a number", s, words[2])
		}
		r.Number = n
	default:
		return r, fmt.Errorf("%q: %s", s, healthRuleForm)
	}
	return r, nil
}

func validField(f string) bool {
	if f == "" || len(f) > 128 {
		return false
	}
	for _, c := range f {
		if c <= ' ' || c == '"' || c == '\\' || c == 0x7f {
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
	return out, errors.Join(errs...)
}

// breach reads the rule's field from m, received at receivedAt, and
// returns when its condition began to fail (zero while it holds); known
// is false when m does not carry the field as the rule reads it.
func (r *HealthRule) breach(m *wire.Message, receivedAt time.Time) (breachAt time.Time, known bool) {
	if r.Op == OlderThan {
		at, ok := timeField(m, r.Field)
		if !ok || m.Timestamp.IsZero() {
			return time.Time{}, false
		}
		// How old it was when sent, on the sender's clock, then on ours.
		return receivedAt.Add(r.Age - m.Timestamp.Sub(at)), true
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
	n, ok := numberField(m, r.Field)
	if !ok {
		return time.Time{}, false
	}
	broken := false
	switch r.Op {
	case Greater:
		broken = n > r.Number
	case Less:
		broken = n < r.Number
	case GreaterOrEqual:
		broken = n >= r.Number
	case LessOrEqual:
		broken = n <= r.Number
	}
	if broken {
		return receivedAt, true
	}
	return time.Time{}, true
}

// numberField reads a numeric field: a service field, or a documented one.
func numberField(m *wire.Message, key string) (float64, bool) {
	switch key {
	case wire.KeyMemoryUsageMB:
		return m.MemoryUsageMB, m.Has&wire.HasMemory != 0
	case wire.KeyCPUUsagePercent:
		return m.CPUUsagePercent, m.Has&wire.HasCPU != 0
	case wire.KeyUptimeSeconds:
		return m.UptimeSeconds, m.Has&wire.HasUptime != 0
	case wire.KeyHeartbeatCount:
		return float64(m.HeartbeatCount), m.Has&wire.HasHeartbeatCount != 0
	}
	v, ok := m.Field(key)
	if !ok {
		return 0, false
	}
	switch v.Kind {
	case wire.KindInt:
		return float64(v.Int), true
	case wire.KindFloat:
		return v.Float, true
	}
	return 0, false
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
		return time.Unix(v.Int, 0), true
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
func (i *Instance) Degraded(now time.Time) bool {
	if !i.State.Up() || i.Health == nil {
		return false
	}
	for _, c := range i.Health.Checks {
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
		// A condition that keeps failing keeps the moment it began.
		if r.Op != OlderThan && known && !at.IsZero() && len(prev) == len(next) && !prev[i].Unknown && !prev[i].Since.IsZero() {
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
// degraded (Broken names the rules), or healthy again.
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
	said  bool  // degraded, as last reported
	due   int64 // Unix nanoseconds of the next change with no heartbeat; 0: none
	index int   // in the tracker's healthDue, or -1
	dirty bool  // judged since last reported: in healthDirty
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
			out = t.reportHealth(e, hs, at, out)
		}
	}
	clear(t.healthDirty)
	t.healthDirty = t.healthDirty[:0]
	for len(t.healthDue) > 0 && t.healthDue[0].hs.due <= at.UnixNano() {
		out = t.reportHealth(t.healthDue[0].e, t.healthDue[0].hs, at, out)
	}
	return out
}

func (t *Tracker) reportHealth(e *entry, hs *healthState, at time.Time, out []HealthChange) []HealthChange {
	deg := e.Degraded(at)
	if deg != hs.said {
		hs.said = deg
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
