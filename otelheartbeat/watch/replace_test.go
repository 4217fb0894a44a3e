package watch

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// up is a heartbeat at a 1 s interval from a process that has run for
// uptime.
func up(service, id string, count int64, uptime time.Duration) *wire.Message {
	m := withInterval(beat(service, id, count), time.Second)
	m.UptimeSeconds, m.Has = uptime.Seconds(), m.Has|wire.HasUptime
	return m
}

func replacements(ts []Transition) []string {
	var out []string
	for _, tr := range ts {
		if tr.To == Replaced {
			out = append(out, fmt.Sprintf("%s %s->replaced by %s", tr.Instance, tr.From, tr.By))
		}
	}
	return out
}

func states(tr *Tracker) string {
	var out []string
	for _, in := range tr.Snapshot() {
		out = append(out, in.Instance+":"+in.State.String())
	}
	return fmt.Sprint(out)
}

func TestAReplacementTakesTheDeadInstancesPlace(t *testing.T) {
	for _, tt := range []struct {
		name string
		// run feeds the tracker; it returns every transition.
		run        func(c *fakeClock, tr *Tracker) []Transition
		replaced   []string
		afterwards string
	}{
		{
			name: "restarted before the crashed one is dead: replaced when it dies",
			run: func(c *fakeClock, tr *Tracker) []Transition {
				tr.Observe(up("geo", "old", 1, time.Hour))
				c.Advance(500 * time.Millisecond) // crashes; restarts under a new id
				var ts []Transition
				ts = append(ts, tr.Observe(up("geo", "new", 1, 100*time.Millisecond))...)
				for i := 0; i < 4; i++ {
					c.Advance(time.Second)
					ts = append(ts, tr.Observe(up("geo", "new", int64(i+2), time.Duration(i+1)*time.Second))...)
					ts = append(ts, tr.Tick()...)
				}
				return ts
			},
			replaced:   []string{"old dead->replaced by new"},
			afterwards: "[new:alive]",
		},
		{
			name: "restarted after the crashed one is dead: replaced at its first heartbeat",
			run: func(c *fakeClock, tr *Tracker) []Transition {
				tr.Observe(up("geo", "old", 1, time.Hour))
				c.Advance(3 * time.Second)
				ts := tr.Tick()
				c.Advance(time.Second)
				return append(ts, tr.Observe(up("geo", "new", 1, 0))...)
			},
			replaced:   []string{"old dead->replaced by new"},
			afterwards: "[new:alive]",
		},
		{
			name: "a graceful stop, then a new instance",
			run: func(c *fakeClock, tr *Tracker) []Transition {
				tr.Observe(up("geo", "old", 1, time.Hour))
				stop := up("geo", "old", 2, time.Hour+time.Second)
				stop.Status = wire.StatusStopping
				ts := tr.Observe(stop)
				c.Advance(2 * time.Second)
				return append(ts, tr.Observe(up("geo", "new", 1, time.Second))...)
			},
			replaced:   []string{"old stopped->replaced by new"},
			afterwards: "[new:alive]",
		},
		{
			name: "a peer that ran beside it is no replacement",
			run: func(c *fakeClock, tr *Tracker) []Transition {
				tr.Observe(up("geo", "peer", 1, time.Hour))
				tr.Observe(up("geo", "old", 1, time.Hour))
				var ts []Transition
				for i := 0; i < 4; i++ {
					c.Advance(time.Second)
					ts = append(ts, tr.Observe(up("geo", "peer", int64(i+2), time.Hour))...)
					ts = append(ts, tr.Tick()...)
				}
				return ts
			},
			afterwards: "[old:dead peer:alive]",
		},
		{
			name: "an instance first heard now that has run for an hour is no replacement",
			run: func(c *fakeClock, tr *Tracker) []Transition {
				tr.Observe(up("geo", "old", 1, time.Hour))
				c.Advance(4 * time.Second)
				ts := tr.Tick()
				return append(ts, tr.Observe(up("geo", "long-running", 3600, time.Hour))...)
			},
			afterwards: "[long-running:alive old:dead]",
		},
		{
			name: "another service's new instance is no replacement",
			run: func(c *fakeClock, tr *Tracker) []Transition {
				tr.Observe(up("geo", "old", 1, time.Hour))
				c.Advance(4 * time.Second)
				ts := tr.Tick()
				return append(ts, tr.Observe(up("other", "new", 1, 0))...)
			},
			afterwards: "[old:dead new:alive]", // geo, then other
		},
		{
			name: "one new instance replaces one of three dead",
			run: func(c *fakeClock, tr *Tracker) []Transition {
				for _, id := range []string{"a", "b", "c"} {
					tr.Observe(up("geo", id, 1, time.Hour))
					c.Advance(100 * time.Millisecond)
				}
				c.Advance(4 * time.Second)
				ts := tr.Tick()
				return append(ts, tr.Observe(up("geo", "new", 1, 0))...)
			},
			replaced:   []string{"a dead->replaced by new"}, // the one silent the longest
			afterwards: "[b:dead c:dead new:alive]",
		},
		{
			name: "a dead instance that beats again is itself, and replaces nobody",
			run: func(c *fakeClock, tr *Tracker) []Transition {
				tr.Observe(up("geo", "hung", 1, time.Hour))
				tr.Observe(up("geo", "other", 1, time.Hour))
				c.Advance(4 * time.Second)
				ts := tr.Tick()
				return append(ts, tr.Observe(up("geo", "hung", 2, time.Hour+4*time.Second))...)
			},
			afterwards: "[hung:alive other:dead]",
		},
		{
			name: "peers started together, one dead after its first heartbeat: no replacement",
			run: func(c *fakeClock, tr *Tracker) []Transition {
				var ts []Transition
				for _, id := range []string{"a", "b", "c"} {
					ts = append(ts, tr.Observe(up("geo", id, 1, 0))...)
				}
				for i := 0; i < 4; i++ {
					c.Advance(time.Second)
					ts = append(ts, tr.Observe(up("geo", "a", int64(i+2), time.Duration(i+1)*time.Second))...)
					ts = append(ts, tr.Observe(up("geo", "b", int64(i+2), time.Duration(i+1)*time.Second))...)
					ts = append(ts, tr.Tick()...)
				}
				return ts
			},
			afterwards: "[a:alive b:alive c:dead]",
		},
		{
			name: "peers started together, all dead after their first heartbeat: no replacement",
			run: func(c *fakeClock, tr *Tracker) []Transition {
				var ts []Transition
				for _, id := range []string{"a", "b", "c"} {
					ts = append(ts, tr.Observe(up("geo", id, 1, 0))...)
				}
				c.Advance(4 * time.Second)
				return append(ts, tr.Tick()...)
			},
			afterwards: "[a:dead b:dead c:dead]",
		},
		{
			name: "an instance that does not say its uptime replaces nobody: when it started is unknown",
			run: func(c *fakeClock, tr *Tracker) []Transition {
				tr.Observe(up("geo", "old", 1, time.Hour))
				c.Advance(4 * time.Second)
				ts := tr.Tick()
				return append(ts, tr.Observe(withInterval(beat("geo", "new", 1), time.Second))...)
			},
			afterwards: "[new:alive old:dead]",
		},
		{
			name: "an uptime no process can have replaces nobody",
			run: func(c *fakeClock, tr *Tracker) []Transition {
				tr.Observe(up("geo", "old", 1, time.Hour))
				c.Advance(4 * time.Second)
				ts := tr.Tick()
				negative := up("geo", "negative", 1, -time.Second)
				huge := up("geo", "huge", 1, 0)
				huge.UptimeSeconds = 1e308
				ts = append(ts, tr.Observe(negative)...)
				return append(ts, tr.Observe(huge)...)
			},
			afterwards: "[huge:alive negative:alive old:dead]",
		},
		{
			name: "a restart that says its uptime later replaces the dead one then",
			run: func(c *fakeClock, tr *Tracker) []Transition {
				tr.Observe(up("geo", "old", 1, time.Hour))
				c.Advance(4 * time.Second)
				ts := tr.Tick()
				ts = append(ts, tr.Observe(withInterval(beat("geo", "new", 1), time.Second))...)
				c.Advance(time.Second)
				return append(ts, tr.Observe(up("geo", "new", 2, time.Second))...)
			},
			replaced:   []string{"old dead->replaced by new"},
			afterwards: "[new:alive]",
		},
		{
			name: "a replacement replaces only one",
			run: func(c *fakeClock, tr *Tracker) []Transition {
				tr.Observe(up("geo", "a", 1, time.Hour))
				c.Advance(4 * time.Second)
				ts := tr.Tick()
				ts = append(ts, tr.Observe(up("geo", "b", 1, 0))...) // replaces a
				c.Advance(4 * time.Second)
				ts = append(ts, tr.Tick()...)                          // b dies
				return append(ts, tr.Observe(up("geo", "c", 1, 0))...) // replaces b
			},
			replaced:   []string{"a dead->replaced by b", "b dead->replaced by c"},
			afterwards: "[c:alive]",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := &fakeClock{t: t0}
			tr := NewTracker(WithClock(c))
			got := replacements(tt.run(c, tr))
			if fmt.Sprint(got) != fmt.Sprint(tt.replaced) {
				t.Errorf("replacements %q, want %q", got, tt.replaced)
			}
			if s := states(tr); s != tt.afterwards {
				t.Errorf("tracked %s, want %s", s, tt.afterwards)
			}
			for _, r := range tt.replaced {
				var old, change, by string
				fmt.Sscanf(r, "%s %s by %s", &old, &change, &by)
				if got, ok := tr.ReplacedBy(Key{"geo", old}); !ok || got != by {
					t.Errorf("ReplacedBy(%s) = %q, %v; want %s", old, got, ok, by)
				}
			}
		})
	}
}

// A fleet restarted whole: every crashed id is replaced by a new one, and
// the tracker holds the new fleet alone.
func TestAFleetRestartedWholeEndsAsRestarts(t *testing.T) {
	const n = 20_000
	c := &fakeClock{t: t0}
	tr := NewTracker(WithClock(c))
	for i := range n {
		tr.Observe(up(fmt.Sprint("svc", i%50), fmt.Sprint("old-", i), 1, time.Hour))
	}
	c.Advance(time.Second)
	for i := range n {
		tr.Observe(up(fmt.Sprint("svc", i%50), fmt.Sprint("new-", i), 1, 0))
	}
	c.Advance(2500 * time.Millisecond)
	for i := range n {
		tr.Observe(up(fmt.Sprint("svc", i%50), fmt.Sprint("new-", i), 2, 2500*time.Millisecond))
	}
	replaced := len(replacements(tr.Tick()))
	counts := Counts{}
	for _, s := range tr.Services() {
		counts.Alive += s.Alive
		counts.Dead += s.Dead
	}
	if replaced != n || counts.Alive != n || counts.Dead != 0 || tr.Len() != n {
		t.Errorf("%d replaced; tracked %d, %+v; want %d replaced and the new fleet alone", replaced, tr.Len(), counts, n)
	}
}

// A watcher that starts after a crash knows the crashed instance from
// elsewhere: it shows it dead, forgets it with the retention, and lets a
// later instance replace it; one it heard is not overwritten.
func TestARememberedInstanceIsDeadLikeOneWatched(t *testing.T) {
	c := &fakeClock{t: t0}
	tr := NewTracker(WithClock(c), WithRetention(time.Minute))
	tr.Observe(up("geo", "heard", 1, time.Hour))
	if ts := tr.Remember(Key{"geo", "heard"}, Dead, t0.Add(-time.Hour), time.Second); ts != nil || states(tr) != "[heard:alive]" {
		t.Errorf("an instance heard was overwritten: %v %s", ts, states(tr))
	}
	tr.Remember(Key{"geo", "crashed"}, Dead, t0.Add(-10*time.Second), time.Second)
	tr.Remember(Key{"stopping", "s"}, Stopped, t0.Add(-10*time.Second), 0)
	tr.Remember(Key{"geo", "unknown"}, Unknown, t0, time.Second)
	if s := states(tr); s != "[crashed:dead heard:alive s:stopped]" {
		t.Fatalf("tracked %s", s)
	}
	if c := tr.Services()[0].Counts; c.State(1) != ServiceUp || c.Dead != 1 {
		t.Errorf("geo counts %+v", c)
	}
	c.Advance(time.Second)
	if got := replacements(tr.Observe(up("geo", "restarted", 1, 0))); fmt.Sprint(got) != "[crashed dead->replaced by restarted]" {
		t.Errorf("replacements %q", got)
	}
	c.Advance(time.Minute)
	tr.Tick()
	if _, ok := tr.Get(Key{"stopping", "s"}); ok {
		t.Error("a remembered instance outlived the retention")
	}
}

// An instance history has as up, that the watcher does not hear, may
// have crashed while nothing watched: it is judged as if heard when it was
// remembered, dead three intervals later; one heard meanwhile is itself.
func TestARememberedLiveInstanceIsJudgedFromNow(t *testing.T) {
	c := &fakeClock{t: t0}
	tr := NewTracker(WithClock(c))
	tr.Remember(Key{"geo", "crashed-unwatched"}, Alive, t0, time.Second) // known up until now
	tr.Remember(Key{"geo", "was-stale"}, Stale, t0, time.Second)
	tr.Remember(Key{"geo", "beating"}, Alive, t0, time.Second)
	if s := states(tr); s != "[beating:alive crashed-unwatched:alive was-stale:stale]" {
		t.Fatalf("tracked %s", s)
	}
	var ts []Transition
	for i := 0; i < 12; i++ {
		c.Advance(250 * time.Millisecond)
		if i%4 == 3 {
			tr.Observe(up("geo", "beating", int64(i), time.Hour))
		}
		ts = append(ts, tr.Tick()...)
	}
	var got []string
	for _, x := range ts {
		got = append(got, fmt.Sprintf("%s %s->%s @%v", x.Instance, x.From, x.To, x.At.Sub(t0)))
	}
	sort.Strings(got)
	want := "[crashed-unwatched alive->stale @1.5s crashed-unwatched stale->dead @3s was-stale stale->dead @1.5s]"
	if fmt.Sprint(got) != want {
		t.Errorf("transitions %v, want %s", got, want)
	}
	for _, in := range tr.Snapshot() {
		if in.Remembered != (in.Instance != "beating") {
			t.Errorf("%s: Remembered %v", in.Instance, in.Remembered)
		}
	}
}

// An instance remembered as up, that crashed while nothing watched, is
// replaced by one that started after it was last known up (restarted
// while the panel was down too), not by a peer that ran before.
func TestARememberedLiveInstanceIsReplacedByARestart(t *testing.T) {
	c := &fakeClock{t: t0}
	tr := NewTracker(WithClock(c))
	tr.Observe(up("geo", "peer", 1, 2*time.Hour))      // ran before
	tr.Observe(up("geo", "restarted", 1, time.Minute)) // started after
	lastKnownUp := t0.Add(-5 * time.Minute)            // when a panel last watched
	tr.Remember(Key{"geo", "a"}, Alive, lastKnownUp, time.Second)
	tr.Remember(Key{"geo", "b"}, Alive, lastKnownUp, time.Second) // the same: one restart only
	var ts []Transition
	for i := 0; i < 16; i++ {
		c.Advance(250 * time.Millisecond)
		if i%4 == 3 {
			tr.Observe(up("geo", "peer", int64(i+2), 2*time.Hour))
			tr.Observe(up("geo", "restarted", int64(i+2), time.Minute))
		}
		ts = append(ts, tr.Tick()...)
	}
	if got := replacements(ts); len(got) != 1 || !strings.HasSuffix(got[0], "replaced by restarted") {
		t.Errorf("replacements %q, want one of a and b replaced by restarted", got)
	}
	if s := states(tr); s != "[b:dead peer:alive restarted:alive]" && s != "[a:dead peer:alive restarted:alive]" {
		t.Errorf("tracked %s", s)
	}
}

// BenchmarkReplacement is one crashed instance replaced by a new one, in a
// service that grows by one live instance each time.
func BenchmarkReplacement(b *testing.B) {
	c := &fakeClock{t: t0}
	tr := NewTracker(WithClock(c), WithMaxInstances(0))
	replaced := 0
	for i := 0; b.Loop(); i++ {
		tr.Remember(Key{"svc", fmt.Sprint("gone-", i)}, Dead, c.t, time.Second)
		c.Advance(time.Second)
		replaced += len(replacements(tr.Observe(up("svc", fmt.Sprint("new-", i), 1, 0))))
	}
	if replaced != b.N || tr.Len() != b.N {
		b.Fatalf("%d replaced, %d tracked, after %d crashes", replaced, tr.Len(), b.N)
	}
}
