package watch

import (
	"container/heap"
	"time"
)

// Replacement. A restarted process is a new instance: it has a new
// instance id (every Kubernetes pod restart does), so without a rule the
// crashed id would stay dead, and its alert firing, until it is forgotten.
// The rule: an instance that started after another instance of its service
// last beat, and that has not replaced one yet, replaces one that is dead
// or stopped. The replaced instance leaves the tracker at once, with a
// transition to Replaced naming its replacement (Transition.By); the
// replacement is an instance like any other. Each new instance replaces at
// most one, so a service that lost three instances and got one back still
// has two dead.
//
// When an instance started is read from its heartbeat: received at, less
// uptime_seconds (a duration on the sender's own clock, so skew does not
// matter). A peer that ran beside the dead instance started before its
// last heartbeat and never replaces it: a crash while the service scales
// up stays a crash. Nor does a peer that started with it (within
// replaceSlack), when it died at its first heartbeat. An instance that
// does not send uptime_seconds, or sends one no process can have, replaces
// nobody until it does: when it was first heard says nothing of when it
// started.
//
// Each service keeps two heaps: the instances that could be replaced
// (dead or stopped), the one silent the longest first, and those that
// could replace one (alive, their start known, not yet a replacement), the
// one started last first. Only the tops are compared: if the instance
// started last began before the longest-silent one's last heartbeat, no
// pair exists; if it began with that one, that one is set aside for the
// moment. A pair costs O(log n), so a fleet restarted whole (100,000
// crashed ids, 100,000 new ones) ends in 100,000 replacements, not a wall
// of dead rows.

// replaceSlack is how much earlier than the replaced instance's last
// heartbeat its replacement may seem to have started: uptime_seconds is
// sent to a tenth of a second, and a heartbeat takes time to arrive.
const replaceSlack = 250 * time.Millisecond

// recentReplacements bounds what ReplacedBy remembers.
const recentReplacements = 4096

// Which heap of its service an entry is in.
const (
	inNone uint8 = iota
	inOrphans
	inNewcomers
)

// pairHeap is one of a service's heaps; less orders it.
type pairHeap struct {
	entries []*entry
	less    func(a, b *entry) bool
}

func (h *pairHeap) Len() int           { return len(h.entries) }
func (h *pairHeap) Less(i, j int) bool { return h.less(h.entries[i], h.entries[j]) }
func (h *pairHeap) Swap(i, j int) {
	h.entries[i], h.entries[j] = h.entries[j], h.entries[i]
	h.entries[i].pairIndex = int32(i)
	h.entries[j].pairIndex = int32(j)
}
func (h *pairHeap) Push(x any) {
	e := x.(*entry)
	e.pairIndex = int32(len(h.entries))
	h.entries = append(h.entries, e)
}
func (h *pairHeap) Pop() any {
	old := h.entries
	e := old[len(old)-1]
	old[len(old)-1] = nil
	h.entries = old[:len(old)-1]
	e.pairIndex = -1
	return e
}

func (h *pairHeap) top() *entry {
	if len(h.entries) == 0 {
		return nil
	}
	return h.entries[0]
}

// silentLongest orders orphans: the earliest last heartbeat first.
func silentLongest(a, b *entry) bool { return a.lastBeat() < b.lastBeat() }

// lastBeat is when e's last heartbeat was, in Unix nanoseconds, as
// replacement reads it. For an instance remembered as up it is not known:
// it was last known up then, and may have crashed any time since while
// nothing watched. The earliest is taken, so that an instance that started
// since (a restart while the panel was down too) replaces it rather than
// leaving it to page until forgotten.
func (e *entry) lastBeat() int64 {
	if e.Remembered && e.started != 0 {
		return e.started
	}
	return e.seen
}

// startedLast orders newcomers: the latest start first.
func startedLast(a, b *entry) bool { return a.started > b.started }

// pairs are one service's heaps.
type pairs struct {
	orphans   pairHeap
	newcomers pairHeap
}

func (s *serviceName) pairs() *pairs {
	if s.pair == nil {
		s.pair = &pairs{orphans: pairHeap{less: silentLongest}, newcomers: pairHeap{less: startedLast}}
	}
	return s.pair
}

// maxUptime is the longest uptime_seconds taken as a process's: a longer
// one (or a negative one) says nothing of when it started.
const maxUptime = 100 * 365 * 24 * time.Hour

// setStarted notes when e's process started, from a heartbeat received at
// receivedAt that says its uptime, once: at the first heartbeat that says
// one a process can have. It reports whether it learnt it now. When a
// process started is never taken from when it was first heard: a watcher
// that starts, or one that hears a peer's first heartbeat late, would take
// a peer that ran for days for a new instance.
func (e *entry) setStarted(receivedAt time.Time, uptime float64, has bool) bool {
	if e.started != 0 || !has || !(uptime >= 0) || uptime > maxUptime.Seconds() {
		return false
	}
	e.started = receivedAt.Add(-time.Duration(uptime * float64(time.Second))).UnixNano()
	return true
}

// file puts e in the heap its state calls for, out of the other.
func (t *Tracker) file(e *entry) {
	want := inNone
	switch {
	case e.State.Gone():
		want = inOrphans
	case e.State == Alive && !e.replacing && e.started != 0 && !e.Remembered:
		want = inNewcomers
	}
	if want == e.pairIn {
		return
	}
	t.unfile(e)
	svc := t.services[e.Service]
	if svc == nil || want == inNone {
		return
	}
	p := svc.pairs()
	if want == inOrphans {
		heap.Push(&p.orphans, e)
	} else {
		heap.Push(&p.newcomers, e)
	}
	e.pairIn = want
}

// unfile takes e out of its service's heaps.
func (t *Tracker) unfile(e *entry) {
	if e.pairIn == inNone {
		return
	}
	if svc := t.services[e.Service]; svc != nil && svc.pair != nil {
		h := &svc.pair.newcomers
		if e.pairIn == inOrphans {
			h = &svc.pair.orphans
		}
		heap.Remove(h, int(e.pairIndex))
	}
	e.pairIn, e.pairIndex = inNone, -1
}

// replace files e and pairs what its service's heaps allow: while the
// instance started last began after the one silent the longest last beat,
// the first replaces the second, unless they started together (peers of
// one deploy, one of which died at once), in which case no instance
// replaces that one now and the next is tried. It returns the transitions
// to Replaced.
func (t *Tracker) replace(e *entry, now time.Time) []Transition {
	t.file(e)
	svc := t.services[e.Service]
	if svc == nil || svc.pair == nil {
		return nil
	}
	var out []Transition
	var peers []*entry // orphans set aside: they started with the newest
	defer func() {
		if t.services[e.Service] != svc {
			return
		}
		for _, p := range peers {
			heap.Push(&svc.pair.orphans, p)
		}
	}()
	for {
		gone, fresh := svc.pair.orphans.top(), svc.pair.newcomers.top()
		if gone == nil || fresh == nil || fresh.started+int64(replaceSlack) < gone.lastBeat() {
			return out
		}
		if gone.started != 0 && fresh.started <= gone.started+int64(replaceSlack) {
			// Every newcomer started no later than fresh: none
			// started after this one did.
			heap.Pop(&svc.pair.orphans)
			peers = append(peers, gone)
			continue
		}
		out = append(out, Transition{Key: gone.Key, From: gone.State, To: Replaced, At: now, Age: now.Sub(timeOf(gone.seen)),
			Interval: gone.Interval, IntervalSource: gone.IntervalSource, By: fresh.Key.Instance})
		fresh.replacing = true
		t.unfile(fresh)
		t.remember(gone.Key, fresh.Key.Instance)
		t.remove(gone)
		if t.services[e.Service] != svc {
			return out
		}
	}
}

// remember keeps who replaced k, for ReplacedBy, within recentReplacements.
func (t *Tracker) remember(k Key, by string) {
	if t.replacedBy == nil {
		t.replacedBy = make(map[Key]string)
	}
	if len(t.replacedOrder) >= recentReplacements {
		delete(t.replacedBy, t.replacedOrder[0])
		t.replacedOrder = t.replacedOrder[1:]
	}
	t.replacedBy[k] = by
	t.replacedOrder = append(t.replacedOrder, k)
}

// ReplacedBy returns the instance that replaced k, if k was replaced
// recently (among the last 4,096 replacements).
func (t *Tracker) ReplacedBy(k Key) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	by, ok := t.replacedBy[k]
	return by, ok
}

// Remember adds an instance the watcher never heard but knows from
// elsewhere (an admin panel's history) to be in state st since since, when
// the tracker does not know it (Instance.Remembered is then set):
//   - dead or stopped: a watcher that starts after a crash shows the
//     crashed instance as dead, as one that watched it does; its last
//     heartbeat is taken to be at since;
//   - alive or stale: it was known up at since (an admin panel passes
//     when a recorder last watched, or its recorded state began, if
//     later), and may have crashed while nothing watched (its latest-state
//     key gone since): it is judged as if its last heartbeat came now
//     (alive), or 1.5 intervals ago (stale), so it is dead three intervals
//     from now unless heard; an instance that started after since
//     replaces it then.
//
// It is replaced, forgotten after the retention period, or revived by a
// heartbeat like any other; the transitions its arrival causes (a
// replacement) are returned. A state other than these is ignored.
func (t *Tracker) Remember(k Key, st State, since time.Time, interval time.Duration) []Transition {
	if !(st.Gone() || st.Up()) || k.Service == "" || k.Instance == "" {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, _ := t.lookup(k); e != nil {
		return nil
	}
	if t.maxInstances > 0 && t.tracked >= t.maxInstances {
		return nil // a remembered instance never evicts one heard
	}
	e, _ := t.add(k)
	if interval <= 0 {
		interval = t.defaultInterval
	}
	t.setState(e, st)
	e.since, e.seen, e.heard, e.unwatched = stamp(since), stamp(since), t.heardAt(since), t.unwatched
	e.Interval, e.IntervalSource = interval, IntervalDefault
	t.recount(e, 0)
	switch now := t.clock.Now(); st {
	case Alive:
		e.seen, e.heard = stamp(now), t.heardAt(now)
	case Stale:
		at := now.Add(-scale(interval, StaleAfter))
		e.seen, e.heard = stamp(at), t.heardAt(at)
	}
	if st.Up() {
		e.started = since.UnixNano() // its start is unknown: see lastBeat
	}
	e.Remembered = true // when it started is unknown
	t.link(e)
	t.schedule(e)
	return t.replace(e, t.clock.Now())
}
