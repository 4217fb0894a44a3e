package history

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/leaktest"
	"github.com/otel-heartbeat/heartbeat/internal/redistest"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

var ctx = context.Background()

func store(t *testing.T, srv *redistest.Server) *Store {
	t.Helper()
	s, err := NewStore(srv.Client(t), "", 0)
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
		{Service: "geo", Instance: "a", To: "alive", At: now},
		{Service: "geo", Instance: "a", To: "alive", At: now.Add(time.Second)},
		{Service: "geo", Instance: "a", To: Lost, At: now.Add(2 * time.Second), Lost: 2},
		{Service: "geo", Instance: "a", To: Lost, At: now.Add(3 * time.Second), Lost: 2},
		{Service: "geo", Instance: "a", To: Lost, At: now.Add(4 * time.Second), Lost: 5},
		{Service: "geo", Instance: "a", To: "dead", At: now.Add(5 * time.Second)},
		{Service: "geo", Instance: "b", To: Forgotten, At: now.Add(5 * time.Second)}, // never recorded
	}
	n, err := s.Apply(ctx, 1, recs)
	if err != nil || n != 4 {
		t.Fatalf("changed %d, %v; want 4", n, err)
	}
	if n, err := s.Apply(ctx, 1, recs); err != nil || n != 0 {
		t.Errorf("the same writes again changed %d, %v", n, err)
	}
	es, err := s.Entries(ctx, "geo", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Service: "geo", Instance: "a", From: "unknown", To: "alive", At: now},
		{Service: "geo", Instance: "a", From: "alive", To: Lost, At: now.Add(2 * time.Second), Lost: 2},
		{Service: "geo", Instance: "a", From: "alive", To: Lost, At: now.Add(4 * time.Second), Lost: 3},
		{Service: "geo", Instance: "a", From: "alive", To: "dead", At: now.Add(5 * time.Second)},
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
	if err != nil || rec["geo"]["a"].State != "dead" || rec["geo"]["a"].Lost != 5 {
		t.Errorf("recorded %+v %v", rec, err)
	}
}

// A recorder paused past its lease cannot write once its successor has.
func TestAnOlderEpochIsFenced(t *testing.T) {
	srv := redistest.Start(t)
	s := store(t, srv)
	now := time.Now()
	if _, err := s.Apply(ctx, 2, []Record{{Service: "geo", Instance: "a", To: "alive", At: now}}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Apply(ctx, 1, []Record{{Service: "geo", Instance: "a", To: "dead", At: now}})
	if !errors.Is(err, ErrFenced) {
		t.Errorf("an older epoch wrote: %v", err)
	}
	// Another service has not seen epoch 2 yet: epoch 1 may still write
	// there until the new recorder does.
	if _, err := s.Apply(ctx, 1, []Record{{Service: "other", Instance: "a", To: "alive", At: now}}); err != nil {
		t.Errorf("epoch 1 on a service epoch 2 never wrote: %v", err)
	}
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
