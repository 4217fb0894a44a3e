// Package monitor is the heartbeat monitor's engine: it subscribes to
// heartbeat:service:*, reads the latest-state keys so that instances appear
// at once, decodes and checks every message, and feeds a liveness tracker
// whose own timing detects silence. The examples/monitor command and the
// demo render its events.
//
// All events are delivered on the goroutine that called Run, one at a time,
// so a renderer may read the tracker from its callback without locking. A
// receiver goroutine reads the subscription into a bounded queue: when the
// renderer cannot keep up, heartbeats are dropped and counted, never
// buffered without bound. After a lost connection the monitor reconnects with
// a bounded back-off, re-reads the latest-state keys and says how long it
// was disconnected.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/internal/heartbeat"
	"github.com/otel-heartbeat/heartbeat/internal/liveness"
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
	// until KindReconnected are lost.
	KindDisconnected
	// KindReconnected: subscribed again (Downtime) and latest-state keys
	// re-read (Count).
	KindReconnected
	// KindLoaded: latest-state keys read at start (Count).
	KindLoaded
	// KindDropped: heartbeats dropped because the renderer was too slow
	// (Count since the last such event).
	KindDropped
	// KindRefresh: a periodic tick for redrawing (see Config.Refresh).
	KindRefresh
)

// Event is something the monitor saw. Raw is read-only: it shares memory
// with the received message.
type Event struct {
	Kind       Kind
	At         time.Time
	Channel    string
	Message    *heartbeat.Message
	Raw        []byte
	Transition liveness.Transition
	Err        error
	Count      int
	Downtime   time.Duration
}

// Config configures a Monitor.
type Config struct {
	// Client is the connection to Valkey. Run does not close it.
	Client redis.UniversalClient
	// Endpoint names the server in messages, without credentials.
	Endpoint string
	// ChannelPrefix and KeyPrefix default to heartbeat:service: and
	// heartbeat:instance:.
	ChannelPrefix, KeyPrefix string
	// Service, when set, limits the monitor to one service.
	Service string
	// Tracker options: retention and instance bound.
	Tracker []liveness.Option
	// Queue bounds the heartbeats waiting for the renderer. Default 10000.
	Queue int
	// Refresh, when positive, emits KindRefresh that often.
	Refresh time.Duration
	// SkipLatest disables reading the latest-state keys.
	SkipLatest bool
	// KeepRaw keeps each heartbeat's JSON in Event.Raw (a copy per
	// message); without it Raw is set for malformed messages only.
	KeepRaw bool
	// Sharded subscribes with SSUBSCRIBE to the channel of every service in
	// the registry set, on the node that owns it, instead of PSUBSCRIBE.
	Sharded bool
	// RegistryRefresh is how often, in sharded mode, the registry is read
	// for new services. Default 2 s.
	RegistryRefresh time.Duration
}

// Stats counts what the monitor has seen since it started.
type Stats struct {
	Received, Malformed, Dropped, Disconnects int64
}

// Monitor watches heartbeats.
type Monitor struct {
	cfg     Config
	tracker *liveness.Tracker
	stats   Stats

	dropped atomic.Int64 // by the receiver, not yet reported
	onDrop  func()       // tests: called by the receiver on each drop
}

// decodeState is what one receiving goroutine reuses between messages.
type decodeState struct {
	channels map[string]string   // channel name of each service
	intern   *heartbeat.Interner // names, keys and states
}

func newDecodeState() *decodeState {
	return &decodeState{channels: make(map[string]string), intern: heartbeat.NewInterner(4096)}
}

// New returns a monitor; it does not connect until Run.
func New(cfg Config) (*Monitor, error) {
	if cfg.Client == nil {
		return nil, errors.New("monitor: no client")
	}
	if cfg.ChannelPrefix == "" {
		cfg.ChannelPrefix = heartbeat.DefaultChannelPrefix
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = heartbeat.DefaultKeyPrefix
	}
	if cfg.Service != "" {
		if err := heartbeat.ValidateServiceName(cfg.Service); err != nil {
			return nil, fmt.Errorf("monitor: --service: %w", err)
		}
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 10_000
	}
	if cfg.RegistryRefresh <= 0 {
		cfg.RegistryRefresh = 2 * time.Second
	}
	return &Monitor{cfg: cfg, tracker: liveness.New(cfg.Tracker...)}, nil
}

// Tracker returns the liveness tracker. Read it only from an event callback
// or after Run has returned.
func (m *Monitor) Tracker() *liveness.Tracker { return m.tracker }

// Stats returns the counters. Read it only from an event callback or after
// Run has returned.
func (m *Monitor) Stats() Stats { return m.stats }

// Pattern returns the PSUBSCRIBE pattern.
func (m *Monitor) Pattern() string {
	if m.cfg.Service != "" {
		return m.cfg.ChannelPrefix + m.cfg.Service
	}
	return m.cfg.ChannelPrefix + "*"
}

// received is one publication, decoded by the receiver.
type received struct {
	at      time.Time
	channel string
	msg     *heartbeat.Message
	raw     []byte
	err     error
}

type control struct {
	err        error // disconnected
	subscribed bool
	at         time.Time
}

// Run watches until ctx is done, calling emit for every event on the
// calling goroutine. It returns ctx's error; a Valkey that cannot be reached
// is reported with KindDisconnected and retried, not returned.
func (m *Monitor) Run(ctx context.Context, emit func(Event)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	in := make(chan received, m.cfg.Queue)
	ctl := make(chan control, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if m.cfg.Sharded {
			m.receiveSharded(ctx, in, ctl)
		} else if o, ok := leanOptions(m.cfg.Client); ok {
			m.receiveLean(ctx, o, in, ctl)
		} else {
			m.receiveGoRedis(ctx, in, ctl)
		}
	}()
	defer func() {
		cancel() // the receiver closes its connection and returns
		<-done
	}()

	var timer *time.Timer
	var timerC <-chan time.Time
	var armed time.Time
	resetTimer := func() {
		next, ok := m.tracker.NextDeadline()
		if !ok {
			timerC = nil
			return
		}
		if timerC != nil && next.Equal(armed) {
			return // most heartbeats leave the earliest deadline where it was
		}
		armed = next
		d := time.Until(next)
		if d < 0 {
			d = 0
		}
		if timer == nil {
			timer = time.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		timerC = timer.C
	}
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	var refreshC <-chan time.Time
	if m.cfg.Refresh > 0 {
		t := time.NewTicker(m.cfg.Refresh)
		defer t.Stop()
		refreshC = t.C
	}

	first := true
	var downSince time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case r := <-in:
			m.handle(r, emit)
			m.reportDropped(emit)
			resetTimer()
		case c := <-ctl:
			switch {
			case c.err != nil:
				if downSince.IsZero() {
					downSince = c.at
					m.stats.Disconnects++
					emit(Event{Kind: KindDisconnected, At: c.at, Err: c.err})
				}
			case c.subscribed:
				n := m.loadLatest(ctx, emit)
				if first {
					emit(Event{Kind: KindLoaded, At: m.tracker.Now(), Count: n})
				} else if !downSince.IsZero() {
					emit(Event{Kind: KindReconnected, At: c.at, Downtime: c.at.Sub(downSince), Count: n})
				}
				first, downSince = false, time.Time{}
				resetTimer()
			}
		case <-timerC:
			timerC = nil
			for _, t := range m.tracker.Tick() {
				emit(Event{Kind: KindTransition, At: t.At, Transition: t})
			}
			resetTimer()
		case <-refreshC:
			m.reportDropped(emit)
			emit(Event{Kind: KindRefresh, At: m.tracker.Now()})
		}
	}
}

// sendControl passes a connection event to Run; false when ctx is done.
func sendControl(ctx context.Context, ctl chan<- control, c control) bool {
	select {
	case ctl <- c:
		return true
	case <-ctx.Done():
		return false
	}
}

// deliver queues a publication for Run, or drops and counts it when Run
// is behind: the queue never grows past its bound.
func (m *Monitor) deliver(in chan<- received, r received) {
	select {
	case in <- r:
	default:
		m.dropped.Add(1)
		if m.onDrop != nil {
			m.onDrop()
		}
	}
}

// receiveLean reads the subscription with the lean subscriber until ctx is
// done, reconnecting with a bounded back-off. It is the only goroutine the
// monitor starts besides Run's, and Run waits for it.
func (m *Monitor) receiveLean(ctx context.Context, o subscriberOptions, in chan<- received, ctl chan<- control) {
	ds := newDecodeState()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		sub, err := dialSubscriber(ctx, o, "PSUBSCRIBE", m.Pattern())
		if err != nil {
			if ctx.Err() != nil || !sendControl(ctx, ctl, control{err: err, at: time.Now()}) || !wait(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		stop := context.AfterFunc(ctx, func() { _ = sub.close() })
		backoff = 100 * time.Millisecond
		if !sendControl(ctx, ctl, control{subscribed: true, at: time.Now()}) {
			stop()
			_ = sub.close()
			return
		}
		for {
			kind, ch, payload, err := sub.frame()
			var big *oversized
			switch {
			case errors.As(err, &big):
				m.deliver(in, received{at: time.Now(), channel: string(ch), err: big})
				continue
			case err != nil:
			case kind == "pmessage":
				m.deliver(in, m.decode(ds, ch, payload, time.Now()))
				continue
			default:
				continue
			}
			stop()
			_ = sub.close()
			if ctx.Err() != nil || !sendControl(ctx, ctl, control{err: err, at: time.Now()}) || !wait(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			break
		}
	}
}

// receiveGoRedis reads the subscription through go-redis, for clients the
// lean subscriber cannot stand in for (Cluster, Sentinel, custom dialers
// and credential providers).
func (m *Monitor) receiveGoRedis(ctx context.Context, in chan<- received, ctl chan<- control) {
	ds := newDecodeState()
	ps := m.cfg.Client.PSubscribe(ctx)
	defer ps.Close()
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() }) // unblocks Receive
	defer stop()
	backoff := 100 * time.Millisecond
	subscribed := false
	for ctx.Err() == nil {
		if !subscribed {
			if err := ps.PSubscribe(ctx, m.Pattern()); err != nil {
				if !sendControl(ctx, ctl, control{err: err, at: time.Now()}) || !wait(ctx, backoff) {
					return
				}
				backoff = min(2*backoff, 5*time.Second)
				continue
			}
			subscribed = true
		}
		msg, err := ps.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// go-redis reconnects and resubscribes on the next Receive.
			if !sendControl(ctx, ctl, control{err: err, at: time.Now()}) || !wait(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		switch msg := msg.(type) {
		case *redis.Subscription:
			backoff = 100 * time.Millisecond
			if !sendControl(ctx, ctl, control{subscribed: true, at: time.Now()}) {
				return
			}
		case *redis.Message:
			// Views, not copies: nothing writes to them, and the decoder
			// keeps no reference into its input.
			ch := unsafe.Slice(unsafe.StringData(msg.Channel), len(msg.Channel))
			payload := unsafe.Slice(unsafe.StringData(msg.Payload), len(msg.Payload))
			m.deliver(in, m.decode(ds, ch, payload, time.Now()))
		}
	}
}

func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (m *Monitor) reportDropped(emit func(Event)) {
	if n := m.dropped.Swap(0); n > 0 {
		m.stats.Dropped += n
		emit(Event{Kind: KindDropped, At: m.tracker.Now(), Count: int(n)})
	}
}

// handle feeds one decoded publication to the tracker and the renderer.
func (m *Monitor) handle(r received, emit func(Event)) {
	m.stats.Received++
	if r.err != nil {
		m.stats.Malformed++
		emit(Event{Kind: KindMalformed, At: r.at, Channel: r.channel, Err: r.err, Raw: r.raw})
		return
	}
	emit(Event{Kind: KindHeartbeat, At: r.at, Channel: r.channel, Message: r.msg, Raw: r.raw})
	for _, t := range m.tracker.ObserveAt(r.msg, r.at) {
		emit(Event{Kind: KindTransition, At: t.At, Transition: t})
	}
}

// decode checks one publication and that it belongs on its channel. It
// runs on the receiver's goroutine, on bytes valid only until it returns.
func (m *Monitor) decode(ds *decodeState, channel, payload []byte, at time.Time) received {
	msg := new(heartbeat.Message)
	if err := heartbeat.UnmarshalIntern(payload, msg, ds.intern); err != nil {
		return received{at: at, channel: string(channel), err: err, raw: append([]byte(nil), cut(payload, 200)...)}
	}
	prefix := m.cfg.ChannelPrefix
	if len(channel) < len(prefix) || string(channel[:len(prefix)]) != prefix || string(channel[len(prefix):]) != msg.ServiceName {
		return received{at: at, channel: string(channel), raw: append([]byte(nil), cut(payload, 200)...),
			err: fmt.Errorf("heartbeat: service_name %q arrived on the channel of %q", msg.ServiceName, strings.TrimPrefix(string(channel), prefix))}
	}
	r := received{at: at, channel: ds.channelName(m.cfg.ChannelPrefix, msg.ServiceName), msg: msg}
	if m.cfg.KeepRaw {
		r.raw = append([]byte(nil), payload...)
	}
	return r
}

// channelName returns the channel of a service, built once per service.
func (ds *decodeState) channelName(prefix, service string) string {
	if c, ok := ds.channels[service]; ok {
		return c
	}
	c := prefix + service
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
	latest, err := ReadLatest(rctx, m.cfg.Client, m.cfg.KeyPrefix, m.cfg.Service)
	now := m.tracker.Now()
	valid := 0
	for _, l := range latest {
		if l.Err != nil {
			m.stats.Malformed++
			emit(Event{Kind: KindMalformed, At: now, Channel: l.Key, Err: l.Err})
			continue
		}
		valid++
		for _, t := range m.tracker.ObserveAt(l.Message, now.Add(-l.Age)) {
			emit(Event{Kind: KindTransition, At: t.At, Transition: t})
		}
	}
	if err != nil && ctx.Err() == nil {
		emit(Event{Kind: KindMalformed, At: now, Err: fmt.Errorf("reading latest-state keys: %w", err)})
	}
	return valid
}
