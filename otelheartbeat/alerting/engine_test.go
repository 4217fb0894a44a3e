package alerting

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/internal/testing/leaktest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

type rig struct {
	t        *testing.T
	c        *clock
	tr       *watch.Tracker
	e        *Engine
	watching bool
	sent     []string // "firing Name service instance" / "resolved ..."
	count    map[string]int64
	started  map[string]time.Time
}

func newRig(t *testing.T, srv *redistest.Server, opts ...Option) *rig {
	return newRigWith(t, srv, nil, opts...)
}

// newRigWith is newRig with a tracker built with trackerOpts too.
func newRigWith(t *testing.T, srv *redistest.Server, trackerOpts []watch.TrackerOption, opts ...Option) *rig {
	r := &rig{t: t, c: &clock{now: time.Date(2025, 1, 16, 8, 0, 0, 0, time.UTC)}, watching: true, count: map[string]int64{}, started: map[string]time.Time{}}
	r.tr = watch.NewTracker(append([]watch.TrackerOption{watch.WithClock(r.c), watch.WithHeartbeats()}, trackerOpts...)...)
	e, err := New(r.tr, srv.Client(t), append([]Option{WithErrorf(t.Logf)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	r.e = e
	return r
}

func (r *rig) record(a Alert) {
	status := "firing"
	if !a.Firing() {
		status = "resolved"
	}
	r.sent = append(r.sent, strings.TrimSpace(fmt.Sprintf("%s %s %s %s", status, a.Labels["alertname"], a.Labels["service"], a.Labels["instance"])))
}

// beat is a heartbeat of svc/id at a 1 s interval, from a process that
// started at its first.
func (r *rig) beat(svc, id string, status string) {
	r.count[svc+id]++
	if _, ok := r.started[svc+id]; !ok {
		r.started[svc+id] = r.c.now
	}
	r.tr.Observe(&wire.Message{ServiceName: svc, InstanceID: id, Timestamp: r.c.now, HeartbeatCount: r.count[svc+id],
		IntervalSeconds: 1, UptimeSeconds: r.c.now.Sub(r.started[svc+id]).Seconds(),
		Has: wire.HasHeartbeatCount | wire.HasInterval | wire.HasUptime, Status: status})
}

// advance moves time on in 250 ms steps, ticking the tracker and
// evaluating, as the panel does.
func (r *rig) advance(d time.Duration, beating ...[2]string) {
	for end := r.c.now.Add(d); r.c.now.Before(end); {
		r.c.now = r.c.now.Add(250 * time.Millisecond)
		if r.c.now.Sub(r.c.now.Truncate(time.Second)) == 0 {
			for _, b := range beating {
				r.beat(b[0], b[1], wire.StatusRunning)
			}
		}
		r.tr.Tick()
		for _, a := range r.e.Evaluate(context.Background(), r.c.now, r.watching) {
			r.record(a)
		}
	}
}

func (r *rig) expect(want ...string) {
	r.t.Helper()
	if strings.Join(r.sent, "; ") != strings.Join(want, "; ") {
		r.t.Errorf("sent %q, want %q", r.sent, want)
	}
	r.sent = nil
}

// A crash fires once, per instance and per service; the instance beating
// again resolves both, once. A graceful stop never fires.
func TestDeadFiresOnceAndResolvesOnce(t *testing.T) {
	srv := redistest.Start(t)
	r := newRig(t, srv)
	r.beat("geo", "a", wire.StatusRunning)
	r.beat("pay", "b", wire.StatusRunning)
	r.advance(time.Second, [2]string{"pay", "b"})
	r.beat("pay", "b", wire.StatusStopping) // a deploy
	r.advance(5 * time.Second)
	r.expect("firing HeartbeatInstanceDead geo a", "firing HeartbeatServiceDown geo")
	r.advance(10 * time.Second)
	r.expect()
	r.beat("geo", "a", wire.StatusRunning)
	r.advance(time.Second, [2]string{"geo", "a"})
	r.expect("resolved HeartbeatInstanceDead geo a", "resolved HeartbeatServiceDown geo")
	if a, _ := r.e.Active(context.Background()); len(a) != 0 {
		t.Errorf("active after resolve: %+v", a)
	}
}

// A service is down below its minimum of instances up, not at the death
// of one instance of many.
func TestServiceDownAtItsMinimum(t *testing.T) {
	srv := redistest.Start(t)
	r := newRig(t, srv, WithRule(InstanceDead, RuleSettings{Disabled: true}), WithMinAlive(map[string]int{"geo": 2}))
	for _, id := range []string{"a", "b", "c"} {
		r.beat("geo", id, wire.StatusRunning)
		r.beat("pay", id, wire.StatusRunning)
	}
	both := [][2]string{{"geo", "a"}, {"pay", "a"}, {"pay", "b"}}
	r.advance(5*time.Second, both...)
	r.expect("firing HeartbeatServiceDown geo") // geo: 1 of 3 up, 2 needed; pay: 2 of 3, 1 needed
}

// A for duration damps flapping: a death shorter than it never fires.
func TestForDampsFlapping(t *testing.T) {
	srv := redistest.Start(t)
	r := newRig(t, srv, WithRule(InstanceDead, RuleSettings{For: Duration(5 * time.Second)}), WithRule(ServiceDown, RuleSettings{Disabled: true}))
	r.beat("geo", "a", wire.StatusRunning)
	r.advance(4 * time.Second) // dead at 3 s
	r.beat("geo", "a", wire.StatusRunning)
	r.advance(time.Second, [2]string{"geo", "a"})
	r.expect()
	r.advance(9 * time.Second) // dead at 3 s, fires 5 s later
	r.expect("firing HeartbeatInstanceDead geo a")
}

// While the panel cannot see, one alert says so and no instance alert
// fires; when it sees again, that alert resolves and instance alerts wait
// for one interval of fresh heartbeats, so nothing storms.
func TestBlindnessIsOneAlertNotOnePerInstance(t *testing.T) {
	srv := redistest.Start(t)
	r := newRig(t, srv)
	var all [][2]string
	for i := 0; i < 20; i++ {
		id := fmt.Sprint(i)
		r.beat("svc"+id, id, wire.StatusRunning)
		all = append(all, [2]string{"svc" + id, id})
	}
	r.advance(2*time.Second, all...)
	r.expect()
	r.watching = false
	r.tr.Hold(r.c.now) // what the monitor does while blind: no verdicts
	r.advance(3 * time.Second)
	r.expect("firing HeartbeatSourceUnreachable")
	r.watching = true
	r.tr.Hold(r.c.now)
	r.advance(3*time.Second, all...)
	r.expect("resolved HeartbeatSourceUnreachable")
}

// mostOfTheFleetFallsSilent starts ten services of one instance each, lets
// seven of them fall silent for five intervals; it returns the three that
// still beat.
func (r *rig) mostOfTheFleetFallsSilent() [][2]string {
	r.t.Helper()
	return r.mostOfTheFleetFallsSilentBeside(nil)
}

// mostOfTheFleetFallsSilentBeside is mostOfTheFleetFallsSilent with others
// beating all along too.
func (r *rig) mostOfTheFleetFallsSilentBeside(others [][2]string) [][2]string {
	r.t.Helper()
	var few [][2]string
	for i := 0; i < 10; i++ {
		r.beat(fmt.Sprint("svc", i), "x", wire.StatusRunning)
		if i < 3 {
			few = append(few, [2]string{fmt.Sprint("svc", i), "x"})
		}
	}
	r.advance(5*time.Second, append(slices.Clone(few), others...)...)
	return few
}

// untilReleased advances, beating, until the source alert firing for a
// lasting silence resolves, releasing it to the other rules, and forgets
// what was sent by then.
func (r *rig) untilReleased(beating [][2]string) {
	r.t.Helper()
	for end := r.c.now.Add(15 * time.Second); !strings.HasPrefix(strings.Join(r.sent, "; "), "resolved HeartbeatSourceUnreachable"); {
		if r.c.now.After(end) {
			r.t.Fatalf("the lasting silence was not released: %q", r.sent)
		}
		r.advance(250*time.Millisecond, beating...)
	}
	r.sent = nil
}

// Most of the fleet, across services, falling silent at once is the
// source, not the fleet.
func TestASilenceOfMostOfTheFleetIsTheSource(t *testing.T) {
	srv := redistest.Start(t)
	r := newRig(t, srv)
	r.mostOfTheFleetFallsSilent()
	r.expect("firing HeartbeatSourceUnreachable")
}

// A replica that takes over knows what was firing: it does not fire it
// again, and resolves it once.
func TestTakeoverNeitherRefiresNorForgets(t *testing.T) {
	srv := redistest.Start(t)
	a := newRig(t, srv)
	a.beat("geo", "x", wire.StatusRunning)
	a.advance(4 * time.Second)
	a.expect("firing HeartbeatInstanceDead geo x", "firing HeartbeatServiceDown geo")

	b := newRig(t, srv)
	b.c.now = a.c.now
	b.beat("geo", "x", wire.StatusRunning)
	b.c.now = b.c.now.Add(-4 * time.Second) // b's tracker heard the same heartbeat
	b.tr = watch.NewTracker(watch.WithClock(b.c), watch.WithHeartbeats())
	b.e.tr = b.tr
	b.beat("geo", "x", wire.StatusRunning)
	b.c.now = a.c.now
	b.tr.Tick()
	active, err := b.e.Takeover(context.Background(), b.c.now)
	if err != nil || len(active) != 2 {
		t.Fatalf("takeover: %v %v", active, err)
	}
	b.advance(2 * time.Second)
	b.expect()
	b.beat("geo", "x", wire.StatusRunning)
	b.advance(time.Second, [2]string{"geo", "x"})
	b.expect("resolved HeartbeatInstanceDead geo x", "resolved HeartbeatServiceDown geo")
	recent, err := b.e.Recent(context.Background(), 10)
	if err != nil || len(recent) != 4 || recent[0].Firing() {
		t.Errorf("recent: %d %v", len(recent), err)
	}
}

// Every instance of one service crashing while the others beat is that
// service's outage, not the source's: its alerts fire, and a silence of
// several services that lasts is not held for ever.
func TestOneServiceCrashingIsNotTheSource(t *testing.T) {
	srv := redistest.Start(t)
	r := newRig(t, srv)
	r.beat("alpha", "a", wire.StatusRunning)
	for i := 1; i <= 6; i++ {
		r.beat("eps", fmt.Sprint(i), wire.StatusRunning)
	}
	r.advance(5*time.Second, [2]string{"alpha", "a"})
	sent := strings.Join(r.sent, "; ")
	if strings.Contains(sent, "SourceUnreachable") || !strings.Contains(sent, "firing HeartbeatServiceDown eps") {
		t.Errorf("sent %q: want eps down, not the source", sent)
	}
}

// A replica that starts after crashes knows the crashed instances from
// history (Tracker.Remember), not by hearing them fall silent: a service
// crashing whole later is that service's outage, not the source's, however
// many remembered instances of other services are dead.
func TestRememberedDeathsAreNotASilenceOfTheFleet(t *testing.T) {
	srv := redistest.Start(t)
	r := newRig(t, srv)
	r.tr.Remember(watch.Key{Service: "svc_a", Instance: "a1"}, watch.Dead, r.c.now.Add(-time.Second), 0)
	r.tr.Remember(watch.Key{Service: "svc_b", Instance: "b1"}, watch.Dead, r.c.now.Add(-time.Second), 0)
	r.advance(time.Second)
	r.sent = nil // what the remembered deaths fire is another test's
	for _, id := range []string{"c1", "c2", "c3"} {
		r.beat("svc_c", id, wire.StatusRunning)
	}
	r.advance(5 * time.Second)
	sent := strings.Join(r.sent, "; ")
	if strings.Contains(sent, "SourceUnreachable") || !strings.Contains(sent, "firing HeartbeatServiceDown svc_c") ||
		strings.Count(sent, "firing HeartbeatInstanceDead svc_c") != 3 {
		t.Errorf("sent %q: want svc_c's three instances and svc_c down, not the source", sent)
	}
}

// A share-based hold ends after ten intervals: a lasting silence of most
// of the fleet is then judged instance by instance.
func TestASilenceThatLastsIsJudged(t *testing.T) {
	srv := redistest.Start(t)
	r := newRig(t, srv)
	few := r.mostOfTheFleetFallsSilent()
	r.expect("firing HeartbeatSourceUnreachable")
	r.advance(20*time.Second, few...)
	sent := strings.Join(r.sent, "; ")
	if !strings.HasPrefix(sent, "resolved HeartbeatSourceUnreachable") || !strings.Contains(sent, "firing HeartbeatInstanceDead svc9 x") {
		t.Errorf("after a lasting silence: %q", sent)
	}
}

// Instances that fell silent late in a lasting silence are part of it:
// once it is released they are judged one by one, not taken for a new
// silence of the fleet.
func TestTheLastToFallSilentInALastingSilenceAreJudgedWithIt(t *testing.T) {
	t.Run("", func(t *testing.T) { lastToFallSilent(t, "") })
	t.Run("after a takeover", func(t *testing.T) { lastToFallSilent(t, "same") })
	t.Run("after another replica's takeover", func(t *testing.T) { lastToFallSilent(t, "another") })
}

// lastToFallSilent releases a lasting silence, then takes the lease over
// with the same engine or another one on the same view of the fleet, or
// not at all ("").
func lastToFallSilent(t *testing.T, takeover string) {
	srv := redistest.Start(t)
	// Seven silent of fifteen is the source; five of eight would be too.
	r := newRig(t, srv, WithSilentShare(0.4, 3))
	late := [][2]string{}
	for i := range 5 {
		late = append(late, [2]string{fmt.Sprint("late", i), "z"})
	}
	few := r.mostOfTheFleetFallsSilentBeside(late)
	r.expect("firing HeartbeatSourceUnreachable")
	r.advance(6*time.Second, append(slices.Clone(few), late...)...)
	r.untilReleased(few)
	if takeover != "" {
		// The lease lost and taken back at once, or taken by another
		// replica that watched the same fleet: the engine reloads the
		// alerts firing, and knows which silence was released.
		r.advance(500*time.Millisecond, few...)
		if takeover == "another" {
			// The release's own fires, in a large fleet, bury its
			// resolve in the log of notifications.
			c := srv.Client(t)
			for range logLength + 1 {
				c.XAdd(context.Background(), &redis.XAddArgs{Stream: logKey, Values: []string{"alert", `{"labels":{"alertname":"HeartbeatInstanceDead"}}`}})
			}
			e, err := New(r.tr, c, WithErrorf(t.Logf), WithSilentShare(0.4, 3))
			if err != nil {
				t.Fatal(err)
			}
			r.e = e
		}
		if _, err := r.e.Takeover(context.Background(), r.c.now); err != nil {
			t.Fatal(err)
		}
	}
	r.advance(5*time.Second, few...)
	sent := strings.Join(r.sent, "; ")
	if strings.Contains(sent, "SourceUnreachable") || strings.Count(sent, "firing HeartbeatInstanceDead late") != len(late) {
		t.Errorf("after the release: %q; want each late instance's own alert, not the source again", sent)
	}
}

// A silence released to instance alerts does not blind the rule to the
// next one: another share of the fleet falling silent together soon after
// is the source again, not one alert per instance.
func TestASilenceSoonAfterALastingOneIsTheSource(t *testing.T) {
	srv := redistest.Start(t)
	r := newRig(t, srv)
	few := r.mostOfTheFleetFallsSilent()
	r.expect("firing HeartbeatSourceUnreachable")
	r.untilReleased(few)

	beating := slices.Clone(few)
	for i := range 10 {
		beating = append(beating, [2]string{fmt.Sprint("new", i), "y"})
	}
	r.advance(time.Second, beating...)
	r.advance(5*time.Second, few...) // the ten new services fall silent together
	sent := strings.Join(r.sent, "; ")
	if !strings.Contains(sent, "firing HeartbeatSourceUnreachable") || strings.Contains(sent, "HeartbeatInstanceDead new") {
		t.Errorf("a second silence of most of the fleet, two intervals after the first was released: %q; want the source, not the instances", sent)
	}
}

// Valkey restarted without its data while alerts fire: the evaluator that
// led until then keeps what it knows, so nothing fires twice and the
// alerts it had resolve once.
func TestAValkeyThatLostItsDataFiresNothingTwice(t *testing.T) {
	srv := redistest.Start(t)
	r := newRig(t, srv)
	r.beat("geo", "x", wire.StatusRunning)
	r.advance(4 * time.Second)
	r.expect("firing HeartbeatInstanceDead geo x", "firing HeartbeatServiceDown geo")
	active, _ := r.e.Active(context.Background())
	for _, a := range active {
		r.e.MarkDelivered(context.Background(), a) // the webhook acknowledged both
	}
	srv.Client(t).FlushAll(context.Background())
	if _, err := r.e.Takeover(context.Background(), r.c.now); err != nil {
		t.Fatal(err)
	}
	if fire, resolve, err := r.e.Undelivered(context.Background(), r.c.now); err != nil || len(fire)+len(resolve) != 0 {
		t.Errorf("after the data loss the webhook would hear again %d firings and %d resolves (%v)", len(fire), len(resolve), err)
	}
	r.advance(2 * time.Second)
	r.expect()
	if a, _ := r.e.Active(context.Background()); len(a) != 2 {
		t.Errorf("Valkey holds %d active alerts again, want 2", len(a))
	}
	r.beat("geo", "x", wire.StatusRunning)
	r.advance(time.Second, [2]string{"geo", "x"})
	r.expect("resolved HeartbeatInstanceDead geo x", "resolved HeartbeatServiceDown geo")
}

// A standby follows the alerts in Valkey: if it takes over after Valkey
// lost its data, it knows them still, and neither fires them again nor
// delivers again what the webhook acknowledged. An empty Valkey that kept
// alerts before (the mark is there) is a fleet without alerts, and the
// follower takes that as it is.
func TestAStandbyThatFollowedKnowsTheAlertsAfterADataLoss(t *testing.T) {
	srv := redistest.Start(t)
	a := newRig(t, srv)
	a.beat("geo", "x", wire.StatusRunning)
	a.advance(4 * time.Second)
	a.expect("firing HeartbeatInstanceDead geo x", "firing HeartbeatServiceDown geo")
	active, _ := a.e.Active(context.Background())
	for _, al := range active {
		a.e.MarkDelivered(context.Background(), al)
	}
	b := newRig(t, srv)
	b.c.now = a.c.now
	b.e.Follow(context.Background(), b.c.now)
	srv.Client(t).FlushAll(context.Background())
	taken, err := b.e.Takeover(context.Background(), b.c.now.Add(time.Second))
	if err != nil || len(taken) != 2 {
		t.Fatalf("takeover after the data loss: %d alerts, %v", len(taken), err)
	}
	if fire, resolve, err := b.e.Undelivered(context.Background(), b.c.now); err != nil || len(fire)+len(resolve) != 0 {
		t.Errorf("the follower would deliver again %d firings and %d resolves (%v)", len(fire), len(resolve), err)
	}

	// Resolved for good, in a Valkey that kept alerts: nothing to restore.
	c := newRig(t, srv)
	c.e.Follow(context.Background(), c.c.now) // knows the two alerts
	srv.Client(t).HDel(context.Background(), "heartbeat:alerts:active", Fingerprint(active[0].Labels), Fingerprint(active[1].Labels))
	if taken, err := c.e.Takeover(context.Background(), c.c.now); err != nil || len(taken) != 0 {
		t.Errorf("takeover of a Valkey that kept no alert firing: %d alerts, %v", len(taken), err)
	}
}

// A crashed instance restarted under a new id (every Kubernetes pod
// restart is one) resolves its alert at once, saying by whom, rather than
// firing until it is forgotten.
func TestARestartResolvesTheCrashedInstancesAlert(t *testing.T) {
	srv := redistest.Start(t)
	r := newRig(t, srv)
	r.beat("geo", "crashed", wire.StatusRunning)
	r.advance(4 * time.Second)
	r.expect("firing HeartbeatInstanceDead geo crashed", "firing HeartbeatServiceDown geo")
	r.beat("geo", "restarted", wire.StatusRunning)
	var resolved []Alert
	for _, a := range r.e.Evaluate(context.Background(), r.c.now, true) {
		r.record(a)
		resolved = append(resolved, a)
	}
	r.expect("resolved HeartbeatInstanceDead geo crashed", "resolved HeartbeatServiceDown geo")
	if len(resolved) == 0 || resolved[0].Annotations["replaced_by"] != "restarted" ||
		!strings.Contains(resolved[0].Annotations["summary"], "replaced by restarted") {
		t.Errorf("resolved %+v: want it to say the instance was replaced by restarted", resolved)
	}
	if _, ok := r.tr.Get(watch.Key{Service: "geo", Instance: "crashed"}); ok {
		t.Error("the replaced instance is still tracked")
	}
}

// The services examples/check publishes crash on purpose: no alert is
// raised for them unless asked, from the options or the file.
func TestCheckServicesPageNobodyUnlessAsked(t *testing.T) {
	srv := redistest.Start(t)
	for _, tt := range []struct {
		name string
		opts []Option
		want []string
	}{
		{"by default", nil, nil},
		{"asked for every service", []Option{WithIgnoredServices()}, []string{
			"firing HeartbeatInstanceDead heartbeat_check_monitor crashed", "firing HeartbeatServiceDown heartbeat_check_monitor"}},
		{"ignoring another pattern", []Option{WithIgnoredServices("canary_*")}, []string{
			"firing HeartbeatInstanceDead heartbeat_check_monitor crashed", "firing HeartbeatServiceDown heartbeat_check_monitor"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv.Client(t).FlushAll(context.Background())
			r := newRig(t, srv, tt.opts...)
			r.beat("heartbeat_check_monitor", "crashed", wire.StatusRunning)
			r.beat("canary_1", "crashed", wire.StatusRunning)
			r.advance(4 * time.Second)
			var got []string
			for _, s := range r.sent {
				if strings.Contains(s, "heartbeat_check_monitor") {
					got = append(got, s)
				}
			}
			if strings.Join(got, "; ") != strings.Join(tt.want, "; ") {
				t.Errorf("sent %q, want %q", got, tt.want)
			}
		})
	}
	f, err := Parse("alerts.yml", []byte("ignore_services: []\n"))
	if err != nil || f.IgnoreServices == nil || len(*f.IgnoreServices) != 0 {
		t.Errorf("ignore_services: [] read as %v, %v; want an empty list, not the default", f.IgnoreServices, err)
	}
	if _, err := Parse("alerts.yml", []byte("ignore_services: ['a[']\n")); err == nil || !strings.Contains(err.Error(), "ignore_services[0]") {
		t.Errorf("a malformed pattern: %v", err)
	}
}

// An instance that beats but breaks a health rule fires
// HeartbeatInstanceDegraded once the rule has been broken for its for,
// naming the rule, and resolves when the rule holds again; a death ends
// it, as the dead alert begins.
func TestADegradedInstanceFiresAfterItsForAndResolves(t *testing.T) {
	srv := redistest.Start(t)
	rules, err := watch.ParseHealthRules([]string{"fetcher: queue_size > 100 for 3s"})
	if err != nil {
		t.Fatal(err)
	}
	r := newRigWith(t, srv, []watch.TrackerOption{watch.WithHealthRules(rules...)}, WithRule(ServiceDown, RuleSettings{Disabled: true}))
	queue := int64(0)
	beat := func() {
		r.count["f"]++
		r.tr.Observe(&wire.Message{ServiceName: "fetcher", InstanceID: "f1", Timestamp: r.c.now, HeartbeatCount: r.count["f"],
			IntervalSeconds: 1, Has: wire.HasHeartbeatCount | wire.HasInterval,
			Fields: []wire.Field{{Key: "queue_size", Value: wire.Int(queue)}}})
	}
	step := func(d time.Duration) {
		for end := r.c.now.Add(d); r.c.now.Before(end); {
			r.c.now = r.c.now.Add(500 * time.Millisecond)
			if r.c.now.Sub(r.c.now.Truncate(time.Second)) == 0 {
				beat()
			}
			r.tr.Tick()
			for _, a := range r.e.Evaluate(context.Background(), r.c.now, true) {
				r.record(a)
				if a.Firing() && !strings.Contains(a.Annotations["summary"], "fetcher: queue_size > 100 for 3s") {
					t.Errorf("the alert does not name the rule: %q", a.Annotations["summary"])
				}
			}
		}
	}
	beat()
	step(2 * time.Second)
	queue = 500
	step(2500 * time.Millisecond) // broken since the next heartbeat, for less than its 3 s
	r.expect()
	step(2 * time.Second)
	r.expect("firing HeartbeatInstanceDegraded fetcher f1")
	step(5 * time.Second)
	r.expect()
	queue = 5
	step(time.Second)
	r.expect("resolved HeartbeatInstanceDegraded fetcher f1")
	queue = 500
	step(5 * time.Second)
	r.expect("firing HeartbeatInstanceDegraded fetcher f1")
	r.advance(5 * time.Second) // it falls silent
	r.expect("firing HeartbeatInstanceDead fetcher f1", "resolved HeartbeatInstanceDegraded fetcher f1")
}

// A degraded instance that breaks other rules than when its alert fired:
// the firing alert is sent again naming the rules it breaks now, and
// resolves once, when they all hold.
func TestADegradedAlertFollowsTheRulesBroken(t *testing.T) {
	srv := redistest.Start(t)
	rules, err := watch.ParseHealthRules([]string{"tc: a > 5", "tc: b > 5"})
	if err != nil {
		t.Fatal(err)
	}
	r := newRigWith(t, srv, []watch.TrackerOption{watch.WithHealthRules(rules...)}, WithRule(ServiceDown, RuleSettings{Disabled: true}))
	var summaries []string
	send := func(a, b int64) {
		r.count["tc"]++
		r.tr.Observe(&wire.Message{ServiceName: "tc", InstanceID: "x", Timestamp: r.c.now, HeartbeatCount: r.count["tc"],
			IntervalSeconds: 1, Has: wire.HasHeartbeatCount | wire.HasInterval,
			Fields: []wire.Field{{Key: "a", Value: wire.Int(a)}, {Key: "b", Value: wire.Int(b)}}})
		r.c.now = r.c.now.Add(500 * time.Millisecond)
		for _, al := range r.e.Evaluate(context.Background(), r.c.now, true) {
			r.record(al)
			if al.Firing() {
				summaries = append(summaries, al.Annotations["rules"])
			}
		}
	}
	send(9, 1)
	send(9, 9)
	send(1, 9)
	send(1, 9)
	send(1, 1)
	r.expect("firing HeartbeatInstanceDegraded tc x", "firing HeartbeatInstanceDegraded tc x", "firing HeartbeatInstanceDegraded tc x",
		"resolved HeartbeatInstanceDegraded tc x")
	if want := []string{"tc: a > 5", "tc: a > 5\ntc: b > 5", "tc: b > 5"}; strings.Join(summaries, "|") != strings.Join(want, "|") {
		t.Errorf("rules %q, want %q", summaries, want)
	}
	if a, _ := r.e.Active(context.Background()); len(a) != 0 {
		t.Errorf("active after the resolve: %+v", a)
	}
}

// A service whose dead instances are forgotten, unreplaced, is still down,
// as its uptime and the page have it: its alert resolves when an instance
// of it is up again, not when the watcher lets the dead go. Its dead
// instance's alert resolves when it is forgotten.
func TestAServiceWhoseDeadAreForgottenStaysDown(t *testing.T) {
	srv := redistest.Start(t)
	r := newRigWith(t, srv, []watch.TrackerOption{watch.WithRetention(time.Minute)})
	r.beat("geo", "crashed", wire.StatusRunning)
	r.advance(4 * time.Second)
	r.expect("firing HeartbeatInstanceDead geo crashed", "firing HeartbeatServiceDown geo")
	r.advance(2 * time.Minute)
	if _, ok := r.tr.Get(watch.Key{Service: "geo", Instance: "crashed"}); ok {
		t.Fatal("the dead instance is still tracked after its retention")
	}
	r.expect("resolved HeartbeatInstanceDead geo crashed")
	r.beat("geo", "new", wire.StatusRunning)
	r.advance(time.Second, [2]string{"geo", "new"})
	r.expect("resolved HeartbeatServiceDown geo")
}
