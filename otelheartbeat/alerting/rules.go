package alerting

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// Alert names.
const (
	InstanceDead      = "HeartbeatInstanceDead"
	InstanceDegraded  = "HeartbeatInstanceDegraded"
	ServiceDown       = "HeartbeatServiceDown"
	SourceUnreachable = "HeartbeatSourceUnreachable"
)

// condition is one alert whose condition holds now.
type condition struct {
	labels      map[string]string
	annotations map[string]string
	state       string
	since       time.Time
	heartbeat   json.RawMessage
}

// rule is one alerting rule: which alerts' conditions hold over the
// tracker's instances, each firing once it has held for the rule's For.
type rule struct {
	name     string
	severity string
	settings RuleSettings
	// holds returns the conditions that hold at now, by fingerprint.
	holds func(snap *view, now time.Time, c *config) []condition
	// pending is the rule's own state: since when each condition, by
	// fingerprint, has held without firing yet.
	pending map[string]time.Time
}

// rules are the engine's rules, in the order their alerts are sent.
func rules(c config) []*rule {
	all := []*rule{
		{name: InstanceDead, severity: "warning", holds: deadInstances},
		{name: InstanceDegraded, severity: "warning", holds: degradedInstances},
		{name: ServiceDown, severity: "critical", holds: servicesDown},
	}
	var on []*rule
	for _, r := range all {
		r.settings = c.rules[r.name]
		r.pending = map[string]time.Time{}
		if !r.settings.Disabled {
			on = append(on, r)
		}
	}
	return on
}

// due returns the conditions of conds (this rule's, by fingerprint) that
// have held for the rule's For and are not firing yet, and forgets those
// that no longer hold.
func (r *rule) due(conds map[string]condition, firing func(fp string) bool, now time.Time) []condition {
	var out []condition
	for _, fp := range sortedKeys(conds, func(c condition) map[string]string { return c.labels }) {
		if firing(fp) {
			continue
		}
		since, ok := r.pending[fp]
		if !ok {
			since = now
			r.pending[fp] = now
		}
		if now.Sub(since) >= time.Duration(r.settings.For) {
			delete(r.pending, fp)
			out = append(out, conds[fp])
		}
	}
	for fp := range r.pending {
		if _, ok := conds[fp]; !ok {
			delete(r.pending, fp)
		}
	}
	return out
}

// deadInstances: an instance is dead (three intervals of silence, no
// stopping heartbeat: a crash or a hang, not a deploy).
func deadInstances(snap *view, now time.Time, _ *config) []condition {
	var out []condition
	for _, in := range snap.few {
		if in.State != watch.Dead {
			continue
		}
		labels := map[string]string{"alertname": InstanceDead, "service": in.Service, "instance": in.Instance, "severity": "warning"}
		ann := map[string]string{
			"summary": fmt.Sprintf("%s instance %s is dead: no heartbeat for %v (interval %v)", in.Service, in.Instance,
				in.Age(now).Round(time.Second), in.Interval),
			"description": "no heartbeat for three intervals, and no stopping heartbeat: a crash or a hang, not a deploy",
		}
		var hb json.RawMessage
		if m := in.Heartbeat(); m != nil {
			hb, _ = wire.Marshal(m)
			if m.InstanceAddress != "" {
				ann["instance_address"] = m.InstanceAddress
			}
		}
		out = append(out, condition{labels: labels, annotations: ann, state: "dead", since: in.Since, heartbeat: hb})
	}
	return out
}

// degradedInstances: an instance is up but breaks a health rule
// (watch.Instance.Degraded, each rule's own For included): alive, and
// stuck.
func degradedInstances(snap *view, now time.Time, _ *config) []condition {
	var out []condition
	for _, in := range snap.few {
		if !in.Degraded(now) {
			continue
		}
		broken := in.Health.Broken(now)
		names := make([]string, 0, len(broken))
		since := broken[0].BrokenSince()
		for _, c := range broken {
			names = append(names, c.Rule.String())
			if b := c.BrokenSince(); b.Before(since) {
				since = b
			}
		}
		labels := map[string]string{"alertname": InstanceDegraded, "service": in.Service, "instance": in.Instance, "severity": "warning"}
		ann := map[string]string{
			"summary":     fmt.Sprintf("%s instance %s is degraded: it beats, but breaks %s", in.Service, in.Instance, strings.Join(names, "; ")),
			"description": "its heartbeat arrives on time but its own fields say its work is stuck",
			"rules":       strings.Join(names, "\n"),
		}
		var hb json.RawMessage
		if m := in.Heartbeat(); m != nil {
			hb, _ = wire.Marshal(m)
		}
		out = append(out, condition{labels: labels, annotations: ann, state: "degraded", since: since, heartbeat: hb})
	}
	return out
}

// servicesDown: a service is down by the service rule (watch.Counts.State):
// fewer of its instances up than its minimum, and not because they
// stopped gracefully.
func servicesDown(snap *view, _ time.Time, c *config) []condition {
	type service struct {
		counts watch.Counts
		dead   []string
		since  time.Time
	}
	services := map[string]*service{}
	for svc, n := range snap.fine {
		services[svc] = &service{counts: watch.Counts{Alive: n}}
	}
	for _, in := range snap.few {
		s := services[in.Service]
		if s == nil {
			s = &service{}
			services[in.Service] = s
		}
		s.counts.Add(in.State, 1)
		if in.State == watch.Dead {
			s.dead = append(s.dead, in.Instance)
			if in.Since.After(s.since) {
				s.since = in.Since
			}
		}
	}
	var out []condition
	for svc, s := range services {
		need := max(c.minAlive[svc], 1)
		if s.counts.State(need) != watch.ServiceDown {
			continue
		}
		sort.Strings(s.dead)
		out = append(out, condition{
			labels: map[string]string{"alertname": ServiceDown, "service": svc, "severity": "critical"},
			state:  "down", since: s.since,
			annotations: map[string]string{
				"summary":     fmt.Sprintf("%s is down: %d of %d instances up, %d needed", svc, s.counts.Up(), s.counts.Total(), need),
				"description": "dead instances: " + strings.Join(s.dead, ", "),
			}})
	}
	return out
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
