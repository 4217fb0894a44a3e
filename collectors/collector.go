package collectors

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/convention"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// Collector produces one service value for each heartbeat. Build one with
// Int, Float, String or Timestamp (or their ...Func forms, which take a
// context and may fail). The zero Collector is invalid.
type Collector struct {
	kind    convention.FieldKind
	isFloat bool
	// usesCtx is set by the ...Func forms, whose collectors receive a
	// context with the budget as its deadline; the plain forms ignore it.
	usesCtx bool
	fn      func(context.Context) (wire.Value, error)
}

func plain(c Collector) Collector {
	c.usesCtx = false
	return c
}

// errNoValue marks a collector that has nothing to report this time, such as
// a zero time for "never": the field is left out without reporting a failure.
var errNoValue = errors.New("no value")

// Int returns a collector of an integer value, such as a queue size.
func Int(f func() int64) Collector {
	return plain(IntFunc(func(context.Context) (int64, error) { return f(), nil }))
}

// IntFunc returns a collector of an integer value that may fail; it should
// return when ctx is done.
func IntFunc(f func(ctx context.Context) (int64, error)) Collector {
	return Collector{kind: convention.FieldNumber, usesCtx: true, fn: func(ctx context.Context) (wire.Value, error) {
		v, err := f(ctx)
		return wire.Int(v), err
	}}
}

// Float returns a collector of a floating-point value, such as a ratio.
func Float(f func() float64) Collector {
	return plain(FloatFunc(func(context.Context) (float64, error) { return f(), nil }))
}

// FloatFunc returns a collector of a floating-point value that may fail; it
// should return when ctx is done. NaN and infinities are failures.
func FloatFunc(f func(ctx context.Context) (float64, error)) Collector {
	return Collector{kind: convention.FieldNumber, isFloat: true, usesCtx: true, fn: func(ctx context.Context) (wire.Value, error) {
		v, err := f(ctx)
		if err == nil && (math.IsNaN(v) || math.IsInf(v, 0)) {
			err = fmt.Errorf("%v is not a finite number", v)
		}
		return wire.Float(v), err
	}}
}

// String returns a collector of a state, such as an API status
// ("authenticated"). Values longer than MaxStringLength bytes are cut.
func String(f func() string) Collector {
	return plain(StringFunc(func(context.Context) (string, error) { return f(), nil }))
}

// StringFunc returns a collector of a state that may fail; it should return
// when ctx is done.
func StringFunc(f func(ctx context.Context) (string, error)) Collector {
	return Collector{kind: convention.FieldString, usesCtx: true, fn: func(ctx context.Context) (wire.Value, error) {
		v, err := f(ctx)
		return wire.String(v), err
	}}
}

// Timestamp returns a collector of a point in time, such as the last
// successful operation. A zero time means "never" and leaves the field out
// of the heartbeat without counting as a failure.
func Timestamp(f func() time.Time) Collector {
	return plain(TimestampFunc(func(context.Context) (time.Time, error) { return f(), nil }))
}

// TimestampFunc returns a collector of a point in time that may fail; it
// should return when ctx is done.
func TimestampFunc(f func(ctx context.Context) (time.Time, error)) Collector {
	return Collector{kind: convention.FieldTimestamp, usesCtx: true, fn: func(ctx context.Context) (wire.Value, error) {
		v, err := f(ctx)
		if err == nil && v.IsZero() {
			err = errNoValue
		}
		return wire.Time(v), err
	}}
}

// IsZero reports whether c is the zero Collector, which collects nothing.
func (c Collector) IsZero() bool { return c.fn == nil }

// MaxStringLength bounds a string value: 1024 bytes. Longer values are cut
// at a character boundary, here and again by the exporter.
const MaxStringLength = wire.MaxStringLength

// instrumentName returns the instrument that carries the field name.
func (c Collector) instrumentName(name string) string {
	switch c.kind {
	case convention.FieldString:
		return convention.StringName(name)
	case convention.FieldTimestamp:
		return convention.TimestampName(name)
	}
	return convention.NumberName(name)
}
