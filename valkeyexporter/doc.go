// Package valkeyexporter is an OpenTelemetry metric exporter that turns each
// collection of the heartbeat gauges into one heartbeat message and
// publishes it to Valkey (or Redis).
//
// Every Export serializes the instruments of the heartbeat instrumentation
// scope (ScopeName) into the documented JSON and, in one pipelined round trip,
//
//	PUBLISH heartbeat:service:{service_name} <json>
//	SET     heartbeat:instance:{service_name}:{instance_id} <json> PX <3 x interval>
//
// Metrics of every other scope on the same MeterProvider are ignored, so the
// exporter can sit beside OTLP, Prometheus or stdout readers on a shared
// provider. service_name and instance_id come from the Resource
// (service.name, service.instance.id; OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES set them). heartbeat_count is kept by the
// exporter: 1 for its first heartbeat, one more for each heartbeat after,
// delivered or not, so a consumer that sees a gap knows heartbeats were lost.
//
// # Gauge convention
//
// The exporter rebuilds the whole message from metricdata alone:
//
//	process.uptime (s)                         -> uptime_seconds
//	process.memory.usage (By, resident memory) -> memory_usage_mb, in MiB
//	process.cpu.time (s, cumulative)           -> cpu_usage_percent over the
//	                                              last interval, 100 = one core
//	heartbeat.<field>                          -> <field>, a JSON number
//	heartbeat.<field>.info (value 1,
//	    attribute heartbeat.value)             -> <field>, a JSON string
//	heartbeat.<field>.timestamp (s, Unix)      -> <field>, a timestamp string
//
// The otelheartbeat and collectors packages register instruments that follow
// this convention; a service can also register its own. A field whose gauge
// produced no value, or a NaN or infinite one, is left out of that heartbeat
// and reported once to otel.Handle; the heartbeat still goes out. The
// documented keys come first, then interval_seconds and status ("running",
// or "stopping" on the final heartbeat of a graceful stop), then
// instance_address when the Resource gives one (server.address and
// server.port, or url.full), then the service fields in ascending key
// order.
//
// # Using it
//
// NewReader wraps the exporter in a PeriodicReader that collects at the
// heartbeat interval and marks the final heartbeat, sent when the reader
// shuts down, as "stopping". Add it to any MeterProvider:
//
//	exp, err := valkeyexporter.New()
//	...
//	mp := sdkmetric.NewMeterProvider(
//		sdkmetric.WithResource(res),
//		sdkmetric.WithReader(valkeyexporter.NewReader(exp)),
//		sdkmetric.WithReader(otlpReader), // optional, in parallel
//	)
//
// A PeriodicReader exports first after one full interval; call the
// MeterProvider's or the reader's ForceFlush after creating the heartbeat
// instruments to send the first heartbeat at once (otelheartbeat.Publisher
// does this in Start).
//
// # Configuration
//
// Options passed to New win over environment variables, which win over the
// defaults:
//
//	OTEL_EXPORTER_VALKEY_ENDPOINT            redis://, rediss://, valkey://, valkeys:// URL
//	                                         (user, password, database) or host:port;
//	                                         addresses separated by commas are cluster
//	                                         seeds, or sentinels
//	OTEL_EXPORTER_VALKEY_CLUSTER             true: cluster mode with one address
//	OTEL_EXPORTER_VALKEY_SENTINEL_MASTER     the primary's name; the addresses are sentinels
//	OTEL_EXPORTER_VALKEY_SENTINEL_PASSWORD   the sentinels' password
//	OTEL_EXPORTER_VALKEY_SHARDED             true: SPUBLISH, and register the service
//	                                         in the set heartbeat:services
//	OTEL_EXPORTER_VALKEY_USERNAME            ACL user; overrides the URL's
//	OTEL_EXPORTER_VALKEY_PASSWORD            password; overrides the URL's
//	OTEL_EXPORTER_VALKEY_CERTIFICATE         PEM file of CAs that sign the server's certificate
//	OTEL_EXPORTER_VALKEY_CLIENT_CERTIFICATE  PEM client certificate, for mutual TLS
//	OTEL_EXPORTER_VALKEY_CLIENT_KEY          PEM client key, for mutual TLS
//	OTEL_EXPORTER_VALKEY_CHANNEL             the channel as a template, default
//	                                         heartbeat:service:{service_name}
//	OTEL_EXPORTER_VALKEY_CHANNEL_PREFIX      the channel as a prefix of the name
//	                                         (not with the template)
//	OTEL_EXPORTER_VALKEY_KEY_PREFIX          default heartbeat:instance:
//	OTEL_EXPORTER_VALKEY_LATEST_STATE        false disables the latest-state key
//	HEARTBEAT_INTERVAL                       seconds (or a Go duration), default 60
//	OTEL_METRIC_EXPORT_TIMEOUT               milliseconds per export; default the smaller
//	                                         of 30 s and the interval
//	OTEL_METRIC_EXPORT_INTERVAL              not used (the heartbeat keeps its interval),
//	                                         only checked, as the SDK would log it
//	HEALTH_REDIS_HOST, HEALTH_REDIS_PORT,    the original design's variables, used
//	HEALTH_REDIS_PASSWORD                    when OTEL_EXPORTER_VALKEY_ENDPOINT is unset
//
// Without any of them the exporter connects to localhost:6379. A malformed
// variable is an error from New that names it. Passwords never appear in
// errors; credentials written into a bare host:port, and query strings, are
// refused. OTEL_SDK_DISABLED is not honoured: a heartbeat is a liveness
// signal, and silencing it would make the instance look dead. TLS verifies
// the server's certificate and host name; there is no switch to turn that
// off.
//
// # Failures
//
// Export honours its context: with Valkey down or stalled it returns an
// error naming the command and the endpoint before the reader's export
// timeout, or at once when its context is cancelled (go-redis alone waits
// for its read timeout: the client New builds has its connection cut), and
// the next Export tries again on a fresh connection, so a
// Valkey that goes away and comes back needs no restart. When PUBLISH
// succeeds but the latest-state SET is refused (an ACL user without write
// permission), the heartbeat still counts as sent and the refusal is
// reported once. A client passed with WithClient should have
// ContextTimeoutEnabled set, or exports wait for its own timeouts.
package valkeyexporter
