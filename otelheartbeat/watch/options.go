package watch

import "time"

// Option configures a Monitor (New).
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithService limits the monitor to one service, matched exactly.
// Default: every service.
func WithService(name string) Option { return optionFunc(func(c *config) { c.Service = name }) }

// WithTracker configures the monitor's liveness tracker: its retention,
// instance bound, default interval, whether it keeps heartbeats.
func WithTracker(opts ...TrackerOption) Option {
	return optionFunc(func(c *config) { c.Tracker = append(c.Tracker, opts...) })
}

// WithQueue bounds the events waiting for the renderer, in events and in
// the bytes the heartbeats and malformed-message reports among them hold
// (by wire.Message.Footprint and the raw bytes kept: ten thousand
// heartbeats of 60 KB would otherwise hold 700 MB). A heartbeat past
// either bound is not shown, and counted as Dropped; a transition is never
// dropped: past the bound it waits for the renderer, up to as many again
// as the bound in events before the reader stops to wait with it.
// Defaults: DefaultQueue and DefaultQueueBytes.
func WithQueue(events, bytes int) Option {
	return optionFunc(func(c *config) { c.Queue, c.QueueBytes = events, bytes })
}

// WithRefresh emits KindRefresh every d, for a renderer that redraws.
// Default: never.
func WithRefresh(d time.Duration) Option { return optionFunc(func(c *config) { c.Refresh = d }) }

// WithoutHeartbeatEvents leaves KindHeartbeat events out, for a renderer
// that draws from the tracker (a table): the tracker sees every heartbeat
// all the same.
func WithoutHeartbeatEvents() Option { return optionFunc(func(c *config) { c.NoHeartbeats = true }) }

// WithProbe sets how often every subscription connection is pinged to
// learn how far the monitor has seen, and how long without an answer
// makes it blind (at least two probes). Defaults: DefaultProbe and
// DefaultBlindAfter.
func WithProbe(probe, blindAfter time.Duration) Option {
	return optionFunc(func(c *config) { c.Probe, c.BlindAfter = probe, blindAfter })
}

// WithoutLatestState does not read the latest-state keys, at start or
// after a reconnect: the monitor knows only what it hears.
func WithoutLatestState() Option { return optionFunc(func(c *config) { c.SkipLatest = true }) }

// WithReusedMessages lends a heartbeat event's Message to the renderer
// for the call that gets it only: once the call returns, the monitor
// decodes a later heartbeat into it. It is for a renderer that takes what
// it needs of each heartbeat during the call and keeps no reference to
// the message or its Fields afterwards (the admin panel's Observe; names
// and field keys are strings, which may be kept); it spares allocating a
// message and its fields for every heartbeat. Without it, every event's
// message is its renderer's to keep.
func WithReusedMessages() Option { return optionFunc(func(c *config) { c.ReuseMessages = true }) }

// WithRawMessages keeps each heartbeat's JSON in Event.Raw (a copy per
// message); without it Raw is set for malformed messages only.
func WithRawMessages() Option { return optionFunc(func(c *config) { c.KeepRaw = true }) }

// WithRegistryRefresh sets how often, in sharded mode, the registry is
// read for new services. Default 2 s.
func WithRegistryRefresh(d time.Duration) Option {
	return optionFunc(func(c *config) { c.RegistryRefresh = d })
}
