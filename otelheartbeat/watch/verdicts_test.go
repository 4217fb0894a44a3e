package watch

import (
	"context"
	"fmt"
	"github.com/redis/go-redis/v9"
	"strings"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
)

// beating publishes heartbeats of one instance every period, with the
// given interval_seconds, until the test ends or stop is called. sent
// receives each count published.
type beating struct {
	sent chan int64
	stop func()
}

func startBeating(t *testing.T, srv *redistest.Server, service, id string, interval, period time.Duration) *beating {
	t.Helper()
	c := srv.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	b := &beating{sent: make(chan int64, 100_000)}
	go func() {
		defer close(done)
		tk := time.NewTicker(period)
		defer tk.Stop()
		for n := int64(1); ; n++ {
			if err := c.Publish(ctx, "heartbeat:service:"+service, message(service, id, interval, n)).Err(); err != nil && ctx.Err() != nil {
				return
			}
			b.sent <- n
			select {
			case <-tk.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	stopped := false
	b.stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(b.stop)
	return b
}

// waitSent returns once count n has been published.
func (b *beating) waitSent(t *testing.T, n int64) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case got := <-b.sent:
			if got >= n {
				return
			}
		case <-deadline:
			t.Fatalf("heartbeat %d not published within 30s", n)
		}
	}
}

// collect gathers a running monitor's events until the instance has been
// tracked with at least count heartbeats, and returns them.
func (r *running) collectUntilCount(k Key, count int64) []Event {
	r.t.Helper()
	var got []Event
	deadline := time.After(30 * time.Second)
	for {
		select {
		case e := <-r.events:
			got = append(got, e)
		case <-deadline:
			in, _ := r.m.Tracker().Get(k)
			r.t.Fatalf("instance %v not tracked up to heartbeat %d within 30s (at %d); events: %s", k, count, in.Count, kinds(got))
		}
		if in, ok := r.m.Tracker().Get(k); ok && in.Count >= count {
			return got
		}
	}
}

func kinds(es []Event) string {
	var b strings.Builder
	for _, e := range es {
		if e.Kind == KindTransition {
			b.WriteString(e.Transition.From.String() + "->" + e.Transition.To.String() + " ")
		} else {
			b.WriteString(kindName(e.Kind) + " ")
		}
	}
	return b.String()
}

func kindName(k Kind) string {
	return map[Kind]string{KindHeartbeat: "heartbeat", KindTransition: "transition", KindMalformed: "malformed",
		KindDisconnected: "disconnected", KindReconnected: "reconnected", KindLoaded: "loaded", KindDropped: "dropped",
		KindRefresh: "refresh", KindBlind: "blind", KindCaughtUp: "caught-up", KindEvicted: "evicted", KindIdle: "idle"}[k]
}

// noSilenceVerdicts fails if any event declares an instance stale or dead.
func noSilenceVerdicts(t *testing.T, es []Event) {
	t.Helper()
	for _, e := range es {
		if e.Kind == KindTransition && (e.Transition.To == Stale || e.Transition.To == Dead) {
			t.Errorf("false verdict: %s (%s) %v->%v after %v (interval %v)", e.Transition.Service, e.Transition.Instance,
				e.Transition.From, e.Transition.To, e.Transition.Age, e.Transition.Interval)
		}
	}
}

// A renderer that falls behind (a slow terminal, a table redraw at fleet
// scale) skips what it shows, never a verdict: the tracker sees every
// heartbeat the subscription delivers.
func TestARendererThatFallsBehindNeverTurnsIntoDead(t *testing.T) {
	srv := redistest.Start(t)
	release := make(chan struct{})
	m, err := New(Connection{Client: srv.Client(t)}, WithQueue(4, 0), WithoutLatestState())
	if err != nil {
		t.Fatal(err)
	}
	r := runStuckOnFirstHeartbeat(t, m, release)
	r.waitFor(KindLoaded)

	// 200 ms interval (stale after 300 ms, dead after 600 ms), a beat every 50 ms.
	b := startBeating(t, srv, "busy", "1", 200*time.Millisecond, 50*time.Millisecond)
	b.waitSent(t, 40) // the renderer is stuck for about 2 s: ten intervals
	close(release)
	got := r.collectUntilCount(Key{Service: "busy", Instance: "1"}, 45)
	b.stop()
	noSilenceVerdicts(t, got)
	in, _ := m.Tracker().Get(Key{Service: "busy", Instance: "1"})
	if in.Lost != 0 {
		t.Errorf("the tracker missed %d heartbeats the subscription delivered", in.Lost)
	}
	if m.Stats().Dropped == 0 {
		t.Error("nothing was left unshown, though the renderer was stuck")
	}
}

// A monitor whose reader is behind (heartbeats waiting in its socket) does
// not declare dead the instances whose heartbeats are waiting there.
func TestHeartbeatsWaitingInTheSocketAreNotDeath(t *testing.T) {
	srv := redistest.Start(t)
	release := make(chan struct{})
	paused := make(chan struct{})
	m, err := New(Connection{Client: srv.Client(t)}, WithProbe(20*time.Millisecond, 200*time.Millisecond), WithoutLatestState())
	if err != nil {
		t.Fatal(err)
	}
	pause := false
	pauseSet := make(chan struct{})
	m.beforeFrame = func() {
		select {
		case <-pauseSet:
			if !pause {
				pause = true
				close(paused)
				<-release
			}
		default:
		}
	}
	r := runWith(t, m)
	r.waitFor(KindLoaded)
	b := startBeating(t, srv, "quiet", "1", 200*time.Millisecond, 50*time.Millisecond)
	b.waitSent(t, 3)
	r.collectUntilCount(Key{Service: "quiet", Instance: "1"}, 2)
	close(pauseSet)
	<-paused
	b.waitSent(t, 40) // the reader is stuck for about 2 s: ten intervals
	close(release)
	got := r.collectUntilCount(Key{Service: "quiet", Instance: "1"}, 45)
	b.stop()
	noSilenceVerdicts(t, got)
	var blind, caughtUp bool
	for _, e := range got {
		blind = blind || e.Kind == KindBlind
		caughtUp = caughtUp || e.Kind == KindCaughtUp
	}
	if !blind || !caughtUp {
		t.Errorf("the monitor did not say it was behind and caught up: %s", kinds(got))
	}
}

// A broker that stalls for several intervals is not a fleet that died: the
// monitor says it is blind and holds its verdicts until it has seen fresh
// data for an interval.
func TestAStalledBrokerIsBlindnessNotDeath(t *testing.T) {
	srv := redistest.Start(t)
	r := start(t, srv, WithProbe(20*time.Millisecond, 200*time.Millisecond), WithoutLatestState())
	r.waitFor(KindLoaded)
	k := Key{Service: "steady", Instance: "1"}
	b := startBeating(t, srv, k.Service, k.Instance, 200*time.Millisecond, 50*time.Millisecond)
	before := r.collectUntilCount(k, 3)
	srv.Pause()
	if blind := r.waitFor(KindBlind); blind.Downtime < 200*time.Millisecond {
		t.Errorf("blind after %v without an answer, want at least BlindAfter (200ms)", blind.Downtime)
	}
	// The stall lasts five intervals: long enough to call everything dead.
	<-time.After(time.Second)
	srv.Resume()
	caught := r.waitFor(KindCaughtUp)
	if caught.Downtime < time.Second {
		t.Errorf("blind for %v, want at least the 1 s stall", caught.Downtime)
	}
	in, _ := r.m.Tracker().Get(k)
	got := r.collectUntilCount(k, in.Count+20) // a second of fresh data
	b.stop()
	noSilenceVerdicts(t, append(before, got...))
}

// A channel name longer than the reader's limit is a malformed heartbeat,
// counted, never a broken connection: anyone allowed to publish could
// otherwise knock every monitor off its subscription.
func TestAnOverlongChannelNameIsMalformedNotADisconnect(t *testing.T) {
	srv := redistest.Start(t)
	r := start(t, srv, WithoutLatestState())
	r.waitFor(KindLoaded)
	c := srv.Client(t)
	ctx := context.Background()
	c.Publish(ctx, "heartbeat:service:"+strings.Repeat("x", 1100), message("x", "1", time.Minute, 1))
	c.Publish(ctx, "heartbeat:service:after", message("after", "1", time.Minute, 1))
	var got []Event
	for deadline := time.After(10 * time.Second); ; {
		select {
		case e := <-r.events:
			got = append(got, e)
			if e.Kind != KindHeartbeat {
				continue
			}
		case <-deadline:
			t.Errorf("no heartbeat after the long channel name within 10s: %s", kinds(got))
		}
		break
	}
	r.stop()
	s := r.m.Stats()
	if s.Disconnects != 0 || s.Malformed != 1 {
		t.Errorf("disconnects %d, malformed %d; want 0 and 1 (events: %s)", s.Disconnects, s.Malformed, kinds(got))
	}
}

// A burst of made-up instance ids at the bound cannot hide a real instance
// that appears after it, and the evictions are reported.
func TestABurstOfFakeInstancesCannotHideARealOne(t *testing.T) {
	srv := redistest.Start(t)
	r := start(t, srv, WithTracker(WithMaxInstances(100)), WithRefresh(20*time.Millisecond), WithoutLatestState())
	r.waitFor(KindLoaded)
	c := srv.Client(t)
	ctx := context.Background()
	p := c.Pipeline()
	for i := 0; i < 500; i++ {
		p.Publish(ctx, "heartbeat:service:fake", message("fake", fmt.Sprint("fake-", i), time.Minute, 1))
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	c.Publish(ctx, "heartbeat:service:payments", message("payments", "1", time.Minute, 1))
	ev := r.waitFor(KindEvicted)
	got := r.collectUntilCount(Key{Service: "payments", Instance: "1"}, 1)
	r.stop()
	reported := int64(ev.Count)
	for _, e := range got {
		if e.Kind == KindEvicted {
			reported += int64(e.Count)
		}
	}
	// 501 instances through a bound of 100.
	if s := r.m.Stats(); s.Evicted != 401 || reported > 401 {
		t.Errorf("evicted %d instances, reported %d; want 401", s.Evicted, reported)
	}
}

// Anyone allowed to publish can get the monitor disconnected (a message
// larger than the server's output buffer for subscribers). Done over and
// over, that must not keep a crashed instance from being declared dead:
// only the time the monitor could not see is not counted against it.
func TestRepeatedDisconnectsCannotKeepACrashedInstanceAlive(t *testing.T) {
	srv := redistest.Start(t)
	r := start(t, srv, WithProbe(20*time.Millisecond, time.Second), WithoutLatestState())
	r.waitFor(KindLoaded)
	k := Key{Service: "crashed", Instance: "1"}
	b := startBeating(t, srv, k.Service, k.Instance, 200*time.Millisecond, 50*time.Millisecond)
	r.collectUntilCount(k, 3)
	b.stop() // crashed: dead 600 ms of watched silence from now
	crashed := time.Now()
	kills := make(chan struct{})
	killer := srv.Client(t)
	go func() {
		defer close(kills)
		tk := time.NewTicker(150 * time.Millisecond)
		defer tk.Stop()
		for deadline := time.Now().Add(4 * time.Second); time.Now().Before(deadline); {
			killer.ClientKillByFilter(context.Background(), "TYPE", "pubsub")
			<-tk.C
		}
	}()
	for {
		select {
		case e := <-r.events:
			if e.Kind == KindTransition && e.Transition.Key == k && e.Transition.To == Dead {
				if d := time.Since(crashed); d > 3*time.Second {
					t.Errorf("dead %v after the crash, with the monitor disconnected every 150 ms", d)
				}
				<-kills
				return
			}
		case <-kills:
			t.Fatal("the crashed instance was never declared dead while the monitor was disconnected every 150 ms")
		}
	}
}

// A subscription cut off before any answer, over and over, sees nothing
// however often it is re-made: the monitor says it is blind instead of
// judging anyone (and instead of seeming healthy between cut-offs). Here
// the server refuses every probe (a user without PING, as the documented
// monitor rule is not), which ends each connection before its first
// answer, as a publisher flooding the subscription past the server's
// output buffer did.
func TestASubscriptionCutOffBeforeEveryAnswerIsBlindness(t *testing.T) {
	srv := redistest.Start(t)
	srv.Do(t, "ACL", "SETUSER", "noping", "on", ">pw", "resetchannels", "&heartbeat:service:*", "resetkeys", "%R~heartbeat:instance:*", "-@all", "+psubscribe")
	m, err := New(Connection{Client: srv.Client(t, func(o *redis.Options) { o.Username, o.Password = "noping", "pw" })}, WithProbe(20*time.Millisecond, 500*time.Millisecond), WithoutLatestState())
	if err != nil {
		t.Fatal(err)
	}
	r := runWith(t, m)
	k := Key{Service: "live", Instance: "1"}
	startBeating(t, srv, k.Service, k.Instance, 200*time.Millisecond, 50*time.Millisecond)
	var got []Event
	for deadline := time.After(10 * time.Second); ; {
		select {
		case e := <-r.events:
			got = append(got, e)
			if e.Kind == KindBlind {
				noSilenceVerdicts(t, got)
				if s := m.Stats(); s.Disconnects == 0 || s.BlindSince.IsZero() {
					t.Errorf("stats %+v", s)
				}
				return
			}
		case <-deadline:
			t.Fatalf("not blind within 10 s while every probe was refused: %s", kinds(got))
		}
	}
}
