package alerting

import (
	"fmt"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
)

// source is the rule the engine evaluates first: the watcher distrusts
// itself. When the panel cannot see, or a large share of the fleet falls
// silent together, one alert says the source is unreachable, and the
// other rules are held until the watcher has seen one full interval of
// fresh heartbeats again.
type source struct {
	since     time.Time // when the alert fired, while it fires
	released  time.Time // when a lasting silence was last released to the other rules
	holdUntil time.Time // no other rule is evaluated before
}

var sourceLabels = map[string]string{"alertname": SourceUnreachable, "severity": "critical"}

// reason says why the watcher cannot be trusted now, or "".
func (s *source) reason(snap *view, now time.Time, watching bool, c *config) string {
	if !watching {
		return "the panel does not see Valkey (its subscription is lost or does not answer)"
	}
	// A large share of the fleet falling silent together is the source
	// (Valkey, the network between it and the services), not the fleet.
	// Together: within four of its intervals before now, or, while the
	// alert fires, before it fired, so that it holds until they are back.
	ref := now
	if !s.since.IsZero() {
		ref = s.since
	}
	// For ten intervals at most: a silence that lasts is judged instance
	// by instance.
	if !s.since.IsZero() && now.Sub(s.since) > 10*snap.maxInterval() {
		return ""
	}
	var alive, silent int
	for _, n := range snap.fine {
		alive += n
	}
	services := map[string]bool{}
	for _, in := range snap.few {
		switch in.State {
		case watch.Alive:
			alive++
		case watch.Stale, watch.Dead:
			// One known from history fell silent before this panel
			// watched: it is not part of a silence now.
			// One silent since before a lasting silence was released is
			// judged on its own already: a silence after it is another.
			if !in.Remembered && ref.Sub(in.LastSeen) <= time.Duration(float64(in.Interval)*(watch.DeadAfter+1)) &&
				(s.released.IsZero() || in.LastSeen.After(s.released)) {
				silent++
				services[in.Service] = true
			}
		}
	}
	// Of several services: one service crashing whole is its outage.
	if len(services) >= 2 && silent >= c.silentMinimum && float64(silent) >= c.silentShare*float64(alive+silent) {
		return fmt.Sprintf("%d of %d instances, of %d services, fell silent together", silent, alive+silent, len(services))
	}
	return ""
}

// recovered ends the alert at now: the other rules wait one interval of
// fresh heartbeats, unless the silence lasted, which is then judged
// instance by instance: released, true.
func (s *source) recovered(snap *view, now time.Time) (released bool) {
	longest := snap.maxInterval()
	if now.Sub(s.since) <= 10*longest {
		s.holdUntil = now.Add(longest)
	} else {
		s.released = now
		released = true
	}
	s.since = time.Time{}
	return released
}

// releasedNote is the annotation, "true", of the source alert's resolve
// that released a lasting silence to the other rules.
const releasedNote = "released"
