// Package heartbeat holds the heartbeat message model and its JSON codec.
//
// The wire format is fixed by the seed's Python services: one JSON object whose
// first keys are, in order, service_name, instance_id, timestamp,
// uptime_seconds, heartbeat_count, memory_usage_mb and cpu_usage_percent,
// followed by the additive keys interval_seconds and status, followed by the
// service-specific fields flattened at the top level.
//
// Encoding writes exactly that shape: timestamps in UTC with microseconds and a
// "+00:00" offset, uptime, memory and CPU with one decimal place. Decoding is
// lenient where the seed's services vary (key order, a missing fractional
// second, a "Z" offset) and strict where a consumer would be misled (a wrong
// type, a missing identity, an unparsable timestamp): every error names the
// key that was wrong.
package heartbeat
