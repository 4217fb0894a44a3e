// Package panel is the admin panel: a live view of the fleet from the
// heartbeats, history and uptime from Valkey, an HTTP API, Server-Sent
// Events, metrics, and the web page, all in one http.Handler.
package panel

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/alerting"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/delivery"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/history"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/uptime"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// Config configures a Panel.
type Config struct {
	// Conn is the connection to Valkey, from watch.ConnectFromEnv.
	Conn watch.Connection
	// Retention is how long history is kept. Default 30 days.
	Retention time.Duration
	// Lease is the recorder lease's period: a standby takes over within
	// it when the recorder dies. Default 10 s.
	Lease time.Duration
	// Windows are the uptime windows shown. Default 1 h, 24 h, 7 d, 30 d.
	Windows []time.Duration
	// MinAlive is, per service, how many instances must be up for the
	// service to be up. Default 1.
	MinAlive map[string]int
	// Bars is how many intervals the heartbeat bars of an instance show.
	// Default 30.
	Bars int
	// Replica names this process in the lease. Default: host name, pid
	// and a random suffix.
	Replica string
	// DefaultInterval judges senders that do not say theirs.
	DefaultInterval time.Duration
	// MaxInstances bounds the instances tracked.
	MaxInstances int
	// Auth, when set, protects everything but /healthz and /readyz.
	Auth *Auth
	// Errorf reports failures, once per kind until they recover. Default:
	// standard error.
	Errorf func(format string, args ...any)
	// Coalesce is how often live updates are sent. Default 500 ms.
	Coalesce time.Duration
	// EventWriteTimeout cuts an event stream whose reader does not take
	// an update within it. Default 10 s.
	EventWriteTimeout time.Duration
	// ReconcileEvery, ForgetAfter: see history.RecorderConfig.
	ReconcileEvery, ForgetAfter time.Duration
	// Alerting configures the alert rules; nil is alerting.Default().
	// Alerts are evaluated by the replica that records, kept in Valkey
	// and shown by every replica, and sent to Receivers.
	Alerting *alerting.Config
	// Receivers deliver alerts (package delivery). The panel runs them.
	Receivers []Receiver
	// Page, when set, is served at the root, behind the same
	// authentication and headers as the API: a web page of the panel.
	Page fs.FS
}

// Receiver delivers alerts: delivery.NewAlertmanager, delivery.NewWebhook.
type Receiver interface {
	Name() string
	Notify(delivery.Alert)
	Run(ctx context.Context)
	Stats() delivery.Stats
}

// DefaultWindows are the uptime windows of the fleet overview.
var DefaultWindows = []time.Duration{time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour}

// Panel is one replica of the admin panel.
type Panel struct {
	cfg   Config
	mon   *watch.Monitor
	tr    *watch.Tracker
	store *history.Store
	lease *history.Lease
	rec   *history.Recorder
	hub   *hub
	met   *metrics
	alert *alerting.Engine

	started  time.Time
	loaded   atomic.Bool
	blind    atomic.Bool
	down     atomic.Bool // disconnected from Valkey
	received sync.Map    // watch.Key -> *beats

	reports      reportCache
	historyReads chan struct{} // bounds concurrent history requests
	streams      atomic.Int64  // event stream handlers running
	probeEvery   time.Duration // how often a crowded panel probes every event stream
}

// beats is what the panel keeps of an instance's heartbeats as they
// arrive: how many, and when the latest few came, for the bars.
type beats struct {
	mu       sync.Mutex
	received int64
	first    time.Time
	at       []time.Time // ring of the latest receive times
	next     int
}

// New returns a panel; it does nothing until Run.
func New(cfg Config) (*Panel, error) {
	if cfg.Conn.Client == nil {
		return nil, errors.New("panel: Config.Conn has no client")
	}
	if cfg.Lease == 0 {
		cfg.Lease = 10 * time.Second
	}
	if len(cfg.Windows) == 0 {
		cfg.Windows = DefaultWindows
	}
	if cfg.Bars <= 0 {
		cfg.Bars = 30
	}
	if cfg.Coalesce <= 0 {
		cfg.Coalesce = 500 * time.Millisecond
	}
	if cfg.EventWriteTimeout <= 0 {
		cfg.EventWriteTimeout = 10 * time.Second
	}
	if cfg.Replica == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		cfg.Replica = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	if cfg.Errorf == nil {
		cfg.Errorf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, "adminpanel: "+format+"\n", args...) }
	}
	for svc, n := range cfg.MinAlive {
		if err := wire.ValidateServiceName(svc); err != nil || n < 1 {
			return nil, fmt.Errorf("panel: min alive %s=%d: want a service name and a count of at least 1", svc, n)
		}
	}
	store, err := history.NewStore(cfg.Conn.Client, "", cfg.Retention)
	if err != nil {
		return nil, err
	}
	lease, err := store.NewLease(cfg.Replica, cfg.Lease)
	if err != nil {
		return nil, err
	}
	mcfg := cfg.Conn.Config()
	// Dead and stopped instances stay listed for a day, not the
	// monitor's 15 minutes: an operator looks for them the next morning.
	mcfg.Tracker = []watch.TrackerOption{watch.WithHeartbeats(), watch.WithRetention(24 * time.Hour)}
	if cfg.DefaultInterval > 0 {
		mcfg.Tracker = append(mcfg.Tracker, watch.WithDefaultInterval(cfg.DefaultInterval))
	}
	if cfg.MaxInstances > 0 {
		mcfg.Tracker = append(mcfg.Tracker, watch.WithMaxInstances(cfg.MaxInstances))
	}
	mon, err := watch.New(mcfg)
	if err != nil {
		return nil, err
	}
	p := &Panel{cfg: cfg, mon: mon, tr: mon.Tracker(), store: store, lease: lease, hub: newHub(), historyReads: make(chan struct{}, 4),
		probeEvery: 2 * time.Second}
	p.reports.wake = make(chan struct{}, 1)
	p.rec = history.NewRecorder(store, lease, p.tr, history.RecorderConfig{
		ReconcileEvery: cfg.ReconcileEvery, ForgetAfter: cfg.ForgetAfter, Errorf: cfg.Errorf})
	acfg := alerting.Default()
	if cfg.Alerting != nil {
		acfg = *cfg.Alerting
	}
	for svc, n := range cfg.MinAlive {
		if _, ok := acfg.MinAlive[svc]; !ok {
			acfg.MinAlive[svc] = n
		}
	}
	p.alert = alerting.New(acfg, p.tr, cfg.Conn.Client, p.Watching, p.send, cfg.Errorf)
	if p.met, err = newMetrics(p); err != nil {
		return nil, err
	}
	return p, nil
}

// Delivered notes that a webhook acknowledged a's notification (give it
// to delivery.WebhookConfig.Delivered).
func (p *Panel) Delivered(a delivery.Alert) {
	p.alert.MarkDelivered(context.Background(), a)
}

// send hands an alert to every receiver, stamped with the lease's epoch
// for their fence; none blocks.
func (p *Panel) send(a alerting.Alert) { p.sendTo(a, "") }

// sendTo hands an alert to the receivers named name ("": every one).
func (p *Panel) sendTo(a alerting.Alert, name string) {
	a.Epoch = p.lease.Epoch()
	for _, r := range p.cfg.Receivers {
		if name == "" || r.Name() == name {
			r.Notify(a)
		}
	}
}

// Allow is the receivers' fence (delivery.Fence): alerts made under epoch
// may be sent only while this replica records under that epoch, as Valkey
// says at the moment of sending. A replica that stopped leading, or that
// Valkey says lost the lease, sends nothing. When Valkey cannot answer,
// the replica's own view decides: the one alert that matters then, that
// the heartbeat source is unreachable, must still go out, and a replica
// that lost the lease while paused learns so from Valkey when it resumes.
func (p *Panel) Allow(ctx context.Context, epoch int64) error {
	if !p.rec.Leading() || epoch != p.lease.Epoch() {
		return fmt.Errorf("made under lease epoch %d, and this replica no longer records under it", epoch)
	}
	holds, err := p.lease.Holds(ctx, epoch)
	if err == nil && !holds {
		return fmt.Errorf("made under lease epoch %d, which another replica has taken over", epoch)
	}
	return nil
}

// evaluate runs the alert rules every second while this replica records.
// On becoming the recorder, and whenever its lease was lost and taken
// again meanwhile (a new epoch), it takes the alerts firing over from
// Valkey and hands them to the receivers again: Alertmanager keeps one
// alert per label set, and the webhook sends only changes.
func (p *Panel) evaluate(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var epoch int64 // the lease's epoch the engine's state is of; 0: none
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		if !p.rec.Leading() {
			epoch = 0
			continue
		}
		if e := p.lease.Epoch(); e != epoch {
			if !p.takeover(ctx, now) {
				continue
			}
			epoch = e
		}
		p.alert.Evaluate(ctx, now)
	}
}

// takeover loads the alerts firing and hands each receiver what it must
// hear again; false when Valkey could not be read.
func (p *Panel) takeover(ctx context.Context, now time.Time) bool {
	active, err := p.alert.Takeover(ctx, now)
	if err != nil {
		p.cfg.Errorf("%v", err)
		return false
	}
	for _, a := range active {
		p.sendTo(a, "alertmanager")
	}
	// A webhook hears only changes: what a replica that died had queued
	// and not delivered is delivered now.
	fire, resolve, err := p.alert.Undelivered(ctx, now)
	if err != nil {
		p.cfg.Errorf("%v", err)
		return true
	}
	for _, a := range append(fire, resolve...) {
		p.sendTo(a, "webhook")
	}
	return true
}

// Run watches, records while it holds the lease, and sends live updates,
// until ctx is done. It returns nil then, or the monitor's error.
func (p *Panel) Run(ctx context.Context) error {
	p.started = time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(4 + len(p.cfg.Receivers))
	for _, r := range p.cfg.Receivers {
		go func() { defer wg.Done(); r.Run(ctx) }()
	}
	go func() { defer wg.Done(); p.evaluate(ctx) }()
	go func() { defer wg.Done(); _ = p.rec.Run(ctx) }()
	go func() { defer wg.Done(); p.hub.run(ctx, p.cfg.Coalesce, p.flush) }()
	go func() { defer wg.Done(); p.reports.refresher(ctx, p) }()
	err := p.mon.Run(ctx, p.observe)
	cancel()
	wg.Wait()
	p.hub.closeAll()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return errors.Join(err, p.met.shutdown())
}

// Leading reports whether this replica records history now.
func (p *Panel) Leading() bool { return p.rec.Leading() }

// observe takes every event of the monitor.
func (p *Panel) observe(e watch.Event) {
	p.rec.Observe(e)
	switch e.Kind {
	case watch.KindHeartbeat:
		k := watch.Key{Service: e.Message.ServiceName, Instance: e.Message.InstanceID}
		v, _ := p.received.LoadOrStore(k, &beats{at: make([]time.Time, p.cfg.Bars)})
		b := v.(*beats)
		b.mu.Lock()
		b.received++
		if b.first.IsZero() {
			b.first = e.At
		}
		b.at[b.next] = e.At
		b.next = (b.next + 1) % len(b.at)
		b.mu.Unlock()
		p.hub.touch(k)
	case watch.KindTransition:
		p.hub.touch(e.Transition.Key)
		p.hub.transition(e.Transition)
		if e.Transition.To == watch.Dead || e.Transition.To == watch.Stopped || e.Transition.From == watch.Unknown {
			p.reports.invalidate(e.Transition.Service)
		}
	case watch.KindLoaded:
		p.loaded.Store(true)
		p.down.Store(false)
		p.hub.changedAll()
	case watch.KindReconnected:
		if p.down.Swap(false) {
			p.cfg.Errorf("watching again after %v", e.Downtime.Round(time.Millisecond))
		}
		p.hub.changedAll()
	case watch.KindDisconnected:
		// Said once per episode: a wrong password or an unreachable
		// Valkey would otherwise be visible only in /readyz.
		if !p.down.Swap(true) {
			p.cfg.Errorf("cannot watch: %v", e.Err)
		}
		p.hub.changedAll()
	case watch.KindBlind:
		p.blind.Store(true)
		p.hub.changedAll()
	case watch.KindCaughtUp:
		p.blind.Store(false)
		p.hub.changedAll()
	}
	p.forgetBeats()
}

// forgetBeats drops the bars of instances the tracker has forgotten, now
// and then, so that they cannot grow without bound.
func (p *Panel) forgetBeats() {
	if p.met.beatsSwept.Load()+int64(time.Minute) > time.Now().UnixNano() {
		return
	}
	p.met.beatsSwept.Store(time.Now().UnixNano())
	p.received.Range(func(k, _ any) bool {
		if _, ok := p.tr.Get(k.(watch.Key)); !ok {
			p.received.Delete(k)
		}
		return true
	})
}

// Watching reports whether the panel sees the fleet: it has read the
// latest-state keys, is subscribed, and its probes are answered.
func (p *Panel) Watching() bool { return p.loaded.Load() && !p.blind.Load() && !p.down.Load() }

func (p *Panel) minAlive(svc string) int {
	if n := p.cfg.MinAlive[svc]; n > 0 {
		return n
	}
	return 1
}

// bars returns, oldest first, whether a heartbeat arrived in each of the
// last n intervals: 1 yes, 0 no, -1 before the panel first heard the
// instance.
func (p *Panel) bars(k watch.Key, interval time.Duration, now time.Time) []int {
	out := make([]int, p.cfg.Bars)
	v, ok := p.received.Load(k)
	if !ok || interval <= 0 {
		for i := range out {
			out[i] = -1
		}
		return out
	}
	b := v.(*beats)
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range out {
		end := now.Add(-time.Duration(len(out)-1-i) * interval)
		start := end.Add(-interval)
		if end.Before(b.first) {
			out[i] = -1
			continue
		}
		for _, t := range b.at {
			if !t.IsZero() && t.After(start) && !t.After(end) {
				out[i] = 1
				break
			}
		}
	}
	return out
}

func (p *Panel) receivedCount(k watch.Key) int64 {
	v, ok := p.received.Load(k)
	if !ok {
		return 0
	}
	b := v.(*beats)
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.received
}

// reportCache holds the uptime reports of every service for every window,
// recomputed from history in the background.
type reportCache struct {
	history entryCache
	skipped map[string]bool // services whose history could not be read, reported
	mu      sync.Mutex
	at      time.Time
	reports map[string]map[time.Duration]uptime.ServiceReport // service -> window -> report
	stale   map[string]bool
	err     error
	wake    chan struct{} // made by New
}

func (c *reportCache) invalidate(svc string) {
	c.mu.Lock()
	if c.stale == nil {
		c.stale = map[string]bool{}
	}
	c.stale[svc] = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// refresher recomputes the reports every 10 s, and soon after a
// transition that changes uptime.
func (c *reportCache) refresher(ctx context.Context, p *Panel) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		c.compute(ctx, p)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.wake:
			// Let the recorder write the transition first.
			w := time.NewTimer(200 * time.Millisecond)
			select {
			case <-ctx.Done():
				w.Stop()
				return
			case <-w.C:
			}
		}
	}
}

func (c *reportCache) compute(ctx context.Context, p *Panel) {
	now := time.Now()
	longest := slices.Max(p.cfg.Windows)
	svcs, err := p.store.Services(ctx)
	var gaps []history.Gap
	if err == nil {
		gaps, err = p.store.Gaps(ctx, now.Add(-longest))
	}
	out := map[string]map[time.Duration]uptime.ServiceReport{}
	var skipped []error
	for _, svc := range svcs {
		if err != nil {
			break
		}
		entries, serr := c.history.read(ctx, p, svc, now)
		if serr != nil {
			if ctx.Err() != nil {
				err = serr
				break
			}
			skipped = append(skipped, serr) // that service only
			continue
		}
		byWindow := map[time.Duration]uptime.ServiceReport{}
		for _, w := range p.cfg.Windows {
			byWindow[w] = uptime.Compute(svc, entries, gaps, uptime.Window{From: now.Add(-w), To: now}, p.minAlive(svc))
		}
		out[svc] = byWindow
	}
	if err == nil && len(skipped) == len(svcs) && len(svcs) > 0 {
		err = errors.Join(skipped...)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	failing := c.err != nil
	c.err = err
	if err != nil {
		if ctx.Err() == nil && !failing {
			p.cfg.Errorf("reading history: %v (reported once until it recovers)", err)
		}
		return
	}
	if failing {
		p.cfg.Errorf("reading history again")
	}
	for _, e := range skipped {
		if !c.skipped[e.Error()] {
			p.cfg.Errorf("reading history: %v; the other services are shown", e)
		}
	}
	c.skipped = map[string]bool{}
	for _, e := range skipped {
		c.skipped[e.Error()] = true
	}
	c.at, c.reports, c.stale = now, out, nil
	p.hub.changedAll() // new uptime figures for every card
}

// maxEntries bounds the history entries kept in memory per service: a
// service that changes state every 10 s for 30 days has 260,000.
const maxEntries = 300_000

// entryCache keeps every service's history entries as read so far, and
// reads only what was added since: history only grows at its end.
type entryCache struct {
	mu       sync.Mutex
	services map[string]*cachedEntries
}

type cachedEntries struct {
	mu      sync.Mutex
	entries []history.Entry
	last    string // the id of the last entry read
	capped  bool
}

// read returns a service's entries within the retention, oldest first;
// the slice is shared: read it, never change it.
func (c *entryCache) read(ctx context.Context, p *Panel, svc string, now time.Time) ([]history.Entry, error) {
	c.mu.Lock()
	if c.services == nil {
		c.services = map[string]*cachedEntries{}
	}
	ce, ok := c.services[svc]
	if !ok {
		ce = &cachedEntries{}
		c.services[svc] = ce
	}
	c.mu.Unlock()
	ce.mu.Lock()
	defer ce.mu.Unlock()
	for {
		more, last, err := p.store.EntriesAfter(ctx, svc, ce.last, 10_000)
		if err != nil {
			return nil, err
		}
		ce.entries, ce.last = append(ce.entries, more...), last
		if n := len(ce.entries) - maxEntries; n > 0 {
			if !ce.capped {
				p.cfg.Errorf("history of %q holds more than %d entries: uptime is computed from the latest %d", svc, maxEntries, maxEntries)
				ce.capped = true
			}
			ce.entries = slices.Clone(ce.entries[n:])
		}
		if len(more) < 10_000 {
			break
		}
	}
	// Trimmed in Valkey past the retention: trimmed here too.
	cut := now.Add(-p.store.Retention())
	i := 0
	for i < len(ce.entries) && ce.entries[i].At.Before(cut) {
		i++
	}
	if i > 0 {
		ce.entries = ce.entries[i:]
	}
	return ce.entries[:len(ce.entries):len(ce.entries)], nil
}

func (c *reportCache) get(svc string, w time.Duration) (uptime.ServiceReport, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.reports[svc][w]
	return r, ok
}
