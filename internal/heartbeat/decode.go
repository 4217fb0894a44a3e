package heartbeat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
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

// Unmarshal decodes one heartbeat. It accepts what the seed's services send:
// keys in any order, timestamps with or without fractional seconds and with a
// "+00:00", "Z" or no offset (read as UTC), and unknown keys, which are kept
// as service fields in the order they came. It rejects, naming the key, input
// that is not one JSON object, a missing or invalid service_name, instance_id
// or timestamp, a documented key of the wrong type, and duplicate keys.
func Unmarshal(data []byte) (*Message, error) {
	m := new(Message)
	if err := UnmarshalInto(data, m); err != nil {
		return nil, err
	}
	return m, nil
}

// UnmarshalInto is Unmarshal into an existing message, reusing its Fields.
func UnmarshalInto(data []byte, m *Message) error {
	*m = Message{Fields: m.Fields[:0]}
	if len(data) > MaxMessageSize {
		return decodeErr("", "message is %d bytes, more than the %d allowed", len(data), MaxMessageSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return decodeErr("", "not JSON: %v", cleanJSONError(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return decodeErr("", "not a JSON object")
	}
	seen := make(map[string]struct{}, 16)
	var haveService, haveInstance, haveTimestamp bool
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return decodeErr("", "not JSON: %v", cleanJSONError(err))
		}
		key, _ := tok.(string)
		if _, dup := seen[key]; dup {
			return decodeErr(key, "key appears twice")
		}
		seen[key] = struct{}{}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return decodeErr(key, "not JSON: %v", cleanJSONError(err))
		}
		switch key {
		case KeyServiceName:
			s, err := wantString(key, raw)
			if err != nil {
				return err
			}
			if err := ValidateServiceName(s); err != nil {
				return decodeErr(key, "%v", err)
			}
			m.ServiceName, haveService = s, true
		case KeyInstanceID:
			s, err := wantString(key, raw)
			if err != nil {
				return err
			}
			if err := ValidateInstanceID(s); err != nil {
				return decodeErr(key, "%v", err)
			}
			m.InstanceID, haveInstance = s, true
		case KeyTimestamp:
			s, err := wantString(key, raw)
			if err != nil {
				return err
			}
			t, err := ParseTimestamp(s)
			if err != nil {
				return decodeErr(key, "%v", err)
			}
			m.Timestamp, haveTimestamp = t, true
		case KeyUptimeSeconds:
			if m.UptimeSeconds, err = wantNonNegative(key, raw); err != nil {
				return err
			}
			m.Has |= HasUptime
		case KeyHeartbeatCount:
			if m.HeartbeatCount, err = wantCount(key, raw); err != nil {
				return err
			}
			m.Has |= HasHeartbeatCount
		case KeyMemoryUsageMB:
			if m.MemoryUsageMB, err = wantNonNegative(key, raw); err != nil {
				return err
			}
			m.Has |= HasMemory
		case KeyCPUUsagePercent:
			if m.CPUUsagePercent, err = wantNonNegative(key, raw); err != nil {
				return err
			}
			m.Has |= HasCPU
		case KeyIntervalSeconds:
			v, err := wantNonNegative(key, raw)
			if err != nil {
				return err
			}
			if v == 0 {
				return decodeErr(key, "must be greater than zero")
			}
			m.IntervalSeconds = v
			m.Has |= HasInterval
		case KeyStatus:
			s, err := wantString(key, raw)
			if err != nil {
				return err
			}
			m.Status = s
		default:
			m.Fields = append(m.Fields, Field{Key: key, Value: rawValue(raw)})
		}
	}
	if _, err := dec.Token(); err != nil {
		return decodeErr("", "not JSON: %v", cleanJSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return decodeErr("", "data after the JSON object")
	}
	switch {
	case !haveService:
		return decodeErr(KeyServiceName, "missing")
	case !haveInstance:
		return decodeErr(KeyInstanceID, "missing")
	case !haveTimestamp:
		return decodeErr(KeyTimestamp, "missing")
	}
	return nil
}

func cleanJSONError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("unexpected end of input")
	}
	return err
}

func wantString(key string, raw json.RawMessage) (string, error) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", decodeErr(key, "want a string, got %s", describe(raw))
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", decodeErr(key, "invalid string: %v", err)
	}
	return s, nil
}

func wantNonNegative(key string, raw json.RawMessage) (float64, error) {
	if len(raw) == 0 || !(raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
		return 0, decodeErr(key, "want a number, got %s", describe(raw))
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, decodeErr(key, "invalid number %s", raw)
	}
	if f < 0 || math.IsInf(f, 0) {
		return 0, decodeErr(key, "want a non-negative number, got %s", raw)
	}
	return f, nil
}

func wantCount(key string, raw json.RawMessage) (int64, error) {
	if len(raw) == 0 || !(raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
		return 0, decodeErr(key, "want an integer, got %s", describe(raw))
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, decodeErr(key, "want an integer, got %s", raw)
	}
	if n < 0 {
		return 0, decodeErr(key, "want a non-negative integer, got %d", n)
	}
	return n, nil
}

func describe(raw json.RawMessage) string {
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

// rawValue keeps an unknown key's value with the most specific kind that
// re-encodes to the same JSON: integers, other numbers and strings are typed,
// anything else is kept as the sender wrote it.
func rawValue(raw json.RawMessage) Value {
	switch c := raw[0]; {
	case c == '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return String(s)
		}
	case c == '-' || c >= '0' && c <= '9':
		if !bytes.ContainsAny(raw, ".eE") {
			var n int64
			if json.Unmarshal(raw, &n) == nil {
				return Int(n)
			}
		}
		var f float64
		if json.Unmarshal(raw, &f) == nil && finite(f) {
			return Float(f)
		}
	}
	return Value{Kind: KindRaw, Raw: append(json.RawMessage(nil), raw...)}
}

var timestampLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
}

// ParseTimestamp reads a timestamp as the seed's services write it (ISO 8601,
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
