// Package collectors is where heartbeat values come from: the process's
// uptime, resident memory and CPU time (through gopsutil v4), and the
// service's own values (queue sizes, API states, the time of the last
// successful operation).
//
// Each value is an OpenTelemetry observable instrument under the heartbeat
// instrumentation scope, named and typed by the convention the Valkey
// exporter reads (see valkeyexporter):
//
//	NewProcess        process.uptime, process.memory.usage, process.cpu.time
//	Int, IntFunc      heartbeat.<name>            (Int64ObservableGauge)
//	Float, FloatFunc  heartbeat.<name>            (Float64ObservableGauge)
//	String, ...       heartbeat.<name>.info       (value 1, attribute heartbeat.value)
//	Timestamp, ...    heartbeat.<name>.timestamp  (Unix seconds, unit s)
//
// so every other reader on the same MeterProvider (OTLP, Prometheus) sees
// them as ordinary metrics.
//
// # Failure isolation
//
// A heartbeat proves the process is alive; it must not depend on any one
// value. The OpenTelemetry SDK drops a whole collection when a callback
// returns an error, and a panicking callback kills the process, so the
// callbacks here never return an error and never let a panic out. A service
// value whose collector panics, returns an error, returns NaN or an
// infinity, or has not returned within its budget is left out of that
// heartbeat, and the heartbeat goes out on time without it. The failure is
// reported to otel.Handle once when it starts; it is reported again only
// after the collector has recovered and failed anew.
//
// Service collectors run one after the other on one goroutine that lasts
// from one heartbeat to the next, for at most the budget (WithTimeout) in
// all: collectors that answer promptly cost no goroutine of their own.
// Should one collector hold that goroutine for a whole tick (an eighth of
// the budget), or half the budget pass with collectors not yet started,
// those start each on a goroutine of its own, so that a slow or blocking
// collector delays no other field. A collector still running when the next heartbeat is due is not
// started again, so one that blocks forever holds exactly one goroutine,
// never more; the context it receives is cancelled at the budget and when
// the fields are unregistered, and a collector that honours it ends then.
package collectors
