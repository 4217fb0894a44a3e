package history

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/poll"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/internal/testing/leaktest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

var ctx = context.Background()

func store(t *testing.T, srv *redistest.Server) *Store {
	t.Helper()
	s, err := NewStore(srv.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A transition is recorded once, however often it is written: by two
// recorders, or by a recorder and its own reconciliation. Lost heartbeats
// are recorded by how many more were lost.
func TestAWriteThatChangesNothingRecordsNothing(t *testing.T) {
	srv := redistest.Start(t)
	s := store(t, srv)
	now := time.Now().Truncate(time.Millisecond)
	recs := []Record{
		{Service: "geo", Instance: "a", To: watch.Alive, At: now},
		{Service: "geo", Instance: "a", To: watch.Alive, At: now.Add(time.Second)},
		{Service: "geo", Instance: "a", Event: LostHeartbeats, At: now.Add(2 * time.Second), Lost: 2},
		{Service: "geo", Instance: "a", Event: LostHeartbeats, At: now.Add(3 * time.Second), Lost: 2},
		{Service: "geo", Instance: "a", Event: LostHeartbeats, At: now.Add(4 * time.Second), Lost: 5},
		{Service: "geo", Instance: "a", To: watch.Dead, At: now.Add(5 * time.Second)},
		{Service: "geo", Instance: "b", Event: Forgotten, At: now.Add(5 * time.Second)}, // never recorded
	}
	n, err := s.Apply(ctx, 1, recs)
	if err != nil || n != 4 {
		t.Fatalf("changed %d, %v; want 4", n, err)
	}
	if n, err := s.Apply(ctx, 1, recs); err != nil || n != 0 {
		t.Errorf("the same writes again changed %d, %v", n, err)
	}
	es, _, err := s.EntriesAfter(ctx, "geo", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Service: "geo", Instance: "a", From: watch.Unknown, To: watch.Alive, At: now},
		{Service: "geo", Instance: "a", From: watch.Alive, Event: LostHeartbeats, At: now.Add(2 * time.Second), Lost: 2},
		{Service: "geo", Instance: "a", From: watch.Alive, Event: LostHeartbeats, At: now.Add(4 * time.Second), Lost: 3},
		{Service: "geo", Instance: "a", From: watch.Alive, To: watch.Dead, At: now.Add(5 * time.Second)},
	}
	if len(es) != len(want) {
		t.Fatalf("entries %+v", es)
	}
	for i := range want {
		if es[i] != want[i] {
			t.Errorf("entry %d: %+v, want %+v", i, es[i], want[i])
		}
	}
	rec, err := s.Recorded(ctx)
	if err != nil || rec["geo"]["a"].State != watch.Dead || rec["geo"]["a"].Lost != 5 {
		t.Errorf("recorded %+v %v", rec, err)
	}
}

// A recorder paused past its lease cannot write once its successor has.
func TestAnOlderEpochIsFenced(t *testing.T) {
	srv := redistest.Start(t)
	s := store(t, srv)
	now := time.Now()
	if _, err := s.Apply(ctx, 2, []Record{{Service: "geo", Instance: "a", To: watch.Alive, At: now}}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Apply(ctx, 1, []Record{{Service: "geo", Instance: "a", To: watch.Dead, At: now}})
	if !errors.Is(err, ErrFenced) {
		t.Errorf("an older epoch wrote: %v", err)
	}
	// Another service has not seen epoch 2 yet: epoch 1 may still write
	// there until the new recorder does.
	if _, err := s.Apply(ctx, 1, []Record{{Service: "other", Instance: "a", To: watch.Alive, At: now}}); err != nil {
		t.Errorf("epoch 1 on a service epoch 2 never wrote: %v", err)
	}
}

// Valkey restarted without its data forgets the epochs it gave: a lease
// taken after that still has an epoch above every one given before, also
// to a replica that never saw them, so that a recorder paused across the
// loss is fenced and what was made under the old lease is not taken for
// the new one's.
func TestALeaseTakenAfterValkeyLostItsDataHasANewEpoch(t *testing.T) {
	srv := redistest.Start(t)
	s := store(t, srv)
	a, _ := s.NewLease("a", time.Minute)
	b, _ := s.NewLease("b", time.Minute)
	var last int64
	for i := range 3 {
		if ok, _, err := a.TryAcquire(ctx); !ok || err != nil || a.Epoch() <= last {
			t.Fatalf("a, %d: %v %v, epoch %d after %d", i, ok, err, a.Epoch(), last)
		}
		last = a.Epoch()
		if err := a.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if ok, _, err := a.TryAcquire(ctx); !ok || err != nil {
		t.Fatalf("a: %v %v", ok, err)
	}
	held := a.Epoch()
	if _, err := s.Apply(ctx, held, []Record{{Service: "geo", Instance: "i", To: watch.Alive, At: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := b.TryAcquire(ctx); ok || err != nil {
		t.Fatalf("b took a held lease: %v %v", ok, err)
	}

	srv.Do(t, "FLUSHALL")
	if err := a.Renew(ctx, time.Now()); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("renewing a lease Valkey forgot: %v", err)
	}
	// Epochs given within one millisecond run ahead of Valkey's clock by
	// one each; a server that restarts takes longer than those did.
	clock := srv.Client(t)
	poll.Until(t, 5*time.Second, "Valkey's clock past the epoch held", func() bool {
		return clock.Time(ctx).Val().UnixMilli() > held
	})
	// c starts after the loss: it never saw an epoch.
	c, err := s.NewLease("c", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []*Lease{a, b, c} {
		srv.Do(t, "FLUSHALL")
		if ok, _, err := l.TryAcquire(ctx); !ok || err != nil {
			t.Fatalf("%s after the loss: %v %v", l.id, ok, err)
		}
		if l.Epoch() <= held {
			t.Errorf("%s took the lease under epoch %d, not above the %d held before the loss", l.id, l.Epoch(), held)
		}
		if _, err := s.Apply(ctx, l.Epoch(), []Record{{Service: "geo", Instance: "i", To: watch.Dead, At: time.Now()}}); err != nil {
			t.Fatal(err)
		}
		// The recorder that held the lease before, paused across the loss.
		if _, err := s.Apply(ctx, held, []Record{{Service: "geo", Instance: "i", To: watch.Alive, At: time.Now()}}); !errors.Is(err, ErrFenced) {
			t.Errorf("the recorder of before the loss wrote after %s: %v", l.id, err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// A service's recorded epoch that is no whole number (nan, inf, hex, a
// fraction) reads as none: the next write sets it, and fences an older
// epoch after it. Lua's tonumber takes "nan", which no comparison fences.
func TestAServiceEpochThatIsNoNumberReadsAsNone(t *testing.T) {
	for _, v := range []string{"nan", "inf", "-inf", "0x10", "1.5", "-3"} {
		t.Run(v, func(t *testing.T) {
			srv := redistest.Start(t)
			s := store(t, srv)
			srv.Do(t, "SET", "heartbeat:history:{geo}:epoch", v)
			now := time.Now()
			if _, err := s.Apply(ctx, 1000, []Record{{Service: "geo", Instance: "i", To: watch.Alive, At: now}}); err != nil {
				t.Fatalf("a write over a recorded epoch of %q: %v", v, err)
			}
			if _, err := s.Apply(ctx, 5, []Record{{Service: "geo", Instance: "i", To: watch.Dead, At: now.Add(time.Second)}}); !errors.Is(err, ErrFenced) {
				t.Errorf("an older epoch after it wrote: %v", err)
			}
		})
	}
}

// An epoch counter that holds no epoch (written by hand), or one at its
// limit (2^52: the last case would give it), is set anew from Valkey's
// clock when the lease is taken, and said once: it never keeps every
// replica from recording.
func TestAnEpochCounterThatHoldsNoEpochIsSetAnew(t *testing.T) {
	for _, v := range []string{"abc", "3.5", "-5", "9223372036854775807", "100000000000000000000", "4503599627370495"} {
		t.Run(v, func(t *testing.T) {
			srv := redistest.Start(t)
			s := store(t, srv)
			srv.Do(t, "SET", "heartbeat:history:epoch", v)
			l, _ := s.NewLease("a", time.Minute)
			if ok, _, err := l.TryAcquire(ctx); !ok || err != nil {
				t.Fatalf("taking the lease over an epoch counter of %q: %v %v", v, ok, err)
			}
			if l.Epoch() < time.Now().Add(-time.Hour).UnixMilli() || !l.garbage.Load() {
				t.Errorf("epoch %d, reported %v", l.Epoch(), l.garbage.Load())
			}
			if held, err := l.Holds(ctx, l.Epoch()); !held || err != nil {
				t.Errorf("the new holder does not hold it: %v %v", held, err)
			}
			b, _ := s.NewLease("b", time.Minute)
			if ok, _, err := b.TryAcquire(ctx); ok || err != nil || b.seen.Load() != l.Epoch() {
				t.Errorf("a standby after it: %v %v, saw %d", ok, err, b.seen.Load())
			}
		})
	}
	t.Run("said by the recorder", func(t *testing.T) {
		srv := redistest.Start(t)
		srv.Do(t, "SET", "heartbeat:history:epoch", "abc")
		r, reports := recorderOn(t, srv, "gamma")
		poll.Until(t, 5*time.Second, "the lease taken", r.Leading)
		if got := strings.Join(reports(), "\n"); strings.Count(got, "heartbeat:history:epoch held no epoch") != 1 {
			t.Errorf("reports:\n%s", got)
		}
	})
}

// One holder at a time; a standby takes the lease within one period of the
// holder's last renewal, learns when the holder last watched, and the old
// holder's renewal then fails.
func TestOneLeaseHolderAtATime(t *testing.T) {
	srv := redistest.Start(t)
	s := store(t, srv)
	a, _ := s.NewLease("a", 300*time.Millisecond)
	b, _ := s.NewLease("b", 300*time.Millisecond)
	if ok, last, err := a.TryAcquire(ctx); !ok || err != nil || !last.IsZero() {
		t.Fatalf("a: %v %v %v", ok, last, err)
	}
	if ok, _, err := b.TryAcquire(ctx); ok || err != nil {
		t.Fatalf("b took a held lease: %v %v", ok, err)
	}
	renewed := time.Now()
	if err := a.Renew(ctx, renewed); err != nil {
		t.Fatal(err)
	}
	// a stops renewing (killed); b tries until it gets the lease.
	deadline := time.Now().Add(5 * time.Second)
	var last time.Time
	for {
		ok, l, err := b.TryAcquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			last = l
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b never took the lease")
		}
		time.Sleep(20 * time.Millisecond) // polling a server-side TTL: no event to wait on
	}
	if took := time.Since(renewed); took > 300*time.Millisecond+time.Second {
		t.Errorf("b took over %v after a's last renewal", took)
	}
	if !last.Equal(renewed.Truncate(time.Millisecond)) {
		t.Errorf("b learned a watched until %v, want %v", last, renewed)
	}
	if b.Epoch() <= a.Epoch() {
		t.Errorf("epochs a %d b %d", a.Epoch(), b.Epoch())
	}
	if err := a.Renew(ctx, time.Now()); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("a renewed b's lease: %v", err)
	}
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if h, _ := s.Holder(ctx); h != "" {
		t.Errorf("holder %q after release", h)
	}
}

// Garbage in one service's keys neither breaks the others nor the
// recorder: a malformed recorded state reads as unknown, a malformed
// epoch as none, a gap that cannot be one is ignored, a name that cannot
// be a service's is skipped, and a key of another type costs only its
// service.
func TestGarbageInHistoryKeysIsContained(t *testing.T) {
	srv := redistest.Start(t)
	s := store(t, srv)
	c := srv.Client(t)
	now := time.Now()
	c.HSet(ctx, "heartbeat:history:{alpha}:state", "a", "alive|abc|zz")
	c.Set(ctx, "heartbeat:history:{beta}:epoch", "zzz", 0)
	c.SAdd(ctx, "heartbeat:history:services", "", "*", "wrongtype")
	c.Set(ctx, "heartbeat:history:{wrongtype}:state", "a string", 0)
	c.XAdd(ctx, &redis.XAddArgs{Stream: "heartbeat:history:gaps", Values: []any{"from", 0, "to", "99999999999999"}})
	n, err := s.Apply(ctx, 1, []Record{
		{Service: "alpha", Instance: "a", To: watch.Dead, At: now},
		{Service: "beta", Instance: "b", To: watch.Alive, At: now},
		{Service: "gamma", Instance: "c", To: watch.Alive, At: now},
	})
	if n != 3 || err != nil {
		t.Errorf("changed %d, %v; want 3 despite the garbage", n, err)
	}
	svcs, err := s.Services(ctx)
	if err != nil || strings.Join(svcs, ",") != "alpha,beta,gamma,wrongtype" {
		t.Errorf("services %q %v", svcs, err)
	}
	rec, err := s.Recorded(ctx)
	if rec["gamma"]["c"].State != watch.Alive || rec["alpha"]["a"].State != watch.Dead {
		t.Errorf("recorded %+v", rec)
	}
	if err == nil || !strings.Contains(err.Error(), "wrongtype") {
		t.Errorf("the key of another type was not named: %v", err)
	}
	if gaps, err := s.Gaps(ctx, time.Time{}); err != nil || len(gaps) != 0 {
		t.Errorf("gaps %+v %v: a gap ending in the year 5138 is not one", gaps, err)
	}
}

// recorderOn runs a recorder over a tracker that already knows one alive
// instance of service svc, until the test ends, and collects its reports.
func recorderOn(t *testing.T, srv *redistest.Server, svc string) (*Recorder, func() []string) {
	t.Helper()
	s := store(t, srv)
	l, err := s.NewLease("r1", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	tr := watch.NewTracker(watch.WithHeartbeats())
	tr.Observe(&wire.Message{ServiceName: svc, InstanceID: "i", Timestamp: time.Now(), HeartbeatCount: 1, IntervalSeconds: 60,
		Has: wire.HasHeartbeatCount | wire.HasInterval})
	var mu sync.Mutex
	var reports []string
	r := NewRecorder(s, l, tr, WithReconcileEvery(100*time.Millisecond),
		WithErrorf(func(f string, a ...any) { mu.Lock(); reports = append(reports, fmt.Sprintf(f, a...)); mu.Unlock() }))
	r.Observe(watch.Event{Kind: watch.KindLoaded, At: time.Now()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return r, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), reports...) }
}

// An epoch no lease ever gave, planted in one service's state, is repaired
// by the holder of the lease, who goes on recording: it does not give the
// lease up, and so does not turn the whole fleet's time into gaps.
func TestAnEpochNoLeaseGaveIsRepaired(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	c.Set(ctx, "heartbeat:history:{gamma}:epoch", "4000000000000000", 0) // the year 128,000 in ms
	r, reports := recorderOn(t, srv, "gamma")
	poll.Until(t, 5*time.Second, "gamma recorded", func() bool {
		v, _ := c.HGet(ctx, "heartbeat:history:{gamma}:state", "i").Result()
		return strings.HasPrefix(v, "alive|")
	})
	if st := r.Stats(); st.Takeovers != 1 {
		t.Errorf("takeovers %d, want 1: the lease was given up", st.Takeovers)
	}
	if got := strings.Join(reports(), "\n"); !strings.Contains(got, `"gamma" holds a recorded epoch no lease gave`) {
		t.Errorf("reports:\n%s", got)
	}
}

// A lease without a TTL, which no recorder writes, would keep every
// replica from recording for ever: it is given a TTL, reported with its
// holder, and taken over.
func TestALeaseWithoutATTLIsTakenOver(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	c.Set(ctx, "heartbeat:history:lease", "fake-holder", 0)
	r, reports := recorderOn(t, srv, "geo")
	poll.Until(t, 5*time.Second, "the lease taken over", r.Leading)
	if got := strings.Join(reports(), "\n"); !strings.Contains(got, `held by "fake-holder" without a TTL`) {
		t.Errorf("reports:\n%s", got)
	}
}

// No instance id can touch a service's metadata: an instance named like
// the epoch's field records its state beside the epoch, the epoch stays
// where the newest recorder put it, a stale recorder is still fenced,
// and the transition is recorded once.
func TestAnInstanceIDCannotCollideWithTheEpoch(t *testing.T) {
	srv := redistest.Start(t)
	s := store(t, srv)
	now := time.Now().Truncate(time.Millisecond)
	for _, id := range []string{"_epoch", "epoch", "_e"} {
		if _, err := s.Apply(ctx, 5, []Record{{Service: "geo", Instance: id, To: watch.Alive, At: now}}); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		// The instance's write must not have rolled the epoch back.
		if _, err := s.Apply(ctx, 4, []Record{{Service: "geo", Instance: id, To: watch.Dead, At: now.Add(time.Second)}}); !errors.Is(err, ErrFenced) {
			t.Errorf("instance %q: epoch 4 wrote after epoch 5: %v", id, err)
		}
		if _, err := s.Apply(ctx, 5, []Record{{Service: "geo", Instance: id, To: watch.Dead, At: now.Add(time.Second)}}); err != nil {
			t.Fatal(err)
		}
	}
	es, _, err := s.EntriesAfter(ctx, "geo", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 6 {
		t.Errorf("entries %+v, want each instance's two transitions once", es)
	}
	rec, err := s.Recorded(ctx)
	if err != nil || len(rec["geo"]) != 3 || rec["geo"]["_epoch"].State != watch.Dead {
		t.Errorf("recorded %+v %v", rec, err)
	}
}

// History kept before the epoch had a key of its own holds it in the
// state hash: the first write moves it, and it fences as before.
func TestAnEpochKeptInTheStateHashMoves(t *testing.T) {
	srv := redistest.Start(t)
	s := store(t, srv)
	c := srv.Client(t)
	c.HSet(ctx, "heartbeat:history:{geo}:state", "_epoch", "7", "a", "alive|1|0")
	if _, err := s.Apply(ctx, 6, []Record{{Service: "geo", Instance: "a", To: watch.Dead, At: time.Now()}}); !errors.Is(err, ErrFenced) {
		t.Errorf("epoch 6 wrote over the kept epoch 7: %v", err)
	}
	if v, _ := c.Get(ctx, "heartbeat:history:{geo}:epoch").Result(); v != "7" {
		t.Errorf("epoch key %q, want 7", v)
	}
	if n, _ := c.HExists(ctx, "heartbeat:history:{geo}:state", "_epoch").Result(); n {
		t.Error("the old field stayed in the state hash")
	}
	if _, err := s.Apply(ctx, 7, []Record{{Service: "geo", Instance: "a", To: watch.Dead, At: time.Now()}}); err != nil {
		t.Errorf("epoch 7: %v", err)
	}
}

// A replacement is recorded once, with its replacement, and the replaced
// instance leaves the recorded states, as a forgotten one does.
func TestAReplacementIsRecordedOnceAndLeavesTheState(t *testing.T) {
	srv := redistest.Start(t)
	s := store(t, srv)
	now := time.Now().Truncate(time.Millisecond)
	recs := []Record{
		{Service: "geo", Instance: "old", To: watch.Alive, At: now},
		{Service: "geo", Instance: "old", To: watch.Dead, At: now.Add(3 * time.Second)},
		{Service: "geo", Instance: "new", To: watch.Alive, At: now.Add(time.Second)},
		{Service: "geo", Instance: "old", Event: Replaced, By: "new", At: now.Add(3 * time.Second)},
	}
	if n, err := s.Apply(ctx, 1, recs); err != nil || n != 4 {
		t.Fatalf("changed %d, %v; want 4", n, err)
	}
	if n, err := s.Apply(ctx, 1, recs[3:]); err != nil || n != 0 {
		t.Errorf("the replacement written again changed %d, %v", n, err)
	}
	es, _, err := s.EntriesAfter(ctx, "geo", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 4 {
		t.Fatalf("entries %+v", es)
	}
	last := es[3]
	if last.Event != Replaced || last.By != "new" || last.From != watch.Dead || last.Instance != "old" {
		t.Errorf("entry %+v, want old replaced by new, from dead", last)
	}
	rec, err := s.Recorded(ctx)
	if _, ok := rec["geo"]["old"]; ok || err != nil || rec["geo"]["new"].State != watch.Alive {
		t.Errorf("recorded %+v %v: want the replaced instance gone", rec, err)
	}
}

// A recorder that loses its lease and takes it back says both: its last
// word is never "standing by" while it records.
func TestALeaseTakenBackIsSaid(t *testing.T) {
	srv := redistest.Start(t)
	r, reports := recorderOn(t, srv, "svc")
	poll.Until(t, 5*time.Second, "the recorder leading", r.Leading)
	s := store(t, srv)
	if err := srv.Client(t).Set(context.Background(), s.leaseKey(), "another", 700*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, "the lease lost", func() bool { return !r.Leading() })
	poll.Until(t, 5*time.Second, "the lease taken back", func() bool {
		said := reports()
		return r.Leading() && len(said) > 0 && strings.Contains(said[len(said)-1], "again")
	})
	said := reports()
	if len(said) < 2 || !strings.Contains(said[len(said)-2], "lost the recorder lease") ||
		!strings.Contains(said[len(said)-1], "took the recorder lease again") {
		t.Errorf("said %q; want the loss, then the lease taken back", said)
	}
}

// recorderBesideABrokenService is recorderOn for service geo, beside a
// service "broken" whose state key is a list, not a hash.
func recorderBesideABrokenService(t *testing.T) (*redis.Client, *Recorder, func() []string) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	c.SAdd(ctx, "heartbeat:history:services", "broken")
	c.RPush(ctx, "heartbeat:history:{broken}:state", "not a hash")
	r, reports := recorderOn(t, srv, "geo")
	return c, r, reports
}

// A service whose recorded states cannot be read (not a hash) is skipped
// and reported by the reconciliation, which still records the others.
func TestReconciliationSkipsOnlyAServiceItCannotRead(t *testing.T) {
	c, _, reports := recorderBesideABrokenService(t)
	poll.Until(t, 5*time.Second, "geo recorded beside the broken service", func() bool {
		v, _ := c.HGet(ctx, "heartbeat:history:{geo}:state", "i").Result()
		return strings.HasPrefix(v, "alive|")
	})
	poll.Until(t, 5*time.Second, "the broken service reported", func() bool {
		return strings.Contains(strings.Join(reports(), "\n"), "{broken}:state")
	})
}

// A service whose history cannot be written (its state key is not a hash)
// is reported once, by name, however many of its transitions fail and
// however many of other services' are written meanwhile.
func TestAServiceThatCannotBeWrittenIsReportedOnce(t *testing.T) {
	_, r, reports := recorderBesideABrokenService(t)
	poll.Until(t, 5*time.Second, "recording", r.Leading)
	at := time.Now()
	for n := range 6 {
		// Instances new to history each time, so that each write changes it.
		id := fmt.Sprint("n", n)
		at = at.Add(time.Second)
		r.Observe(watch.Event{Kind: watch.KindTransition, Transition: watch.Transition{Key: watch.Key{Service: "broken", Instance: id}, From: watch.Unknown, To: watch.Alive, At: at}})
		before := r.Stats().Recorded
		r.Observe(watch.Event{Kind: watch.KindTransition, Transition: watch.Transition{Key: watch.Key{Service: "geo", Instance: id}, From: watch.Unknown, To: watch.Alive, At: at}})
		poll.Until(t, 5*time.Second, "geo's transition recorded", func() bool { return r.Stats().Recorded > before })
	}
	var failures []string
	for _, s := range reports() {
		if strings.Contains(s, "recording") {
			failures = append(failures, s)
		}
	}
	if len(failures) != 1 || !strings.Contains(failures[0], `"broken"`) || !strings.Contains(failures[0], "WRONGTYPE") {
		t.Errorf("reports of the failing writes, want one naming the service:\n%s", strings.Join(failures, "\n"))
	}
}

// A reader reads a service's history a part at a time, each read from the
// last entry it read; when that entry is gone (the history lost or trimmed
// past it) it is told so, not handed what came after as if it followed.
func TestEntriesAreReadOnFromTheLastRead(t *testing.T) {
	srv := redistest.Start(t)
	s := store(t, srv)
	now := time.Now().Truncate(time.Millisecond)
	var recs []Record
	for i := range 5 {
		recs = append(recs, Record{Service: "geo", Instance: fmt.Sprint("i", i), To: watch.Alive, At: now.Add(time.Duration(i) * time.Second)})
	}
	if _, err := s.Apply(ctx, 1, recs); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for after := ""; ; {
		es, last, err := s.EntriesAfter(ctx, "geo", after, 2)
		if err != nil {
			t.Fatalf("after %q: %v", after, err)
		}
		if len(es) == 0 {
			if last != after {
				t.Errorf("an empty read moved the last read from %q to %q", after, last)
			}
			break
		}
		for _, e := range es {
			ids = append(ids, e.Instance)
		}
		after = last
	}
	if got := strings.Join(ids, ","); got != "i0,i1,i2,i3,i4" {
		t.Errorf("read %s", got)
	}
	first, firstID, _ := s.EntriesAfter(ctx, "geo", "", 1)
	if es, _, err := s.EntriesAfter(ctx, "geo", firstID, math.MaxInt64); err != nil || len(es) != 4 || len(first) != 1 {
		t.Errorf("all after the first: %d entries, %v; want 4", len(es), err)
	}
	_, last, _ := s.EntriesAfter(ctx, "geo", "", 100)
	if err := srv.Client(t).Del(ctx, "heartbeat:history:{geo}:events").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(ctx, 1, []Record{{Service: "geo", Instance: "later", To: watch.Dead, At: now.Add(time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	if es, _, err := s.EntriesAfter(ctx, "geo", last, 100); !errors.Is(err, ErrEntryGone) || len(es) != 0 {
		t.Errorf("after the history was deleted: %v, %v; want ErrEntryGone", es, err)
	}
}

// The state hash is read back field by field: state, time and lost
// heartbeats as the script writes them; a field of another shape, which
// the script cannot read either (a part that is no number, one part more),
// is skipped.
func TestRecordedStateIsReadBack(t *testing.T) {
	srv := redistest.Start(t)
	s := store(t, srv)
	c := srv.Client(t)
	now := time.Now().Truncate(time.Millisecond)
	if _, err := s.Apply(ctx, 1, []Record{
		{Service: "geo", Instance: "w", To: watch.Alive, At: now},
		{Service: "geo", Instance: "w", To: watch.Dead, At: now.Add(time.Second)},
	}); err != nil {
		t.Fatal(err)
	}
	c.HSet(ctx, "heartbeat:history:{geo}:state", "a", "stale|1733400000123|7", "b", "alive|5|0|more", "c", "garbage", "d", "stopped|x|y")
	got, err := s.RecordedOf(ctx, "geo")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Recorded{
		"w": {State: watch.Dead, At: now.Add(time.Second)},
		"a": {State: watch.Stale, At: time.UnixMilli(1733400000123), Lost: 7},
	}
	if len(got) != len(want) {
		t.Errorf("read %d instances, want %d: %+v", len(got), len(want), got)
	}
	for id, w := range want {
		if g, ok := got[id]; !ok || g.State != w.State || !g.At.Equal(w.At) || g.Lost != w.Lost {
			t.Errorf("%s: read %+v (%v), want %+v", id, g, ok, w)
		}
	}
}

// Reconciliation compares each instance's recorded state with the
// tracker's, reading a state as the record script does (letters, then
// two numbers, each after a '|'): a tracked instance whose state the
// script cannot read is written again, its lost heartbeats too; one whose
// state agrees is left alone; a recorded instance the tracker no longer
// holds is recorded as forgotten; and a field the script cannot read as a
// state is no instance's, and is sent nothing. A time ahead of this
// replica's clock (another's ran fast) does not make the script take a
// record for late news, and a time of more digits than any millisecond
// time has is no state. A round writes each of these once, and the next
// round has nothing to write.
func TestReconciliationRewritesWhatIsUnreadableAndForgetsWhatIsGone(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	var sent atomic.Int64 // record calls made (and answered: the first are sent again once the script is loaded)
	c.AddHook(&pipelineHook{after: func(cmds []redis.Cmder) {
		for _, cmd := range cmds {
			if strings.EqualFold(cmd.Name(), "evalsha") && cmd.Err() == nil {
				sent.Add(1)
			}
		}
	}})
	s, l := storeAndLease(t, c, "r1")
	now := time.Now().Truncate(time.Millisecond)
	tr := watch.NewTracker()
	for _, id := range []string{"garbled", "agrees", "one-bar", "trailing", "signed", "huge"} {
		tr.Observe(&wire.Message{ServiceName: "geo", InstanceID: id, Timestamp: now, IntervalSeconds: 60, Has: wire.HasInterval})
	}
	for _, id := range []string{"lossy", "ahead"} {
		for _, n := range []int64{1, 5} { // three heartbeats lost
			tr.Observe(&wire.Message{ServiceName: "geo", InstanceID: id, Timestamp: now, IntervalSeconds: 60, HeartbeatCount: n,
				Has: wire.HasInterval | wire.HasHeartbeatCount})
		}
	}
	later := fmt.Sprintf("alive|%d|0", now.Add(time.Hour).UnixMilli())
	agrees := fmt.Sprintf("alive|%d|0", now.Add(-time.Minute).UnixMilli())
	c.HSet(ctx, "heartbeat:history:{geo}:state", "garbled", "garbage", "agrees", agrees,
		"one-bar", "alive|5", "trailing", "alive|5|0|more", "signed", "alive|-5|0", "lossy", "alive|x|y",
		"gone", "alive|1000|0", "junk", "nonsense", "junk2", "alive|abc|def",
		"huge", "dead|99999999999999999999|0", "ahead", later, "gone-ahead", later)
	c.SAdd(ctx, "heartbeat:history:services", "geo")
	r := NewRecorder(s, l, tr, WithForgetAfter(time.Millisecond))
	r.Observe(watch.Event{Kind: watch.KindLoaded, At: now.Add(-time.Second)})
	if r.step(ctx); !r.Leading() { // a takeover reconciles, once
		t.Fatal("the recorder did not take the lease")
	}

	h, _ := c.HGetAll(ctx, "heartbeat:history:{geo}:state").Result()
	for _, id := range []string{"garbled", "one-bar", "trailing", "signed", "lossy", "huge", "ahead"} {
		rec, ok := parseRecorded(h[id])
		if !ok || rec.State != watch.Alive || rec.At.Before(now.Add(-time.Minute)) || rec.At.After(now.Add(time.Hour)) {
			t.Errorf("%s: %q, want it written again as alive, at a time of this hour", id, h[id])
		}
	}
	for _, id := range []string{"lossy", "ahead"} {
		if !strings.HasSuffix(h[id], "|3") {
			t.Errorf("%s: %q, want its three lost heartbeats recorded", id, h[id])
		}
	}
	if h["agrees"] != agrees {
		t.Errorf("agrees: %q, want %q left alone", h["agrees"], agrees)
	}
	for _, id := range []string{"gone", "gone-ahead"} {
		if v, ok := h[id]; ok {
			t.Errorf("%s: %q, want it forgotten", id, v)
		}
	}
	if h["junk"] != "nonsense" || h["junk2"] != "alive|abc|def" {
		t.Errorf("junk %q and junk2 %q, want them left alone", h["junk"], h["junk2"])
	}
	es, _, err := s.EntriesAfter(ctx, "geo", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, fmt.Sprintf("%s %v", e.Instance, e.Event))
	}
	slices.Sort(got)
	want := []string{
		fmt.Sprintf("ahead %v", LostHeartbeats), fmt.Sprintf("garbled %v", Changed), fmt.Sprintf("gone %v", Forgotten),
		fmt.Sprintf("gone-ahead %v", Forgotten), fmt.Sprintf("huge %v", Changed), fmt.Sprintf("lossy %v", Changed),
		fmt.Sprintf("lossy %v", LostHeartbeats), fmt.Sprintf("one-bar %v", Changed), fmt.Sprintf("signed %v", Changed),
		fmt.Sprintf("trailing %v", Changed),
	}
	if !slices.Equal(got, want) {
		t.Errorf("entries %q, want %q", got, want)
	}
	if n := sent.Load(); n != int64(len(want)) {
		t.Errorf("%d record calls, want one an entry (%d)", n, len(want))
	}
	sent.Store(0)
	if r.reconcile(ctx, time.Time{}); sent.Load() != 0 {
		t.Errorf("the next round made %d record calls, want none", sent.Load())
	}
}

// pipelineHook calls after once each pipeline a client sends is answered,
// and after1, when set, once each command sent alone is.
type pipelineHook struct {
	after  func(cmds []redis.Cmder)
	after1 func(cmd redis.Cmder)
}

func (h *pipelineHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *pipelineHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if h.after1 != nil {
			h.after1(cmd)
		}
		return err
	}
}
func (h *pipelineHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.after(cmds)
		return err
	}
}

// Reconciliation reads a service's recorded states a page at a time
// (recordedPage), never its whole hash at once, which a service of
// 100,000 instances would hold in 11 MB; and a service of more than a
// page is reconciled whole: each tracked instance whose state is missing
// or differs is written, each that agrees is left, each recorded instance
// the tracker no longer holds is forgotten; and the next round has
// nothing to write.
func TestReconciliationReadsALargeServiceAPageAtATime(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	var (
		on     atomic.Bool
		sent   atomic.Int64 // record calls answered
		widest atomic.Int64 // the most states one read asked for or brought
		whole  atomic.Bool  // a read of the whole hash
	)
	widen := func(n int64) {
		for w := widest.Load(); n > w && !widest.CompareAndSwap(w, n); w = widest.Load() {
		}
	}
	c.AddHook(&pipelineHook{after: func(cmds []redis.Cmder) {
		for _, cmd := range cmds {
			if on.Load() && strings.EqualFold(cmd.Name(), "evalsha") && cmd.Err() == nil {
				sent.Add(1)
			}
		}
	}, after1: func(cmd redis.Cmder) {
		if !on.Load() {
			return
		}
		switch strings.ToLower(cmd.Name()) {
		case "hgetall":
			whole.Store(true)
		case "hmget":
			widen(int64(len(cmd.Args()) - 2))
		case "hscan":
			if kv, _, err := cmd.(*redis.ScanCmd).Result(); err == nil {
				widen(int64(len(kv) / 2))
			}
		}
	}})
	s, l := storeAndLease(t, c, "r1")
	const tracked, gone = 2*recordedPage + 500, recordedPage + 200
	now := time.Now().Truncate(time.Millisecond)
	tr := watch.NewTracker()
	agrees := fmt.Sprintf("alive|%d|0", now.Add(-time.Minute).UnixMilli())
	var states []any
	for i := range tracked {
		id := fmt.Sprintf("i%04d", i)
		tr.Observe(&wire.Message{ServiceName: "geo", InstanceID: id, Timestamp: now, IntervalSeconds: 60, Has: wire.HasInterval})
		switch i % 4 {
		case 0, 2:
			states = append(states, id, agrees)
		case 1:
			states = append(states, id, fmt.Sprintf("dead|%d|0", now.Add(-time.Minute).UnixMilli()))
		} // 3: none recorded
	}
	for i := range gone {
		states = append(states, fmt.Sprintf("g%04d", i), agrees)
	}
	c.HSet(ctx, "heartbeat:history:{geo}:state", states...)
	c.SAdd(ctx, "heartbeat:history:services", "geo")
	r := NewRecorder(s, l, tr, WithForgetAfter(time.Millisecond))
	r.Observe(watch.Event{Kind: watch.KindLoaded, At: now.Add(-time.Second)})
	on.Store(true)
	if r.step(ctx); !r.Leading() { // a takeover reconciles, once
		t.Fatal("the recorder did not take the lease")
	}
	on.Store(false)
	if whole.Load() {
		t.Error("reconciliation read the whole state hash at once (HGETALL)")
	}
	// HSCAN's count is a hint: a page may bring a few more.
	if w := widest.Load(); w == 0 || w > 2*recordedPage {
		t.Errorf("the widest read of recorded states held %d, want about a page (%d) at most", w, recordedPage)
	}
	// Counted in the stream: the scan may bring an instance twice, and
	// the script writes nothing the second time.
	es, _, err := s.EntriesAfter(ctx, "geo", "", 2*(tracked+gone))
	if err != nil {
		t.Fatal(err)
	}
	events := map[Event]int{}
	for _, e := range es {
		events[e.Event]++
	}
	if events[Changed] != tracked/2 || events[Forgotten] != gone || len(es) != tracked/2+gone {
		t.Errorf("entries written %v (%d in all), want %d changed (missing or differing) and %d forgotten", events, len(es), tracked/2, gone)
	}
	h, _ := c.HGetAll(ctx, "heartbeat:history:{geo}:state").Result()
	if len(h) != tracked {
		t.Errorf("%d instances recorded, want the %d tracked", len(h), tracked)
	}
	for i := range tracked {
		id := fmt.Sprintf("i%04d", i)
		if rec, ok := parseRecorded(h[id]); !ok || rec.State != watch.Alive || (i%4 == 0 || i%4 == 2) && h[id] != agrees {
			t.Fatalf("%s: %q, want alive (left as it was where it agreed)", id, h[id])
		}
	}
	on.Store(true)
	sent.Store(0)
	if r.reconcile(ctx, time.Time{}); sent.Load() != 0 {
		t.Errorf("the next round made %d record calls, want none", sent.Load())
	}
}

// A recorder fenced by another in the middle of a reconciliation (its
// first page's writes refused) reads no more pages: what it would write
// is the other's now.
func TestReconciliationStopsOnceFenced(t *testing.T) {
	srv := redistest.Start(t)
	c, other := srv.Client(t), srv.Client(t)
	s2, l2 := storeAndLease(t, other, "r2")
	var on, tookOver atomic.Bool
	var reads atomic.Int64 // HMGET and HSCAN calls
	c.AddHook(&pipelineHook{after: func([]redis.Cmder) {}, after1: func(cmd redis.Cmder) {
		if !on.Load() {
			return
		}
		switch strings.ToLower(cmd.Name()) {
		case "hmget", "hscan":
			reads.Add(1)
		}
		if strings.EqualFold(cmd.Name(), "hmget") && !tookOver.Swap(true) {
			// Another replica takes over, and writes to the service.
			other.Del(ctx, "heartbeat:history:lease")
			if ok, _, err := l2.TryAcquire(ctx); !ok || err != nil {
				t.Errorf("r2 did not take the lease: %v", err)
			}
			if _, err := s2.Apply(ctx, l2.Epoch(), []Record{{Service: "geo", Instance: "zzz", To: watch.Alive, At: time.Now()}}); err != nil {
				t.Errorf("r2 could not write: %v", err)
			}
		}
	}})
	s, l := storeAndLease(t, c, "r1")
	now := time.Now().Truncate(time.Millisecond)
	tr := watch.NewTracker()
	var states []any
	for i := range 2*recordedPage + 1 { // three pages, every state differing
		id := fmt.Sprintf("i%06d", i)
		tr.Observe(&wire.Message{ServiceName: "geo", InstanceID: id, Timestamp: now, IntervalSeconds: 60, Has: wire.HasInterval})
		states = append(states, id, fmt.Sprintf("dead|%d|0", now.Add(-time.Minute).UnixMilli()))
	}
	c.HSet(ctx, "heartbeat:history:{geo}:state", states...)
	c.SAdd(ctx, "heartbeat:history:services", "geo")
	r := NewRecorder(s, l, tr, WithForgetAfter(time.Millisecond), WithErrorf(func(string, ...any) {}))
	r.Observe(watch.Event{Kind: watch.KindLoaded, At: now.Add(-time.Second)})
	if ok, _, err := l.TryAcquire(ctx); !ok || err != nil {
		t.Fatalf("r1 did not take the lease: %v", err)
	}
	r.leading.Store(true)
	on.Store(true)
	r.reconcile(ctx, time.Time{})
	on.Store(false)
	if r.Leading() {
		t.Fatal("r1 still leads after r2 took over and wrote")
	}
	if n := reads.Load(); n != 1 {
		t.Errorf("%d pages read, want the one before the fence", n)
	}
}

// storeAndLease is a store on c, and a lease of a minute in it for the
// replica id.
func storeAndLease(t *testing.T, c redis.UniversalClient, id string) (*Store, *Lease) {
	t.Helper()
	s, err := NewStore(c)
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.NewLease(id, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return s, l
}
