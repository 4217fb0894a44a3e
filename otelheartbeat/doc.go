// Package otelheartbeat is what a service calls to prove it is alive: every
// interval, whether or not it is doing work, it publishes a small JSON
// heartbeat to Valkey on heartbeat:service:{service_name}, so that an admin
// panel can tell a crashed or hung instance from an idle one.
//
// It is the Go form of the original design's Python API:
//
//	HeartbeatPublisher          Publisher (NewPublisher, AddDataCollector, Start, Stop)
//	ServiceHeartbeatManager     Manager (NewManager, AddQueueSizeCollector, ...)
//	create_tracker_fetcher_heartbeat, create_geocoding_heartbeat, create_geofence_heartbeat
//	                            NewTrackerFetcherHeartbeat, NewGeocodingHeartbeat, NewGeofenceHeartbeat
//
// Underneath, every heartbeat field is an OpenTelemetry observable instrument
// (see package collectors), collected by a periodic reader whose exporter
// (package valkeyexporter) writes the documented JSON. Start sends the first
// heartbeat at once, then one goes out every interval (HEARTBEAT_INTERVAL
// seconds, default 60). Stop sends a final heartbeat with status "stopping",
// deletes the instance's latest-state key and returns before its context is
// done, even when Valkey is unreachable.
//
// # Two ways in
//
// A service without OpenTelemetry lets the Publisher build its own
// MeterProvider: NewPublisher(name). The Resource comes from
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, with a random UUID as
// service.instance.id unless one is given. WithReader adds the service's
// other readers (OTLP, Prometheus, stdout), which then see the heartbeat
// gauges too.
//
// A service already on OpenTelemetry adds the heartbeat reader to its own
// MeterProvider and hands both to the Publisher:
//
//	hb, err := otelheartbeat.NewReader("tracker_fetcher")
//	mp := sdkmetric.NewMeterProvider(
//		sdkmetric.WithResource(res),
//		sdkmetric.WithReader(hb),
//		sdkmetric.WithReader(otlpReader),
//	)
//	p, err := otelheartbeat.NewPublisher("tracker_fetcher", otelheartbeat.WithMeterProvider(mp, hb))
//
// The reader names the service in this mode: the name passed to NewReader,
// else the provider Resource's service.name. A name passed to NewPublisher
// must be the same (or empty), the convenience constructors leave it to the
// reader, and ServiceName reports the name on the wire. The heartbeat gauges
// then reach the service's OTLP or Prometheus backend as process.uptime,
// process.memory.usage, process.cpu.time and heartbeat.<field> metrics.
//
// # Failures
//
// Nothing a collector does can stop a heartbeat: a collector that panics,
// errors, returns NaN or blocks past its budget loses only its own field,
// once reported to otel.Handle. Valkey being down at Start does not fail
// Start: the service runs, the failure is reported, and heartbeats begin on
// their own when Valkey is reachable. Configuration mistakes (a bad service
// or field name, a malformed variable, an option that does nothing with
// WithMeterProvider) are errors from the constructors and from
// AddDataCollector, naming what was wrong; wiring mistakes with an existing
// MeterProvider (the heartbeat reader not added to it with
// sdkmetric.WithReader, or no service.name anywhere) are errors from Start.
//
// # Goroutines
//
// A started Publisher runs the periodic reader's goroutine; once it has
// service collectors, the one goroutine that runs them (a second only while
// a collector is stuck in the first); and, with a client passed with
// valkeyexporter.WithClient, while a heartbeat is being sent, the goroutine
// that sends it, so that an export returns by its context even while
// Valkey stalls (the library's own client sends on the reader's goroutine
// and cuts its connection instead). Stop ends them all,
// except a collector that ignores its cancelled context and never returns:
// Stop then reports it by name, and it holds that one goroutine until it
// returns.
package otelheartbeat
