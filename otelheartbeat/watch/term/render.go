package term

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// Style says how events are written for people.
type Style struct {
	// Color enables ANSI colours; off for NO_COLOR and for output that is
	// not a terminal.
	Color bool
	// Location is the time zone of printed clock times. Default: UTC.
	Location *time.Location
}

const (
	ansiReset   = "\x1b[0m"
	ansiGreen   = "\x1b[32m"
	ansiYellow  = "\x1b[33m"
	ansiMagenta = "\x1b[35m"
	ansiRed     = "\x1b[31m"
	ansiGrey    = "\x1b[90m"
	ansiBold    = "\x1b[1m"
)

func (s Style) paint(code, text string) string {
	if !s.Color {
		return text
	}
	return code + text + ansiReset
}

func (s Style) state(st watch.State, text string) string {
	switch st {
	case watch.Alive:
		return s.paint(ansiGreen, text)
	case watch.Stale:
		return s.paint(ansiYellow, text)
	case watch.Dead:
		return s.paint(ansiRed, text)
	case watch.Stopped, watch.Replaced:
		return s.paint(ansiGrey, text)
	}
	return text
}

func (s Style) clock(t time.Time) string {
	loc := s.Location
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc).Format("15:04:05")
}

// ShortID is the first eight bytes of an instance id, as the original design's
// monitor prints it, cut at a character boundary. It is not escaped.
func ShortID(id string) string { return wire.Truncate(id, 8) }

// Bounds, in characters after escaping, of what the renderers print from
// the wire: a name, a service value, error text, and a table cell.
const (
	maxNameWidth  = wire.MaxNameLength
	maxValueWidth = wire.MaxStringLength
	maxErrWidth   = 512
	maxCellWidth  = 40
)

// name escapes a service name, instance id, field key or channel name.
func name(s string) string { return clip(Escape(s), maxNameWidth) }

// short escapes an instance id cut to its first eight bytes.
func short(id string) string { return Escape(ShortID(id)) }

// errText escapes an error, which may quote the wire.
func errText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return clip(Escape(err.Error()), maxErrWidth)
}

// FormatUptime writes seconds as the original design does: 45.0s, 12.5m, 1.2h, 3.4d;
// beyond a million days, in four significant digits (1e+303d).
func FormatUptime(sec float64) string {
	switch {
	case sec < 60:
		return formatNumber(sec) + "s"
	case sec < 3600:
		return formatNumber(sec/60) + "m"
	case sec < 86400:
		return formatNumber(sec/3600) + "h"
	}
	return formatNumber(sec/86400) + "d"
}

func optional(has bool, s string) string {
	if !has {
		return "-"
	}
	return s
}

// Heartbeat writes one heartbeat in the original design's monitor format:
//
//	🔄 tracker_fetcher (a1b2c3d4) - 08:30:15
//	   Uptime: 1.2h | Heartbeats: 72 | Memory: 156.3MB | CPU: 12.5%
//	   Service Data:
//	     queue_size: 1380
//
// The clock time is when the monitor received it.
func (s Style) Heartbeat(w io.Writer, m *wire.Message, receivedAt time.Time) {
	var b strings.Builder
	fmt.Fprintf(&b, "🔄 %s (%s) - %s", s.paint(ansiBold, name(m.ServiceName)), short(m.InstanceID), s.clock(receivedAt))
	if m.Status == wire.StatusStopping {
		b.WriteString(" " + s.paint(ansiGrey, "[stopping]"))
	}
	b.WriteByte('\n')
	fmt.Fprintf(&b, "   Uptime: %s | Heartbeats: %s | Memory: %s | CPU: %s\n",
		optional(m.Has&wire.HasUptime != 0, FormatUptime(m.UptimeSeconds)),
		optional(m.Has&wire.HasHeartbeatCount != 0, fmt.Sprint(m.HeartbeatCount)),
		optional(m.Has&wire.HasMemory != 0, formatNumber(m.MemoryUsageMB)+"MB"),
		optional(m.Has&wire.HasCPU != 0, formatNumber(m.CPUUsagePercent)+"%"))
	if m.InstanceAddress != "" {
		fmt.Fprintf(&b, "   Address: %s\n", clip(Escape(m.InstanceAddress), maxValueWidth))
	}
	if len(m.Fields) > 0 {
		b.WriteString("   Service Data:\n")
		for _, f := range m.Fields {
			fmt.Fprintf(&b, "     %s: %s\n", name(f.Key), clip(Escape(FormatValue(f.Value)), maxValueWidth))
		}
	}
	_, _ = io.WriteString(w, b.String())
}

// FormatValue writes a service value as plain text, as sent: pass it
// through Escape before printing it.
func FormatValue(v wire.Value) string {
	switch v.Kind {
	case wire.KindInt:
		return fmt.Sprint(v.Int)
	case wire.KindFloat:
		return fmt.Sprint(v.Float)
	case wire.KindString:
		return v.Str
	case wire.KindTime:
		return string(wire.AppendTimestamp(nil, v.Time))
	}
	return string(v.Raw)
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(10 * time.Millisecond)
}

// Transition writes one state change.
func (s Style) Transition(w io.Writer, t watch.Transition) {
	who := fmt.Sprintf("%s (%s)", s.paint(ansiBold, name(t.Service)), short(t.Instance))
	var line string
	switch {
	case t.To == watch.Alive && t.From == watch.Unknown:
		line = fmt.Sprintf("🟢 %s is %s", who, s.state(t.To, "alive"))
	case t.Recovered():
		line = fmt.Sprintf("✅ %s %s after being dead", who, s.state(t.To, "recovered"))
	case t.To == watch.Alive:
		line = fmt.Sprintf("🟢 %s is %s again", who, s.state(t.To, "alive"))
	case t.To == watch.Stale, t.To == watch.Dead:
		icon := "⚠️ "
		if t.To == watch.Dead {
			icon = "💀"
		}
		line = fmt.Sprintf("%s %s is %s: no heartbeat for %v (interval %s)", icon, who, s.state(t.To, t.To.String()), round(t.Age), IntervalText(t.Interval, t.IntervalSource))
	case t.To == watch.Stopped:
		line = fmt.Sprintf("⏹️  %s %s (graceful shutdown)", who, s.state(t.To, "stopped"))
	case t.To == watch.Replaced:
		line = fmt.Sprintf("🔁 %s, %s, was %s by %s", who, t.From, s.state(t.To, "replaced"), short(t.By))
	default:
		line = fmt.Sprintf("%s %v -> %v", who, t.From, t.To)
	}
	fmt.Fprintf(w, "%s - %s\n", line, s.clock(t.At))
}

// Health writes one change of an instance's health verdict.
func (s Style) Health(w io.Writer, h watch.HealthChange) {
	who := fmt.Sprintf("%s (%s)", s.paint(ansiBold, name(h.Service)), short(h.Instance))
	if !h.Degraded {
		fmt.Fprintf(w, "💚 %s is %s: it keeps to its health rules again - %s\n", who, s.paint(ansiGreen, "healthy"), s.clock(h.At))
		return
	}
	fmt.Fprintf(w, "🟣 %s is %s: it beats, but breaks %s - %s\n", who, s.paint(ansiMagenta, "degraded"), rules(h.Broken), s.clock(h.At))
}

// rules names broken checks' rules, escaped: a rule holds the operator's
// text, and its service part may match names sent on the wire.
func rules(cs []watch.Check) string {
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, Escape(c.Rule.String()))
	}
	return strings.Join(out, "; ")
}

// IntervalText says what an instance is judged by and where that comes
// from: "1m0s", "1s, inferred" from its heartbeats' gaps, or "1m0s,
// assumed" (the default, until its gaps show it).
func IntervalText(d time.Duration, src watch.IntervalSource) string {
	switch src {
	case watch.IntervalInferred:
		return round(d).String() + ", inferred"
	case watch.IntervalDefault:
		return d.String() + ", assumed"
	}
	return d.String()
}

// shortInterval is IntervalText for a table cell: "~1s" inferred, "1m0s?"
// assumed.
func shortInterval(d time.Duration, src watch.IntervalSource) string {
	switch src {
	case watch.IntervalInferred:
		return "~" + round(d).String()
	case watch.IntervalDefault:
		return d.String() + "?"
	}
	return d.String()
}

// Table writes every instance and a per-service summary. No cell is wider
// than maxCellWidth characters.
func (s Style) Table(w io.Writer, tr *watch.Tracker, stats watch.Stats, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tINSTANCE\tSTATE   \tAGE\tINTERVAL\tUPTIME\tBEATS\tMEMORY\tCPU\tLOST")
	for _, in := range tr.Snapshot() {
		state := s.state(in.State, fmt.Sprintf("%-8s", in.State))
		if in.Degraded(now) {
			state = s.paint(ansiMagenta, fmt.Sprintf("%-8s", "degraded"))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%d\t%s\t%s\t%d\n",
			clip(Escape(in.Service), maxCellWidth), short(in.Instance),
			state,
			round(in.Age(now)), shortInterval(in.Interval, in.IntervalSource),
			optional(in.Has&wire.HasUptime != 0, FormatUptime(in.UptimeSeconds)),
			in.Count,
			optional(in.Has&wire.HasMemory != 0, formatNumber(in.MemoryMB)+"MB"),
			optional(in.Has&wire.HasCPU != 0, formatNumber(in.CPUPercent)+"%"),
			in.Lost)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	for _, sv := range tr.Services() {
		fmt.Fprintf(w, "%s: %s, %s, %s, %s\n", s.paint(ansiBold, clip(Escape(sv.Name), maxCellWidth)),
			s.state(watch.Alive, fmt.Sprintf("%d alive", sv.Alive)),
			s.state(watch.Stale, fmt.Sprintf("%d stale", sv.Stale)),
			s.state(watch.Dead, fmt.Sprintf("%d dead", sv.Dead)),
			s.state(watch.Stopped, fmt.Sprintf("%d stopped", sv.Stopped)))
	}
	switch {
	case !stats.DownSince.IsZero():
		fmt.Fprintf(w, "%s for %v: verdicts held until it is back\n", s.paint(ansiRed, "✗ disconnected from Valkey"), round(now.Sub(stats.DownSince)))
	case !stats.BlindSince.IsZero():
		fmt.Fprintf(w, "%s for %v (a stalled broker, or this monitor is behind): verdicts held\n", s.paint(ansiYellow, "⚠️  no answer from Valkey"), round(now.Sub(stats.BlindSince)))
	}
	fmt.Fprintf(w, "received %d, malformed %d, not shown %d, evicted %d, disconnects %d, blind %d - %s\n",
		stats.Received, stats.Malformed, stats.Dropped, stats.Evicted, stats.Disconnects, stats.Blind, s.clock(now))
}

// Event writes any event for people; heartbeats and transitions as above.
func (s Style) Event(w io.Writer, e watch.Event) {
	switch e.Kind {
	case watch.KindHeartbeat:
		s.Heartbeat(w, e.Message, e.At)
	case watch.KindTransition:
		s.Transition(w, e.Transition)
	case watch.KindHealth:
		s.Health(w, e.Health)
	case watch.KindMalformed:
		where := name(e.Channel)
		if where == "" {
			where = "Valkey"
		}
		fmt.Fprintf(w, "%s %s: %s - %s\n", s.paint(ansiRed, "✗ malformed heartbeat on"), where, errText(e.Err), s.clock(e.At))
	case watch.KindDisconnected:
		fmt.Fprintf(w, "%s: %s; reconnecting - %s\n", s.paint(ansiRed, "✗ disconnected from Valkey"), errText(e.Err), s.clock(e.At))
	case watch.KindReconnected:
		fmt.Fprintf(w, "%s after %v: heartbeats sent meanwhile were lost; re-read %d latest-state keys - %s\n",
			s.paint(ansiGreen, "✓ reconnected"), round(e.Downtime), e.Count, s.clock(e.At))
	case watch.KindLoaded:
		fmt.Fprintf(w, "read %d latest-state keys - %s\n", e.Count, s.clock(e.At))
	case watch.KindDropped:
		fmt.Fprintf(w, "%s %d heartbeats: the output could not keep up (every one was tracked) - %s\n", s.paint(ansiYellow, "⚠️  not shown:"), e.Count, s.clock(e.At))
	case watch.KindBlind:
		fmt.Fprintf(w, "%s for %v (a stalled broker, or this monitor is behind): no instance is judged until it answers - %s\n",
			s.paint(ansiYellow, "⚠️  no answer from Valkey"), round(e.Downtime), s.clock(e.At))
	case watch.KindCaughtUp:
		fmt.Fprintf(w, "%s after %v: verdicts held until each instance has been watched for 1.5 intervals - %s\n",
			s.paint(ansiGreen, "✓ Valkey answers again"), round(e.Downtime), s.clock(e.At))
	case watch.KindEvicted:
		fmt.Fprintf(w, "%s %d instances (the dead and stopped first, then those heard from least recently) to make room at the instance bound (--max-instances) - %s\n",
			s.paint(ansiYellow, "⚠️  evicted"), e.Count, s.clock(e.At))
	}
}

// jsonEvent is one line of --json output.
type jsonEvent struct {
	Type      string          `json:"type"`
	At        string          `json:"at"`
	Channel   string          `json:"channel,omitempty"`
	Heartbeat json.RawMessage `json:"heartbeat,omitempty"`
	Service   string          `json:"service,omitempty"`
	Instance  string          `json:"instance,omitempty"`
	From      string          `json:"from,omitempty"`
	To        string          `json:"to,omitempty"`
	Age       *float64        `json:"age_seconds,omitempty"`
	Interval  *float64        `json:"interval_seconds,omitempty"`
	Source    string          `json:"interval_source,omitempty"`
	Error     string          `json:"error,omitempty"`
	Count     *int            `json:"count,omitempty"`
	Downtime  *float64        `json:"downtime_seconds,omitempty"`
	Recovered bool            `json:"recovered,omitempty"`
	By        string          `json:"replaced_by,omitempty"`
	Degraded  *bool           `json:"degraded,omitempty"`
	Rules     []string        `json:"rules,omitempty"`
}

func ptr[T any](v T) *T { return &v }

// JSON writes an event as one line of JSON. Refresh events write nothing.
// The line is valid UTF-8, and every rune a terminal would act on or hide
// is a \u escape in it, in the heartbeat as it was sent too.
func JSON(w io.Writer, e watch.Event) error {
	j := jsonEvent{At: string(wire.AppendTimestamp(nil, e.At))}
	switch e.Kind {
	case watch.KindHeartbeat:
		j.Type, j.Channel, j.Heartbeat = "heartbeat", e.Channel, e.Raw
	case watch.KindTransition:
		t := e.Transition
		j.Type, j.Service, j.Instance, j.From, j.To = "transition", t.Service, t.Instance, t.From.String(), t.To.String()
		j.Age, j.Interval, j.Recovered = ptr(t.Age.Seconds()), ptr(t.Interval.Seconds()), t.Recovered()
		j.Source, j.By = t.IntervalSource.String(), t.By
	case watch.KindHealth:
		h := e.Health
		j.Type, j.Service, j.Instance, j.Degraded = "health", h.Service, h.Instance, ptr(h.Degraded)
		for _, c := range h.Broken {
			j.Rules = append(j.Rules, c.Rule.String())
		}
	case watch.KindMalformed:
		j.Type, j.Channel, j.Error = "malformed", e.Channel, e.Err.Error()
	case watch.KindDisconnected:
		j.Type, j.Error = "disconnected", e.Err.Error()
	case watch.KindReconnected:
		j.Type, j.Downtime, j.Count = "reconnected", ptr(e.Downtime.Seconds()), ptr(e.Count)
	case watch.KindLoaded:
		j.Type, j.Count = "loaded", ptr(e.Count)
	case watch.KindDropped:
		j.Type, j.Count = "dropped", ptr(e.Count)
	case watch.KindBlind:
		j.Type, j.Downtime = "blind", ptr(e.Downtime.Seconds())
	case watch.KindCaughtUp:
		j.Type, j.Downtime = "caught_up", ptr(e.Downtime.Seconds())
	case watch.KindEvicted:
		j.Type, j.Count = "evicted", ptr(e.Count)
	default:
		return nil
	}
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	_, err = w.Write(append(safeJSON(b), '\n'))
	return err
}

// InstanceLine is one instance's state, as monitor --once --json writes it.
type InstanceLine struct {
	Service, Instance string
	State             watch.State
	Age, Interval     time.Duration
	Source            watch.IntervalSource
	Count             int64
	// From is where the state was read: "latest_state_key" or "channel".
	From string
}

// InstanceJSON writes one instance's state as one line of JSON, as safe
// for a terminal as the event lines.
func InstanceJSON(w io.Writer, l InstanceLine) error {
	b, err := json.Marshal(struct {
		Type     string  `json:"type"`
		Service  string  `json:"service"`
		Instance string  `json:"instance"`
		State    string  `json:"state"`
		Age      float64 `json:"age_seconds"`
		Interval float64 `json:"interval_seconds"`
		Source   string  `json:"interval_source"`
		Count    int64   `json:"heartbeat_count"`
		From     string  `json:"from"`
	}{"instance", l.Service, l.Instance, l.State.String(), l.Age.Seconds(), l.Interval.Seconds(), l.Source.String(), l.Count, l.From})
	if err != nil {
		return err
	}
	_, err = w.Write(append(safeJSON(b), '\n'))
	return err
}

// StateLabel writes a state padded to a fixed width, coloured.
func (s Style) StateLabel(st watch.State) string {
	return s.state(st, fmt.Sprintf("%-7s", st))
}
