// A Tracker classifies service instances as alive, stale, dead or
// stopped from the heartbeats a monitor receives, by the admin panel's rule
// generalised to any interval:
//
//	age = now - last heartbeat received
//	alive  if age < 1.5 x interval
//	stale  if age < 3 x interval
//	dead   otherwise
//	stopped once the instance said "stopping"
//
// With the default 60 s interval that is exactly the original design's 90 s and 180 s.
// The interval is each instance's interval_seconds. Publishers in the original design's
// format (Python, JavaScript) do not send it: their interval is inferred
// from the gaps between their own heartbeats (the median of the last eight,
// each divided by the heartbeats its heartbeat_count says it spans, so a
// lost heartbeat does not double it and the burst after a stall does not
// halve it), and until there is a gap to go by, the default applies
// (DefaultInterval unless WithDefaultInterval says otherwise). Every
// instance says which of the three its interval is (IntervalSource). Age is
// measured on the tracker's own clock from when a heartbeat was received,
// never from the sender's timestamp, so a skewed sender clock cannot make a
// dead instance look alive.
//
// Silence is detected by the tracker's own timing: every instance has one
// pending deadline (when it turns stale, dead, or is forgotten) in a heap,
// so Tick costs O(log n) per due deadline and O(1) when none is due, however
// many instances are tracked. A heartbeat that only pushes an instance's
// deadline later files it in place where the instance is a leaf of the heap
// (three in four are), and elsewhere leaves the heap alone: the old entry is
// re-filed when it comes due. A steady fleet costs O(1) per heartbeat and an
// O(log n) re-file for about one heartbeat in four (BenchmarkObserveAndTick).
// Each transition is reported once.
//
// A watcher that could not see is not a fleet that died. TickAt judges only
// up to the time the watcher knows it has received everything sent (a
// heartbeat still in a socket or a stalled broker cannot be declared
// missing); time the watcher says it could not see (Unwatched: a lost
// subscription, a stalled broker) does not count as silence; and after a
// long blindness, Hold keeps every instance from changing state by silence
// until it has been watched for 1.5 of its intervals again. Only watched
// time counts, so a watcher knocked off its subscription over and over
// still declares a crashed instance dead, late by the time it could not
// see.
//
// The tracker is bounded: at WithMaxInstances the instance dead or stopped
// the longest is evicted (and counted) to make room, or when none is, the
// one heard from least recently, so a burst of made-up
// instance ids cannot hide a real instance that appears after it, nor grow
// the heap past about 512 bytes per tracked instance (about 500 MiB at
// DefaultMaxInstances). A tracker that keeps heartbeats (WithHeartbeats)
// holds them within a budget of bytes of their own (WithHeartbeatBudget:
// 128 MiB, 4 KiB each, plus 25 bytes and the instance_address per
// instance), whatever size the heartbeats are. Service names are shared
// by an instance's entries and released with the last one.
//
// A Tracker is safe for concurrent use: a monitor feeds it from the
// goroutine that reads the subscription while another ticks and renders.

package watch

import (
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// State is an instance's liveness.
type State uint8

// States, in the order a silent instance passes through them.
const (
	Unknown State = iota
	Alive
	Stale
	Dead
	Stopped
	// Replaced: the instance is dead or stopped and a new instance of its
	// service took its place (Transition.By); it leaves the tracker. See
	// Tracker for the rule.
	Replaced
)

func (s State) String() string {
	switch s {
	case Alive:
		return "alive"
	case Stale:
		return "stale"
	case Dead:
		return "dead"
	case Stopped:
		return "stopped"
	case Replaced:
		return "replaced"
	}
	return "unknown"
}

// Thresholds, as multiples of the interval.
const (
	StaleAfter = 1.5
	DeadAfter  = 3.0
)

// DefaultRetention is how long a dead or stopped instance is remembered.
const DefaultRetention = 15 * time.Minute

// DefaultMaxInstances bounds the instances tracked at once. A tracked
// instance costs the heap at most 512 bytes, its instance id included
// (BenchmarkMemoryPerInstance measures about 400), so at this bound a
// Monitor's tracker stays under about 500 MiB however many distinct ids
// arrive: BenchmarkIDFlood sends 2,000,000 and fails above 512 bytes per
// tracked instance plus 16 MiB. An instance that is its service's only
// one costs its service's names and counts too, about 550 bytes in all
// (BenchmarkMemoryPerInstanceAServiceEach): ids that each come with a
// service name of their own take up to about 520 MiB.
const DefaultMaxInstances = 1_000_000

// Classify applies the rule to one age.
func Classify(age, interval time.Duration) State {
	switch {
	case age < scale(interval, StaleAfter):
		return Alive
	case age < scale(interval, DeadAfter):
		return Stale
	}
	return Dead
}

func scale(d time.Duration, f float64) time.Duration { return time.Duration(float64(d) * f) }

// Key identifies an instance.
type Key struct {
	Service  string
	Instance string
}

// IntervalSource says where an instance's interval comes from.
type IntervalSource uint8

// Interval sources.
const (
	// IntervalDefault: the sender does not say and there is no gap to go
	// by yet: the tracker's default.
	IntervalDefault IntervalSource = iota
	// IntervalSent: the heartbeat's interval_seconds.
	IntervalSent
	// IntervalInferred: from the gaps between the instance's heartbeats.
	IntervalInferred
)

func (s IntervalSource) String() string {
	switch s {
	case IntervalSent:
		return "sent"
	case IntervalInferred:
		return "inferred"
	}
	return "default"
}

// Instance is what the tracker knows of one instance.
type Instance struct {
	Key
	State State
	// IntervalSource is where Interval comes from.
	IntervalSource IntervalSource
	// Has says which of the values from the last heartbeat (Count,
	// UptimeSeconds, MemoryMB, CPUPercent) it carried.
	Has wire.Presence
	// Remembered is set while the instance is known only from elsewhere
	// (Tracker.Remember) and was never heard by this tracker: its LastSeen
	// is when it entered State, its silence began before the tracker
	// watched, and it has no heartbeat values.
	Remembered bool
	// LastSeen is when its last heartbeat was received, on the tracker's
	// clock. It and Since are wall-clock times in the local time zone,
	// without a monotonic reading: Age is measured on the wall clock.
	LastSeen time.Time
	// Since is when it entered State.
	Since time.Time
	// Interval is what the instance is judged by.
	Interval time.Duration
	// From the last heartbeat.
	Count         int64
	UptimeSeconds float64
	MemoryMB      float64
	CPUPercent    float64
	// Lost counts heartbeats missing from the sequence of heartbeat_count.
	Lost int64
	// kept is the last heartbeat, packed, when the tracker keeps them:
	// see Heartbeat.
	kept packed
	// Cut counts the service fields of the last heartbeat cut short or
	// left out of Heartbeat to keep within the tracker's bounds.
	Cut int
	// Health is how its last heartbeat stands against the health rules of
	// its service (WithHealthRules); nil when none applies or before its
	// first heartbeat. Degraded reads it.
	Health *Health
}

// Heartbeat returns the last heartbeat, when the tracker keeps them
// (WithHeartbeats); nil otherwise. It holds what the tracker's bytes allow
// (WithHeartbeatBudget): every documented field, and the service fields
// that fit, long strings cut. Times are in UTC, as the wire carries them,
// and a service value holds only what its Kind names.
//
// The tracker keeps heartbeats packed, in a fifth of the memory of a
// wire.Message or less, so each call unpacks a new message, its strings shared
// with every copy of in: a reader may change it, and should call it once
// rather than once a field. The names are in's own.
func (in *Instance) Heartbeat() *wire.Message {
	if in.kept.p == nil {
		return nil
	}
	return unpack(in.kept.bytes(), in)
}

// Age returns how long ago the last heartbeat was received.
func (i *Instance) Age(now time.Time) time.Duration { return now.Sub(i.LastSeen) }

// Transition is one change of an instance's state.
type Transition struct {
	Key
	From, To State
	At       time.Time
	// Age is the time since the last heartbeat when the transition happened.
	Age            time.Duration
	Interval       time.Duration
	IntervalSource IntervalSource
	// By is the instance that replaced this one, when To is Replaced.
	By string
}

// Recovered reports whether a dead instance came back.
func (t Transition) Recovered() bool { return t.From == Dead && t.To == Alive }

// Clock tells the time; a fake in tests.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Tracker tracks instances. It is safe for concurrent use.
type Tracker struct {
	clock           Clock
	base            time.Time // when it was made, see heardAt
	retention       time.Duration
	maxInstances    int
	defaultInterval time.Duration
	keepHeartbeats  bool
	keptMax         int // bytes of one kept heartbeat, see WithHeartbeatBudget
	keptBudget      int // bytes of every kept heartbeat together
	healthRules     []HealthRule

	mu        sync.Mutex
	tracked   int // instances: every service's members together
	deadlines deadlineHeap
	services  map[string]*serviceName // one shared copy of each name tracked
	heard     entry                   // sentinel of the living (alive, stale), least recently heard first
	stale     map[*entry]struct{}     // the stale, see RangeNotable
	gone      entry                   // sentinel of the dead and stopped, longest gone first
	heldFrom  time.Time               // see Hold
	unwatched time.Duration           // all the time the watcher could not see, see Unwatched
	evicted   int64
	refiled   int64       // entries Tick re-filed under a later deadline, see schedule
	kept      int         // bytes of the kept heartbeats, packed
	cut       int64       // service fields cut or left out of kept heartbeats
	scratch   keepScratch // where heartbeats are packed

	replacedBy    map[Key]string // see ReplacedBy
	replacedOrder []Key

	// Slots (see Slot): each slot's generation, and the slots of
	// instances forgotten, to give again.
	gens      []uint32
	freeSlots []int32
	slots     atomic.Int32 // len(gens), see Slots

	// Health verdicts to report (HealthAt), for instances judged by health
	// rules only.
	healthOf    map[*entry]*healthState
	healthDue   healthHeap
	healthDirty []*entry
}

// serviceName is a service name shared by its instances' entries, released
// with the last of them.
type serviceName struct {
	name      string
	byID      *idIndex       // its instances by id, once it has more than smallService; see find
	counts    Counts         // its instances by state (Degraded not counted)
	intervals intervalCounts // its instances by interval
	members   []*entry       // its instances, in no order
	pair      *pairs         // see replace.go
	rules     []*HealthRule  // the health rules that apply to it
}

// entry is what the tracker keeps of an instance: the fields of its
// Instance, its times as integers of 8 bytes rather than a time.Time's 24
// (LastSeen and Since on the wall clock, see stamp, and LastSeen again as
// heartbeats are ordered, see heardAt), and its places in the tracker's
// lists, heaps and service. A panel keeps one for every instance of its
// fleet: it fits in 192 bytes, its small fields last, together.
type entry struct {
	Key
	seen, since   int64         // Instance.LastSeen and Since, stamped
	heard         time.Duration // LastSeen as heartbeats are ordered: see heardAt
	Interval      time.Duration
	Count         int64
	UptimeSeconds float64
	MemoryMB      float64
	CPUPercent    float64
	Lost          int64
	kept          packed
	Health        *Health

	prev, next *entry        // in heard or gone, see link
	gaps       *gaps         // for a sender that does not say its interval
	unwatched  time.Duration // the tracker's unwatched when it was last heard
	started    int64         // when its process started, Unix nanoseconds; see replace.go
	index      int32         // in the heap, or -1
	pairIndex  int32         // in its service's heap of orphans or newcomers, or -1
	member     int32         // in its service's members
	slot       int32         // see Slot
	// keptSize is kept.size(), so that a heartbeat replacing the kept
	// one need not read the old bytes (a cache miss an instance) to count
	// what they held.
	keptSize       uint32
	cut            int32 // Instance.Cut
	State          State
	IntervalSource IntervalSource
	Has            wire.Presence
	Remembered     bool
	pairIn         uint8 // which of its service's heaps pairIndex is in
	replacing      bool  // it has replaced an instance: it replaces no other
}

// instance is e as an Instance.
func (e *entry) instance() Instance {
	return Instance{
		Key: e.Key, State: e.State, IntervalSource: e.IntervalSource, Has: e.Has, Remembered: e.Remembered,
		LastSeen: timeOf(e.seen), Since: timeOf(e.since), Interval: e.Interval,
		Count: e.Count, UptimeSeconds: e.UptimeSeconds, MemoryMB: e.MemoryMB, CPUPercent: e.CPUPercent,
		Lost: e.Lost, kept: e.kept, Cut: int(e.cut), Health: e.Health,
	}
}

// noTime is the stamp of the zero time.
const noTime = math.MinInt64

// The seconds of the first and last times a stamp holds.
const (
	firstStamp = math.MinInt64/int64(time.Second) + 1
	lastStamp  = math.MaxInt64/int64(time.Second) - 1
)

// stamp is at as an entry keeps LastSeen and Since: Unix nanoseconds on
// the wall clock, as the tracker's deadlines are filed and history is
// written; a time before 1678 or after 2262 is kept as the first or last
// a stamp holds. Which of an instance's heartbeats came last is told by
// heardAt instead.
func stamp(at time.Time) int64 {
	switch s := at.Unix(); {
	case at.IsZero():
		return noTime
	case s < firstStamp:
		return math.MinInt64 + 1
	case s > lastStamp:
		return math.MaxInt64
	}
	return at.UnixNano()
}

// stampAfter is ns, a stamp, d later, or the nearest a stamp holds.
func stampAfter(ns int64, d time.Duration) int64 {
	switch l := ns + int64(d); {
	case d > 0 && l < ns:
		return math.MaxInt64
	case d < 0 && l > ns:
		return math.MinInt64 + 1
	default:
		return l
	}
}

// timeOf is the time stamped ns, in the local time zone.
func timeOf(ns int64) time.Time {
	if ns == noTime {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// heardAt is when a heartbeat received at at was heard, as the tracker
// orders an instance's heartbeats and measures the gaps between them: the
// time since the tracker was made, on the monotonic clock when at carries
// its reading (as time.Time.Sub measures), so that a heartbeat received
// after the wall clock was set back is still the latest.
func (t *Tracker) heardAt(at time.Time) time.Duration { return at.Sub(t.base) }

// gapSamples is how many gaps an inferred interval is the median of.
const gapSamples = 8

// gaps are the latest gaps between one instance's heartbeats, in
// milliseconds (24 h fits), oldest overwritten first.
type gaps struct {
	ms      [gapSamples]uint32
	n, next uint8
}

func (g *gaps) add(d time.Duration) {
	g.ms[g.next] = uint32(d / time.Millisecond)
	g.next = (g.next + 1) % gapSamples
	if g.n < gapSamples {
		g.n++
	}
}

// median is the upper median: of two middle values the longer, so that an
// estimate between them never judges an instance early.
func (g *gaps) median() time.Duration {
	s := g.ms
	v := s[:g.n]
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return time.Duration(v[len(v)/2]) * time.Millisecond
}

// TrackerOption configures a Tracker.
type TrackerOption interface{ applyTracker(*Tracker) }

type trackerOptionFunc func(*Tracker)

func (f trackerOptionFunc) applyTracker(t *Tracker) { f(t) }

// WithClock sets the clock. Default: the system clock.
func WithClock(c Clock) TrackerOption { return trackerOptionFunc(func(t *Tracker) { t.clock = c }) }

// WithRetention sets how long dead and stopped instances are remembered.
// Default: DefaultRetention.
func WithRetention(d time.Duration) TrackerOption {
	return trackerOptionFunc(func(t *Tracker) { t.retention = d })
}

// WithDefaultInterval sets the interval of an instance whose heartbeats do
// not say it, until its own gaps show it. Default: wire.DefaultInterval
// (the original design's 60 s).
func WithDefaultInterval(d time.Duration) TrackerOption {
	return trackerOptionFunc(func(t *Tracker) {
		if d > 0 {
			t.defaultInterval = min(max(d, wire.MinInterval), wire.MaxInterval)
		}
	})
}

// WithMaxInstances bounds the instances tracked (0: no bound). At the bound,
// a new instance evicts the one dead or stopped the longest, or when none
// is, the one heard from least recently, and Evicted
// counts it. Default: DefaultMaxInstances. The heap the tracker keeps is
// at most about n x 512 bytes (about 500 MiB at the default bound); with
// no bound it grows with every distinct instance id received.
func WithMaxInstances(n int) TrackerOption {
	return trackerOptionFunc(func(t *Tracker) { t.maxInstances = n })
}

// WithHeartbeats makes the tracker keep each instance's last heartbeat
// (Instance.Heartbeat), for consumers that pick instances by their
// heartbeats: Alive answers from it. The tracker keeps a copy bounded in
// bytes (WithHeartbeatBudget), never the message given to Observe, and
// packed: the original design's heartbeat, three service fields, keeps
// about 90 bytes in one allocation without pointers. It costs the heap at
// most DefaultHeartbeatBudget (128 MiB) beyond the entries, and at most
// 4 KiB per instance.
func WithHeartbeats() TrackerOption {
	return trackerOptionFunc(func(t *Tracker) { t.keepHeartbeats = true })
}

// NewTracker returns an empty tracker.
func NewTracker(opts ...TrackerOption) *Tracker {
	t := &Tracker{
		clock:           realClock{},
		base:            time.Now(),
		retention:       DefaultRetention,
		maxInstances:    DefaultMaxInstances,
		defaultInterval: wire.DefaultInterval,
		keptMax:         DefaultHeartbeatBytes,
		keptBudget:      DefaultHeartbeatBudget,
		services:        make(map[string]*serviceName),
		healthOf:        make(map[*entry]*healthState),
		stale:           make(map[*entry]struct{}),
	}
	t.heard.prev, t.heard.next = &t.heard, &t.heard
	t.gone.prev, t.gone.next = &t.gone, &t.gone
	for _, o := range opts {
		o.applyTracker(t)
	}
	return t
}

// Now returns the tracker's time.
func (t *Tracker) Now() time.Time { return t.clock.Now() }

// Len returns the number of instances tracked.
func (t *Tracker) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.tracked
}

// lookup returns the entry of k, nil when k is not tracked, and its
// service, nil when no instance of it is.
func (t *Tracker) lookup(k Key) (*entry, *serviceName) {
	svc := t.services[k.Service]
	if svc == nil {
		return nil, nil
	}
	return svc.find(k.Instance), svc
}

// smallService is the most instances a service finds among its members
// rather than in an index by id (see idIndex): an index of its own costs
// a service a few hundred bytes, which a fleet of one instance a service
// (or a flood of made-up service names) would pay for every instance. A
// service keeps its index until it is down to half as many.
const smallService = 8

// find returns s's instance id, nil when s has none. A look-up in the
// service's index hashes and compares one string where one map by service
// and instance hashed and compared two.
func (s *serviceName) find(id string) *entry {
	if s.byID != nil {
		return s.byID.find(s.members, id, idHash(id))
	}
	for _, e := range s.members {
		if e.Key.Instance == id {
			return e
		}
	}
	return nil
}

// join adds e to s's members, and to its index when it keeps one.
func (s *serviceName) join(e *entry) {
	e.member = int32(len(s.members))
	s.members = append(s.members, e)
	switch {
	case s.byID != nil:
		s.byID.add(s.members)
	case len(s.members) > smallService:
		s.byID = new(idIndex)
		s.byID.build(s.members)
	}
}

// Evicted returns how many instances were evicted to make room for new ones
// because WithMaxInstances was reached.
func (t *Tracker) Evicted() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.evicted
}

// serviceNames returns how many service names the tracker holds.
func (t *Tracker) serviceNames() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.services)
}

// Observe records a heartbeat received now and returns the transitions it
// causes (none, or one). Transitions of other instances that are due are
// not included: call Tick.
func (t *Tracker) Observe(m *wire.Message) []Transition {
	return t.ObserveAt(m, t.clock.Now())
}

// ObserveAt records a heartbeat received at receivedAt (on the tracker's
// clock); a monitor that reads a latest-state key uses the key's age on the
// server. A receivedAt older than what is known already is ignored: older
// as time.Time compares them, on the monotonic clock when both carry its
// reading (see heardAt).
// m is only read, and not kept: what a tracker keeping heartbeats keeps
// of it is a copy (see Instance.Heartbeat). Names returns the
// tracker's own copy of an instance's names, for a consumer that keeps
// something by instance beside the tracker.
func (t *Tracker) ObserveAt(m *wire.Message, receivedAt time.Time) []Transition {
	tr, _ := t.observe(m, receivedAt, false)
	return tr
}

// observeOwned is ObserveAt of a message the caller (a Monitor that
// decoded it) owns and lets the tracker change: its ServiceName and
// InstanceID are set to the tracker's own copies, so that
// what a consumer of the monitor's events keeps by instance shares their
// memory rather than holding another copy of every id. It also returns
// the instance's Slot.
func (t *Tracker) observeOwned(m *wire.Message, receivedAt time.Time) ([]Transition, Slot) {
	return t.observe(m, receivedAt, true)
}

func (t *Tracker) observe(m *wire.Message, receivedAt time.Time, owned bool) ([]Transition, Slot) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := Key{Service: m.ServiceName, Instance: m.InstanceID}
	e, svc := t.lookup(k)
	ok := e != nil
	if !ok {
		if t.maxInstances > 0 && t.tracked >= t.maxInstances {
			t.evictOne()
		}
		e, svc = t.add(k)
	}
	if owned {
		m.ServiceName, m.InstanceID = e.Key.Service, e.Key.Instance
	}
	slot := t.slotOf(e)
	heard := t.heardAt(receivedAt)
	if ok && heard < e.heard {
		return nil, slot
	}
	if ok {
		t.unlink(e)
	}
	if e.Has&wire.HasHeartbeatCount != 0 && m.Has&wire.HasHeartbeatCount != 0 && m.HeartbeatCount > e.Count+1 {
		e.Lost += m.HeartbeatCount - e.Count - 1
	}
	t.learnInterval(e, m, heard, ok && !e.Remembered)
	if e.Remembered {
		e.Remembered, e.started = false, 0 // heard: its own start is learnt below
	}
	e.seen, e.heard = stamp(receivedAt), heard
	e.unwatched = t.unwatched
	e.Count = m.HeartbeatCount
	e.UptimeSeconds = m.UptimeSeconds
	e.MemoryMB = m.MemoryUsageMB
	e.CPUPercent = m.CPUUsagePercent
	e.Has = m.Has
	learnt := e.setStarted(receivedAt, m.UptimeSeconds, m.Has&wire.HasUptime != 0)
	if t.keepHeartbeats {
		t.keepHeartbeat(e, m)
	}
	t.judgeHealth(e, svc, m, receivedAt)

	now := t.clock.Now()
	to := Classify(now.Sub(receivedAt), e.Interval)
	if m.Status == wire.StatusStopping {
		to = Stopped
	}
	var out []Transition
	if to != e.State {
		out = append(out, Transition{Key: e.Key, From: e.State, To: to, At: now, Age: now.Sub(receivedAt),
			Interval: e.Interval, IntervalSource: e.IntervalSource})
		t.setState(e, to)
		e.since = stamp(now)
	}
	t.link(e)
	t.schedule(e)
	if !ok || len(out) > 0 || learnt {
		out = append(out, t.replace(e, now)...)
	}
	return out, slot
}

// add starts tracking k, in no state yet, and returns its entry and its
// service.
func (t *Tracker) add(k Key) (*entry, *serviceName) {
	svc, ok := t.services[k.Service]
	if !ok {
		svc = &serviceName{name: k.Service, rules: t.rulesFor(k.Service)}
		t.services[svc.name] = svc
	}
	svc.intervals.add(0, 1)
	k.Service = svc.name
	e := &entry{Key: k, seen: noTime, since: noTime, index: -1, pairIndex: -1, slot: t.takeSlot()}
	svc.join(e)
	t.tracked++
	return e, svc
}

// keepHeartbeat keeps a bounded copy of m as e's heartbeat: within e's
// share of the budget, and within what the budget has left.
func (t *Tracker) keepHeartbeat(e *entry, m *wire.Message) {
	others := t.kept - int(e.keptSize)
	room := min(t.keptMax, t.keptBudget/max(t.tracked, 1), t.keptBudget-others)
	p, cut := keep(&t.scratch, m, room)
	e.kept, e.cut, e.keptSize = p, int32(cut), uint32(p.size())
	t.kept = others + int(e.keptSize)
	t.cut += int64(cut)
}

// Cut returns how many service fields were cut short or left out of the
// heartbeats kept (WithHeartbeats) to keep within the tracker's bounds.
func (t *Tracker) Cut() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cut
}

// KeptBytes returns the bytes of the heartbeats kept (WithHeartbeats),
// packed, and the budget they are held to.
func (t *Tracker) KeptBytes() (kept, budget int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.kept, t.keptBudget
}

// maxWalk bounds how far link walks back to place an instance heard
// earlier than the most recent: only latest-state keys read at start or
// after a reconnect are, and the monitor feeds those oldest first.
const maxWalk = 64

// link puts e in its eviction list: the dead and stopped by when they went
// (e is the latest), the others by when they were last heard.
func (t *Tracker) link(e *entry) {
	at := t.gone.prev
	if e.State != Dead && e.State != Stopped {
		at = t.heard.prev
		for i := 0; i < maxWalk && at != &t.heard && at.heard > e.heard; i++ {
			at = at.prev
		}
	}
	e.prev, e.next = at, at.next
	at.next.prev, at.next = e, e
}

func (t *Tracker) unlink(e *entry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

// evictOne makes room: the instance dead or stopped the longest, or when
// there is none, the one heard from least recently.
func (t *Tracker) evictOne() {
	victim := t.gone.next
	if victim == &t.gone {
		victim = t.heard.next
	}
	t.remove(victim)
	t.evicted++
}

// learnInterval sets e's interval from m, heard at heard: the one
// m says, or else the median of the gaps between e's heartbeats, each
// divided by how many heartbeats its count says it spans. known says
// whether e had been heard before m.
func (t *Tracker) learnInterval(e *entry, m *wire.Message, heard time.Duration, known bool) {
	defer t.recount(e, e.Interval)
	if m.Has&wire.HasInterval != 0 {
		e.Interval, e.IntervalSource, e.gaps = m.Interval(), IntervalSent, nil
		return
	}
	if e.gaps == nil {
		e.gaps = new(gaps)
	}
	if known && heard > e.heard {
		spans := int64(1)
		counted := e.Has&wire.HasHeartbeatCount != 0 && m.Has&wire.HasHeartbeatCount != 0
		if counted {
			spans = m.HeartbeatCount - e.Count
		}
		// A count that did not move on (a restart, a duplicate) says
		// nothing of the interval; neither does a gap shorter than any
		// sender's interval (the burst after a stall).
		if spans > 0 {
			gap := (heard - e.heard) / time.Duration(spans)
			if gap >= wire.MinInterval && gap <= wire.MaxInterval {
				e.gaps.add(gap)
			}
		}
	}
	if e.gaps.n == 0 {
		e.Interval, e.IntervalSource = t.defaultInterval, IntervalDefault
		return
	}
	e.Interval, e.IntervalSource = e.gaps.median(), IntervalInferred
}

// setState moves e to state to, counted in its service.
func (t *Tracker) setState(e *entry, to State) {
	if svc := t.services[e.Service]; svc != nil {
		svc.counts.Add(e.State, -1)
		svc.counts.Add(to, 1)
	}
	if e.State == Stale {
		delete(t.stale, e)
	}
	if to == Stale {
		t.stale[e] = struct{}{}
	}
	e.State = to
}

// recount counts e's interval in its service, in place of was.
func (t *Tracker) recount(e *entry, was time.Duration) {
	if e.Interval == was {
		return
	}
	if svc := t.services[e.Service]; svc != nil {
		svc.intervals.add(was, -1)
		svc.intervals.add(e.Interval, 1)
	}
}

// intervalCounts counts a service's instances by interval: in two fields
// while they share one, as a service's instances mostly do, and in a map
// only while they differ, since a map costs a service a couple of hundred
// bytes, which a fleet of one instance a service would pay an instance.
type intervalCounts struct {
	one  time.Duration
	n    int                   // instances of interval one, when more is nil
	more map[time.Duration]int // instances by interval, when they differ
}

// add counts n more instances (n < 0: fewer) of interval d.
func (c *intervalCounts) add(d time.Duration, n int) {
	switch {
	case c.more != nil:
		if c.more[d] += n; c.more[d] <= 0 {
			delete(c.more, d)
		}
		if len(c.more) == 1 {
			for d, n := range c.more {
				c.one, c.n, c.more = d, n, nil
			}
		}
	case c.n == 0:
		if n > 0 {
			c.one, c.n = d, n
		}
	case d == c.one:
		c.n = max(c.n+n, 0)
	case n > 0:
		c.more = map[time.Duration]int{c.one: c.n, d: n}
	}
}

// longest returns the longest interval counted, 0 when none is.
func (c *intervalCounts) longest() time.Duration {
	if c.more == nil {
		if c.n > 0 {
			return c.one
		}
		return 0
	}
	var longest time.Duration
	for d := range c.more {
		longest = max(longest, d)
	}
	return longest
}

// leave takes e out of s's members, moving the last into its place, and
// out of its index, which goes once half of smallService are left. A list
// that has shrunk to a quarter of its room is moved to a smaller one (and
// an index to a smaller table, see idIndex), so that a service whose fleet
// once was large does not hold their room.
func (s *serviceName) leave(e *entry) {
	last := int32(len(s.members) - 1)
	moved := s.members[last]
	switch {
	case s.byID == nil:
	case last <= smallService/2:
		s.byID = nil
	default:
		s.byID.remove(idHash(e.Key.Instance), e.member)
		if moved != e {
			s.byID.moved(idHash(moved.Key.Instance), last, e.member)
		}
	}
	s.members[e.member], moved.member = moved, e.member
	s.members[last] = nil
	s.members = s.members[:last]
	if c := cap(s.members); c > 64 && len(s.members) < c/4 {
		s.members = append(make([]*entry, 0, 2*len(s.members)), s.members...)
	}
}

// deadline is when e's next transition is due, from its state (stale,
// dead, or forgotten after the retention period), stamped as the heap
// files it. It is worked out when asked rather than kept, which keeps an
// entry within 192 bytes.
func (t *Tracker) deadline(e *entry) int64 {
	switch e.State {
	case Alive:
		return stampAfter(e.seen, scale(e.Interval, StaleAfter))
	case Stale:
		return stampAfter(e.seen, scale(e.Interval, DeadAfter))
	default: // Dead, Stopped
		return stampAfter(e.since, t.retention)
	}
}

// schedule sets e's next deadline from its state. An earlier one
// re-files it now. A later one is filed in place when e is a leaf of the
// heap, as most entries are: its parent is due no later than before, and
// it has no child, so the heap keeps its order for the cost of a write.
// Elsewhere a later deadline leaves the heap alone, and Tick re-files the
// entry, O(log n), when its old deadline comes up.
func (t *Tracker) schedule(e *entry) {
	switch d := t.deadline(e); {
	case e.index < 0:
		t.deadlines.push(e, d)
	case d < t.deadlines[e.index].filed:
		t.deadlines.refile(int(e.index), d)
	case t.deadlines.leaf(int(e.index)):
		t.deadlines[e.index].filed = d
	}
}

// remove forgets an entry.
func (t *Tracker) remove(e *entry) {
	if e.index >= 0 {
		t.deadlines.remove(int(e.index))
	}
	t.unfile(e)
	t.unlink(e)
	t.forgetHealth(e)
	t.tracked--
	t.freeSlots = append(t.freeSlots, e.slot)
	t.kept -= int(e.keptSize)
	delete(t.stale, e)
	if svc := t.services[e.Service]; svc != nil {
		svc.counts.Add(e.State, -1)
		svc.intervals.add(e.Interval, -1)
		svc.leave(e)
		if len(svc.members) == 0 {
			delete(t.services, e.Service)
		}
	}
}

// NextDeadline returns when Tick (or HealthAt) next has something to do;
// it may be early (an entry that only needs re-filing), never late.
func (t *Tracker) NextDeadline() (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var next time.Time
	if len(t.deadlines) > 0 {
		next = time.Unix(0, t.deadlines[0].filed)
	}
	if len(t.healthDue) > 0 {
		if h := time.Unix(0, t.healthDue[0].hs.due); next.IsZero() || h.Before(next) {
			next = h
		}
	}
	return next, !next.IsZero()
}

// Tick is TickAt the tracker's current time.
func (t *Tracker) Tick() []Transition { return t.TickAt(t.clock.Now()) }

// TickAt applies every deadline up to seen and returns the transitions,
// oldest first. seen is the time up to which the watcher knows it has
// received every heartbeat sent: a monitor passes the moment its latest
// probe of the subscription was sent, so that heartbeats still in its
// socket or in a stalled broker are not declared missing. Instances
// forgotten after the retention period produce no transition.
func (t *Tracker) TickAt(seen time.Time) []Transition {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Transition
	for len(t.deadlines) > 0 && t.deadlines[0].filed <= seen.UnixNano() {
		e := t.deadlines[0].e
		due := timeOf(t.deadline(e))
		if e.State == Alive || e.State == Stale {
			// Silence is judged only on time that was watched.
			due = due.Add(t.unwatched - e.unwatched)
			if hold := t.heldFrom.Add(scale(e.Interval, StaleAfter)); !t.heldFrom.IsZero() && due.Before(hold) {
				due = hold
			}
		}
		if due.UnixNano() > seen.UnixNano() { // as the heap orders: on the wall clock
			// Heartbeats moved it on, or it is held: file it under its
			// real deadline.
			t.deadlines.refile(0, due.UnixNano())
			t.refiled++
			continue
		}
		switch e.State {
		case Alive, Stale:
			// One step at a time, so a late Tick still reports alive->stale
			// before stale->dead, each at the moment it happened.
			to := e.State + 1
			out = append(out, Transition{Key: e.Key, From: e.State, To: to, At: due, Age: due.Sub(timeOf(e.seen)),
				Interval: e.Interval, IntervalSource: e.IntervalSource})
			t.setState(e, to)
			e.since = stamp(due)
			t.markHealth(e) // an instance that is not up is not degraded
			if to == Dead {
				t.unlink(e)
				t.link(e)
			}
			t.schedule(e)
			if to == Dead {
				out = append(out, t.replace(e, due)...)
			}
		default:
			t.remove(e)
		}
	}
	return out
}

// Hold says the watcher could not see until at: its subscription was
// stalled, lost or behind. From then on, no instance turns stale or dead
// by silence before it has been watched for StaleAfter of its intervals
// after at, because heartbeats sent meanwhile may still arrive, in any
// order. A heartbeat received meanwhile counts as usual.
func (t *Tracker) Hold(at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if at.After(t.heldFrom) {
		t.heldFrom = at
	}
}

// Unwatched says the watcher could not see from from to to: its
// subscription was lost, or did not answer. That time is not counted as
// any instance's silence. Calls are for successive, separate spells.
func (t *Tracker) Unwatched(from, to time.Time) {
	if !to.After(from) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.unwatched += to.Sub(from)
}

// Get returns a copy of what is known of one instance.
func (t *Tracker) Get(k Key) (Instance, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, _ := t.lookup(k)
	if e == nil {
		return Instance{}, false
	}
	return e.instance(), true
}

// Alive returns the instances of service that are alive now, ordered by
// instance id: the answer to "where can I send a request". An instance
// leaves it the moment the tracker judges it stale, and at once when it
// sends its stopping heartbeat; it is back with its next heartbeat. With
// WithHeartbeats each carries its last heartbeat (its instance_address,
// its service fields such as pending_requests). The cost is that of the
// service's instances.
func (t *Tracker) Alive(service string) []Instance {
	t.mu.Lock()
	var out []Instance
	if svc := t.services[service]; svc != nil {
		for _, e := range svc.members {
			if e.State == Alive {
				out = append(out, e.instance())
			}
		}
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b Instance) int { return strings.Compare(a.Instance, b.Instance) })
	return out
}

// Snapshot returns every instance, ordered by service then instance.
func (t *Tracker) Snapshot() []Instance {
	t.mu.Lock()
	out := make([]Instance, 0, t.tracked)
	for _, svc := range t.services {
		for _, e := range svc.members {
			out = append(out, e.instance())
		}
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		return out[i].Instance < out[j].Instance
	})
	return out
}

// Range calls f for every instance, in no particular order, until f
// returns false, each in the same Instance: a walk of a large fleet that
// keeps little (counts, the few instances it wants) costs no garbage. f
// runs under the tracker's lock, so it must be quick, must not call the
// tracker, and must not keep in past its return (copy *in to keep it).
func (t *Tracker) Range(f func(in *Instance) bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var in Instance
	for _, svc := range t.services {
		for _, e := range svc.members {
			if in = e.instance(); !f(&in) {
				return
			}
		}
	}
}

// RangeNotable calls f, as Range does, for every instance that is not
// alive, and for every alive instance that health rules judge (whether it
// is degraded depends on the time it is asked), until f returns false;
// and returns every service's instances counted by state (Counts, without
// Degraded) with the longest interval among them. Together they are what
// a walk of every instance would tell, for a walk of only the instances
// that are not plainly alive: at a large, healthy fleet, a few of them.
func (t *Tracker) RangeNotable(f func(in *Instance) bool) map[string]ServiceTally {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]ServiceTally, len(t.services))
	for name, svc := range t.services {
		out[name] = ServiceTally{Counts: svc.counts, Longest: svc.intervals.longest()}
	}
	var in Instance
	visit := func(e *entry) bool { in = e.instance(); return f(&in) }
	for e := range t.stale {
		if !visit(e) {
			return out
		}
	}
	for e := t.gone.next; e != &t.gone; e = e.next {
		if !visit(e) {
			return out
		}
	}
	for e := range t.healthOf {
		if e.State == Alive && !visit(e) {
			return out
		}
	}
	return out
}

// ServiceTally is a service's instances counted by state, and the longest
// interval among them: see RangeNotable.
type ServiceTally struct {
	Counts
	Longest time.Duration
}

// RangeService is Range over the instances of service only, in no
// particular order, at the cost of the service's instances.
func (t *Tracker) RangeService(service string, f func(in *Instance) bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if svc := t.services[service]; svc != nil {
		var in Instance
		for _, e := range svc.members {
			if in = e.instance(); !f(&in) {
				return
			}
		}
	}
}

// Names returns the tracker's own copy of k's names, when it tracks k:
// what a consumer keeps by instance for long (history, say) can share them
// rather than hold another copy of every id.
func (t *Tracker) Names(k Key) (Key, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, _ := t.lookup(k); e != nil {
		return e.Key, true
	}
	return k, false
}

// ServiceNames returns the names of the services tracked, in no
// particular order.
func (t *Tracker) ServiceNames() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.services))
	for name := range t.services {
		out = append(out, name)
	}
	return out
}

// ServiceInstances returns the instances of service, ordered by instance
// id, at the cost of the service's instances.
func (t *Tracker) ServiceInstances(service string) []Instance {
	t.mu.Lock()
	var out []Instance
	if svc := t.services[service]; svc != nil {
		out = make([]Instance, 0, len(svc.members))
		for _, e := range svc.members {
			out = append(out, e.instance())
		}
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b Instance) int { return strings.Compare(a.Instance, b.Instance) })
	return out
}

// CountServices counts every service's instances as they stand at now
// (Counts.Count: by state, and the degraded), by service name, from the
// counts the tracker keeps as instances change state: it judges at now
// only the instances health rules apply to.
func (t *Tracker) CountServices(now time.Time) map[string]Counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]Counts, len(t.services))
	for name, svc := range t.services {
		out[name] = svc.counts
	}
	for e := range t.healthOf {
		if degraded(e.State, e.Health, now) {
			c := out[e.Service]
			c.Degraded++
			out[e.Service] = c
		}
	}
	return out
}

// ServiceSummary counts one service's instances by state.
type ServiceSummary struct {
	Name string
	Counts
}

// Services summarises every service, ordered by name.
func (t *Tracker) Services() []ServiceSummary {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]ServiceSummary, 0, len(t.services))
	for _, svc := range t.services {
		s := ServiceSummary{Name: svc.name}
		for _, e := range svc.members {
			s.Add(e.State, 1)
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// deadlineHeap orders entries by the deadline each is filed under (Unix
// nanoseconds, never later than its deadline). It is four-ary, and holds
// each deadline beside its entry, so that re-filing an entry, thousands
// of times a second in a large fleet, compares within the heap's own
// memory and climbs half the levels of a binary heap, rather than reading
// an entry at every comparison.
type deadlineHeap []filedEntry

type filedEntry struct {
	filed int64
	e     *entry
}

func (h *deadlineHeap) push(e *entry, filed int64) {
	*h = append(*h, filedEntry{filed, e})
	e.index = int32(len(*h) - 1)
	h.up(int(e.index))
}

// leaf reports whether the entry at i has no child.
func (h deadlineHeap) leaf(i int) bool { return 4*i+1 >= len(h) }

// refile files the entry at i under filed.
func (h deadlineHeap) refile(i int, filed int64) {
	h[i].filed = filed
	if !h.up(i) {
		h.down(i)
	}
}

func (h *deadlineHeap) remove(i int) {
	old := *h
	n := len(old) - 1
	e := old[i].e
	old[i] = old[n]
	old[i].e.index = int32(i)
	old[n] = filedEntry{}
	*h = old[:n]
	if i < n {
		h.refile(i, old[i].filed)
	}
	e.index = -1
}

// up moves the entry at i towards the root while it is due earlier than
// its parent, and says whether it moved.
func (h deadlineHeap) up(i int) bool {
	it, start := h[i], i
	for i > 0 {
		p := (i - 1) / 4
		if h[p].filed <= it.filed {
			break
		}
		h[i] = h[p]
		h[i].e.index = int32(i)
		i = p
	}
	h[i] = it
	it.e.index = int32(i)
	return i != start
}

// down moves the entry at i away from the root while a child is due
// earlier.
func (h deadlineHeap) down(i int) {
	it := h[i]
	for {
		first := 4*i + 1
		if first >= len(h) {
			break
		}
		least := first
		for c := first + 1; c < min(first+4, len(h)); c++ {
			if h[c].filed < h[least].filed {
				least = c
			}
		}
		if h[least].filed >= it.filed {
			break
		}
		h[i] = h[least]
		h[i].e.index = int32(i)
		i = least
	}
	h[i] = it
	it.e.index = int32(i)
}
