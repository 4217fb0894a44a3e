package alerting

import (
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// view is what the rules read of the tracker at one evaluation, made
// without walking, or copying, the instances that are alive and judged by
// no health rule (at a large fleet, nearly all of them, every second): of
// those it keeps only how many each service has, as the tracker counts
// them. The others, the few a rule may be about, are copied whole.
type view struct {
	// few are the instances that are not alive, or alive and degraded.
	few []watch.Instance
	// fine counts, by service, the instances alive and not degraded.
	fine map[string]int
	// longest is the longest interval of any instance; n how many there
	// are in all.
	longest time.Duration
	n       int
	// tracked are the services with an instance tracked.
	tracked map[string]bool
}

// look reads the tracker's instances at now, those of ignored services
// left out.
func look(tr *watch.Tracker, now time.Time, c *config) *view {
	v := &view{fine: map[string]int{}, tracked: map[string]bool{}}
	ignored := map[string]bool{} // by service: a pattern matched once a service, not once an instance
	ignores := func(svc string) bool {
		ig, ok := ignored[svc]
		if !ok {
			ig = c.ignores(svc)
			ignored[svc] = ig
		}
		return ig
	}
	tallies := tr.RangeNotable(func(in *watch.Instance) bool {
		if ignores(in.Service) {
			return true
		}
		if in.State == watch.Alive {
			if !in.Degraded(now) {
				return true // counted with the service's alive
			}
			v.fine[in.Service]--
		}
		v.few = append(v.few, *in)
		return true
	})
	for svc, t := range tallies {
		if ignores(svc) {
			continue
		}
		v.fine[svc] += t.Alive
		v.n += t.Total()
		v.tracked[svc] = true
		v.longest = max(v.longest, t.Longest)
	}
	for svc, n := range v.fine {
		if n == 0 {
			delete(v.fine, svc) // as a walk would have it: no entry
		}
	}
	return v
}

// maxInterval is the longest interval of the instances, or the default
// interval when there are none.
func (v *view) maxInterval() time.Duration {
	if v.n == 0 {
		return wire.DefaultInterval
	}
	return v.longest
}
