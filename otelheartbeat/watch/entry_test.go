package watch

import (
	"testing"
	"time"
	"unsafe"
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
