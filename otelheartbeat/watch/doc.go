// Package watch is what an admin panel, a health endpoint or a load
// balancer calls to watch heartbeats: it connects with the publishers' own
// variables, reads current state from the latest-state keys, subscribes to
// the heartbeat channels, and judges every instance alive, stale, dead or
// stopped by its own clock. Package wire is the message it reads; package
// term renders what it sees for terminals.
//
// # Connect
//
// ConnectFromEnv builds a client from the variables the publishers read
// (OTEL_EXPORTER_VALKEY_ENDPOINT with its credential, TLS, cluster,
// sentinel, prefix and sharded companions, else the original design's HEALTH_REDIS_*),
// so a watcher deployed beside a service finds the same Valkey. Options in
// code win over variables; a malformed variable is an error that names it,
// and no error or Connection.Endpoint holds a password.
//
//	conn, err := watch.ConnectFromEnv()
//	defer conn.Client.Close()
//	m, err := watch.New(conn)
//	err = m.Run(ctx, func(e watch.Event) { ... })
//
// # Current state: the latest-state keys
//
// Pub/sub has no memory. ReadLatest reads every heartbeat:instance:* key
// (of one service, matched exactly, when asked) on every primary, so a
// watcher that starts, or reconnects, knows the fleet at once. The key's
// remaining TTL gives the heartbeat's age on the server's clock
// (Latest.Age), and Latest.State classifies it. The value is read with a
// bounded GETRANGE in the same round trip as its PTTL, never with GET: a
// key larger than a heartbeat, without a TTL, with a TTL longer than
// three intervals or of another type is reported (Latest.Err) and never
// read whole, nor as alive. A Monitor does this itself at start and after
// every reconnect (KindLoaded, KindReconnected). Publishers in the original design's
// format write no keys; they are heard on the channel.
//
// # Live: the Monitor
//
// New returns a Monitor of what a Connection names; Run subscribes
// (PSUBSCRIBE to heartbeat:service:*, or to the pattern of
// Connection.Channel when the publishers use another channel template such
// as health:service:{service_name}:heartbeat, or with Connection.Sharded
// one SSUBSCRIBE connection per primary for the services in the
// heartbeat:services registry), decodes
// and checks every message, feeds the Tracker, and calls its callback with
// every Event on the goroutine that called Run: heartbeats, transitions,
// malformed messages (counted, never fatal), disconnects and reconnects.
// After a lost connection it reconnects with a bounded back-off, re-reads
// the keys and says how long it was disconnected. Tracker and Stats are
// safe to read from the callback or any other goroutine.
//
// # Verdicts
//
// age = now - when the last heartbeat was received, on the watcher's clock
// (never the sender's timestamp):
//
//	alive   if age < 1.5 x interval
//	stale   if age < 3 x interval
//	dead    otherwise
//	stopped once the instance said "stopping" (a graceful stop, never dead)
//
// At the default 60 s interval that is the original design's 90 s and 180 s (Classify).
// The interval is the instance's interval_seconds when it sends one. A
// publisher in the original design's format (Python, JavaScript) does not: its
// interval is inferred from the gaps between its own heartbeats, the
// median of the last eight, each divided by the heartbeats its
// heartbeat_count says it spans, so a lost heartbeat does not double it
// and the burst after a stall does not halve it; until there is a gap,
// WithDefaultInterval applies (wire.DefaultInterval, or HEARTBEAT_INTERVAL
// through ParseInterval). Every Instance and Transition says which it is
// (IntervalSource: sent, inferred or default).
//
// A watcher that cannot see is not a fleet that died. Every subscription
// connection is pinged every probe (WithProbe: 100 ms) with the time as the
// payload; the answer comes back in order with the messages, so it proves
// everything published before that time has been read, and silence is
// judged only up to there: heartbeats waiting in the watcher's socket or in
// a stalled broker are never declared missing. With no answer for
// blindAfter (2 s) the watcher is blind (KindBlind) and judges no
// one; when answers come again (KindCaughtUp) it holds every verdict until
// each instance has been watched for 1.5 of its intervals, since heartbeats
// sent meanwhile may arrive in any order. Time it could not see at all (a
// lost subscription) does not count as anyone's silence, and only that
// time: knocked off over and over, it still declares a crashed instance
// dead, late by the time it was off.
//
// # Back-pressure
//
// Verdicts never depend on the caller's pace. The goroutine that reads the
// subscription feeds the Tracker with every heartbeat before the caller
// sees anything, then queues the event, handing over what one read of the
// socket brought at once; the queue is bounded
// (WithQueue: DefaultQueue events, DefaultQueueBytes bytes). A heartbeat or a malformed-message report
// that finds it full is not delivered, and counted: Stats.Dropped, and a
// KindDropped event that says how many since the last one. Transitions are
// never dropped: they wait, and meanwhile the reader stops reading, so the
// unread heartbeats wait in the socket, where the probes keep them from
// being judged missing. Nothing is buffered without bound. A caller that
// draws from the Tracker (a table) sets WithoutHeartbeatEvents and receives no
// heartbeat events at all; one that takes what it needs of each heartbeat
// during its call sets WithReusedMessages, and the monitor decodes later
// heartbeats into the messages it has rendered.
//
// The Tracker is bounded too: at WithMaxInstances (DefaultMaxInstances) the
// instance dead or stopped the longest is evicted to make room, or when
// none is, the one heard from least recently (Stats.Evicted,
// KindEvicted), so a flood of made-up instance ids cannot grow it without
// bound or hide a real instance that appears after it; dead and stopped
// instances are forgotten after WithRetention. A tracked instance costs at
// most 512 bytes of heap, its instance id included (about 400 to 450
// measured), so the live heap a watcher keeps is capped at about 500 MiB
// at the default bound of 1,000,000 (the process's resident memory may be
// up to twice its live heap at the garbage collector's default GOGC):
// BenchmarkIDFlood sends 2,000,000 distinct ids through the monitor's
// decoder and tracker and fails if the live heap exceeds 512 bytes per
// tracked instance plus 16 MiB, if the tracker holds other than the bound
// at the end, or if the evictions are other than the ids past it;
// BenchmarkMemoryPerInstance measures the tracker alone. Messages are held
// to what a publisher can send (package wire's limits), and every string
// in an Event is wire data, to be escaped before it is shown.
//
// A consumer that keeps something of every instance beside the tracker
// (the admin panel's heartbeat bars, say) need not keep a map by Key:
// each heartbeat's Event carries its instance's Slot in the monitor's
// tracker, a small index given again, in a later generation, only once
// the instance is forgotten, so the consumer's state can be slices at
// that index, as bounded as the tracker, with no names of its own and no
// sweep for the forgotten.
//
// # Service discovery
//
// A tracker made WithHeartbeats keeps each instance's last heartbeat, and
// Tracker.Alive answers "the alive instances of service X, with their
// latest heartbeat": where each serves (wire.Message.InstanceAddress, which
// publishers fill from the resource's url.full or server.address and
// server.port) and its service fields, such as a load figure. A Monitor
// keeps it current; an instance leaves the answer the moment it is judged
// stale, and at once when its stopping heartbeat arrives. The command
// examples/discovery spreads requests over it, the least loaded first.
package watch
