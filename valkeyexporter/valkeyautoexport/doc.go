// Package valkeyautoexport registers the heartbeat exporter with
// go.opentelemetry.io/contrib/exporters/autoexport under the name "valkey",
// so that a service which builds its metric reader with
// autoexport.NewMetricReader publishes heartbeats when
// OTEL_METRICS_EXPORTER=valkey.
//
//	if err := valkeyautoexport.Register(); err != nil { ... }
//	reader, err := autoexport.NewMetricReader(ctx) // OTEL_METRICS_EXPORTER=valkey
//
// The reader is a valkeyexporter.Reader configured from the environment
// (OTEL_EXPORTER_VALKEY_*, HEARTBEAT_INTERVAL, HEALTH_REDIS_*).
//
// autoexport reads one exporter name, not a list (contrib issue 4471): to
// publish heartbeats beside OTLP, build the heartbeat reader yourself with
// valkeyexporter.NewReader and add both readers to the MeterProvider, or use
// otelheartbeat, which takes extra readers. It lives in its own package so
// that services which do not use autoexport do not compile its exporters.
package valkeyautoexport
