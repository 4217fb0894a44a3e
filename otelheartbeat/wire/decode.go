package wire

import (
	"errors"
	"fmt"
	"time"
)

// DecodeError says what was wrong with a message. Key is the offending key,
// or empty when the message as a whole was wrong.
type DecodeError struct {
	Key    string
	Reason string
}

func (e *DecodeError) Error() string {
	if e.Key == "" {
		return "heartbeat: " + e.Reason
	}
	return fmt.Sprintf("heartbeat: %s: %s", e.Key, e.Reason)
}

func decodeErr(key, format string, args ...any) error {
	return &DecodeError{Key: key, Reason: fmt.Sprintf(format, args...)}
}

// Unmarshal decodes one heartbeat. It accepts what the original design's services send:
// keys in any order, timestamps with or without fractional seconds and with a
// "+00:00", "Z" or no offset (read as UTC), and unknown keys, which are kept
// as service fields in the order they came. It rejects, naming the key, input
// that is not one JSON object, a missing or invalid service_name, instance_id
// or timestamp, a documented key of the wrong type, and duplicate keys. It
// also rejects what no publisher of this library can send, so that a hostile
// one cannot stretch a consumer: an interval_seconds outside MinInterval to
// MaxInterval, more than MaxFields service fields, and a string service value
// longer than MaxStringLength bytes once unescaped.
func Unmarshal(data []byte) (*Message, error) {
	m := new(Message)
	if err := UnmarshalInto(data, m); err != nil {
		return nil, err
	}
	return m, nil
}

// UnmarshalInto is Unmarshal into an existing message, reusing its Fields.
func UnmarshalInto(data []byte, m *Message) error {
	return UnmarshalIntern(data, m, nil)
}

// decoder holds the state of one UnmarshalInto.
type decoder struct {
	s       scanner
	m       *Message
	seen    uint16              // documented keys already read
	unknown map[string]struct{} // service keys, once there are many
	intern  *Interner           // may be nil
	ahead   int                 // in written, the next documented key looked for first
}

// written are the documented keys as the encoder writes them, quoted and
// followed by their colon, in its order: a heartbeat of this library's has
// its documented keys read by comparing their bytes, without scanning
// them, until the first that is not the next one written (a service
// field's, or another writer's order), when the decoder reads keys as any
// JSON's for the rest of the object.
var written = func() (w [len(documented)]struct{ key, quoted string }) {
	for i, k := range documented {
		w[i].key, w[i].quoted = k, `"`+k+`":`
	}
	return w
}()

// writtenKey returns the documented key the scanner is at, if it is one
// of the keys the encoder writes next, written as it writes them, and
// leaves the scanner at its value.
func (d *decoder) writtenKey() (string, bool) {
	s := &d.s
	rest := s.data[s.pos:]
	for ; d.ahead < len(written); d.ahead++ {
		if w := &written[d.ahead]; len(rest) >= len(w.quoted) && string(rest[:len(w.quoted)]) == w.quoted {
			d.ahead++
			s.pos += len(w.quoted)
			s.ws()
			return w.key, true
		}
	}
	return "", false
}

// Bits of decoder.seen.
const (
	seenService uint16 = 1 << iota
	seenInstance
	seenTimestamp
	seenUptime
	seenCount
	seenMemory
	seenCPU
	seenInterval
	seenStatus
	seenAddress
)

func (d *decoder) object() error {
	s := &d.s
	s.ws()
	if s.pos >= len(s.data) {
		return decodeErr("", "not JSON: %v", errEnd)
	}
	if s.peek() != '{' {
		// "not an object" only for input that is some other JSON value.
		if _, err := s.skip(0); err != nil {
			return decodeErr("", "not JSON: %v", err)
		}
		s.ws()
		if s.pos < len(s.data) {
			return decodeErr("", "not JSON: %v", s.syntax("data after the value"))
		}
		return decodeErr("", "not a JSON object")
	}
	s.pos++
	err := s.container('}', func() error {
		if key, ok := d.writtenKey(); ok {
			return d.value(key)
		}
		rawKey, err := s.key()
		if err != nil {
			return err
		}
		return d.value(internKey(rawKey, d.intern))
	})
	if err != nil {
		var de *DecodeError
		if errors.As(err, &de) {
			return err
		}
		return decodeErr("", "not JSON: %v", err)
	}
	s.ws()
	if s.pos < len(s.data) {
		// Other JSON after the object, or garbage: both are not one object.
		if _, err := s.skip(0); err != nil {
			return decodeErr("", "not JSON: %v", err)
		}
		return decodeErr("", "data after the JSON object")
	}
	switch {
	case d.seen&seenService == 0:
		return decodeErr(KeyServiceName, "missing")
	case d.seen&seenInstance == 0:
		return decodeErr(KeyInstanceID, "missing")
	case d.seen&seenTimestamp == 0:
		return decodeErr(KeyTimestamp, "missing")
	}
	return nil
}

// internKey returns the documented key raw spells without allocating, or
// the interner's string for any other key.
func internKey(raw []byte, in *Interner) string {
	switch string(raw) {
	case KeyServiceName:
		return KeyServiceName
	case KeyInstanceID:
		return KeyInstanceID
	case KeyTimestamp:
		return KeyTimestamp
	case KeyUptimeSeconds:
		return KeyUptimeSeconds
	case KeyHeartbeatCount:
		return KeyHeartbeatCount
	case KeyMemoryUsageMB:
		return KeyMemoryUsageMB
	case KeyCPUUsagePercent:
		return KeyCPUUsagePercent
	case KeyIntervalSeconds:
		return KeyIntervalSeconds
	case KeyStatus:
		return KeyStatus
	case KeyInstanceAddress:
		return KeyInstanceAddress
	}
	return in.String(raw)
}

func (d *decoder) once(key string, bit uint16) error {
	if d.seen&bit != 0 {
		return decodeErr(key, "key appears twice")
	}
	d.seen |= bit
	return nil
}

// value decodes the value of key into the message.
func (d *decoder) value(key string) error {
	m := d.m
	switch key {
	case KeyServiceName:
		raw, err := d.stringValue(key, seenService)
		if err != nil {
			return err
		}
		name, err := d.intern.serviceName(raw)
		if err != nil {
			return decodeErr(key, "%v", err)
		}
		m.ServiceName = name
		return nil
	case KeyInstanceID:
		raw, err := d.stringValue(key, seenInstance)
		if err != nil {
			return err
		}
		id := string(raw)
		if err := ValidateInstanceID(id); err != nil {
			return decodeErr(key, "%v", err)
		}
		m.InstanceID = id
		return nil
	case KeyTimestamp:
		raw, err := d.stringValue(key, seenTimestamp)
		if err != nil {
			return err
		}
		t, err := parseTimestampBytes(raw)
		if err != nil {
			return decodeErr(key, "%v", err)
		}
		m.Timestamp = t
		return nil
	case KeyStatus:
		raw, err := d.stringValue(key, seenStatus)
		if err != nil {
			return err
		}
		// Only the two values a publisher sends: anything else ("dead",
		// "\u202erunning") would be shown as if it meant something.
		switch string(raw) {
		case StatusRunning:
			m.Status = StatusRunning
		case StatusStopping:
			m.Status = StatusStopping
		default:
			return decodeErr(key, "want %q or %q, got %q", StatusRunning, StatusStopping, truncate(string(raw), 32))
		}
		return nil
	case KeyInstanceAddress:
		// An address a consumer cannot use is left out, not a reason to
		// refuse the heartbeat: liveness does not depend on it.
		if err := d.once(key, seenAddress); err != nil {
			return err
		}
		if d.s.peek() != '"' {
			if _, err := d.s.skip(0); err != nil {
				return decodeErr(key, "not JSON: %v", err)
			}
			return nil
		}
		raw, err := d.s.str()
		if err != nil {
			return decodeErr(key, "not JSON: %v", err)
		}
		if addr := string(raw); ValidateAddress(addr) == nil {
			m.InstanceAddress = addr
		}
		return nil
	case KeyUptimeSeconds:
		return d.nonNegative(key, seenUptime, HasUptime, &m.UptimeSeconds)
	case KeyMemoryUsageMB:
		return d.nonNegative(key, seenMemory, HasMemory, &m.MemoryUsageMB)
	case KeyCPUUsagePercent:
		return d.nonNegative(key, seenCPU, HasCPU, &m.CPUUsagePercent)
	case KeyIntervalSeconds:
		if err := d.nonNegative(key, seenInterval, HasInterval, &m.IntervalSeconds); err != nil {
			return err
		}
		if m.IntervalSeconds < MinInterval.Seconds() || m.IntervalSeconds > MaxInterval.Seconds() {
			return decodeErr(key, "%v is outside %v to %v seconds, what a publisher can send",
				m.IntervalSeconds, MinInterval.Seconds(), MaxInterval.Seconds())
		}
		return nil
	case KeyHeartbeatCount:
		raw, err := d.numberValue(key, seenCount, "want an integer")
		if err != nil {
			return err
		}
		n, ok := parseInt64(raw)
		if !ok {
			return decodeErr(key, "want an integer, got %s", raw)
		}
		if n < 0 {
			return decodeErr(key, "want a non-negative integer, got %d", n)
		}
		m.HeartbeatCount = n
		m.Has |= HasHeartbeatCount
		return nil
	}
	return d.serviceField(key)
}

func (d *decoder) nonNegative(key string, bit uint16, has Presence, dst *float64) error {
	raw, err := d.numberValue(key, bit, "want a number")
	if err != nil {
		return err
	}
	f, ok := parseFloat(raw)
	if !ok {
		return decodeErr(key, "invalid number %s", raw)
	}
	if f < 0 {
		return decodeErr(key, "want a non-negative number, got %s", raw)
	}
	*dst = f
	d.m.Has |= has
	return nil
}

// serviceField keeps an unknown key's value with the most specific kind
// that re-encodes to the same JSON: integers, other numbers and strings are
// typed, anything else is kept as the sender wrote it.
func (d *decoder) serviceField(key string) error {
	m, s := d.m, &d.s
	if d.unknown == nil && len(m.Fields) >= 16 {
		d.unknown = make(map[string]struct{}, 2*len(m.Fields))
		for _, f := range m.Fields {
			d.unknown[f.Key] = struct{}{}
		}
	}
	if d.unknown != nil {
		if _, ok := d.unknown[key]; ok {
			return decodeErr(key, "key appears twice")
		}
		d.unknown[key] = struct{}{}
	} else {
		for _, f := range m.Fields {
			if f.Key == key {
				return decodeErr(key, "key appears twice")
			}
		}
	}
	if len(m.Fields) >= MaxFields {
		return decodeErr("", "more than %d service fields, what a publisher can send", MaxFields)
	}
	var v Value
	switch c := s.peek(); {
	case c == '"':
		raw, err := s.str()
		if err != nil {
			return decodeErr(key, "not JSON: %v", err)
		}
		if len(raw) > MaxStringLength {
			return decodeErr(key, "string of %d bytes, more than %d, what a publisher can send", len(raw), MaxStringLength)
		}
		v = String(d.intern.String(raw))
	case c == '-' || c >= '0' && c <= '9':
		raw, err := s.number()
		if err != nil {
			return decodeErr(key, "not JSON: %v", err)
		}
		if n, ok := parseInt64(raw); ok {
			v = Int(n)
		} else if f, ok := parseFloat(raw); ok && finite(f) {
			v = Float(f)
		} else {
			v = Value{Kind: KindRaw, Raw: append([]byte(nil), raw...)}
		}
	default:
		raw, err := s.skip(0)
		if err != nil {
			return decodeErr(key, "not JSON: %v", err)
		}
		v = Value{Kind: KindRaw, Raw: append([]byte(nil), raw...)}
	}
	m.Fields = append(m.Fields, Field{Key: key, Value: v})
	return nil
}

// stringValue reads a string value, or explains what was there instead.
func (d *decoder) stringValue(key string, bit uint16) ([]byte, error) {
	if err := d.once(key, bit); err != nil {
		return nil, err
	}
	if d.s.peek() != '"' {
		return nil, d.wrongType(key, "want a string")
	}
	raw, err := d.s.str()
	if err != nil {
		return nil, decodeErr(key, "not JSON: %v", err)
	}
	return raw, nil
}

// numberValue reads a number value, or explains what was there instead.
func (d *decoder) numberValue(key string, bit uint16, want string) ([]byte, error) {
	if err := d.once(key, bit); err != nil {
		return nil, err
	}
	if c := d.s.peek(); !(c == '-' || c >= '0' && c <= '9') {
		return nil, d.wrongType(key, want)
	}
	raw, err := d.s.number()
	if err != nil {
		return nil, decodeErr(key, "not JSON: %v", err)
	}
	return raw, nil
}

// wrongType reads the value that is there, to say what it is.
func (d *decoder) wrongType(key, want string) error {
	raw, err := d.s.skip(0)
	if err != nil {
		return decodeErr(key, "not JSON: %v", err)
	}
	return decodeErr(key, "%s, got %s", want, describe(raw))
}

func describe(raw []byte) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// parseTimestampBytes is ParseTimestamp with a fast path for the canonical
// form, which every heartbeat from this library has.
func parseTimestampBytes(b []byte) (time.Time, error) {
	if t, ok := parseCanonical(b); ok {
		return t, nil
	}
	return ParseTimestamp(string(b))
}

// parseCanonical reads 2006-01-02T15:04:05.000000+00:00 without allocating.
func parseCanonical(b []byte) (time.Time, bool) {
	if len(b) != len(TimestampLayout) || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' ||
		b[16] != ':' || b[19] != '.' || string(b[26:]) != "+00:00" {
		return time.Time{}, false
	}
	num := func(from, to int) (int, bool) {
		n := 0
		for _, c := range b[from:to] {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 7)
	day, ok3 := num(8, 10)
	hour, ok4 := num(11, 13)
	minute, ok5 := num(14, 16)
	sec, ok6 := num(17, 19)
	micro, ok7 := num(20, 26)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, micro*1000, time.UTC)
	if t.Day() != day { // 31 February and the like: the full parser refuses it
		return time.Time{}, false
	}
	return t, true
}

var timestampLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
}

// ParseTimestamp reads a timestamp as the original design's services write it (ISO 8601,
// optional fractional seconds, "+00:00", "Z" or no offset, 'T' or ' ' between
// date and time). A timestamp without an offset is taken as UTC. The result
// is in UTC.
func ParseTimestamp(s string) (time.Time, error) {
	if len(s) > 64 {
		return time.Time{}, fmt.Errorf("timestamp %q is too long", truncate(s, 32))
	}
	for _, layout := range timestampLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("timestamp %q is not ISO 8601 (want e.g. 2025-01-16T08:30:00.123456+00:00)", truncate(s, 64))
}
