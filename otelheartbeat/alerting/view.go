package alerting

import (
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// view is what the rules read of the tracker at one evaluation, made in
// one walk of it without copying the instances that are alive and keep
// to their health rules (at a large fleet, nearly all of them, every
// second): of those it keeps only how many each service has. The others,
// the few a rule may be about, are copied whole.
type view struct {
	// few are the instances that are not alive, or alive and degraded.
	few []watch.Instance
	// fine counts, by service, the instances alive and not degraded.
	fine map[string]int
	// longest is the longest interval of any instance; n how many there
	// are in all.
	longest time.Duration
	n       int
}

// look walks the tracker's instances at now, those of ignored services
// left out.
func look(tr *watch.Tracker, now time.Time, c *config) *view {
	v := &view{fine: map[string]int{}}
	ignored := map[string]bool{} // by service: a pattern matched once a service, not once an instance
	tr.Range(func(in *watch.Instance) bool {
		ig, ok := ignored[in.Service]
		if !ok {
			ig = c.ignores(in.Service)
			ignored[in.Service] = ig
		}
		if ig {
			return true
		}
		v.n++
		v.longest = max(v.longest, in.Interval)
		if in.State == watch.Alive && !in.Degraded(now) {
			v.fine[in.Service]++
			return true
		}
		v.few = append(v.few, *in)
		return true
	})
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
