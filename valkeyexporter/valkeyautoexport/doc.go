// Package valkeyautoexport registers the heartbeat exporter with
// go.opentelemetry.io/contrib/exporters/autoexport under the name "valkey",
// so that a service which builds its metric reader with
// autoexport.NewMetricReader publishes heartbeats when
// OTEL_METRICS_EXPORTER=valkey.
//
// The reader only collects: the heartbeat gauges (uptime, memory, CPU and
// the service's fields) are registered by otelheartbeat, which also sends
// the first heartbeat at Start instead of one interval later. The complete
// path:
//
//	if err := valkeyautoexport.Register(); err != nil { ... }
//	reader, err := autoexport.NewMetricReader(ctx) // OTEL_METRICS_EXPORTER=valkey
//	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(reader))
//	hb, ok := reader.(*valkeyexporter.Reader) // false when the variable names another exporter
//	p, err := otelheartbeat.NewPublisher("", otelheartbeat.WithMeterProvider(mp, hb))
//	err = p.Start(ctx)
//	defer p.Stop(ctx)
//
// Without the Publisher every export fails with
// valkeyexporter.ErrNoHeartbeatInstruments, which says what to add, rather
// than publish heartbeats that hold none of uptime, memory or CPU.
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
