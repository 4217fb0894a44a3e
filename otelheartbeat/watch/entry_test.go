package watch

import (
	"testing"
	"time"
	"unsafe"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// A panel keeps an entry for every instance of its fleet: one fits in the
// allocator's 192-byte size class, not the 224-byte one above it.
func TestAnEntryFitsIn192Bytes(t *testing.T) {
	if s := unsafe.Sizeof(entry{}); s > 192 {
		t.Errorf("an entry takes %d bytes, want at most 192", s)
	}
}

// An instance's times read back as they were given: of one heard, of one
// remembered, and on the system clock.
func TestAnInstancesTimesReadBackAsGiven(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock))
	tr.ObserveAt(beat("svc", "a", 1), t0.Add(-time.Hour))
	tr.Remember(Key{Service: "svc", Instance: "b"}, Dead, t0.Add(-48*time.Hour), time.Minute)
	a, _ := tr.Get(Key{Service: "svc", Instance: "a"})
	b, _ := tr.Get(Key{Service: "svc", Instance: "b"})
	if !a.LastSeen.Equal(t0.Add(-time.Hour)) || !a.Since.Equal(t0) || !b.Since.Equal(t0.Add(-48*time.Hour)) {
		t.Errorf("last seen %v since %v, and since %v; want %v, %v and %v",
			a.LastSeen, a.Since, b.Since, t0.Add(-time.Hour), t0, t0.Add(-48*time.Hour))
	}
	tr = NewTracker()
	at := time.Now()
	tr.ObserveAt(beat("svc", "a", 1), at)
	in, _ := tr.Get(Key{Service: "svc", Instance: "a"})
	if !in.LastSeen.Equal(at) || in.Age(at) != 0 || in.Since.Before(at) {
		t.Errorf("last seen %v (age %v) since %v, want %v", in.LastSeen, in.Age(at), in.Since, at)
	}
}

// wallSetBack is at as time.Now gives it once the wall clock has been set
// back by d: its monotonic reading unchanged, its wall time d earlier. It
// writes time.Time's representation (a wall word whose top bit says it
// has a monotonic reading, then seconds since 1885 above 30 bits of
// nanoseconds), which nothing else can make.
func wallSetBack(t *testing.T, at time.Time, d time.Duration) time.Time {
	t.Helper()
	type repr struct {
		wall uint64
		ext  int64
		loc  *time.Location
	}
	r := (*repr)(unsafe.Pointer(&at))
	if r.wall&(1<<63) == 0 {
		t.Fatal("no monotonic reading to keep")
	}
	was := at.UnixNano()
	r.wall -= uint64(d/time.Second) << 30
	if at.UnixNano() != was-int64(d) {
		t.Fatalf("time.Time's representation is not what wallSetBack writes: %v", at)
	}
	return at
}

// A heartbeat received after the wall clock was set back is the latest
// all the same: an instance's stop and a dead instance's return are not
// lost for as long as the clock was set back by.
func TestTheLatestHeartbeatIsTheLatestAfterTheWallClockIsSetBack(t *testing.T) {
	tr := NewTracker(WithRetention(time.Hour))
	t1 := time.Now()
	tr.ObserveAt(withInterval(beat("svc", "stops", 1), time.Second), t1)
	tr.ObserveAt(withInterval(beat("svc", "returns", 1), time.Second), t1)
	tr.TickAt(t1.Add(10 * time.Second)) // "returns" is dead
	t2 := wallSetBack(t, t1.Add(20*time.Second), time.Hour)
	stop := withInterval(beat("svc", "stops", 2), time.Second)
	stop.Status = wire.StatusStopping
	tr.ObserveAt(stop, t2)
	tr.ObserveAt(withInterval(beat("svc", "returns", 2), time.Second), t2)
	for id, want := range map[string]State{"stops": Stopped, "returns": Alive} {
		if in, _ := tr.Get(Key{Service: "svc", Instance: id}); in.State != want || in.Count != 2 {
			t.Errorf("%s after the wall clock was set back an hour: %v, count %d; want %v, count 2", id, in.State, in.Count, want)
		}
	}
}

// A time past what Unix nanoseconds hold reads back as the nearest they
// do, not as another, plausible time.
func TestATimeOutOfRangeReadsBackAsTheNearestKept(t *testing.T) {
	tr := NewTracker()
	long := time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)
	far := time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
	tr.Remember(Key{Service: "svc", Instance: "long"}, Dead, long, time.Minute)
	tr.Remember(Key{Service: "svc", Instance: "far"}, Dead, far, time.Minute)
	if in, _ := tr.Get(Key{Service: "svc", Instance: "long"}); in.Since.Year() != 1677 {
		t.Errorf("dead since %v reads back as %v, want in 1677", long, in.Since)
	}
	if in, _ := tr.Get(Key{Service: "svc", Instance: "far"}); in.Since.Year() != 2262 {
		t.Errorf("dead since %v reads back as %v, want in 2262", far, in.Since)
	}
}
