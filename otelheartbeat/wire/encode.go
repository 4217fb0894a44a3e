package wire

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// TimestampLayout is the wire form of every timestamp: UTC, microseconds and
// a "+00:00" offset, as Python's datetime.now(timezone.utc).isoformat() writes.
const TimestampLayout = "2006-01-02T15:04:05.000000-07:00"

// AppendTimestamp appends t in TimestampLayout, converted to UTC.
func AppendTimestamp(dst []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(dst, TimestampLayout)
}

// Marshal returns the JSON encoding of m.
func Marshal(m *Message) ([]byte, error) {
	return AppendJSON(make([]byte, 0, 512), m)
}

// AppendJSON appends the JSON encoding of m to dst. It fails, naming the key,
// when a number is NaN or infinite or the identity is invalid; on failure dst
// is returned unchanged.
func AppendJSON(dst []byte, m *Message) ([]byte, error) {
	if err := ValidateServiceName(m.ServiceName); err != nil {
		return dst, fmt.Errorf("%s: %w", KeyServiceName, err)
	}
	if m.InstanceID == "" {
		return dst, fmt.Errorf("%s: instance id is empty", KeyInstanceID)
	}
	if m.Timestamp.IsZero() {
		return dst, fmt.Errorf("%s: timestamp is not set", KeyTimestamp)
	}
	start := len(dst)
	b := append(dst, `{"service_name":`...)
	b = appendString(b, m.ServiceName)
	b = append(b, `,"instance_id":`...)
	b = appendString(b, m.InstanceID)
	b = append(b, `,"timestamp":"`...)
	b = AppendTimestamp(b, m.Timestamp)
	b = append(b, '"')

	var err error
	if m.Has&HasUptime != 0 {
		if b, err = appendOneDecimal(b, KeyUptimeSeconds, m.UptimeSeconds); err != nil {
			return dst[:start], err
		}
	}
	if m.Has&HasHeartbeatCount != 0 {
		b = append(b, `,"heartbeat_count":`...)
		b = strconv.AppendInt(b, m.HeartbeatCount, 10)
	}
	if m.Has&HasMemory != 0 {
		if b, err = appendOneDecimal(b, KeyMemoryUsageMB, m.MemoryUsageMB); err != nil {
			return dst[:start], err
		}
	}
	if m.Has&HasCPU != 0 {
		if b, err = appendOneDecimal(b, KeyCPUUsagePercent, m.CPUUsagePercent); err != nil {
			return dst[:start], err
		}
	}
	if m.Has&HasInterval != 0 {
		if !finite(m.IntervalSeconds) {
			return dst[:start], fmt.Errorf("%s: %v is not a finite number", KeyIntervalSeconds, m.IntervalSeconds)
		}
		b = append(b, `,"interval_seconds":`...)
		b = appendFloat(b, m.IntervalSeconds)
	}
	if m.Status != "" {
		b = append(b, `,"status":`...)
		b = appendString(b, m.Status)
	}
	if m.InstanceAddress != "" {
		b = append(b, `,"instance_address":`...)
		b = appendString(b, m.InstanceAddress)
	}
	for i := range m.Fields {
		f := &m.Fields[i]
		b = append(b, ',')
		b = appendString(b, f.Key)
		b = append(b, ':')
		if b, err = AppendValue(b, f.Value); err != nil {
			return dst[:start], fmt.Errorf("%s: %w", f.Key, err)
		}
	}
	return append(b, '}'), nil
}

// AppendValue appends a service value to dst as the heartbeat carries it:
// a number, a string, a timestamp in the timestamp format, or the raw
// JSON it was received as.
func AppendValue(dst []byte, v Value) ([]byte, error) {
	switch v.Kind {
	case KindInt:
		return strconv.AppendInt(dst, v.Int, 10), nil
	case KindFloat:
		if !finite(v.Float) {
			return dst, fmt.Errorf("%v is not a finite number", v.Float)
		}
		return appendFloat(dst, v.Float), nil
	case KindString:
		return appendString(dst, v.Str), nil
	case KindTime:
		dst = append(dst, '"')
		dst = AppendTimestamp(dst, v.Time)
		return append(dst, '"'), nil
	case KindRaw:
		if len(v.Raw) == 0 {
			return dst, errors.New("raw value is empty")
		}
		return append(dst, v.Raw...), nil
	}
	return dst, errors.New("value has no kind")
}

// Finite reports whether f can be written as a JSON number.
func Finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func finite(f float64) bool { return Finite(f) }

func appendOneDecimal(b []byte, key string, v float64) ([]byte, error) {
	if !finite(v) {
		return b, fmt.Errorf("%s: %v is not a finite number", key, v)
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return strconv.AppendFloat(b, v, 'f', 1, 64), nil
}

// appendFloat writes f as encoding/json does: the shortest representation
// that round-trips, in exponent form only for very large or small values.
func appendFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hex = "0123456789abcdef"

// appendString writes s as a JSON string. Invalid UTF-8 becomes U+FFFD, and
// U+2028 and U+2029 are escaped so the output is also valid JavaScript.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
