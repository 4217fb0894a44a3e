// A Monitor is the watcher's engine: it subscribes to
// heartbeat:service:*, reads the latest-state keys so that instances appear
// at once, decodes and checks every message, and feeds a liveness tracker
// whose own timing detects silence. The examples/monitor command and the
// demo render its events.
//
// Verdicts come first. The goroutine that reads the subscription feeds the
// tracker with every heartbeat it delivers, before anything is shown, so a
// renderer that falls behind skips what it shows (counted as Dropped),
// never a verdict. Every connection is pinged every probe (WithProbe) with the
// time as its payload; the answer comes back in order with the messages,
// so it proves that everything published before that time has been read.
// Silence is judged only up to that time: heartbeats still in the
// monitor's socket or in a stalled broker are never declared missing.
// When no answer comes for blindAfter the monitor says it is blind
// (KindBlind), and when answers come again (KindCaughtUp) it holds every
// verdict until each instance has been watched for 1.5 intervals again.
//
// Events are delivered on the goroutine that called Run, one at a time;
// the tracker is safe to read from the callback. Transitions wait for the
// renderer (the reader then stops reading, and the unread heartbeats wait
// in the socket, where they cannot be judged missing); heartbeats and
// malformed-message reports that find the queue full are not shown, and
// counted. Nothing is buffered without bound. After a lost connection the
// monitor reconnects with a bounded back-off, re-reads the latest-state
// keys and says how long it was disconnected.

package watch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// Kind is the kind of an Event.
type Kind uint8

// Event kinds.
const (
	// KindHeartbeat: a valid heartbeat arrived (Message, Channel, Raw).
	KindHeartbeat Kind = iota + 1
	// KindTransition: an instance changed state (Transition).
	KindTransition
	// KindMalformed: a message on the channel, or in a latest-state key,
	// was refused (Channel, Err, Raw cut to 200 bytes).
	KindMalformed
	// KindDisconnected: the subscription failed (Err). Heartbeats sent
	// until KindReconnected are lost; verdicts are held meanwhile.
	KindDisconnected
	// KindReconnected: subscribed again (Downtime) and latest-state keys
	// re-read (Count).
	KindReconnected
	// KindLoaded: latest-state keys read at start (Count).
	KindLoaded
	// KindDropped: heartbeats or malformed-message reports not shown
	// because the renderer was behind (Count since the last such event).
	// The tracker saw every one of them.
	KindDropped
	// KindRefresh: a periodic tick for redrawing (see WithRefresh).
	KindRefresh
	// KindBlind: the subscription has not answered a probe for Downtime
	// (a stalled broker, a monitor that was paused or is behind). No
	// instance changes state by silence until KindCaughtUp.
	KindBlind
	// KindCaughtUp: the subscription answers again after being blind for
	// Downtime; verdicts are held until each instance has been watched
	// for 1.5 intervals again.
	KindCaughtUp
	// KindEvicted: instances evicted at the tracker's bound to make room
	// for new ones (Count since the last such event).
	KindEvicted
	// KindIdle: nothing is waiting to be rendered: a good moment to flush
	// buffered output.
	KindIdle
	// KindHealth: an up instance's health verdict changed (Health): it
	// breaks a health rule (WithHealthRules), or keeps to them all again.
	KindHealth
)

// Event is something the monitor saw. Raw is read-only: it shares memory
// with the received message. Message is the event's own, unless the
// monitor lends it for the call that renders it (WithReusedMessages): a
// tracker keeping heartbeats keeps a packed copy (Instance.Heartbeat), and
// its names are the tracker's (Tracker.Names).
//
// Channel, Message and Err hold strings from the wire as they were
// received: escape them before showing them (package term does).
//
// A KindHeartbeat event's Slot names its instance in the monitor's
// tracker (Monitor.Tracker) as the heartbeat found it: the instance may
// have been forgotten since (a stopping heartbeat whose replacement had
// already come, an instance evicted at the bound), and its slot given to
// another, of a later generation.
type Event struct {
	Kind       Kind
	At         time.Time
	Channel    string
	Message    *wire.Message
	Slot       Slot
	Raw        []byte
	Transition Transition
	Health     HealthChange
	Err        error
	Count      int
	Downtime   time.Duration

	bytes int // counted against the queue's bytes (WithQueue) while queued
}

// Defaults of the options.
const (
	DefaultQueue      = 10_000
	DefaultQueueBytes = 16 << 20
	DefaultProbe      = 100 * time.Millisecond
	DefaultBlindAfter = 2 * time.Second
)

// config is what a Monitor is built with: its Connection's client and
// names, then its options.
type config struct {
	Client          redis.UniversalClient
	Endpoint        string
	Channel         wire.ChannelTemplate
	KeyPrefix       string
	Sharded         bool
	Service         string
	Tracker         []TrackerOption
	Queue           int
	QueueBytes      int
	Refresh         time.Duration
	NoHeartbeats    bool
	ReuseMessages   bool
	Probe           time.Duration
	BlindAfter      time.Duration
	SkipLatest      bool
	KeepRaw         bool
	RegistryRefresh time.Duration
}

// Stats counts what the monitor has seen since it started.
type Stats struct {
	// Received counts publications read, Malformed those refused.
	Received, Malformed int64
	// Dropped counts heartbeats and malformed-message reports not shown
	// because the renderer was behind; the tracker saw every heartbeat.
	Dropped int64
	// Disconnects counts lost subscriptions, Blind the times the
	// subscription stopped answering while connected.
	Disconnects, Blind int64
	// Evicted counts instances evicted at the tracker's bound.
	Evicted int64
	// DownSince is when the subscription was lost, and BlindSince since
	// when it has not answered; zero while it is fine.
	DownSince, BlindSince time.Time
}

// Monitor watches heartbeats.
type Monitor struct {
	cfg     config
	tracker *Tracker
	sight   sight

	received, malformed, dropped, disconnects, blind atomic.Int64
	downSince, blindSince                            atomic.Int64 // Unix nanoseconds, 0: not
	queued                                           atomic.Int64 // bytes of the events queued, see Config.QueueBytes
	queuedEvents                                     atomic.Int64 // events queued, see Config.Queue

	beforeFrame func()      // tests: called by the lean reader before each frame
	afterIngest func()      // tests: called after each publication is ingested
	onBatch     func(n int) // tests: called by Run with each batch's size, before emitting it

	// lent are messages of heartbeats rendered, to decode into again
	// (WithReusedMessages).
	lent sync.Pool
}

// decodeState is what one receiving goroutine reuses between messages.
type decodeState struct {
	channels map[string]string // channel name of each service
	intern   *wire.Interner    // names, keys and states
	reuse    *wire.Message     // with NoHeartbeats: decoded into again
}

func newDecodeState() *decodeState {
	return &decodeState{channels: make(map[string]string), intern: wire.NewInterner(4096)}
}

// New returns a monitor of the publishers conn names (its client, channel,
// key prefix and sharded mode); it does not connect until Run. Run does
// not close conn's client.
func New(conn Connection, opts ...Option) (*Monitor, error) {
	cfg := config{Client: conn.Client, Endpoint: conn.Endpoint, Channel: conn.Channel, KeyPrefix: conn.KeyPrefix, Sharded: conn.Sharded}
	for _, o := range opts {
		o.apply(&cfg)
	}
	if cfg.Client == nil {
		return nil, errors.New("watch: the Connection has no client")
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = wire.DefaultKeyPrefix
	} else if err := wire.ValidatePrefix(cfg.KeyPrefix); err != nil {
		return nil, fmt.Errorf("watch: Connection.KeyPrefix: %w", err)
	}
	if cfg.Service != "" {
		if err := wire.ValidateServiceName(cfg.Service); err != nil {
			return nil, fmt.Errorf("watch: WithService: %w", err)
		}
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = DefaultQueueBytes
	}
	if cfg.Probe <= 0 {
		cfg.Probe = DefaultProbe
	}
	if cfg.BlindAfter <= 0 {
		cfg.BlindAfter = DefaultBlindAfter
	}
	if cfg.BlindAfter < 2*cfg.Probe {
		return nil, fmt.Errorf("watch: WithProbe: blindAfter %v must be at least two probes (2 x %v)", cfg.BlindAfter, cfg.Probe)
	}
	if cfg.RegistryRefresh <= 0 {
		cfg.RegistryRefresh = 2 * time.Second
	}
	return &Monitor{cfg: cfg, tracker: NewTracker(cfg.Tracker...)}, nil
}

// Tracker returns the liveness tracker; it is safe for concurrent use.
func (m *Monitor) Tracker() *Tracker { return m.tracker }

// Stats returns the counters. It is safe to call at any time.
func (m *Monitor) Stats() Stats {
	return Stats{
		Received: m.received.Load(), Malformed: m.malformed.Load(), Dropped: m.dropped.Load(),
		Disconnects: m.disconnects.Load(), Blind: m.blind.Load(), Evicted: m.tracker.Evicted(),
		DownSince: unixTime(m.downSince.Load()), BlindSince: unixTime(m.blindSince.Load()),
	}
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// Seen returns the time up to which the monitor knows it has received
// every heartbeat published: when the latest probe answered on every
// subscription connection was sent. A watcher that must judge a span of
// time (monitor --once listening for a while) has seen all of it once
// Seen passes its end; while Valkey stalls, Seen stands still. It is safe
// to call at any time.
func (m *Monitor) Seen() time.Time { return m.sight.seen() }

// Subscription returns what the monitor subscribes to with PSUBSCRIBE:
// the pattern of every service's channel, or with WithService that
// service's channel alone (a pattern that matches only it: a service name
// holds no glob character). In sharded mode it subscribes instead to each
// service's channel in the registry, with SSUBSCRIBE.
func (m *Monitor) Subscription() string {
	if m.cfg.Service != "" {
		return m.cfg.Channel.Channel(m.cfg.Service)
	}
	return m.cfg.Channel.Pattern()
}

// received is one publication, decoded by the receiver.
type received struct {
	at      time.Time
	channel string
	msg     *wire.Message
	raw     []byte
	err     error
}

type control struct {
	err        error // disconnected
	subscribed bool
	at         time.Time
}

// Run watches until ctx is done, calling render for every event on the
// calling goroutine. It returns ctx's error; a Valkey that cannot be reached
// is reported with KindDisconnected and retried, not returned.
func (m *Monitor) Run(ctx context.Context, render func(Event)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := newPipe(m.cfg.Queue)
	ctl := make(chan control, 4)
	sub := m.newSubscription(p)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer sub.close()
		m.receive(ctx, sub, ctl)
	}()
	defer func() {
		cancel() // the receiver closes its connection and returns
		<-done
		// What the readers handed over and Run did not take is let go of,
		// so that a later Run starts with the queue's whole room.
		for {
			select {
			case b := <-p.out:
				m.release(p, b, 0)
			default:
				return
			}
		}
	}()

	d := &delivery{m: m, render: render, idle: true}
	defer d.alarm.stop()
	var refreshC <-chan time.Time
	if m.cfg.Refresh > 0 {
		t := time.NewTicker(m.cfg.Refresh)
		defer t.Stop()
		refreshC = t.C
	}
	probe := time.NewTicker(m.cfg.Probe)
	defer probe.Stop()
	vis := newVisibility(m.cfg.BlindAfter)
	for {
		d.idleWhenDrained(len(p.out))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case b := <-p.out:
			if m.onBatch != nil {
				m.onBatch(len(b))
			}
			for i := range b {
				// Once ctx is done, the rest of a batch is let go of
				// rather than rendered.
				if i%32 == 31 && ctx.Err() != nil {
					m.release(p, b, i)
					return ctx.Err()
				}
				d.queued(b[i])
				m.giveBack(b[i])
			}
			m.release(p, b, len(b))
		case c := <-ctl:
			switch {
			case c.err != nil:
				d.see(vis, vis.lost(c.at, c.err, m.sight.seen(), m.sight.lastAnswer()))
			case c.subscribed:
				n := m.loadLatest(ctx, d.emit)
				d.see(vis, vis.subscribed(c.at, time.Now(), n))
				d.rearm()
			}
		case <-d.alarm.c:
			d.due()
		case now := <-probe.C:
			d.report()
			m.sight.ping(now)
			d.see(vis, vis.probed(now, m.sight.seen(), m.sight.lastAnswer()))
			d.tick()
		case <-refreshC:
			d.report()
			d.emit(Event{Kind: KindRefresh, At: time.Now()})
		}
	}
}

// delivery is Run's side of the hand-off to render: every event passes
// through it, on Run's goroutine, and so do the tracker's verdicts on
// silence, which are events too.
type delivery struct {
	m      *Monitor
	render func(Event)
	idle   bool // nothing emitted since the last KindIdle (or ever)

	dropped, evicted int64 // as far as reported
	alarm            alarm // the tracker's next deadline
}

func (d *delivery) emit(e Event) {
	d.idle = false
	d.render(e)
}

// idleWhenDrained says KindIdle when the receiver has queued nothing more
// after events were emitted: a renderer that buffers its output flushes
// then, not after every event of a burst.
func (d *delivery) idleWhenDrained(queued int) {
	if !d.idle && queued == 0 {
		d.idle = true
		d.render(Event{Kind: KindIdle, At: time.Now()})
	}
}

// queued emits an event the receiver queued, and releases its room.
func (d *delivery) queued(e Event) {
	d.m.queued.Add(-int64(e.bytes))
	d.m.queuedEvents.Add(-1)
	d.emit(e)
	if e.Kind == KindTransition {
		d.rearm() // a heartbeat moved a deadline
	}
}

// report says how many events were dropped, and instances evicted, since
// it last said: counted where they happen, they are told at the pace of
// the probes rather than one event each.
func (d *delivery) report() {
	if n := d.m.dropped.Load(); n > d.dropped {
		d.emit(Event{Kind: KindDropped, At: time.Now(), Count: int(n - d.dropped)})
		d.dropped = n
	}
	if n := d.m.tracker.Evicted(); n > d.evicted {
		d.emit(Event{Kind: KindEvicted, At: time.Now(), Count: int(n - d.evicted)})
		d.evicted = n
	}
}

// tick emits the verdicts on silence up to what every connection is known
// to have delivered, and never past now, then waits for the next deadline.
func (d *delivery) tick() {
	seen := d.m.sight.seen()
	if now := time.Now(); now.Before(seen) {
		seen = now
	}
	for _, t := range d.m.tracker.TickAt(seen) {
		d.emit(Event{Kind: KindTransition, At: t.At, Transition: t})
	}
	for _, h := range d.m.tracker.HealthAt(seen) {
		d.emit(Event{Kind: KindHealth, At: h.At, Health: h})
	}
	d.rearm()
}

// due ticks for the deadline the alarm rang for: the alarm is spent, and
// rearm must not take it for one still pending.
func (d *delivery) due() {
	d.alarm.c = nil
	d.tick()
}

func (d *delivery) rearm() { d.alarm.set(d.m.tracker.NextDeadline()) }

// see carries out what visibility made of a fact: it tells the tracker
// first, so that the events find its verdicts already held, and counts
// and publishes the spells for Stats.
func (d *delivery) see(v *visibility, s step) {
	m := d.m
	if !s.unwatched.to.IsZero() {
		m.tracker.Unwatched(s.unwatched.from, s.unwatched.to)
	}
	if !s.hold.IsZero() {
		m.tracker.Hold(s.hold)
	}
	// A spell shows in Stats from the event that begins it to the one that
	// ends it, both included: a renderer reading Stats in either callback
	// sees it.
	if !v.downSince.IsZero() {
		m.downSince.Store(unixNano(v.downSince))
	}
	if !v.blindSince.IsZero() {
		m.blindSince.Store(unixNano(v.blindSince))
	}
	for _, e := range s.events {
		switch e.Kind {
		case KindDisconnected:
			m.disconnects.Add(1)
		case KindBlind:
			m.blind.Add(1)
		}
		d.emit(e)
	}
	m.downSince.Store(unixNano(v.downSince))
	m.blindSince.Store(unixNano(v.blindSince))
}

// alarm wakes Run at the tracker's next deadline.
type alarm struct {
	timer *time.Timer
	c     <-chan time.Time // nil while not armed
	armed time.Time
}

// set arms the alarm for next when it is in the future; one that has
// passed but is not yet seen through waits for the next probe.
func (a *alarm) set(next time.Time, ok bool) {
	if !ok || !next.After(time.Now()) {
		a.c = nil
		return
	}
	if a.c != nil && next.Equal(a.armed) {
		return // most heartbeats leave the earliest deadline where it was
	}
	a.armed = next
	if a.timer == nil {
		a.timer = time.NewTimer(time.Until(next))
	} else {
		a.timer.Reset(time.Until(next))
	}
	a.c = a.timer.C
}

func (a *alarm) stop() {
	if a.timer != nil {
		a.timer.Stop()
	}
}

// sight is how far the monitor has seen. Each subscription connection is
// a probe: pinged with the time as payload, it answers in order with the
// messages, so its answer proves that everything published before that
// time has been read.
type sight struct {
	mu     sync.Mutex
	probes map[*probe]struct{}
	last   time.Time // what was seen when the last probe went away
	// answeredAt is when an answer last arrived on any connection (Unix
	// nanoseconds): a subscription cut off before every answer, over and
	// over, sees nothing however often it reconnects.
	answeredAt atomic.Int64
}

// probe is one subscription connection's view.
type probe struct {
	ping  func(payload string) error
	seen  atomic.Int64 // Unix nanoseconds: the latest time answered for
	sight *sight
}

// newProbe registers a connection subscribed at (or after) at.
func (s *sight) newProbe(at time.Time, ping func(string) error) *probe {
	p := &probe{ping: ping}
	s.add(p, at)
	return p
}

// nothingToWatch registers a probe for a subscription that has no
// connection because it has nothing to subscribe to yet (a sharded monitor
// with an empty registry): it has seen everything up to the last time the
// registry was read and still said so, which the caller reports with
// registryRead. Pinging it does nothing: Valkey answering the registry is
// the answer.
func (s *sight) nothingToWatch(at time.Time) *probe {
	p := &probe{ping: func(string) error { return nil }}
	s.add(p, at)
	return p
}

// registryRead records that a read of the registry sent at at was
// answered, and found nothing to subscribe to.
func (p *probe) registryRead(at time.Time) {
	p.answered([]byte(strconv.FormatInt(at.UnixNano(), 10)))
}

func (s *sight) add(p *probe, at time.Time) {
	p.sight = s
	p.seen.Store(at.UnixNano())
	s.answeredAt.CompareAndSwap(0, at.UnixNano()) // the first subscription
	s.mu.Lock()
	if s.probes == nil {
		s.probes = make(map[*probe]struct{})
	}
	s.probes[p] = struct{}{}
	s.mu.Unlock()
}

// drop unregisters a connection that failed or closed.
func (s *sight) drop(p *probe) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.probes[p]; !ok {
		return
	}
	delete(s.probes, p)
	if t := time.Unix(0, p.seen.Load()); len(s.probes) == 0 || t.Before(s.last) {
		s.last = t
	}
}

// seen returns the time up to which every connection has delivered all
// it was sent; with no connection, what was seen when the last went away.
func (s *sight) seen() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.probes) == 0 {
		return s.last
	}
	var least int64
	for p := range s.probes {
		if v := p.seen.Load(); least == 0 || v < least {
			least = v
		}
	}
	return time.Unix(0, least)
}

// ping sends a probe on every connection. A failed write shows up as the
// connection's read error.
func (s *sight) ping(now time.Time) {
	payload := strconv.FormatInt(now.UnixNano(), 10)
	s.mu.Lock()
	defer s.mu.Unlock()
	for p := range s.probes {
		_ = p.ping(payload)
	}
}

// answered records a probe's answer, whose payload is the time it was sent.
func (p *probe) answered(payload []byte) {
	n, err := strconv.ParseInt(string(payload), 10, 64)
	if err != nil {
		return // not ours
	}
	p.sight.answeredAt.Store(time.Now().UnixNano())
	for {
		cur := p.seen.Load()
		if n <= cur || p.seen.CompareAndSwap(cur, n) {
			return
		}
	}
}

// lastAnswer is when an answer last arrived on any connection; zero
// before the first subscription.
func (s *sight) lastAnswer() time.Time { return unixTime(s.answeredAt.Load()) }

// ingest feeds one decoded publication to the tracker, then offers it to
// the renderer. It runs on a reading goroutine; false when ctx is done.
func (m *Monitor) ingest(ctx context.Context, ob *outbox, r received) bool {
	if m.afterIngest != nil {
		defer m.afterIngest()
	}
	m.received.Add(1)
	if r.err != nil {
		m.malformed.Add(1)
		return ob.offer(ctx, Event{Kind: KindMalformed, At: r.at, Channel: r.channel, Err: r.err, Raw: r.raw})
	}
	var transitions []Transition
	if m.cfg.NoHeartbeats {
		transitions = m.tracker.ObserveAt(r.msg, r.at) // decoded into again
	} else {
		var slot Slot
		transitions, slot = m.tracker.observeOwned(r.msg, r.at) // its names become the tracker's
		if !ob.offer(ctx, Event{Kind: KindHeartbeat, At: r.at, Channel: r.channel, Message: r.msg, Slot: slot, Raw: r.raw}) {
			return false
		}
	}
	for _, t := range transitions {
		// A verdict is never dropped: past the queue's bound it waits for
		// the renderer, and the reader with it, the unread heartbeats
		// waiting in the socket, where they are not judged (see outbox).
		if !ob.must(ctx, Event{Kind: KindTransition, At: t.At, Transition: t}) {
			return false
		}
	}
	return true
}

// decode checks one publication and that it belongs on its channel. It
// runs on the receiver's goroutine, on bytes valid only until it returns.
func (m *Monitor) decode(ds *decodeState, channel, payload []byte, at time.Time) received {
	// A heartbeat that is not shown is done with once the tracker has
	// taken what it keeps (a copy, when it keeps heartbeats), so its
	// message is reused.
	reuse := m.cfg.NoHeartbeats
	msg := ds.reuse
	switch {
	case reuse && msg != nil:
	case reuse:
		msg = new(wire.Message)
		ds.reuse = msg
	case m.cfg.ReuseMessages:
		msg, _ = m.lent.Get().(*wire.Message)
		if msg == nil {
			msg = new(wire.Message)
		}
	default:
		msg = new(wire.Message)
	}
	if err := wire.UnmarshalIntern(payload, msg, ds.intern); err != nil {
		m.takeBack(msg)
		return received{at: at, channel: string(channel), err: err, raw: append([]byte(nil), cut(payload, 200)...)}
	}
	if !ds.onItsChannel(m.cfg.Channel, channel, msg.ServiceName) {
		m.takeBack(msg)
		return received{at: at, channel: string(channel), raw: append([]byte(nil), cut(payload, 200)...),
			err: fmt.Errorf("heartbeat: service_name %q arrived on channel %q", msg.ServiceName, channel)}
	}
	r := received{at: at, channel: ds.channelName(m.cfg.Channel, msg.ServiceName), msg: msg}
	if m.cfg.KeepRaw {
		r.raw = append([]byte(nil), payload...)
	}
	return r
}

// giveBack takes back the message of a heartbeat event rendered or not
// shown, to decode into again, when messages are lent (WithReusedMessages).
// Its fields' room is emptied, so that it keeps nothing of this heartbeat
// alive, and let go of when it is larger than most heartbeats need: the
// queue's bytes count a message's room for fields (wire.Message.Footprint),
// and a thin heartbeat should not carry a fat one's.
func (m *Monitor) giveBack(e Event) {
	if e.Kind == KindHeartbeat {
		m.takeBack(e.Message)
	}
}

// takeBack is giveBack of a message itself: one decoded and not shown.
func (m *Monitor) takeBack(msg *wire.Message) {
	if !m.cfg.ReuseMessages || m.cfg.NoHeartbeats || msg == nil {
		return
	}
	fields := msg.Fields[:cap(msg.Fields)]
	clear(fields)
	if cap(fields) > lentFields {
		fields = nil
	}
	*msg = wire.Message{Fields: fields[:0]}
	m.lent.Put(msg)
}

// lentFields bounds the room for fields a lent message keeps.
const lentFields = 16

// onItsChannel reports whether a heartbeat of service arrived on that
// service's channel, without building the channel's name.
func (ds *decodeState) onItsChannel(t wire.ChannelTemplate, channel []byte, service string) bool {
	if c, ok := ds.channels[service]; ok {
		return string(channel) == c
	}
	s, ok := t.Service(string(channel))
	return ok && s == service
}

// channelName returns the channel of a service, built once per service.
func (ds *decodeState) channelName(t wire.ChannelTemplate, service string) string {
	if c, ok := ds.channels[service]; ok {
		return c
	}
	c := t.Channel(service)
	if len(ds.channels) < 10_000 {
		ds.channels[service] = c
	}
	return c
}

func cut(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	return b[:n]
}

// loadLatest reads the latest-state keys into the tracker and returns how
// many instances it found.
func (m *Monitor) loadLatest(ctx context.Context, emit func(Event)) int {
	if m.cfg.SkipLatest {
		return 0
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	now := m.tracker.Now()
	valid := 0
	// A batch at a time, into the tracker, which keeps what it keeps of
	// each: a fleet of large heartbeats costs a batch, not all of them.
	err := EachLatest(rctx, m.cfg.Client, m.cfg.KeyPrefix, m.cfg.Service, func(batch []Latest) {
		// Oldest first, so that each instance takes its place in the
		// tracker's eviction order by when it was last heard.
		slices.SortStableFunc(batch, func(a, b Latest) int { return cmp.Compare(b.Age, a.Age) })
		for _, l := range batch {
			if l.Err != nil {
				m.malformed.Add(1)
				emit(Event{Kind: KindMalformed, At: now, Channel: l.Key, Err: l.Err})
				continue
			}
			valid++
			for _, t := range m.tracker.ObserveAt(l.Message, now.Add(-l.Age)) {
				// Every instance the keys show was there at once: one
				// moment for all, so that history does not see a service
				// of several instances come up one at a time (down, for
				// a moment, below its minimum).
				t.At = now
				emit(Event{Kind: KindTransition, At: now, Transition: t})
			}
		}
	})
	if err != nil && ctx.Err() == nil {
		emit(Event{Kind: KindMalformed, At: now, Err: fmt.Errorf("reading latest-state keys: %w", err)})
	}
	return valid
}
