// Package alerting decides when the admin panel's alerts fire and
// resolve, from the watcher's verdicts: an instance dead, a service with
// fewer than its minimum of instances up, and, instead of one alert per
// instance, "the heartbeat source is unreachable" when the panel itself
// cannot see or a large share of the fleet falls silent at once.
//
// Only the replica that holds the recorder lease evaluates, so an alert
// is never sent twice by two replicas; the alerts it fired are kept in
// Valkey, so a replica that takes over knows them and resolves them once.
package alerting

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/delivery"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// Alert names.
const (
	InstanceDead      = "HeartbeatInstanceDead"
	ServiceDown       = "HeartbeatServiceDown"
	SourceUnreachable = "HeartbeatSourceUnreachable"
)

// Alert is one alert, as the receivers of package notify take it: firing
// while EndsAt is zero.
type Alert = delivery.Alert

// Fingerprint identifies an alert by its labels (delivery.Alert.Fingerprint).
func Fingerprint(labels map[string]string) string {
	return delivery.Alert{Labels: labels}.Fingerprint()
}

// Keys in Valkey: the alerts firing, and a log of fires and resolves.
const (
	activeKey    = "heartbeat:alerts:active"
	deliveredKey = "heartbeat:alerts:delivered" // firing notifications a webhook acknowledged
	logKey       = "heartbeat:alerts:log"
	logLength    = 1000
)

// Engine evaluates the rules. Evaluate and Takeover are called by one
// goroutine; Active and Recent from any.
type Engine struct {
	cfg      Config
	tr       *watch.Tracker
	c        redis.UniversalClient
	watching func() bool
	notify   func(Alert)
	errorf   func(format string, args ...any)

	mu        sync.Mutex
	active    map[string]Alert     // firing, by fingerprint
	delivered map[string]Alert     // firings a webhook acknowledged and whose resolve it has not, as noted in Valkey
	pending   map[string]time.Time // condition holding since, by fingerprint
	holdUntil time.Time            // no instance or service verdict before
	srcSince  time.Time            // when the source alert fired, while it fires
	released  time.Time            // when a lasting silence was released to instance alerts
	lastEval  time.Time            // the last Evaluate, while leading
	failing   bool

	noteFailing atomic.Bool // noting deliveries in Valkey fails, reported
}

// New returns an engine over tracker. watching says whether the panel
// sees; notify receives every fire and resolve, and must not block.
func New(cfg Config, tracker *watch.Tracker, c redis.UniversalClient, watching func() bool, notify func(Alert), errorf func(string, ...any)) *Engine {
	if errorf == nil {
		errorf = func(string, ...any) {}
	}
	return &Engine{cfg: cfg, tr: tracker, c: c, watching: watching, notify: notify, errorf: errorf,
		active: map[string]Alert{}, delivered: map[string]Alert{}, pending: map[string]time.Time{}}
}

// Takeover loads the alerts a previous evaluator fired, so that they are
// neither fired again nor left unresolved, and holds new verdicts for one
// interval of fresh data. It returns them.
func (e *Engine) Takeover(ctx context.Context, now time.Time) ([]Alert, error) {
	stored, err := e.stored(ctx)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(stored) == 0 && len(e.active) > 0 && now.Sub(e.lastEval) < time.Minute {
		// This evaluator led a moment ago and Valkey holds nothing: Valkey
		// lost its data (a restart without persistence), not the alerts.
		// Keep them, and write them back, with what the webhook
		// acknowledged, so that none is delivered again.
		out := make([]Alert, 0, len(e.active))
		for _, fp := range sortedKeys(e.active, alertLabels) {
			e.save(ctx, fp, e.active[fp], true)
			out = append(out, e.active[fp])
		}
		for _, fp := range sortedKeys(e.delivered, alertLabels) {
			e.noteDelivered(ctx, fp, e.delivered[fp], true)
		}
		return out, nil
	}
	clear(e.active)
	clear(e.pending)
	out := make([]Alert, 0, len(stored))
	e.srcSince = time.Time{}
	for _, a := range stored {
		e.active[Fingerprint(a.Labels)] = a
		if a.Labels["alertname"] == SourceUnreachable {
			e.srcSince = a.StartsAt
		}
		out = append(out, a)
	}
	return out, nil
}

func (e *Engine) stored(ctx context.Context) ([]Alert, error) {
	m, err := e.c.HGetAll(ctx, activeKey).Result()
	if err != nil {
		return nil, fmt.Errorf("alerting: HGETALL %s: %w", activeKey, err)
	}
	out := make([]Alert, 0, len(m))
	for _, v := range m {
		var a Alert
		if json.Unmarshal([]byte(v), &a) == nil && a.Labels["alertname"] != "" {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b Alert) int { return a.StartsAt.Compare(b.StartsAt) })
	return out, nil
}

// Active returns the alerts firing, as recorded in Valkey: every replica
// shows the same.
func (e *Engine) Active(ctx context.Context) ([]Alert, error) { return e.stored(ctx) }

// Recent returns the latest fires and resolves, newest first.
func (e *Engine) Recent(ctx context.Context, n int64) ([]Alert, error) {
	msgs, err := e.c.XRevRangeN(ctx, logKey, "+", "-", n).Result()
	if err != nil {
		return nil, fmt.Errorf("alerting: XREVRANGE %s: %w", logKey, err)
	}
	out := make([]Alert, 0, len(msgs))
	for _, m := range msgs {
		var a Alert
		if s, ok := m.Values["alert"].(string); ok && json.Unmarshal([]byte(s), &a) == nil {
			out = append(out, a)
		}
	}
	return out, nil
}

// condition is one alert whose condition holds now.
type condition struct {
	labels      map[string]string
	annotations map[string]string
	state       string
	since       time.Time
	heartbeat   json.RawMessage
	forDur      time.Duration
}

// Evaluate applies the rules at now.
func (e *Engine) Evaluate(ctx context.Context, now time.Time) {
	snap := e.tr.Snapshot()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lastEval = now

	// The watcher distrusts itself first.
	src := map[string]string{"alertname": SourceUnreachable, "severity": "critical"}
	srcFP := Fingerprint(src)
	if reason := e.sourceDown(snap, now); reason != "" {
		if _, ok := e.active[srcFP]; !ok {
			e.srcSince = now
			e.fire(ctx, Alert{Labels: src, Annotations: map[string]string{"summary": "the heartbeat source is unreachable: " + reason,
				"description": "instance and service alerts are held until the panel has seen one full interval of fresh heartbeats"},
				StartsAt: now, GeneratorURL: e.link(""), State: "unreachable", Since: now})
		}
		clear(e.pending)
		e.holdUntil = time.Time{}
		return
	}
	if a, ok := e.active[srcFP]; ok {
		e.resolve(ctx, srcFP, a, now)
		if now.Sub(e.srcSince) <= 10*maxInterval(snap) {
			e.holdUntil = now.Add(maxInterval(snap)) // recovered: wait for fresh heartbeats
		} else {
			e.released = now // lasted: judge now, and do not call it the source again for this silence
		}
		e.srcSince = time.Time{}
	}
	if now.Before(e.holdUntil) {
		return
	}

	conds := map[string]condition{}
	type svcCount struct {
		up, stopped, existing int
		dead                  []string
		since                 time.Time
	}
	services := map[string]*svcCount{}
	for _, in := range snap {
		s := services[in.Service]
		if s == nil {
			s = &svcCount{}
			services[in.Service] = s
		}
		s.existing++
		switch in.State {
		case watch.Alive, watch.Stale:
			s.up++
		case watch.Stopped:
			s.stopped++
		case watch.Dead:
			s.dead = append(s.dead, in.Instance)
			if in.Since.After(s.since) {
				s.since = in.Since
			}
			if !e.cfg.InstanceDead.Disabled {
				labels := map[string]string{"alertname": InstanceDead, "service": in.Service, "instance": in.Instance, "severity": "warning"}
				var hb json.RawMessage
				ann := map[string]string{
					"summary": fmt.Sprintf("%s instance %s is dead: no heartbeat for %v (interval %v)", in.Service, in.Instance,
						in.Age(now).Round(time.Second), in.Interval),
					"description": "no heartbeat for three intervals, and no stopping heartbeat: a crash or a hang, not a deploy",
				}
				if in.Heartbeat != nil {
					hb, _ = wire.Marshal(in.Heartbeat)
					if in.Heartbeat.InstanceAddress != "" {
						ann["instance_address"] = in.Heartbeat.InstanceAddress
					}
				}
				conds[Fingerprint(labels)] = condition{labels: labels, annotations: ann, state: "dead", since: in.Since, heartbeat: hb, forDur: e.cfg.InstanceDead.For}
			}
		}
	}
	if !e.cfg.ServiceDown.Disabled {
		for svc, s := range services {
			need := max(e.cfg.MinAlive[svc], 1)
			if s.up >= need || s.stopped+s.up == s.existing {
				continue // up, or every instance not up stopped gracefully
			}
			labels := map[string]string{"alertname": ServiceDown, "service": svc, "severity": "critical"}
			sort.Strings(s.dead)
			conds[Fingerprint(labels)] = condition{labels: labels, state: "down", since: s.since, forDur: e.cfg.ServiceDown.For,
				annotations: map[string]string{
					"summary":     fmt.Sprintf("%s is down: %d of %d instances up, %d needed", svc, s.up, s.existing, need),
					"description": "dead instances: " + strings.Join(s.dead, ", "),
				}}
		}
	}

	for _, fp := range sortedKeys(conds, condLabels) {
		c := conds[fp]
		if _, ok := e.active[fp]; ok {
			continue
		}
		since, ok := e.pending[fp]
		if !ok {
			since = now
			e.pending[fp] = now
		}
		if now.Sub(since) >= c.forDur {
			delete(e.pending, fp)
			e.fire(ctx, Alert{Labels: c.labels, Annotations: c.annotations, StartsAt: now, GeneratorURL: e.link(c.labels["service"]),
				State: c.state, Since: c.since, LastHeartbeat: c.heartbeat})
		}
	}
	for fp := range e.pending {
		if _, ok := conds[fp]; !ok {
			delete(e.pending, fp)
		}
	}
	for _, fp := range sortedKeys(e.active, alertLabels) {
		if _, ok := conds[fp]; !ok && fp != srcFP {
			e.resolve(ctx, fp, e.active[fp], now)
		}
	}
}

// sortedKeys returns m's fingerprints in the order alerts are sent: by
// alert name, then instance, then service (an instance's death before its
// service's), whatever the fingerprints are.
func sortedKeys[V any](m map[string]V, labels func(V) map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := labels(m[keys[i]]), labels(m[keys[j]])
		for _, l := range []string{"alertname", "instance", "service"} {
			if a[l] != b[l] {
				return a[l] < b[l]
			}
		}
		return keys[i] < keys[j]
	})
	return keys
}

func alertLabels(a Alert) map[string]string    { return a.Labels }
func condLabels(c condition) map[string]string { return c.labels }

// deliveredLabels reads the labels of a delivered alert as kept in Valkey.
func deliveredLabels(v string) map[string]string {
	var a Alert
	_ = json.Unmarshal([]byte(v), &a)
	return a.Labels
}

// sourceDown says why the watcher cannot be trusted now, or "".
func (e *Engine) sourceDown(snap []watch.Instance, now time.Time) string {
	if !e.watching() {
		return "the panel does not see Valkey (its subscription is lost or does not answer)"
	}
	// A large share of the fleet falling silent together is the source
	// (Valkey, the network between it and the services), not the fleet.
	// Together: within four of its intervals before now, or, while the
	// alert fires, before it fired, so that it holds until they are back.
	ref := now
	if !e.srcSince.IsZero() {
		ref = e.srcSince
	}
	if !e.released.IsZero() && now.Sub(e.released) < 10*maxInterval(snap) {
		return "" // the silence just released is judged instance by instance
	}
	// Of several services: one service crashing whole is its outage. And
	// for ten intervals at most: a silence that lasts is judged instance
	// by instance.
	if !e.srcSince.IsZero() && now.Sub(e.srcSince) > 10*maxInterval(snap) {
		return ""
	}
	var alive, silent int
	services := map[string]bool{}
	for _, in := range snap {
		switch in.State {
		case watch.Alive:
			alive++
		case watch.Stale, watch.Dead:
			if ref.Sub(in.LastSeen) <= time.Duration(float64(in.Interval)*(watch.DeadAfter+1)) {
				silent++
				services[in.Service] = true
			}
		}
	}
	if len(services) >= 2 && silent >= e.cfg.MinSilent && float64(silent) >= e.cfg.SilentShare*float64(alive+silent) {
		return fmt.Sprintf("%d of %d instances, of %d services, fell silent together", silent, alive+silent, len(services))
	}
	return ""
}

func maxInterval(snap []watch.Instance) time.Duration {
	d := wire.DefaultInterval
	if len(snap) > 0 {
		d = 0
	}
	for _, in := range snap {
		d = max(d, in.Interval)
	}
	return d
}

func (e *Engine) link(service string) string {
	if e.cfg.ExternalURL == "" {
		return ""
	}
	base := strings.TrimSuffix(e.cfg.ExternalURL, "/") + "/"
	if service == "" {
		return base
	}
	return base + "#/services/" + url.PathEscape(service)
}

// fire and resolve notify first: the receivers must hear of it even when
// Valkey, where it is kept, does not answer (the source alert is sent
// precisely then).
func (e *Engine) fire(ctx context.Context, a Alert) {
	fp := Fingerprint(a.Labels)
	e.active[fp] = a
	e.notify(a)
	e.save(ctx, fp, a, true)
}

func (e *Engine) resolve(ctx context.Context, fp string, a Alert, now time.Time) {
	delete(e.active, fp)
	a.EndsAt = now
	e.notify(a)
	e.save(ctx, fp, a, false)
}

func (e *Engine) save(ctx context.Context, fp string, a Alert, firing bool) {
	b, _ := json.Marshal(a)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := e.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		if firing {
			p.HSet(ctx, activeKey, fp, b)
		} else {
			p.HDel(ctx, activeKey, fp)
		}
		p.XAdd(ctx, &redis.XAddArgs{Stream: logKey, MaxLen: logLength, Approx: true, Values: []any{"alert", b}})
		return nil
	})
	switch {
	case err != nil && !e.failing:
		e.failing = true
		e.errorf("alerting: keeping alerts in Valkey: %v (the alerts are still sent)", err)
	case err == nil:
		e.failing = false
	}
}

// MarkDelivered records that a webhook acknowledged a's notification: a
// firing one is remembered until its resolve is acknowledged. It is called
// from the delivering goroutine.
func (e *Engine) MarkDelivered(ctx context.Context, a Alert) {
	fp := Fingerprint(a.Labels)
	e.mu.Lock()
	if a.Firing() {
		e.delivered[fp] = a
	} else {
		delete(e.delivered, fp)
	}
	e.mu.Unlock()
	e.noteDelivered(ctx, fp, a, a.Firing())
}

func (e *Engine) noteDelivered(ctx context.Context, fp string, a Alert, firing bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var err error
	if firing {
		b, _ := json.Marshal(a)
		err = e.c.HSet(ctx, deliveredKey, fp, b).Err()
	} else {
		err = e.c.HDel(ctx, deliveredKey, fp).Err()
	}
	switch {
	case err != nil && !e.noteFailing.Swap(true):
		e.errorf("alerting: noting a delivery in Valkey: %v (another replica may deliver it again, under the same delivery id)", err)
	case err == nil:
		e.noteFailing.Store(false)
	}
}

// Undelivered returns what a webhook has not acknowledged, for a replica
// that takes over: alerts firing whose firing it never acknowledged (still
// queued by a replica that died), and alerts it acknowledged firing that
// no longer fire (their resolve was queued and lost), resolved at now.
func (e *Engine) Undelivered(ctx context.Context, now time.Time) (fire, resolve []Alert, err error) {
	delivered, err := e.c.HGetAll(ctx, deliveredKey).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("alerting: HGETALL %s: %w", deliveredKey, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	clear(e.delivered)
	for fp, v := range delivered {
		var a Alert
		if json.Unmarshal([]byte(v), &a) == nil && a.Labels["alertname"] != "" {
			e.delivered[fp] = a
		}
	}
	for _, fp := range sortedKeys(e.active, alertLabels) {
		if _, ok := delivered[fp]; !ok {
			fire = append(fire, e.active[fp])
		}
	}
	for _, fp := range sortedKeys(delivered, deliveredLabels) {
		if _, ok := e.active[fp]; ok {
			continue
		}
		var a Alert
		if json.Unmarshal([]byte(delivered[fp]), &a) == nil && a.Labels["alertname"] != "" {
			a.EndsAt = now
			resolve = append(resolve, a)
		}
	}
	return fire, resolve, nil
}
