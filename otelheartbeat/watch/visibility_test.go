package watch

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// A fact as Run hands it to visibility, at offsets from t0: the probes'
// seen and the latest answer are what the sight says at that moment.
type fact struct {
	name string
	do   func(v *visibility) step
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func subscribedAt(at time.Duration) fact {
	return fact{fmt.Sprintf("subscribed@%v", at), func(v *visibility) step {
		return v.subscribed(t0.Add(at), t0.Add(at+ms(5)), 2)
	}}
}

func lostAt(at, seen, answered time.Duration) fact {
	return fact{fmt.Sprintf("lost@%v", at), func(v *visibility) step {
		return v.lost(t0.Add(at), errors.New("EOF"), t0.Add(seen), t0.Add(answered))
	}}
}

func probedAt(at, seen, answered time.Duration) fact {
	return fact{fmt.Sprintf("probe@%v seen %v answered %v", at, seen, answered), func(v *visibility) step {
		return v.probed(t0.Add(at), t0.Add(seen), t0.Add(answered))
	}}
}

// describeStep writes a step as the tests expect it: the tracker's calls,
// then the events, at offsets from t0.
func describeStep(s step) string {
	var parts []string
	if !s.unwatched.to.IsZero() {
		parts = append(parts, fmt.Sprintf("unwatched %v..%v", s.unwatched.from.Sub(t0), s.unwatched.to.Sub(t0)))
	}
	if !s.hold.IsZero() {
		parts = append(parts, fmt.Sprintf("hold %v", s.hold.Sub(t0)))
	}
	for _, e := range s.events {
		d := fmt.Sprintf("%s@%v", kindName(e.Kind), e.At.Sub(t0))
		if e.Downtime != 0 {
			d += fmt.Sprintf(" for %v", e.Downtime)
		}
		if e.Kind == KindLoaded || e.Kind == KindReconnected {
			d += fmt.Sprintf(" count %d", e.Count)
		}
		parts = append(parts, d)
	}
	return strings.Join(parts, ", ")
}

type seeing struct {
	fact fact
	want string // describeStep's words; empty: nothing to do
}

// cutOffOverAndOver is a subscription re-made every 300 ms from first to
// last, each time lost 150 ms later before any answer, as a publisher
// flooding it past the server's output buffer would have it: what each
// has seen is only when it was asked for, and the last answer stays at
// answered.
func cutOffOverAndOver(first, last, answered time.Duration) []seeing {
	var s []seeing
	for at := first; at <= last; at += ms(300) {
		s = append(s,
			seeing{subscribedAt(at), fmt.Sprintf("unwatched %v..%v, reconnected@%v for 150ms count 2", at-ms(310), at, at)},
			seeing{lostAt(at+ms(150), at-ms(10), answered), fmt.Sprintf("disconnected@%v", at+ms(150))})
	}
	return s
}

// visibilityCases run with the default blindAfter of 2 s, from t0.
var visibilityCases = []struct {
	name  string
	steps []seeing
}{
	{"the keys are loaded at the first subscription, with nothing held", []seeing{
		{subscribedAt(0), "loaded@5ms count 2"},
		{probedAt(ms(100), ms(100), ms(100)), ""},
	}},
	{"not blind before the first subscription, however long", []seeing{
		{probedAt(ms(10_000), -ms(10_000), -ms(10_000)), ""},
		{subscribedAt(ms(10_100)), "loaded@10.105s count 2"},
	}},
	{"blind after blindAfter without answers, not at blindAfter", []seeing{
		{subscribedAt(0), "loaded@5ms count 2"},
		{probedAt(ms(1000), ms(900), ms(950)), ""},
		{probedAt(ms(2900), ms(900), ms(950)), ""},
		{probedAt(ms(3000), ms(900), ms(950)), "blind@3s for 2.1s"},
		{probedAt(ms(4000), ms(900), ms(950)), ""},
	}},
	{"behind: blind on what was seen though answers keep arriving", []seeing{
		{subscribedAt(0), "loaded@5ms count 2"},
		{probedAt(ms(3000), ms(900), ms(2990)), "blind@3s for 2.1s"},
	}},
	{"caught up when the lag falls under half blindAfter, verdicts held", []seeing{
		{subscribedAt(0), "loaded@5ms count 2"},
		{probedAt(ms(3000), ms(900), ms(950)), "blind@3s for 2.1s"},
		{probedAt(ms(4000), ms(2900), ms(3950)), ""}, // 1.1 s behind still
		{probedAt(ms(5000), ms(4100), ms(4950)), "unwatched 900ms..5s, hold 5s, caught-up@5s for 4.1s"},
		{probedAt(ms(9000), ms(4100), ms(4950)), "blind@9s for 4.9s"},
	}},
	{"a disconnect is reported once, however many retries fail", []seeing{
		{subscribedAt(0), "loaded@5ms count 2"},
		{lostAt(ms(1000), ms(900), ms(950)), "disconnected@1s"},
		{lostAt(ms(1100), ms(900), ms(950)), ""},
		{lostAt(ms(1300), ms(900), ms(950)), ""},
		{subscribedAt(ms(1700)), "unwatched 900ms..1.7s, reconnected@1.7s for 700ms count 2"},
	}},
	{"a disconnect as long as blindAfter holds the verdicts", []seeing{
		{subscribedAt(0), "loaded@5ms count 2"},
		{lostAt(ms(1000), ms(900), ms(950)), "disconnected@1s"},
		{subscribedAt(ms(2900)), "unwatched 900ms..2.9s, hold 2.9s, reconnected@2.9s for 1.9s count 2"},
	}},
	{"a monitor that cannot connect at start says so, then loads the keys", []seeing{
		{lostAt(0, -ms(10_000), -ms(10_000)), "disconnected@0s"},
		{lostAt(ms(100), -ms(10_000), -ms(10_000)), ""},
		{subscribedAt(ms(5000)), "loaded@5.005s count 2"},
		{probedAt(ms(5100), ms(5050), ms(5090)), ""},
	}},
	{"disconnected after answers is not blind, however long", []seeing{
		{subscribedAt(0), "loaded@5ms count 2"},
		{lostAt(ms(1000), ms(900), ms(950)), "disconnected@1s"},
		{probedAt(ms(30_000), ms(900), ms(950)), ""},
		{subscribedAt(ms(30_100)), "unwatched 900ms..30.1s, hold 30.1s, reconnected@30.1s for 29.1s count 2"},
	}},
	{"an answered connection re-made: silence counts afresh", []seeing{
		{subscribedAt(0), "loaded@5ms count 2"},
		{lostAt(ms(1500), ms(900), ms(1000)), "disconnected@1.5s"},
		{subscribedAt(ms(3500)), "unwatched 900ms..3.5s, hold 3.5s, reconnected@3.5s for 2s count 2"},
		// The new connection has not answered yet, and the last
		// answer is 2.6 s old: it is not silence.
		{probedAt(ms(3600), ms(3490), ms(1000)), ""},
		{probedAt(ms(5600), ms(3490), ms(1000)), "blind@5.6s for 2.11s"},
	}},
	{"a disconnect while blind is not counted twice as unwatched", []seeing{
		{subscribedAt(0), "loaded@5ms count 2"},
		{probedAt(ms(3000), ms(900), ms(950)), "blind@3s for 2.1s"},
		{lostAt(ms(4000), ms(900), ms(950)), "disconnected@4s"},
		{subscribedAt(ms(5000)), "hold 5s, reconnected@5s for 1s count 2"},
		{probedAt(ms(5200), ms(5100), ms(5150)), "unwatched 900ms..5.2s, hold 5.2s, caught-up@5.2s for 4.3s"},
	}},
	{"one connection cut off before any answer is a disconnect, not blindness", []seeing{
		{subscribedAt(0), "loaded@5ms count 2"},
		{lostAt(ms(150), -ms(10), -ms(10)), "disconnected@150ms"},
		{probedAt(ms(5000), -ms(10), -ms(10)), ""},
	}},
	{"connections cut off before any answer, one after another, add up to blindness", slices.Concat(
		[]seeing{{subscribedAt(0), "loaded@5ms count 2"},
			{lostAt(ms(150), -ms(10), -ms(10)), "disconnected@150ms"}},
		cutOffOverAndOver(ms(300), ms(1800), -ms(10)),
		[]seeing{{probedAt(ms(1900), ms(1790), -ms(10)), ""},
			// Lost again, and no answer for 2.01 s.
			{probedAt(ms(2000), ms(1790), -ms(10)), "blind@2s for 2.01s"},
			// Blind: the time is counted when blindness ends.
			{subscribedAt(ms(2100)), "reconnected@2.1s for 150ms count 2"},
			{probedAt(ms(2200), ms(2150), ms(2190)), "unwatched -10ms..2.2s, hold 2.2s, caught-up@2.2s for 2.21s"}},
	)},
	{"connections cut off before any answer add up after an answered one too", slices.Concat(
		[]seeing{{subscribedAt(0), "loaded@5ms count 2"},
			{lostAt(ms(1000), ms(900), ms(950)), "disconnected@1s"},
			{subscribedAt(ms(1200)), "unwatched 900ms..1.2s, reconnected@1.2s for 200ms count 2"},
			{lostAt(ms(1350), ms(1190), ms(950)), "disconnected@1.35s"}},
		cutOffOverAndOver(ms(1500), ms(3000), ms(950)),
		// Silence counts from the last reconnection of an answered one.
		[]seeing{{probedAt(ms(3100), ms(2990), ms(950)), ""},
			{probedAt(ms(3250), ms(2990), ms(950)), "blind@3.25s for 2.05s"}},
	)},
}

func TestVisibility(t *testing.T) {
	for _, tt := range visibilityCases {
		t.Run(tt.name, func(t *testing.T) {
			v := newVisibility(DefaultBlindAfter)
			for i, s := range tt.steps {
				if got := describeStep(s.fact.do(v)); got != s.want {
					t.Errorf("%d: %s: %q, want %q", i, s.fact.name, got, s.want)
				}
			}
		})
	}
}
