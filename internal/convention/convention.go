// Package convention is the contract between the heartbeat gauges and the
// Valkey exporter: the instrumentation scope, instrument names, units and
// attributes from which the exporter rebuilds the documented JSON using
// metricdata alone.
//
// Standard fields use the OpenTelemetry semantic conventions, so other
// readers on the same MeterProvider see ordinary process metrics. Their
// names, kinds and units are the ones otel-go's semconv package declares
// (processconv); the names below are taken from it, not written again:
//
//	process.uptime        Float64ObservableGauge, s               -> uptime_seconds
//	process.memory.usage  Int64ObservableUpDownCounter, By (RSS)  -> memory_usage_mb (MiB)
//	process.cpu.time      Float64ObservableCounter, s,            -> cpu_usage_percent
//	                      attribute cpu.mode (user|system)
//
// cpu_usage_percent is the process's CPU time over the last heartbeat interval
// divided by that interval, so 100 means one full core. The exporter computes
// it from the cumulative process.cpu.time between two of its own exports; the
// first heartbeat uses CPU time divided by uptime. Computing it in the
// exporter keeps "over the last interval" true even when another reader
// (Prometheus, OTLP) collects the same instruments at another rate, because a
// callback runs once per collection of every reader.
//
// Service fields, named heartbeat.<field> with <field> the JSON key:
//
//	number     heartbeat.<field>            Int64 or Float64 ObservableGauge -> JSON integer or number
//	string     heartbeat.<field>.info       Int64ObservableGauge, value 1, no unit,
//	                                        attribute heartbeat.value = the string -> JSON string
//	timestamp  heartbeat.<field>.timestamp  Float64ObservableGauge, unit s, Unix seconds
//	                                        -> JSON string in the timestamp format
//
// A field name never holds a '.', so the suffixes are unambiguous.
package convention

import (
	"strings"

	"go.opentelemetry.io/otel/semconv/v1.43.0/processconv"
)

// ScopeName is the instrumentation scope of every heartbeat instrument. The
// exporter serializes this scope only.
const ScopeName = "github.com/otel-heartbeat/heartbeat/otelheartbeat"

// Standard instruments, as the semantic conventions name them.
var (
	Uptime      = processconv.UptimeObservable{}.Name()
	MemoryUsage = processconv.MemoryUsageObservable{}.Name()
	CPUTime     = processconv.CPUTime{}.Name()
)

// ValueKey is the attribute that carries a string field's value.
const ValueKey = "heartbeat.value"

// Service field instrument names.
const (
	FieldPrefix     = "heartbeat."
	InfoSuffix      = ".info"
	TimestampSuffix = ".timestamp"
)

// UnitSeconds is the unit of a timestamp field (Unix seconds).
const UnitSeconds = "s"

// FieldKind says how a service field is carried.
type FieldKind uint8

// Field kinds.
const (
	FieldNumber FieldKind = iota + 1
	FieldString
	FieldTimestamp
)

// NumberName returns the instrument name of a numeric field.
func NumberName(field string) string { return FieldPrefix + field }

// StringName returns the instrument name of a string field.
func StringName(field string) string { return FieldPrefix + field + InfoSuffix }

// TimestampName returns the instrument name of a timestamp field.
func TimestampName(field string) string { return FieldPrefix + field + TimestampSuffix }

// ParseName maps an instrument name of the heartbeat scope to the service
// field it carries. ok is false for names that are not service fields.
func ParseName(name string) (field string, kind FieldKind, ok bool) {
	rest, found := strings.CutPrefix(name, FieldPrefix)
	if !found || rest == "" {
		return "", 0, false
	}
	switch {
	case strings.HasSuffix(rest, InfoSuffix):
		field, kind = strings.TrimSuffix(rest, InfoSuffix), FieldString
	case strings.HasSuffix(rest, TimestampSuffix):
		field, kind = strings.TrimSuffix(rest, TimestampSuffix), FieldTimestamp
	default:
		field, kind = rest, FieldNumber
	}
	if field == "" || strings.ContainsRune(field, '.') {
		return "", 0, false
	}
	return field, kind, true
}
