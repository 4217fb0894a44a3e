package watch

import "time"

// visibility is whether the monitor can see: connected or not, answered
// or blind. Run hands it each fact as it happens (a probe tick, a lost
// connection, a subscription made) with what the probes have seen, and it
// answers with what to tell the tracker and the renderer. It starts no
// goroutine and reads no clock, so that every transition can be tested
// with the times written out.
type visibility struct {
	blindAfter time.Duration

	started bool // subscribed at least once: KindLoaded has been emitted
	// downSince is when the subscription was lost (zero while it is up),
	// and downSeen what had been seen then: the time after it was not
	// watched.
	downSince, downSeen time.Time
	blindSince          time.Time // zero while answers come
	connected           time.Time // when the last subscription was made

	lostAnswered bool // whether the last connection lost got any answer
	answerless   int  // connections lost in a row without any answer
	// silentFrom is when silence last began counting afresh: an answered
	// connection that is lost and re-made has not been silent meanwhile.
	silentFrom time.Time
}

// span is a stretch of time the tracker is told it did not watch.
type span struct{ from, to time.Time }

// step is what one fact calls for, in this order: the time the tracker
// did not watch (none when to is zero), when it starts holding its
// verdicts (none when zero), and the events to emit.
type step struct {
	unwatched span
	hold      time.Time
	events    []Event
}

func newVisibility(blindAfter time.Duration) *visibility {
	return &visibility{blindAfter: blindAfter}
}

// lost is a connection lost at at, when the probes had seen up to seen and
// the latest answer on any connection arrived at answered.
func (v *visibility) lost(at time.Time, err error, seen, answered time.Time) step {
	if !v.downSince.IsZero() {
		return step{} // a retry that failed again: the same spell
	}
	v.downSince, v.downSeen = at, seen
	// Only a real answer counts: the fresh start of silence at the last
	// subscription is no answer on that connection.
	v.lostAnswered = !answered.Before(v.connected)
	if v.lostAnswered {
		v.answerless = 0
	} else {
		v.answerless++
	}
	return step{events: []Event{{Kind: KindDisconnected, At: at, Err: err}}}
}

// subscribed is a subscription made at at, after which the latest-state
// keys were read by loadedAt and held loaded instances.
func (v *visibility) subscribed(at, loadedAt time.Time, loaded int) step {
	var s step
	switch {
	case !v.started:
		s.events = []Event{{Kind: KindLoaded, At: loadedAt, Count: loaded}}
	case !v.downSince.IsZero():
		// Heartbeats sent meanwhile are lost: the time not watched is no
		// instance's silence, and after a long spell the verdicts wait
		// until each instance has been watched for 1.5 intervals again.
		if v.blindSince.IsZero() { // else counted when blindness ends
			s.unwatched = span{v.downSeen, at}
		}
		if at.Sub(v.downSeen) >= v.blindAfter {
			s.hold = at
		}
		if v.lostAnswered {
			// The connection lost had been answered: silence counts
			// afresh. Connections cut off before any answer, one after
			// another, add up instead.
			v.silentFrom = at
		}
		s.events = []Event{{Kind: KindReconnected, At: at, Downtime: at.Sub(v.downSince), Count: loaded}}
	}
	v.started, v.downSince, v.connected = true, time.Time{}, at
	return s
}

// probed is a probe tick at now, when every connection had answered the
// probes sent up to seen and the latest answer on any arrived at answered.
func (v *visibility) probed(now, seen, answered time.Time) step {
	// Behind: the latest answer is for a probe sent long ago. Silent: no
	// answer came at all, though the subscription may have been re-made
	// many times meanwhile (a publisher getting it cut off over and over).
	lag := max(now.Sub(seen), now.Sub(later(answered, v.silentFrom)))
	switch {
	case v.blindSince.IsZero() && v.started && lag > v.blindAfter && (v.downSince.IsZero() || v.answerless > 1):
		v.blindSince = now.Add(-lag)
		return step{events: []Event{{Kind: KindBlind, At: now, Downtime: lag}}}
	case !v.blindSince.IsZero() && lag < v.blindAfter/2:
		s := step{unwatched: span{v.blindSince, now}, hold: now,
			events: []Event{{Kind: KindCaughtUp, At: now, Downtime: now.Sub(v.blindSince)}}}
		v.blindSince = time.Time{}
		return s
	}
	return step{}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
