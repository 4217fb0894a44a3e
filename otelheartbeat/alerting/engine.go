package alerting

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/internal/report"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/delivery"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
)

// Alert is one alert, as package delivery carries it: firing while EndsAt
// is zero.
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
	// keptKey marks that alerts have been kept here: an empty active set
	// without it is a Valkey that lost its data, not a fleet without
	// alerts.
	keptKey = "heartbeat:alerts:kept"
	// releasedKey holds when the last lasting silence of the fleet was
	// released to the instance and service rules (Unix ms), for a replica
	// that takes over.
	releasedKey = "heartbeat:alerts:released"
)

// errFenced is a write the engine's WriteFence refused.
var errFenced = errors.New("alerting: another replica records now: nothing is kept or sent by this one")

// saveScript keeps changes under a fence. KEYS: active, log, kept, the
// fence's keys. ARGV: the number of fence keys, their values, the log's
// length, then (fingerprint, alert, firing) for each change.
var saveScript = redis.NewScript(`
local nf = tonumber(ARGV[1])
for i = 1, nf do
  if redis.call('GET', KEYS[3 + i]) ~= ARGV[1 + i] then return -1 end
end
local i = nf + 3
while i <= #ARGV do
  if ARGV[i + 2] == '1' then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  else
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[nf + 2], '*', 'alert', ARGV[i + 1])
  i = i + 3
end
redis.call('SET', KEYS[3], '1')
return 1
`)

// Engine evaluates the rules. Evaluate, Takeover and Undelivered are
// called by one goroutine; Active, Recent and MarkDelivered from any.
type Engine struct {
	cfg    config
	tr     *watch.Tracker
	c      redis.UniversalClient
	rules  []*rule
	source source
	failed report.Reporter // keeping alerts in Valkey: said once until it works again

	mu        sync.Mutex
	active    map[string]Alert // firing, by fingerprint
	delivered map[string]Alert // firings a webhook acknowledged and whose resolve it has not
	viewAt    time.Time        // when active and delivered were last current: the last Evaluate, or Follow
}

// New returns an engine over tracker, keeping its alerts in Valkey
// through c.
func New(tracker *watch.Tracker, c redis.UniversalClient, opts ...Option) (*Engine, error) {
	if tracker == nil || c == nil {
		return nil, errors.New("alerting: New needs a tracker and a Valkey client")
	}
	cfg := newConfig(opts)
	e := &Engine{cfg: cfg, tr: tracker, c: c, rules: rules(cfg), active: map[string]Alert{}, delivered: map[string]Alert{}}
	e.failed.Handle = func(err error) { cfg.errorf("%v", err) }
	return e, nil
}

// MinAlive returns how many instances of service must be up for it to be
// up: WithMinAlive's, else 1.
func (e *Engine) MinAlive(service string) int { return max(e.cfg.minAlive[service], 1) }

// Evaluate applies the rules at now and returns the alerts that fired and
// resolved, in the order to send them; watching says whether the watcher
// sees Valkey. Each is kept in Valkey first, in one round trip: when
// Valkey does not answer (the source alert is sent precisely then), they
// are returned all the same.
func (e *Engine) Evaluate(ctx context.Context, now time.Time, watching bool) []Alert {
	snap := look(e.tr, now, &e.cfg)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.viewAt = now
	var changes []Alert
	held := e.evaluateSource(snap, now, watching, &changes)
	if !held {
		e.evaluateRules(snap, now, &changes)
	}
	if errors.Is(e.save(ctx, changes), errFenced) {
		return nil
	}
	if e.source.released.Equal(now) {
		// A replica that takes over learns of the release from Valkey.
		if err := e.c.Set(ctx, releasedKey, now.UnixMilli(), 0).Err(); err != nil {
			e.failed.Fail("released", fmt.Errorf("alerting: SET %s: %w", releasedKey, err))
		} else {
			e.failed.OK("released")
		}
	}
	return changes
}

// evaluateSource fires or resolves the source alert, and says whether the
// other rules are held.
func (e *Engine) evaluateSource(snap *view, now time.Time, watching bool, changes *[]Alert) (held bool) {
	fp := Fingerprint(sourceLabels)
	_, firing := e.active[fp]
	if reason := e.source.reason(snap, now, watching, &e.cfg); reason != "" {
		if !firing {
			e.source.since = now
			*changes = append(*changes, e.fire(Alert{Labels: sourceLabels, StartsAt: now, GeneratorURL: e.link(""), State: "unreachable", Since: now,
				Annotations: map[string]string{"summary": "the heartbeat source is unreachable: " + reason,
					"description": "instance and service alerts are held until the panel has seen one full interval of fresh heartbeats"}}))
		}
		for _, r := range e.rules {
			clear(r.pending)
		}
		e.source.holdUntil = time.Time{}
		return true
	}
	if firing {
		a := e.resolve(fp, now)
		if e.source.recovered(snap, now) {
			// The map is the firing alert's, shared with what was sent.
			a.Annotations = maps.Clone(a.Annotations)
			if a.Annotations == nil {
				a.Annotations = map[string]string{}
			}
			a.Annotations["description"] = "the silence lasted more than ten intervals: it is released to the instance and service alerts, which judge the instances still silent one by one"
			a.Annotations[releasedNote] = "true"
		}
		*changes = append(*changes, a)
	}
	return now.Before(e.source.holdUntil)
}

// evaluateRules fires what every rule finds due and resolves what no rule
// holds any more.
func (e *Engine) evaluateRules(snap *view, now time.Time, changes *[]Alert) {
	holding := map[string]bool{Fingerprint(sourceLabels): true}
	for _, r := range e.rules {
		conds := map[string]condition{}
		for _, c := range r.holds(snap, now, &e.cfg) {
			fp := Fingerprint(c.labels)
			conds[fp], holding[fp] = c, true
		}
		for _, c := range r.due(conds, func(fp string) bool { _, ok := e.active[fp]; return ok }, now) {
			*changes = append(*changes, e.fire(Alert{Labels: c.labels, Annotations: c.annotations, StartsAt: now,
				GeneratorURL: e.link(c.labels["service"]), State: c.state, Since: c.since, LastHeartbeat: c.heartbeat}))
		}
		if r.name == InstanceDegraded {
			// A degraded instance may break other rules than when it
			// fired: the firing alert says which it breaks now.
			for _, fp := range sortedKeys(conds, func(c condition) map[string]string { return c.labels }) {
				c := conds[fp]
				if a, ok := e.active[fp]; ok && a.Annotations["rules"] != c.annotations["rules"] {
					a.Annotations, a.LastHeartbeat = c.annotations, c.heartbeat
					*changes = append(*changes, e.fire(a))
				}
			}
		}
	}
	for _, fp := range sortedKeys(e.active, alertLabels) {
		if holding[fp] {
			continue
		}
		if l := e.active[fp].Labels; l["alertname"] == ServiceDown && !snap.tracked[l["service"]] && !e.cfg.ignores(l["service"]) {
			// Its dead were forgotten, none replaced: still down, as
			// uptime and the page have it, until an instance is up.
			continue
		}
		*changes = append(*changes, e.resolve(fp, now))
	}
}

func alertLabels(a Alert) map[string]string { return a.Labels }

func (e *Engine) fire(a Alert) Alert {
	e.active[Fingerprint(a.Labels)] = a
	return a
}

func (e *Engine) resolve(fp string, now time.Time) Alert {
	a := e.active[fp]
	delete(e.active, fp)
	a.EndsAt = now
	if a.Labels["alertname"] == InstanceDead {
		if by, ok := e.tr.ReplacedBy(watch.Key{Service: a.Labels["service"], Instance: a.Labels["instance"]}); ok {
			// Resolved by a restart: say by whom. The map is the firing
			// alert's, shared with what was sent: copy it.
			ann := maps.Clone(a.Annotations)
			if ann == nil {
				ann = map[string]string{}
			}
			ann["replaced_by"] = by
			ann["summary"] = fmt.Sprintf("%s instance %s was replaced by %s (a restart)", a.Labels["service"], a.Labels["instance"], by)
			a.Annotations = ann
		}
	}
	return a
}

func (e *Engine) link(service string) string {
	if e.cfg.externalURL == "" {
		return ""
	}
	base := strings.TrimSuffix(e.cfg.externalURL, "/") + "/"
	if service == "" {
		return base
	}
	return base + "#/services/" + url.PathEscape(service)
}

// save keeps changes in Valkey, in one round trip: the alerts firing, the
// log of fires and resolves, and the mark that alerts are kept here; under
// the WriteFence when there is one, whose refusal is errFenced. Another
// failure is reported (once until it works again) and returned.
func (e *Engine) save(ctx context.Context, changes []Alert) error {
	if len(changes) == 0 {
		return nil
	}
	// A second at most: the alerts are sent after, and Valkey not
	// answering must not hold them (the source alert is sent precisely
	// then).
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var fenceKeys, fenceValues []string
	if e.cfg.fence != nil {
		fenceKeys, fenceValues = e.cfg.fence.FenceKeys(), e.cfg.fence.FenceValues()
	}
	args := []any{len(fenceKeys)}
	for _, v := range fenceValues {
		args = append(args, v)
	}
	args = append(args, logLength)
	for _, a := range changes {
		b, _ := json.Marshal(a)
		args = append(args, Fingerprint(a.Labels), b, one(a.Firing()))
	}
	n, err := saveScript.Run(ctx, e.c, append([]string{activeKey, logKey, keptKey}, fenceKeys...), args...).Int()
	switch {
	case err == nil && n < 0:
		e.failed.Fail("fenced", errFenced)
		return errFenced
	case err != nil:
		e.failed.Fail("save", fmt.Errorf("alerting: keeping alerts in Valkey: %w (the alerts are still sent)", err))
		return err
	}
	e.failed.OK("save")
	e.failed.OK("fenced")
	return nil
}

func one(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Follow reads the alerts firing and the webhook's acknowledgements from
// Valkey, for an engine that does not evaluate (a standby): should it take
// over after Valkey lost its data, it still knows them.
func (e *Engine) Follow(ctx context.Context, now time.Time) {
	stored, err := e.stored(ctx)
	if err != nil {
		return // the next Follow reads again; the view ages meanwhile
	}
	delivered, err := e.c.HGetAll(ctx, deliveredKey).Result()
	if err != nil {
		return
	}
	kept, err := e.c.Exists(ctx, keptKey).Result()
	if err != nil || kept == 0 && len(stored) == 0 {
		// Nothing ever kept, or Valkey lost its data: what this engine
		// knows is worth more than nothing, to whoever takes over.
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	clear(e.active)
	for _, a := range stored {
		e.active[Fingerprint(a.Labels)] = a
	}
	e.setDelivered(delivered)
	e.viewAt = now
}

// setDelivered replaces the acknowledged firings with those read from
// Valkey; with e.mu held.
func (e *Engine) setDelivered(delivered map[string]string) {
	clear(e.delivered)
	for fp, v := range delivered {
		var a Alert
		if json.Unmarshal([]byte(v), &a) == nil && a.Labels["alertname"] != "" {
			e.delivered[fp] = a
		}
	}
}

// Takeover loads the alerts a previous evaluator fired, so that they are
// neither fired again nor left unresolved, and returns them.
func (e *Engine) Takeover(ctx context.Context, now time.Time) ([]Alert, error) {
	stored, err := e.stored(ctx)
	if err != nil {
		return nil, err
	}
	kept, err := e.c.Exists(ctx, keptKey).Result()
	if err != nil {
		return nil, fmt.Errorf("alerting: EXISTS %s: %w", keptKey, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(stored) == 0 && kept == 0 && len(e.active) > 0 && now.Sub(e.viewAt) < time.Minute {
		// This engine knew the alerts a moment ago (it evaluated, or
		// followed them as a standby) and Valkey holds nothing, not even
		// the mark that alerts were kept: Valkey lost its data (a restart
		// without persistence), not the alerts. Keep them, and write them
		// back, with what the webhook acknowledged, so that none is fired
		// or delivered again.
		out := make([]Alert, 0, len(e.active))
		for _, fp := range sortedKeys(e.active, alertLabels) {
			out = append(out, e.active[fp])
		}
		if err := e.save(ctx, out); errors.Is(err, errFenced) {
			return nil, err
		}
		for _, fp := range sortedKeys(e.delivered, alertLabels) {
			e.noteDelivered(ctx, fp, e.delivered[fp], true)
		}
		return out, nil
	}
	// The source alert this engine fired while Valkey did not answer (it
	// could not take over then) is kept: it must resolve when the watcher
	// sees again, stored or not.
	src, firing := e.active[Fingerprint(sourceLabels)]
	clear(e.active)
	for _, r := range e.rules {
		clear(r.pending)
	}
	// A silence released to the other rules stays released: this engine's
	// own release, or the one another replica made and kept in Valkey
	// (one said to be after now is no release).
	e.source = source{released: e.source.released}
	if ms, err := e.c.Get(ctx, releasedKey).Int64(); err == nil {
		if at := time.UnixMilli(ms); at.After(e.source.released) && !at.After(now) {
			e.source.released = at
		}
	}
	for _, a := range stored {
		e.active[Fingerprint(a.Labels)] = a
		if a.Labels["alertname"] == SourceUnreachable {
			e.source.since = a.StartsAt
		}
	}
	if _, kept := e.active[Fingerprint(sourceLabels)]; firing && !kept {
		e.active[Fingerprint(sourceLabels)] = src
		e.source.since = src.StartsAt
		return append(stored, src), nil
	}
	return stored, nil
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
	// Oldest first; alerts that fired together in the order they are sent
	// (an instance's before its service's), then by labels: the same order
	// on every read.
	order := map[string]int{}
	for i, r := range e.rules {
		order[r.name] = i
	}
	slices.SortFunc(out, func(a, b Alert) int {
		return cmp.Or(a.StartsAt.Compare(b.StartsAt), cmp.Compare(order[a.Labels["alertname"]], order[b.Labels["alertname"]]),
			strings.Compare(Fingerprint(a.Labels), Fingerprint(b.Labels)))
	})
	return out, nil
}

// Active returns the alerts firing, as kept in Valkey: every replica
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
	if err != nil {
		e.failed.Fail("delivered", fmt.Errorf("alerting: noting a delivery in Valkey: %w (another replica may deliver it again, under the same delivery id)", err))
		return
	}
	e.failed.OK("delivered")
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
	e.setDelivered(delivered)
	for _, fp := range sortedKeys(e.active, alertLabels) {
		if _, ok := e.delivered[fp]; !ok {
			fire = append(fire, e.active[fp])
		}
	}
	for _, fp := range sortedKeys(e.delivered, alertLabels) {
		if _, ok := e.active[fp]; !ok {
			a := e.delivered[fp]
			a.EndsAt = now
			resolve = append(resolve, a)
		}
	}
	return fire, resolve, nil
}
