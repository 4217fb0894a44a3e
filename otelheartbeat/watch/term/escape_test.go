package term

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// hostile is what a publisher can put in front of an operator: CSI and OSC
// sequences, a C1 CSI (U+009B), a zero-width space and a right-to-left
// override in names, and bytes that are not UTF-8.
func hostile() *wire.Message {
	return &wire.Message{
		ServiceName:     "payments\u200b", // displays as "payments"
		InstanceID:      "\u202eabcdef-1234",
		Timestamp:       at,
		Has:             wire.HasInterval,
		IntervalSeconds: 60,
		Fields: []wire.Field{
			{Key: "k\x1b[2J", Value: wire.String("\x1b]0;owned\x07\u009b31mred\xff")},
			{Key: "tags", Value: wire.Value{Kind: wire.KindRaw, Raw: []byte("[\"\u009b2J\u2066\"]")}},
		},
	}
}

// safeForTerminal fails when out holds anything but our own colour codes
// that a terminal would act on or not show: ESC, other C0 and C1 controls,
// format characters (Unicode Cf: zero-width, bidi), or invalid UTF-8.
func safeForTerminal(t *testing.T, what, out string) {
	t.Helper()
	for _, code := range []string{ansiReset, ansiGreen, ansiYellow, ansiRed, ansiGrey, ansiBold} {
		out = strings.ReplaceAll(out, code, "")
	}
	if !utf8.ValidString(out) {
		t.Errorf("%s: invalid UTF-8 in %q", what, out)
	}
	for _, r := range out {
		if r == '\n' || r == '\uFE0F' { // our line ends and emoji presentation selectors
			continue
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			t.Errorf("%s: %U reaches the terminal raw in %q", what, r, out)
			return
		}
	}
}

func TestWireStringsAreEscapedForTerminals(t *testing.T) {
	m := hostile()
	k := watch.Key{Service: m.ServiceName, Instance: m.InstanceID}
	badErr := &wire.DecodeError{Key: "\x1b[2J", Reason: "key appears twice"}
	for _, colour := range []bool{false, true} {
		s := Style{Color: colour}
		var hb, tr, ev, tab bytes.Buffer
		s.Heartbeat(&hb, m, at)
		s.Transition(&tr, watch.Transition{Key: k, From: watch.Alive, To: watch.Dead, At: at, Age: 3 * time.Minute, Interval: time.Minute})
		s.Event(&ev, watch.Event{Kind: watch.KindMalformed, At: at, Channel: "heartbeat:service:\x1b[31mred\u009b", Err: badErr})
		s.Event(&ev, watch.Event{Kind: watch.KindDisconnected, At: at, Err: errors.New("protocol: \x1b]52;c;cGF5\x07")})
		tracker := watch.NewTracker()
		tracker.ObserveAt(m, at)
		s.Table(&tab, tracker, watch.Stats{}, at)
		for what, out := range map[string]string{"Heartbeat": hb.String(), "Transition": tr.String(), "Event": ev.String(), "Table": tab.String()} {
			safeForTerminal(t, fmt.Sprintf("%s (colour %v)", what, colour), out)
		}
		// Escaped visibly, not removed: the operator sees that something is there.
		for what, want := range map[string][]string{
			"Heartbeat":  {`payments\u200b`, `\u202eabcde`, `k\x1b[2J`, `\x1b]0;owned\x07\u009b31mred\xff`, `["\u009b2J\u2066"]`},
			"Transition": {`payments\u200b`, `\u202eabcde`},
			"Event":      {`heartbeat:service:\x1b[31mred\u009b`, `\x1b[2J: key appears twice`, `protocol: \x1b]52;c;cGF5\x07`},
			"Table":      {`payments\u200b`, `\u202eabcde`},
		} {
			out := map[string]string{"Heartbeat": hb.String(), "Transition": tr.String(), "Event": ev.String(), "Table": tab.String()}[what]
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Errorf("%s (colour %v): no %s in\n%s", what, colour, w, out)
				}
			}
		}
	}
}

func TestEscapeIsFreeForPrintableASCII(t *testing.T) {
	for _, s := range []string{"tracker_fetcher", "a1b2c3d4-e5f6-7890-abcd-ef1234567890", "heartbeat:service:geo.v2", ""} {
		if got := Escape(s); got != s {
			t.Errorf("Escape(%q) = %q", s, got)
		}
		if n := testing.AllocsPerRun(100, func() { _ = Escape(s) }); n != 0 {
			t.Errorf("Escape(%q) allocates %v times", s, n)
		}
	}
	for in, want := range map[string]string{
		"dienst_ü":      "dienst_ü", // printable non-ASCII is kept
		"a\tb\nc":       `a\tb\nc`,
		"\x00\x7f":      `\x00\x7f`,
		"\u00a0":        `\u00a0`, // a space that is not one
		"\U000E0001":    `\U000e0001`,
		"\xed\xa0\x80":  `\xed\xa0\x80`,
		"ok\u2028split": `ok\u2028split`,
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

// --json lines are valid UTF-8 JSON, and every rune a terminal would act
// on or hide is a \u escape in them, in the heartbeat as sent too.
func TestJSONEscapesEveryHostileRune(t *testing.T) {
	// Names that display as nothing are refused by the decoder; values may
	// still hold anything.
	raw := []byte("{\"service_name\":\"payments\",\"instance_id\":\"abc\",\"timestamp\":\"2025-01-16T08:30:00Z\",\"u\":\"payments\u200b \u202eabc\",\"v\":\"\u009b2J\xff\x7f\",\"w\":\"\U000E0001\"}")
	m, err := wire.Unmarshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, e := range []watch.Event{
		{Kind: watch.KindHeartbeat, At: at, Channel: "heartbeat:service:payments\u200b", Message: m, Raw: raw},
		{Kind: watch.KindMalformed, At: at, Channel: "heartbeat:service:\u009b\xfe", Err: &wire.DecodeError{Key: "\x1b[2J\u200b", Reason: "key appears twice"}},
		{Kind: watch.KindTransition, At: at, Transition: watch.Transition{Key: watch.Key{Service: "payments\u200b", Instance: "\u202eabc"}, From: watch.Alive, To: watch.Stale, Interval: time.Minute}},
	} {
		if err := JSON(&b, e); err != nil {
			t.Fatal(err)
		}
	}
	for _, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		if !utf8.ValidString(line) || !json.Valid([]byte(line)) {
			t.Errorf("not valid UTF-8 JSON: %q", line)
		}
		for _, r := range line {
			if r >= utf8.RuneSelf || unicode.IsControl(r) {
				t.Errorf("%U written raw in %s", r, line)
				break
			}
		}
	}
	out := b.String()
	for _, want := range []string{`payments\u200b`, `\u202eabc`, `\u009b2J\ufffd\u007f`, `\udb40\udc01`, `\u001b[2J\u200b`} {
		if !strings.Contains(out, want) {
			t.Errorf("no %s in\n%s", want, out)
		}
	}
	// The escapes decode back to what was sent.
	var first struct {
		Channel   string
		Heartbeat struct {
			U string `json:"u"`
		}
	}
	if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &first); err != nil || first.Heartbeat.U != "payments\u200b \u202eabc" || first.Channel != "heartbeat:service:payments\u200b" {
		t.Errorf("decoded back %+v, %v", first, err)
	}
}

// Numbers a publisher may legally send (1e308 is valid JSON) and names at
// the length limit must not widen the table past its bounds.
func TestTableCellsHaveBoundedWidth(t *testing.T) {
	m := &wire.Message{
		ServiceName: strings.Repeat("s", wire.MaxNameLength), InstanceID: strings.Repeat("i", wire.MaxNameLength),
		Timestamp: at, UptimeSeconds: 1e308, MemoryUsageMB: 1e308, CPUUsagePercent: 1e308, HeartbeatCount: 1<<63 - 1,
		Has: wire.HasUptime | wire.HasMemory | wire.HasCPU | wire.HasHeartbeatCount,
	}
	tracker := watch.NewTracker()
	tracker.ObserveAt(m, at)
	var b bytes.Buffer
	Style{}.Table(&b, tracker, watch.Stats{}, at)
	for _, line := range strings.Split(b.String(), "\n") {
		if n := utf8.RuneCountInString(line); n > 160 {
			t.Errorf("a line of %d characters:\n%s", n, line)
		}
	}
	if !strings.Contains(b.String(), "…") {
		t.Errorf("no ellipsis where a cell was cut:\n%s", b.String())
	}
	for _, want := range []string{"1e+308MB", "1e+308%"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %s in\n%s", want, b.String())
		}
	}
	var hb bytes.Buffer
	Style{}.Heartbeat(&hb, m, at)
	if !strings.Contains(hb.String(), "Memory: 1e+308MB") || len(hb.String()) > 400 {
		t.Errorf("heartbeat line:\n%s", hb.String())
	}
}

// Whatever a string holds, Escape's result shows a terminal nothing it
// would act on or hide, and safeJSON keeps a JSON string's meaning (as
// encoding/json reads it) while writing every such rune as an escape.
func FuzzEscapeAndSafeJSON(f *testing.F) {
	for _, s := range []string{"tracker_fetcher", "payments\u200b", "\x1b]0;t\x07\u009b\xff", "\U000E0001\u202e\x7f", "ü\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		if !utf8.ValidString(e) {
			t.Fatalf("Escape(%q) = %q, not UTF-8", s, e)
		}
		for _, r := range e {
			if !unicode.IsPrint(r) {
				t.Fatalf("Escape(%q) = %q holds %U", s, e, r)
			}
		}
		b, err := json.Marshal(map[string]json.RawMessage{"s": json.RawMessage(`"` + string(escapeForRaw(s)) + `"`)})
		if err != nil {
			return // not a JSON string even with its controls escaped
		}
		safe := safeJSON(b)
		if !utf8.Valid(safe) || !json.Valid(safe) {
			t.Fatalf("safeJSON(%q) = %q", b, safe)
		}
		for _, r := range string(safe) {
			if r != ' ' && !unicode.IsPrint(r) {
				t.Fatalf("safeJSON(%q) = %q holds %U", b, safe, r)
			}
		}
		var before, after map[string]string
		if err := json.Unmarshal(b, &before); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(safe, &after); err != nil || after["s"] != before["s"] {
			t.Fatalf("safeJSON changed %q to %q (%v)", before["s"], after["s"], err)
		}
	})
}

// escapeForRaw writes s as the inside of a JSON string with its quotes,
// backslashes and C0 controls escaped and everything else, invalid UTF-8
// included, raw: what a hostile publisher's bytes look like in a RawMessage.
func escapeForRaw(s string) []byte {
	var b []byte
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, fmt.Sprintf(`\u%04x`, c)...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// Characters that print as nothing, though unicode.IsPrint accepts them
// (default-ignorable code points: the combining grapheme joiner, variation
// selectors, Hangul fillers, the Khmer inherent vowels), would let
// "payments\u034f" pass for "payments": they are escaped too, in text and
// in --json.
func TestInvisibleCharactersAreEscaped(t *testing.T) {
	for _, r := range []rune{0x034f, 0xfe0f, 0x3164, 0x115f, 0xffa0, 0xe0100, 0x17b4, 0x180b, 0x2800} {
		name := "payments" + string(r)
		if got := Escape(name); got == name || !strings.HasPrefix(got, `payments\u`) && !strings.HasPrefix(got, `payments\U`) {
			t.Errorf("U+%04X: Escape gave %q", r, got)
		}
		j := safeJSON([]byte(`{"s":"` + name + `"}`))
		if !bytes.Contains(j, []byte(`payments\u`)) {
			t.Errorf("U+%04X: safeJSON gave %q", r, j)
		}
	}
	// Letters and visible marks of other scripts stay as they are.
	for _, s := range []string{"café", "cafe\u0301", "東京", "Ελλάδα", "проверка"} {
		if got := Escape(s); got != s {
			t.Errorf("%q escaped to %q", s, got)
		}
	}
}
