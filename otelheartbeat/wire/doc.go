// Package wire is the heartbeat's wire format, shared by the services that
// publish heartbeats and the monitors and admin panels that read them: the
// message model, its JSON codec, the name rules, the channel and
// latest-state key names, and the limits a consumer holds a heartbeat to.
// The valkeyexporter writes with it; package watch reads with it.
//
// # The message
//
// One JSON object whose first keys are, in order, service_name,
// instance_id, timestamp, uptime_seconds, heartbeat_count, memory_usage_mb
// and cpu_usage_percent (the original design's seven documented keys),
// followed by the additive keys interval_seconds and status (and
// instance_address when the instance advertises one), followed by the
// service-specific fields flattened at the top level, in key order:
//
//	{"service_name":"tracker_fetcher","instance_id":"a1b2c3d4-...",
//	 "timestamp":"2025-01-16T08:30:00.123456+00:00","uptime_seconds":3600.5,
//	 "heartbeat_count":60,"memory_usage_mb":156.3,"cpu_usage_percent":12.5,
//	 "interval_seconds":60,"status":"running","queue_size":1380}
//
// A Message holds the documented keys as typed fields (Has says which of the
// optional ones were present) and the service fields as a list of Field,
// each an int, a float or a string (Value); a timestamp-valued field such
// as last_successful_operation travels as a string in TimestampLayout, and
// ParseTimestamp reads it.
//
// # Publishing
//
// Marshal and AppendJSON write exactly that shape: timestamps in UTC with
// microseconds and a "+00:00" offset (TimestampLayout), uptime, memory and
// CPU with one decimal place. ValidateServiceName and ValidateFieldName hold
// the name rules a publisher is refused by: a service name that is empty,
// longer than MaxNameLength or holds whitespace or glob characters would
// break PSUBSCRIBE heartbeat:service:* consumers; a field name is ASCII
// letters, digits and '_', starts with a letter, and is not a documented
// key. A ChannelTemplate builds the channel of a service
// (DefaultChannelTemplate, or another spelling such as
// "health:service:{service_name}:heartbeat") and the pattern consumers
// subscribe to; Key builds the latest-state key from a prefix
// (DefaultKeyPrefix).
//
// # Consuming
//
// Unmarshal, UnmarshalInto and UnmarshalIntern decode one heartbeat. They
// are lenient where the original design's services vary (key order, a missing
// fractional second, a "Z" offset) and strict where a consumer would be
// misled (a wrong type, a missing identity, an unparsable timestamp, a
// status other than running or stopping): every error is a *DecodeError
// that names the key that was wrong. A heartbeat is held to what a
// publisher can send: a message larger than MaxMessageSize, an
// interval_seconds outside MinInterval to MaxInterval, more than MaxFields
// service fields or a string longer than MaxStringLength is refused as
// malformed. Strings from the wire are data: escape them before showing
// them (package watch/term does it for terminals).
//
// Message.Interval is the sender's interval when it sent one; publishers in
// the original design's format (Python, JavaScript) do not, and package watch
// infers theirs.
// An Interner shares the names and keys of a steady fleet between messages
// when decoding many.
package wire
