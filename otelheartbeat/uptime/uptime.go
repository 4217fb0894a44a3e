// Package uptime computes uptime, incidents, restarts and lost heartbeats
// of a service over a window, from its recorded history.
//
// An instance is up while alive or stale (its heartbeat is late, not yet
// missing for three intervals), down while dead, and planned while stopped
// gracefully. A service's state is watch.Counts.State of its instances:
// up while at least minAlive are up, planned (stopped) while it is short
// only by graceful stops, down otherwise; a dead instance the watcher has
// forgotten still counts as dead until an instance is up again.
// Time no recorder watched (history gaps) is unknown: neither up nor down.
// Uptime is up / (up + down); planned and unknown time are left out of
// both, so a deploy or a panel outage never counts as downtime.
package uptime

import (
	"cmp"
	"hash/maphash"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/history"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
)

// Window is the span a report covers.
type Window struct{ From, To time.Time }

// Times is how a span divides.
type Times struct {
	Up, Down, Planned, Unknown time.Duration
}

// Uptime returns Up / (Up + Down), and false when there is neither.
func (t Times) Uptime() (float64, bool) {
	if t.Up+t.Down <= 0 {
		return 0, false
	}
	return float64(t.Up) / float64(t.Up+t.Down), true
}

// Incident is a span in which the service was down. A span nobody
// watched inside it, with the service down on both sides, does not end
// it: it is counted in Unknown, and left out of the downtime.
type Incident struct {
	Start, End time.Time // End is zero while it is open
	Instances  []string  // those dead during it
	Unknown    time.Duration
}

// Open reports whether the incident has not ended.
func (i Incident) Open() bool { return i.End.IsZero() }

// Duration returns how long it lasted, up to now when open.
func (i Incident) Duration(now time.Time) time.Duration {
	if i.Open() {
		return now.Sub(i.Start)
	}
	return i.End.Sub(i.Start)
}

// InstanceReport is one instance's share of a report.
type InstanceReport struct {
	Instance string
	Times
	Lost int64
}

// ServiceReport is a service over a window.
type ServiceReport struct {
	Service string
	Times
	Incidents []Incident
	Restarts  int   // instances that appeared to replace one that died or stopped
	Lost      int64 // heartbeats lost, all instances
	// Instances are by instance id, as strings.Compare orders them: of
	// the window reported by instance (see Windows), empty rather than
	// nil when it has none; nil in the others, and in an empty window
	// (To not after From). An instance the watcher forgot (or replaced)
	// before the window is not among them, though one forgotten dead may
	// still be named by an incident it keeps open (see the package).
	Instances []InstanceReport
}

// Compute reports service over w from its entries (in any order) and the
// gaps. An open incident (the service still down at w.To) has no End. It
// costs O((entries + instances) log gaps), and less when entries are in
// order of time, as history reads them.
func Compute(service string, entries []history.Entry, gaps []history.Gap, w Window, minAlive int) ServiceReport {
	return windowsOf(service, entrySlice(inOrder(entries)), gaps, []Window{w}, minAlive, 0, nil)[0]
}

// Source is a service's history entries, read one at a time, for a
// caller that keeps them in another form than history.Entry: WindowsOf
// reads them where they are, where Windows needs all of them turned into
// history.Entry at once (96 bytes each).
type Source interface {
	Len() int
	Entry(i int) history.Entry
}

// entrySlice is entries as a Source.
type entrySlice []history.Entry

func (s entrySlice) Len() int                  { return len(s) }
func (s entrySlice) Entry(i int) history.Entry { return s[i] }

// WindowsOf is Windows of the entries src holds, read one at a time
// when they are in order of time, as history reads them: each once to
// see that they are, once to fold it, and, when a window reports its
// instances, once more to read when an instance's state began. Entries
// out of order are read into a slice and sorted first, as Windows does.
func WindowsOf(service string, src Source, gaps []history.Gap, windows []Window, minAlive, withInstances int) []ServiceReport {
	return WindowsOfEach(service, src, gaps, windows, minAlive, withInstances, nil)
}

// WindowsOfEach is WindowsOf, but gives each instance of
// windows[withInstances] to each as it is worked out, in no order, and
// leaves that report's Instances nil (when each is nil, it is
// WindowsOf). A caller that files the instances elsewhere, as the panel
// does by its tracker's slots, is spared the slice of them all and its
// sort by id: for a service of 100,000 instances, some 7 MB a
// computation that it would let go at once.
func WindowsOfEach(service string, src Source, gaps []history.Gap, windows []Window, minAlive, withInstances int, each func(InstanceReport)) []ServiceReport {
	var last time.Time
	for i := range src.Len() {
		at := src.Entry(i).At
		if i > 0 && at.Before(last) {
			all := make([]history.Entry, src.Len())
			for j := range all {
				all[j] = src.Entry(j)
			}
			slices.SortStableFunc(all, byTime)
			return windowsOf(service, entrySlice(all), gaps, windows, minAlive, withInstances, each)
		}
		last = at
	}
	return windowsOf(service, src, gaps, windows, minAlive, withInstances, each)
}

// Windows is Compute over each of windows, the reports in the windows'
// order; only windows[withInstances] reports its instances (none when
// withInstances is out of range: Instances is nil). The windows are
// folded together, in one walk of the entries: each instance's state and
// the service's are followed once, whatever the windows, and the others
// skip what their instances' reports would cost.
func Windows(service string, entries []history.Entry, gaps []history.Gap, windows []Window, minAlive, withInstances int) []ServiceReport {
	return windowsOf(service, entrySlice(inOrder(entries)), gaps, windows, minAlive, withInstances, nil)
}

// windowsOf is Windows of entries in order of time, the instances
// reported given to each when it is not nil (see WindowsOfEach).
func windowsOf(service string, entries Source, gaps []history.Gap, windows []Window, minAlive, withInstances int, each func(InstanceReport)) []ServiceReport {
	sc := scratches.Get().(*scratch)
	defer sc.put()
	return computeWith(service, entries, gaps, windows, minAlive, withInstances, each, sc)
}

// scratch is the room Windows works in, kept for its next call while it
// is small (see put): a panel computes its services one after another,
// and what each allocated anew was most of what the panel allocated,
// and so of its collector's work.
type scratch struct {
	// blocks are the instances, made a block of blockSize at a time:
	// blocks[:used] are in use, each full but the last. An instance's
	// number is its place in them (see at).
	blocks [][]instance
	used   int
	made   int     // the instances made
	index  index   // the instances by id
	keyed  []keyed // the instances reported, sorted (see byID)
}

// blockSize is how many instances a block of a scratch's holds, but for
// the last block of a service of fewer.
const blockSize = 1024

var scratches = sync.Pool{New: func() any { return &scratch{index: index{seed: maphash.MakeSeed()}} }}

// at is the instance numbered i.
func (sc *scratch) at(i int32) *instance { return &sc.blocks[i/blockSize][i%blockSize] }

// index finds a scratch's instances by id: an open-addressed table of
// their numbers, at most three quarters full. A map[string]*instance
// held some 35 bytes an instance, and allocated as much again as it
// grew: 3.5 MB held and 7 MB allocated every computation of a service
// of 100,000 instances, where the table holds 1 MB.
type index struct {
	seed  maphash.Seed
	slots []int32 // an instance's number plus one; 0: free
}

// find returns the instance of id, or nil and the free slot it would go
// in.
func (sc *scratch) find(id string) (*instance, int) {
	x := &sc.index
	if len(x.slots) == 0 {
		return nil, -1
	}
	mask := uint64(len(x.slots) - 1)
	for h := maphash.String(x.seed, id) & mask; ; h = (h + 1) & mask {
		k := x.slots[h]
		if k == 0 {
			return nil, int(h)
		}
		if in := sc.at(k - 1); in.Instance == id {
			return in, int(h)
		}
	}
}

// lookup returns the instance of id, or nil.
func (sc *scratch) lookup(id string) *instance {
	in, _ := sc.find(id)
	return in
}

// grow doubles the index, at least to 16 slots, and puts every instance
// back in it.
func (sc *scratch) grow() {
	x := &sc.index
	x.slots = make([]int32, max(16, 2*len(x.slots)))
	mask := uint64(len(x.slots) - 1)
	for i := range int32(sc.made) {
		h := maphash.String(x.seed, sc.at(i).Instance) & mask
		for x.slots[h] != 0 {
			h = (h + 1) & mask
		}
		x.slots[h] = i + 1
	}
}

// instance returns the instance of id, made when there is none; n is
// how many entries are left to read, which bounds the instances left to
// make.
func (sc *scratch) instance(id string, n int) *instance {
	in, slot := sc.find(id)
	if in != nil {
		return in
	}
	if 4*(sc.made+1) > 3*len(sc.index.slots) {
		sc.grow()
		_, slot = sc.find(id)
	}
	// A new block when the last is full: of blockSize, or of fewer when
	// fewer entries are left (then it is the last). A block kept from
	// the last call is used again when it is large enough.
	if sc.used == 0 || len(sc.blocks[sc.used-1]) == cap(sc.blocks[sc.used-1]) {
		if sc.used == len(sc.blocks) {
			sc.blocks = append(sc.blocks, nil)
		}
		if size := min(blockSize, n); cap(sc.blocks[sc.used]) < size {
			sc.blocks[sc.used] = make([]instance, 0, size)
		}
		sc.blocks[sc.used] = sc.blocks[sc.used][:0]
		sc.used++
	}
	b := &sc.blocks[sc.used-1]
	*b = append(*b, instance{InstanceReport: InstanceReport{Instance: id}})
	sc.made++
	sc.index.slots[slot] = int32(sc.made)
	return &(*b)[len(*b)-1]
}

// keepAtMost is the most room, in bytes, a scratch kept for the next
// call holds (see put).
const keepAtMost = 1 << 20

// room is about how many bytes sc holds.
func (sc *scratch) room() int {
	n := cap(sc.keyed) * int(unsafe.Sizeof(keyed{}))
	for _, b := range sc.blocks {
		n += cap(b) * int(unsafe.Sizeof(instance{}))
	}
	return n + 4*cap(sc.index.slots)
}

// put empties sc and gives it back for another call, unless it holds
// more than keepAtMost bytes. A panel computes its services one after
// another every few seconds: the next service of a computation reuses
// the room of a service of a few thousand instances, but the room of one
// of 100,000 (some 10 MB) would wait for the next computation, and be
// live at every collection meanwhile, raising the heap's goal by as
// much. What the pool keeps is dropped after two collections anyway.
func (sc *scratch) put() {
	if sc.room() > keepAtMost {
		return
	}
	sc.reset()
	scratches.Put(sc)
}

// reset empties sc, so that it holds no names of the caller's.
func (sc *scratch) reset() {
	clear(sc.index.slots)
	sc.made = 0
	for _, b := range sc.blocks[:sc.used] {
		clear(b)
	}
	sc.used = 0
	clear(sc.keyed)
}

// byTime orders entries by their time.
func byTime(a, b history.Entry) int { return a.At.Compare(b.At) }

// inOrder returns entries in order of time: themselves, as history reads
// them, or else a sorted copy, since the caller's entries are shared.
func inOrder(entries []history.Entry) []history.Entry {
	if !slices.IsSortedFunc(entries, byTime) {
		entries = slices.Clone(entries)
		slices.SortStableFunc(entries, byTime)
	}
	return entries
}

// computeWith is Windows of entries in order of time, folding each
// instance into sc; each, when not nil, is given the instances reported
// (see WindowsOfEach).
func computeWith(service string, entries Source, gaps []history.Gap, windows []Window, minAlive, withInstances int, each func(InstanceReport), sc *scratch) []ServiceReport {
	f := fold{entries: entries, minAlive: minAlive, sc: sc, each: each, byInstance: -1, wins: make([]windowFold, len(windows))}
	out := make([]ServiceReport, len(windows))
	// The windows in the order of their ends: each is finished when the
	// walk reaches its end, as things stand then.
	byEnd := make([]int, 0, len(windows))
	for i, w := range windows {
		out[i] = ServiceReport{Service: service}
		if !w.To.After(w.From) {
			continue // empty: nothing to fold
		}
		f.wins[i] = windowFold{w: w, gaps: newGapIndex(gaps, w), rep: &out[i]}
		if i == withInstances {
			f.byInstance, f.instanced = i, &f.wins[i]
		}
		byEnd = append(byEnd, i)
	}
	slices.SortStableFunc(byEnd, func(a, b int) int { return windows[a].To.Compare(windows[b].To) })
	n := entries.Len()
	next := history.Entry{}
	if n > 0 {
		next = entries.Entry(0)
	}
	for i := range n {
		e := next
		if i+1 < n {
			next = entries.Entry(i + 1)
		}
		for len(byEnd) > 0 && !e.At.Before(windows[byEnd[0]].To) {
			f.finish(byEnd[0])
			byEnd = byEnd[1:]
		}
		if len(byEnd) == 0 {
			break
		}
		f.live = byEnd
		f.entry(sc.instance(e.Instance, n-i), e, i)
		// Changes recorded at one moment (the instances a watcher found
		// at start) settle together: a service is not down for no time
		// between two of them.
		if i+1 == n || !next.At.Equal(e.At) {
			f.settle(e.At)
		}
	}
	for _, w := range byEnd {
		f.finish(w)
	}
	return out
}

// fold is the reports of windows being made, one entry at a time, oldest
// first: the instances' states and the service's are followed once, and
// each window's report counts what falls in it.
type fold struct {
	entries Source
	wins    []windowFold
	// live are the windows still folding (whose end the walk has not
	// reached), in the order of their ends.
	live     []int
	minAlive int
	sc       *scratch             // the instances, walked in order of memory
	each     func(InstanceReport) // given the instances reported, rather than a slice of them, when not nil
	service  service
	// replaceable counts the instances gone (dead or stopped) that a new
	// instance would replace: its appearing is a restart.
	replaceable int
	// byInstance is the window whose instances' own times and losses
	// are reported, or -1: they are counted while it folds (instanced).
	byInstance int
	instanced  *windowFold
}

// windowFold is one window's part of a fold.
type windowFold struct {
	w    Window
	gaps gapIndex
	rep  *ServiceReport
}

// started reports whether the window has begun at t (its end is the
// fold's to mind: see live).
func (w *windowFold) started(t time.Time) bool { return !t.Before(w.w.From) }

// instance is one instance's part of a fold.
type instance struct {
	InstanceReport
	// since is the entry it entered its state at, once seen: its time
	// is read there (see fold.timeOf), where a time.Time would be 16 more
	// bytes an instance, 1.6 MB for a service of 100,000.
	since     int
	seen      bool // a change of its state has been folded
	forgotten bool // it left the watcher: forgotten or replaced
	restarted bool // its appearance is counted as a restart
	dead      bool // it is in its service's dead
	state     watch.State
}

// timeOf is the time of the i-th entry.
func (f *fold) timeOf(i int) time.Time { return f.entries.Entry(i).At }

// service is the service's part of a fold: its instances counted by
// state, its state by the service rule, and its open incident (opened
// at once in every window: each has it from when it opened or the
// window's start, whichever is later).
type service struct {
	counts watch.Counts
	// ghosts are dead instances the watcher forgot: the service stays
	// down for them until an instance is up again.
	ghosts int
	state  watch.ServiceState
	since  time.Time // zero before its first entry
	dead   map[string]bool
	open   *openIncident
}

// openIncident is the service's incident while it is down.
type openIncident struct {
	at        time.Time
	instances []string // dead during it
}

// in is the incident as window w has it, ended at end (zero: open); its
// instances are o's own when no other window is to have them (last).
func (o *openIncident) in(w *windowFold, end time.Time, last bool) Incident {
	ids := o.instances
	if !last {
		ids = slices.Clone(ids)
	}
	return finish(Incident{Start: later(o.at, w.w.From), End: end, Instances: ids})
}

// entry folds e, the pos-th entry, of in in.
func (f *fold) entry(in *instance, e history.Entry, pos int) {
	if e.Event == history.LostHeartbeats {
		for _, i := range f.live {
			if w := &f.wins[i]; w.started(e.At) {
				w.rep.Lost += e.Lost
				if i == f.byInstance {
					in.Lost += e.Lost
				}
			}
		}
		return
	}
	if w := f.instanced; in.seen && w != nil {
		w.account(&in.Times, in.timeState(), f.timeOf(in.since), e.At)
	}
	to := e.To
	forgotten, replaced := e.Event == history.Forgotten, e.Event == history.Replaced
	left := forgotten || replaced
	if left {
		to = watch.Unknown
	}
	if replaced {
		f.replaced(e.By, e.At)
	} else {
		f.restart(in, to, e.At)
	}
	f.service.move(in, to, left, forgotten)
	in.seen, in.forgotten, in.state, in.since = true, left, to, pos
}

// timeState is what an instance's time counts as: its state, and
// unknown once forgotten.
func (in *instance) timeState() watch.State {
	if in.forgotten {
		return watch.Unknown
	}
	return in.state
}

// restart counts an instance that appears to replace one that died or
// stopped, and keeps the count of those replaceable.
func (f *fold) restart(in *instance, to watch.State, at time.Time) {
	fresh := !in.seen || in.forgotten || in.state == watch.Unknown
	switch {
	case to == watch.Alive && fresh && f.replaceable > 0:
		f.replaceable--
		in.restarted = true
		f.countRestart(at)
	case to.Gone() && !in.state.Gone():
		f.replaceable++
	case in.state.Gone() && to.Up():
		f.replaceable = max(f.replaceable-1, 0) // the same instance came back
	}
}

// replaced counts a recorded replacement (history.Replaced) as a restart,
// unless the replacement's appearance was counted as one already (it
// appeared after the instance it replaced had gone).
func (f *fold) replaced(by string, at time.Time) {
	if r := f.sc.lookup(by); r != nil {
		if r.restarted {
			return
		}
		r.restarted = true
	}
	f.replaceable = max(f.replaceable-1, 0)
	f.countRestart(at)
}

// countRestart counts a restart at at in the windows begun by then.
func (f *fold) countRestart(at time.Time) {
	for _, i := range f.live {
		if w := &f.wins[i]; w.started(at) {
			w.rep.Restarts++
		}
	}
}

// move counts an instance's change of state in the service; left says it
// left the watcher, and forgotten that it left without a replacement.
func (s *service) move(in *instance, to watch.State, left, forgotten bool) {
	if in.seen && !in.forgotten {
		s.counts.Add(in.state, -1)
	}
	if !left {
		s.counts.Add(to, 1)
	}
	switch {
	case forgotten && in.state == watch.Dead:
		s.ghosts++
	case to.Up():
		s.ghosts = 0
	}
	if in.dead {
		delete(s.dead, in.Instance)
		in.dead = false
	}
	if to == watch.Dead {
		if s.dead == nil {
			s.dead = map[string]bool{}
		}
		s.dead[in.Instance], in.dead = true, true
		if s.open != nil {
			s.open.instances = append(s.open.instances, in.Instance)
		}
	}
}

// settle accounts the service's time up to now and opens or closes an
// incident when its state changes.
func (f *fold) settle(now time.Time) {
	s := &f.service
	c := s.counts
	c.Dead += s.ghosts
	st := c.State(f.minAlive)
	if st == s.state && !s.since.IsZero() {
		return
	}
	for k, i := range f.live {
		w := &f.wins[i]
		if !s.since.IsZero() {
			w.serviceTime(s.state, s.since, now)
		}
		// An incident that ended before the window is none of it (and
		// not an open one from its start); one that ended at its start
		// lasted no time of it.
		if st != watch.ServiceDown && s.open != nil && now.After(w.w.From) {
			w.rep.Incidents = append(w.rep.Incidents, s.open.in(w, now, k == len(f.live)-1))
		}
	}
	switch {
	case st == watch.ServiceDown && s.open == nil:
		s.open = &openIncident{at: now}
		for id := range s.dead {
			s.open.instances = append(s.open.instances, id)
		}
	case st != watch.ServiceDown:
		s.open = nil
	}
	s.state, s.since = st, now
}

// serviceTime accounts the service's time in state st.
func (w *windowFold) serviceTime(st watch.ServiceState, from, to time.Time) {
	as := watch.Unknown
	switch st {
	case watch.ServiceUp:
		as = watch.Alive
	case watch.ServiceDown:
		as = watch.Dead
	case watch.ServiceStopped:
		as = watch.Stopped
	}
	w.account(&w.rep.Times, as, from, to)
}

// account adds [from, to) in state st to t: the watched part by state
// (up while alive or stale, down while dead, planned while stopped) and
// the rest as unknown.
func (w *windowFold) account(t *Times, st watch.State, from, to time.Time) {
	from, to = later(from, w.w.From), earlier(to, w.w.To)
	if !to.After(from) {
		return
	}
	unknown := w.gaps.overlap(from, to)
	watched := to.Sub(from) - unknown
	t.Unknown += unknown
	switch {
	case st.Up():
		t.Up += watched
	case st == watch.Dead:
		t.Down += watched
	case st == watch.Stopped:
		t.Planned += watched
	default:
		t.Unknown += watched
	}
}

// finish accounts what runs to window i's end, as things stand, and
// completes its report.
func (f *fold) finish(i int) {
	w := &f.wins[i]
	if i == f.byInstance {
		f.instanced = nil
		w.rep.Instances = f.instanceReports(w) // empty, not nil, when it has none
	}
	if s := &f.service; !s.since.IsZero() {
		w.serviceTime(s.state, s.since, w.w.To)
		if s.open != nil {
			w.rep.Incidents = append(w.rep.Incidents, s.open.in(w, time.Time{}, false)) // still down at w.To: open
		}
	}
	for j := range w.rep.Incidents {
		in := &w.rep.Incidents[j]
		end := in.End
		if in.Open() {
			end = w.w.To
		}
		in.Unknown = w.gaps.overlap(in.Start, end)
	}
}

// instanceReports accounts each instance's time to w's end and returns
// the reports of those w holds, by id; or, with f.each, gives each of
// them to it and returns nil.
func (f *fold) instanceReports(w *windowFold) []InstanceReport {
	var reported []keyed
	if f.each == nil {
		reported = slices.Grow(f.sc.keyed[:0], f.sc.made)
	}
	report := func(in *instance) {
		if in.forgotten && in.Lost == 0 && !f.timeOf(in.since).After(w.w.From) {
			return // forgotten before the window: not there in it
		}
		if in.seen {
			w.account(&in.Times, in.timeState(), f.timeOf(in.since), w.w.To)
		}
		if f.each != nil {
			f.each(in.InstanceReport)
			return
		}
		reported = append(reported, keyed{in: in})
	}
	for _, b := range f.sc.blocks[:f.sc.used] {
		for j := range b {
			report(&b[j])
		}
	}
	if f.each != nil {
		return nil
	}
	out := byID(reported)
	f.sc.keyed = reported
	return out
}

// byID returns the instances' reports in the order of their ids, as
// strings.Compare has it. Ids share most of their bytes (a service's
// name, a host's), and a sort that compares them whole is most of what
// a report of many instances costs: each is first given as a key the
// eight bytes after the prefix all share, compared as one integer, and
// only ids of one key are compared whole.
func byID(ins []keyed) []InstanceReport {
	if len(ins) == 0 {
		return []InstanceReport{}
	}
	common := len(ins[0].in.Instance)
	for _, k := range ins[1:] {
		common = commonPrefix(ins[0].in.Instance[:common], k.in.Instance)
	}
	for i := range ins {
		ins[i].key = prefixKey(ins[i].in.Instance[common:])
	}
	slices.SortFunc(ins, func(a, b keyed) int {
		if c := cmp.Compare(a.key, b.key); c != 0 {
			return c
		}
		return strings.Compare(a.in.Instance, b.in.Instance)
	})
	out := make([]InstanceReport, len(ins))
	for i, k := range ins {
		out[i] = k.in.InstanceReport
	}
	return out
}

// keyed is an instance and its key to sort by (see byID).
type keyed struct {
	key uint64
	in  *instance
}

// commonPrefix returns how many bytes a and b begin with alike.
func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// prefixKey is s's first eight bytes, big-endian, zeros after its end:
// of two strings, the one of the lesser key is the lesser (a string that
// ends is less than one that goes on with a zero byte, and their keys are
// equal), so keys order strings as strings.Compare does, but for ties.
func prefixKey(s string) uint64 {
	var k uint64
	for i := range 8 {
		k <<= 8
		if i < len(s) {
			k |= uint64(s[i])
		}
	}
	return k
}

func later(a, b time.Time) time.Time {
	if a.Before(b) {
		return b
	}
	return a
}

func earlier(a, b time.Time) time.Time {
	if a.After(b) {
		return b
	}
	return a
}

// gapIndex answers how much of a span nobody watched.
type gapIndex struct {
	gaps []history.Gap
	sum  []time.Duration // sum[i]: total length of gaps[:i]
}

func newGapIndex(gaps []history.Gap, w Window) gapIndex {
	var g gapIndex
	for _, x := range mergeGaps(gaps) {
		if x.From.Before(w.From) {
			x.From = w.From
		}
		if x.To.After(w.To) {
			x.To = w.To
		}
		if x.To.After(x.From) {
			g.gaps = append(g.gaps, x)
		}
	}
	g.sum = make([]time.Duration, len(g.gaps)+1)
	for i, x := range g.gaps {
		g.sum[i+1] = g.sum[i] + x.To.Sub(x.From)
	}
	return g
}

// covered returns the gap time before t.
func (g gapIndex) covered(t time.Time) time.Duration {
	i := sort.Search(len(g.gaps), func(i int) bool { return g.gaps[i].To.After(t) })
	d := g.sum[i]
	if i < len(g.gaps) && t.After(g.gaps[i].From) {
		d += t.Sub(g.gaps[i].From)
	}
	return d
}

func (g gapIndex) overlap(from, to time.Time) time.Duration { return g.covered(to) - g.covered(from) }

func finish(i Incident) Incident {
	slices.Sort(i.Instances)
	i.Instances = slices.Compact(i.Instances)
	return i
}

// mergeGaps sorts gaps and merges those that overlap.
func mergeGaps(gaps []history.Gap) []history.Gap {
	gaps = slices.Clone(gaps)
	slices.SortFunc(gaps, func(a, b history.Gap) int { return a.From.Compare(b.From) })
	var out []history.Gap
	for _, g := range gaps {
		if !g.To.After(g.From) {
			continue
		}
		if n := len(out); n > 0 && !g.From.After(out[n-1].To) {
			if g.To.After(out[n-1].To) {
				out[n-1].To = g.To
			}
			continue
		}
		out = append(out, g)
	}
	return out
}
