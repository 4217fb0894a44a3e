// Package panel is the admin panel's server side, for a host to mount: a
// live view of the fleet from the host's watcher, history and uptime from
// Valkey, alerts evaluated by one replica and delivered to Alertmanager
// and webhooks, an HTTP API with Server-Sent Events, liveness metrics for
// Prometheus and, when given one, a web page, in one http.Handler.
//
// The host owns the watcher and feeds the panel its events:
//
//	mon, err := watch.New(conn, watch.WithTracker(panel.TrackerOptions()...), watch.WithReusedMessages())
//	p, err := panel.New(mon.Tracker(), conn.Client, panel.WithEndpoint(conn.Endpoint))
//	panelCtx, stopPanel := context.WithCancel(context.WithoutCancel(ctx))
//	go p.Run(panelCtx)            // records, evaluates alerts, delivers, sends live updates
//	go func() {
//		defer stopPanel()         // after the watcher: the last heartbeats' values are written
//		mon.Run(ctx, p.Observe)   // or a callback of the host's that calls p.Observe
//	}()
//	mux.Handle("/heartbeats/", http.StripPrefix("/heartbeats", p.Handler()))
//
// Several replicas may run against one Valkey: all serve the API, one at a
// time records history and evaluates alerts, chosen by a lease whose
// fencing epoch every write and every alert sent is checked against.
package panel

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/internal/report"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/alerting"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/delivery"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/history"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/series"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/uptime"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// Panel is one replica of the admin panel.
type Panel struct {
	cfg       config
	tr        *watch.Tracker
	client    redis.UniversalClient
	store     *history.Store
	lease     *history.Lease
	rec       *history.Recorder
	hub       *hub
	met       *metrics
	alert     *alerting.Engine
	receivers []delivery.Receiver

	series       *series.Store  // nil: values over time are not kept
	seriesW      *series.Writer // written by the recorder only
	seriesFailed report.Reporter
	seriesLosses losses
	seriesTicks  <-chan time.Time // when the writer writes, when not every second (a test's)

	started  time.Time
	loaded   atomic.Bool
	blind    atomic.Bool
	down     atomic.Bool // disconnected from Valkey
	arrivals *arrivals

	reports      reportCache
	recall       chan struct{} // the watcher read the keys: remember the gone from history
	historyReads chan struct{} // bounds concurrent reads of history and values (readSlot)
	streams      atomic.Int64  // event stream handlers running
	probeEvery   time.Duration // how often a crowded panel probes every event stream
}

func defaultReplica() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// New returns a panel over tracker, the host's watcher's (see
// TrackerOptions), keeping history and alerts in Valkey through client;
// it does nothing until Run, and hears of the watcher's events through
// Observe.
func New(tracker *watch.Tracker, client redis.UniversalClient, opts ...Option) (*Panel, error) {
	if tracker == nil || client == nil {
		return nil, errors.New("panel: New needs the watcher's tracker and a Valkey client")
	}
	cfg := newConfig(opts)
	for svc, n := range cfg.minAlive {
		if err := wire.ValidateServiceName(svc); err != nil || n < 1 {
			return nil, fmt.Errorf("panel: WithMinAlive %s=%d: want a service name and a count of at least 1", svc, n)
		}
	}
	if cfg.metricsLink != "" {
		if err := CheckMetricsLink(cfg.metricsLink); err != nil {
			return nil, fmt.Errorf("panel: WithMetricsLink: %w", err)
		}
	}
	store, err := history.NewStore(client, history.WithRetention(cfg.retention))
	if err != nil {
		return nil, err
	}
	lease, err := store.NewLease(cfg.replica, cfg.lease)
	if err != nil {
		return nil, err
	}
	p := &Panel{cfg: cfg, tr: tracker, client: client, store: store, lease: lease, hub: newHub(),
		historyReads: make(chan struct{}, 4), probeEvery: 250 * time.Millisecond, started: time.Now()}
	p.arrivals = newArrivals(cfg.bars, p.started)
	if cfg.seriesRetention >= 0 {
		if p.series, err = series.NewStore(client, series.WithRetention(cmp.Or(cfg.seriesRetention, series.DefaultSpan))); err != nil {
			return nil, fmt.Errorf("panel: WithSeriesRetention: %w", err)
		}
		p.seriesW = series.NewWriter(p.series, 0)
		p.seriesFailed.Handle = func(err error) { cfg.errorf("%v", err) }
	}
	p.reports.wake = make(chan struct{}, 1)
	p.recall = make(chan struct{}, 1)
	p.rec = history.NewRecorder(store, lease, tracker, history.WithReconcileEvery(cfg.reconcileEvery),
		history.WithForgetAfter(cfg.forgetAfter), history.WithErrorf(cfg.errorf))
	aopts := append([]alerting.Option{alerting.WithErrorf(cfg.errorf), alerting.WithWriteFence(lease)}, cfg.alerting...)
	if p.alert, err = alerting.New(tracker, client, append(aopts, alerting.WithMinAlive(cfg.minAlive))...); err != nil {
		return nil, err
	}
	fence := delivery.WithFence(delivery.FenceFunc(p.allow))
	noted := delivery.WithDelivered(func(a delivery.Alert) { p.alert.MarkDelivered(context.Background(), a) })
	for _, spec := range cfg.receivers {
		r, err := spec.build(fence, noted, delivery.WithErrorf(cfg.errorf))
		if err != nil {
			return nil, err
		}
		p.receivers = append(p.receivers, r)
	}
	if p.met, err = newMetrics(p); err != nil {
		return nil, err
	}
	return p, nil
}

// send hands alerts to every receiver, stamped with the lease's epoch for
// their fence; none blocks.
func (p *Panel) send(alerts ...alerting.Alert) { p.sendTo("", alerts...) }

// sendTo hands alerts to the receivers named name ("": every one).
func (p *Panel) sendTo(name string, alerts ...alerting.Alert) {
	for _, a := range alerts {
		a.Epoch = p.lease.Epoch()
		for _, r := range p.receivers {
			if name == "" || r.Name() == name {
				r.Notify(a)
			}
		}
	}
}

// allow is the receivers' fence (delivery.Fence): alerts made under epoch
// may be sent only while this replica records under that epoch, as Valkey
// says at the moment of sending. A replica that stopped leading, or that
// Valkey says lost the lease, sends nothing. When Valkey cannot answer,
// the lease's own clock decides: renewed less than a lease period ago, it
// cannot have run out in Valkey either (so the alert that Valkey stalled
// goes out, given a lease longer than the watcher takes to see the stall);
// a replica paused past its lease resumes to find it run out, and waits
// for Valkey to tell.
func (p *Panel) allow(ctx context.Context, epoch int64) error {
	if !p.rec.Leading() || epoch != p.lease.Epoch() {
		return fmt.Errorf("made under lease epoch %d, and this replica no longer records under it", epoch)
	}
	holds, err := p.lease.Holds(ctx, epoch)
	switch {
	case err == nil && !holds:
		return fmt.Errorf("made under lease epoch %d, which Valkey says this replica no longer holds", epoch)
	case err != nil && !p.lease.ValidAt(time.Now()):
		return fmt.Errorf("made under lease epoch %d: Valkey does not say who holds the lease now (%v), and it has run out on this replica's clock", epoch, err)
	}
	return nil
}

// followEvery is how often a standby reads the alerts firing.
const followEvery = 5 * time.Second

// evaluate runs the alert rules every second while this replica records.
// On becoming the recorder, and whenever its lease was lost and taken
// again meanwhile (a new epoch), it takes the alerts firing over from
// Valkey and hands them to the receivers again: Alertmanager keeps one
// alert per label set, and the webhook sends only changes.
func (p *Panel) evaluate(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var epoch int64 // the lease's epoch the engine's state is of; 0: none
	var followed time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		if !p.rec.Leading() {
			// A standby follows the alerts in Valkey, so that it still
			// knows them if it takes over after Valkey lost its data.
			if epoch != 0 || now.Sub(followed) >= followEvery {
				p.alert.Follow(ctx, now)
				followed = now
			}
			epoch = 0
			continue
		}
		if e := p.lease.Epoch(); e != epoch {
			if !p.takeover(ctx, now) {
				// Valkey does not answer: the other rules wait for the
				// takeover, but the alert that the watcher cannot see
				// must not wait for Valkey.
				if !p.Watching() {
					p.send(p.alert.Evaluate(ctx, now, false)...)
				}
				continue
			}
			epoch = e
		}
		p.send(p.alert.Evaluate(ctx, now, p.Watching())...)
	}
}

// takeover loads the alerts firing and hands each receiver what it must
// hear again; false when Valkey could not be read.
func (p *Panel) takeover(ctx context.Context, now time.Time) bool {
	active, err := p.alert.Takeover(ctx, now)
	if err != nil {
		p.cfg.errorf("%v", err)
		return false
	}
	p.sendTo("alertmanager", active...)
	// A webhook hears only changes: what a replica that died had queued
	// and not delivered is delivered now.
	fire, resolve, err := p.alert.Undelivered(ctx, now)
	if err != nil {
		p.cfg.errorf("%v", err)
		return true
	}
	p.sendTo("webhook", append(fire, resolve...)...)
	return true
}

// Run records while this replica holds the lease, evaluates and delivers
// alerts, and sends live updates, until ctx is done; then it writes the
// values over time it holds, gives the lease up, ends every event stream,
// and returns when every goroutine it started has ended. The watcher is
// the host's: Run does not run it. A host that stops its watcher before
// it cancels ctx has the values of every heartbeat the panel observed
// written (or, if Valkey fails them, said to have failed); those of
// heartbeats observed once ctx is done are counted in the series writer's
// drops, and said with the panel's last line about them if they came
// before it.
func (p *Panel) Run(ctx context.Context) error {
	p.started = time.Now()
	// The recorder gives the lease up once the series writer has written
	// what it holds: a write after would be refused.
	recCtx, stopRecorder := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRecorder()
	var wg, recorder sync.WaitGroup
	recorder.Go(func() { _ = p.rec.Run(recCtx) })
	for _, r := range p.receivers {
		wg.Go(func() { r.Run(ctx) })
	}
	wg.Go(func() { p.evaluate(ctx) })
	wg.Go(func() { p.hub.run(ctx, p.cfg.coalesce, p.flush) })
	wg.Go(func() { p.reports.refresher(ctx, p) })
	wg.Go(func() { p.remember(ctx) })
	p.writeSeries(ctx)
	stopRecorder()
	recorder.Wait()
	wg.Wait()
	p.hub.closeAll()
	return p.met.shutdown()
}

// remember gives the tracker, each time the watcher has read the
// latest-state keys, the instances history has as dead or stopped and the
// watcher never heard: their keys are gone (expired at the death, deleted
// at the stop), so a replica that starts after a crash would otherwise
// show the crashed service with no instance at all, where the replica
// that watched shows it dead. What their arrival causes (a replacement by
// an instance that started since) is observed as the watcher's own.
func (p *Panel) remember(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.recall:
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		recorded, err := p.store.Recorded(rctx)
		if err != nil {
			p.cfg.errorf("reading the recorded states: %v", err)
		}
		// What history has as up was up when a recorder last watched.
		watched, err := p.store.Watched(rctx)
		cancel()
		if err != nil {
			p.cfg.errorf("reading when history was last watched: %v", err)
		}
		n := 0
		for svc, instances := range recorded {
			for id, r := range instances {
				since := r.At
				if r.State.Up() && watched.After(since) {
					since = watched
				}
				for _, t := range p.tr.Remember(watch.Key{Service: svc, Instance: id}, r.State, since, 0) {
					p.Observe(watch.Event{Kind: watch.KindTransition, At: t.At, Transition: t})
				}
				n++
			}
		}
		if n > 0 {
			p.hub.changedAll()
		}
	}
}

// beforeFirstLease reports whether the panel is in its first moments,
// before a lease it may win has been decided: the values it hears then are
// kept for it, and written if it records (writeSeries discards them once
// it is a standby past them).
func (p *Panel) beforeFirstLease() bool {
	return time.Since(p.started) < 2*p.cfg.lease
}

// Leading reports whether this replica records history now.
func (p *Panel) Leading() bool { return p.rec.Leading() }

// Observe takes one event of the host's watcher: give it every event, on
// the watcher's goroutine (watch.Monitor.Run's callback). It never blocks,
// and keeps nothing of a heartbeat's Message past the call (its names and
// field keys, strings, at most), so the watcher may lend it
// (watch.WithReusedMessages) when the host keeps nothing of it either.
// A heartbeat's instance is found by the event's Slot, which must be of
// the panel's tracker (the watcher's own, as New says); an event made
// another way, with no Slot, is looked up by its names.
func (p *Panel) Observe(e watch.Event) {
	p.rec.Observe(e)
	switch e.Kind {
	case watch.KindHeartbeat:
		k := watch.Key{Service: e.Message.ServiceName, Instance: e.Message.InstanceID}
		slot := e.Slot
		if !slot.Valid() || int(slot.Index) >= p.tr.Slots() { // not made by the tracker's monitor
			slot, _ = p.tr.SlotOf(k)
		}
		if p.seriesW != nil && (p.rec.Leading() || p.beforeFirstLease()) {
			p.seriesW.AddSlot(slot, e.Message, e.At)
		}
		p.arrivals.add(slot, e.At)
		p.hub.touch(k)
	case watch.KindHealth:
		p.hub.touch(e.Health.Key) // a verdict that turned with time, not a heartbeat
	case watch.KindTransition:
		p.hub.touch(e.Transition.Key)
		p.hub.transition(e.Transition)
		if to := e.Transition.To; to == watch.Dead || to == watch.Stopped || to == watch.Replaced || e.Transition.From == watch.Unknown {
			p.reports.invalidate(e.Transition.Service)
		}
	case watch.KindLoaded:
		p.loaded.Store(true)
		p.down.Store(false)
		p.reports.rework()
		p.hub.changedAll()
		select {
		case p.recall <- struct{}{}:
		default:
		}
	case watch.KindReconnected:
		if p.down.Swap(false) {
			p.cfg.errorf("watching again after %v", e.Downtime.Round(time.Millisecond))
		}
		p.hub.changedAll()
	case watch.KindDisconnected:
		// Said once per episode: a wrong password or an unreachable
		// Valkey would otherwise be visible only in /readyz.
		if !p.down.Swap(true) {
			p.cfg.errorf("cannot watch: %v", e.Err)
		}
		p.hub.changedAll()
	case watch.KindBlind:
		p.blind.Store(true)
		p.hub.changedAll()
	case watch.KindCaughtUp:
		p.blind.Store(false)
		p.hub.changedAll()
	}
}

// Watching reports whether the panel sees the fleet: it has read the
// latest-state keys, is subscribed, and its probes are answered.
func (p *Panel) Watching() bool { return p.loaded.Load() && !p.blind.Load() && !p.down.Load() }

// minAlive is the alert rules' minimum of a service: one owner for the
// API, uptime, the metrics and the alerts.
func (p *Panel) minAlive(svc string) int { return p.alert.MinAlive(svc) }

// receivedCount is how many heartbeats of k the panel heard.
func (p *Panel) receivedCount(k watch.Key) int64 {
	slot, _ := p.tr.SlotOf(k)
	return p.arrivals.received(slot)
}

// reportCache holds the uptime reports of every service for every window,
// recomputed from history in the background.
type reportCache struct {
	history entryCache
	skipped map[string]string // services whose history could not be read, and why, reported
	mu      sync.Mutex
	at      time.Time
	reports map[string]map[time.Duration]uptime.ServiceReport // service -> window -> report, without its instances
	// The instances' uptime over the instances table's window, by their
	// slot in the tracker (watch.Slot): 8 bytes an instance tracked,
	// rather than its report's 56, and none for one only history holds.
	instances []slotUptime
	// whole are the services whose instances' uptime was all whole (1)
	// when last worked out, and as of what: see compute.
	whole   map[string]wholeSince
	gaps    []history.Gap // what whole is as of
	reworks uint64        // counts rework's calls: one during a computation voids what it found whole
	stale   map[string]bool
	err     error
	wake    chan struct{} // made by New
}

// wholeSince is when a service's instances' uptime was last worked out
// and found whole, as of which count of its history's changes, and the
// slots of its instances then tracked.
type wholeSince struct {
	at      time.Time
	changes uint64
	slots   []watch.Slot
}

// wholeFor is how long a service's whole instances' uptime is taken as
// it was: a time an entry may have been written ahead of this replica's
// clock, at most.
const wholeFor = time.Minute

// rework has the next computation work every service's instances out,
// as when the watcher has read the fleet anew.
func (c *reportCache) rework() {
	c.mu.Lock()
	c.whole = nil
	c.reworks++
	c.mu.Unlock()
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
// transition that changes uptime; but never sooner after a computation
// than nine times what it took, so that however many instances history
// holds, and however often they change, uptime takes at most a tenth of a
// core.
func (c *reportCache) refresher(ctx context.Context, p *Panel) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	pause := func(d time.Duration) bool {
		w := time.NewTimer(d)
		defer w.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-w.C:
			return true
		}
	}
	for {
		start := time.Now()
		c.compute(ctx, p)
		if !pause(9 * time.Since(start)) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.wake:
			// Let the recorder write the transition first.
			if !pause(200 * time.Millisecond) {
				return
			}
		}
	}
}

func (c *reportCache) compute(ctx context.Context, p *Panel) {
	now := time.Now()
	longest := slices.Max(p.cfg.windows)
	svcs, err := p.store.Services(ctx)
	var gaps []history.Gap
	if err == nil {
		gaps, err = p.store.Gaps(ctx, now.Add(-longest))
	}
	out := map[string]map[time.Duration]uptime.ServiceReport{}
	// An instance's uptime is Up / (Up + Down). Once it is whole, nothing
	// but history changes it: time adds to Up alone. So a service whose
	// instances were all whole, and whose history and gaps are as they
	// were, and which no arrival, death or stop has marked stale since,
	// keeps its instances' figures, without its instances' reports being
	// worked out and looked up again: most of what uptime costs a fleet
	// that runs. Anything else (one instance short of whole, or none yet)
	// is worked out every time, and every service at least once in
	// wholeFor. A service skipped, or gone, shows no figure, as before.
	c.mu.Lock()
	whole, stale, reworks := c.whole, c.stale, c.reworks
	c.stale = nil // what is marked stale from now on is for the next computation
	sameGaps := slices.Equal(c.gaps, gaps)
	c.mu.Unlock()
	instances := make([]slotUptime, p.tr.Slots())
	nowWhole := map[string]wholeSince{}
	type skip struct {
		svc string
		err error
	}
	var skipped []skip
	filer := slotFiler{tr: p.tr, ups: instances}
	for _, svc := range svcs {
		if err != nil {
			break
		}
		// The entries are read where the cache keeps them, while it
		// holds the service: turned into history.Entry all at once, a
		// service of 100,000 instances would allocate 10 MB for them.
		var (
			reports []uptime.ServiceReport
			with    = -1 // the window reported by instance, if any
			kept    bool // its instances' uptime is taken as it was
			ws      wholeSince
			changes uint64 // the count of the history's changes it is as of
		)
		serr := c.history.with(ctx, p, svc, now, func(ce *cachedEntries) {
			// Only the instances table's window is read by instance: the
			// others' would work out every instance for nothing.
			ws, kept = whole[svc]
			changes = ce.changes
			kept = kept && sameGaps && !stale[svc] && ws.changes == changes && now.Sub(ws.at) < wholeFor && !ws.at.After(now)
			wins := make([]uptime.Window, len(p.cfg.windows))
			for i, w := range p.cfg.windows {
				wins[i] = uptime.Window{From: now.Add(-w), To: now}
				if w == p.instanceWindow() && !kept {
					with = i
				}
			}
			filer.start(svc)
			reports = uptime.WindowsOfEach(svc, cachedSource{ce}, gaps, wins, p.minAlive(svc), with, filer.add)
			filer.flush()
		})
		if serr != nil {
			if ctx.Err() != nil {
				err = serr
				break
			}
			skipped = append(skipped, skip{svc, serr}) // that service only
			continue
		}
		if kept {
			nowWhole[svc] = ws
			// A slot already filled is another service's instance's: one
			// of this service's lost it before its history said so.
			for _, s := range ws.slots {
				if int(s.Index) < len(instances) && instances[s.Index].gen == 0 {
					instances[s.Index] = slotUptime{gen: s.Gen, micro: 1e6}
				}
			}
		}
		if with >= 0 && filer.all {
			nowWhole[svc] = wholeSince{at: now, changes: changes, slots: slices.Clip(filer.whole)}
		}
		byWindow := map[time.Duration]uptime.ServiceReport{}
		for i, r := range reports {
			byWindow[p.cfg.windows[i]] = r
		}
		out[svc] = byWindow
	}
	every := err == nil && len(skipped) == len(svcs) && len(svcs) > 0
	if every {
		// One line, however many services: the first's reason.
		err = skipped[0].err
		if len(skipped) > 1 {
			err = fmt.Errorf("no service's history can be read (%d), the first: %w", len(skipped), err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	failing := c.err != nil
	c.err = err
	if err != nil {
		c.whole = nil // the services marked stale were not worked out
	}
	// Each service skipped is said once a reason, and once when it is
	// read again; when none can be read, that is said instead, once.
	was := c.skipped
	if err == nil || every {
		c.skipped = make(map[string]string, len(skipped))
		for _, s := range skipped {
			why := s.err.Error()
			if !every && was[s.svc] != why {
				p.cfg.errorf("reading history of %q: %v; the other services are shown", s.svc, s.err)
			}
			c.skipped[s.svc] = why
		}
	}
	if err != nil {
		if ctx.Err() == nil && !failing {
			p.cfg.errorf("reading history: %v (reported once until it recovers)", err)
		}
		return
	}
	if failing {
		p.cfg.errorf("reading history again")
	}
	for svc := range was {
		if _, read := out[svc]; read && (!failing || len(skipped) > 0) { // all read again: said above
			p.cfg.errorf("reading history of %q again", svc)
		}
	}
	c.at, c.reports, c.instances = now, out, instances
	c.whole, c.gaps = nowWhole, gaps
	if c.reworks != reworks {
		c.whole = nil
	}
	p.hub.changedAll() // new uptime figures for every card
}

func (c *reportCache) get(svc string, w time.Duration) (uptime.ServiceReport, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.reports[svc][w]
	return r, ok
}

// slotUptime is an instance's uptime over the instances table's window,
// as the API gives it (see ratio), in millionths; noUptime when it has
// none.
type slotUptime struct {
	gen   uint32 // the generation of the slot it is of; 0: none
	micro int32
}

const noUptime = -1

// slotFiler puts what the instances table reads of a service's instances'
// reports at each tracked instance's slot in ups, as uptime works them
// out (uptime.WindowsOfEach), slotsAtOnce at a time: a service of 100,000
// instances is filed without a slice of all their reports, or of their
// ids. Slots the tracker gave since ups was made are left for the next
// computation. The room it keeps serves one service after another.
type slotFiler struct {
	tr    *watch.Tracker
	ups   []slotUptime
	svc   string
	ids   []string       // the reports waiting to be filed: their ids,
	times []uptime.Times // and their times
	slots []watch.Slot
	// all says whether every instance's uptime so far is whole: Down
	// none, Up some; whole are their slots then, for wholeSince.
	all   bool
	whole []watch.Slot
}

// slotsAtOnce is how many reports a slotFiler looks up in the tracker at
// once.
const slotsAtOnce = 512

// start readies f for svc's reports.
func (f *slotFiler) start(svc string) {
	f.svc, f.all, f.whole = svc, true, nil
	f.ids, f.times = f.ids[:0], f.times[:0]
}

// add files r, when slotsAtOnce are waiting.
func (f *slotFiler) add(r uptime.InstanceReport) {
	f.all = f.all && r.Down == 0 && r.Up > 0
	f.ids, f.times = append(f.ids, r.Instance), append(f.times, r.Times)
	if len(f.ids) == slotsAtOnce {
		f.flush()
	}
}

// flush files the reports waiting.
func (f *slotFiler) flush() {
	if len(f.ids) == 0 {
		return
	}
	f.slots = f.tr.SlotsOf(f.svc, f.ids, f.slots[:0])
	for i, s := range f.slots {
		if !s.Valid() {
			continue
		}
		if f.all {
			f.whole = append(f.whole, s)
		}
		if int(s.Index) >= len(f.ups) {
			continue
		}
		u := slotUptime{gen: s.Gen, micro: noUptime}
		if up, ok := f.times[i].Uptime(); ok { // as ratio rounds it
			u.micro = int32(math.Round(up * 1e6))
		}
		f.ups[s.Index] = u
	}
	if !f.all {
		f.whole = nil
	}
	clear(f.ids) // the names are the service's history's: let go with it
	f.ids, f.times = f.ids[:0], f.times[:0]
}

// instanceUptime returns the uptime over the instances table's window of
// the instance in slot s, nil when it has none or none is computed yet.
func (c *reportCache) instanceUptime(s watch.Slot) *float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !s.Valid() || int(s.Index) >= len(c.instances) {
		return nil
	}
	u := c.instances[s.Index]
	if u.gen != s.Gen || u.micro == noUptime {
		return nil
	}
	up := float64(u.micro) / 1e6
	return &up
}
