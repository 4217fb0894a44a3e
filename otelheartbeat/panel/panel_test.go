package panel

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/otel-heartbeat/heartbeat/internal/testing/poll"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/history"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/series"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
	"github.com/redis/go-redis/v9"
)

// The history cache keeps entries as a stable sort of everything read by
// time would, however the reads split the history and however much of its
// start is forgotten, and gives each back as it was read: every field
// uptime and the charts read, the replacement and the lost count included.
func TestHistoryIsKeptInOrderOfTime(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	tr := watch.NewTracker()
	for seed := range 300 {
		r := rand.New(rand.NewPCG(uint64(seed), 1))
		var all []history.Entry
		for i := range 1 + r.IntN(60) {
			// Mostly in order, some late, some at one moment.
			at := t0.Add(time.Duration(i-r.IntN(3)*r.IntN(8))*time.Second + time.Duration(r.IntN(3))*time.Millisecond)
			e := history.Entry{Service: "svc", Instance: strconv.Itoa(i), At: at.Local(),
				From: watch.State(r.IntN(5)), To: watch.State(r.IntN(5))}
			switch r.IntN(4) {
			case 1:
				e.Event = history.Forgotten
			case 2:
				// Counts that fit beside the entry and counts that do not.
				e.Event, e.Lost = history.LostHeartbeats, []int64{r.Int64(), r.Int64N(100), -1}[r.IntN(3)]
			case 3:
				e.Event, e.By = history.Replaced, "by-"+strconv.Itoa(r.IntN(10))
			}
			all = append(all, e)
		}
		ce := &cachedEntries{service: "svc"}
		var want []history.Entry // a stable sort of all read, less what was dropped
		for rest := all; len(rest) > 0; {
			n := 1 + r.IntN(len(rest))
			ce.add(tr, slices.Clone(rest[:n]))
			want = append(want, rest[:n]...)
			slices.SortStableFunc(want, func(a, b history.Entry) int { return a.At.Compare(b.At) })
			rest = rest[n:]
			if r.IntN(3) == 0 {
				d := r.IntN(len(ce.entries) + 1)
				ce.drop(d)
				want = want[d:]
			}
		}
		got := ce.history(0)
		if !slices.EqualFunc(got, want, sameEntry) {
			t.Fatalf("seed %d: kept\n%v\nwant\n%v", seed, got, want)
		}
		replaced, lost := 0, 0
		for _, e := range want {
			switch {
			case e.Event == history.Replaced:
				replaced++
			case e.Event == history.LostHeartbeats && (e.Lost < 0 || e.Lost > math.MaxInt32):
				lost++
			}
		}
		if len(ce.by) > replaced || len(ce.lost) > lost {
			t.Fatalf("seed %d: %d replacements and %d lost counts kept aside for %d and %d entries that hold one", seed, len(ce.by), len(ce.lost), replaced, lost)
		}
	}
}

// The cache holds 30 days of every service's history: an entry in 32
// bytes.
func TestACachedEntryTakes32Bytes(t *testing.T) {
	if s := unsafe.Sizeof(cachedEntry{}); s > 32 {
		t.Errorf("a cached entry takes %d bytes, want at most 32", s)
	}
}

// sameEntry reports whether a and b are the same entry: their times the
// same instant, however each is written, and all else equal.
func sameEntry(a, b history.Entry) bool {
	same := a.At.Equal(b.At)
	a.At, b.At = time.Time{}, time.Time{}
	return same && a == b
}

// A read from a time holds the entries at it and after, to the
// millisecond history keeps: none before.
func TestHistoryIsReadFromATime(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	ce := &cachedEntries{service: "svc"}
	var all []history.Entry
	for i := range 5 {
		all = append(all, history.Entry{Service: "svc", Instance: strconv.Itoa(i), At: t0.Add(time.Duration(i) * time.Millisecond)})
	}
	ce.add(watch.NewTracker(), all)
	for _, c := range []struct {
		since time.Time
		want  int // entries read
	}{
		{time.Time{}, 5},
		{t0.Add(-time.Hour), 5},
		{t0, 5},
		{t0.Add(time.Nanosecond), 4},
		{t0.Add(time.Millisecond - time.Nanosecond), 4},
		{t0.Add(time.Millisecond), 4},
		{t0.Add(4 * time.Millisecond), 1},
		{t0.Add(4*time.Millisecond + 1), 0},
	} {
		if got := ce.history(ce.before(c.since)); len(got) != c.want || (c.want > 0 && got[0].At.Before(c.since)) {
			t.Errorf("since %v: read %d entries, want %d", c.since.Sub(t0), len(got), c.want)
		}
	}
}

// BenchmarkHistoryCachePerInstance reports the heap the panel's history
// cache holds per instance at 100,000 instances of 50 services, each
// with the one entry of an instance that has run since it appeared, its
// names the tracker's.
func BenchmarkHistoryCachePerInstance(b *testing.B) {
	const n = 100_000
	t0 := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	tr := watch.NewTracker()
	byService := map[string][]history.Entry{}
	for i := range n {
		svc, id := fmt.Sprintf("service_%02d", i%50), fmt.Sprintf("%08x-e5f6-7890-abcd-ef1234567890", i)
		tr.Observe(&wire.Message{ServiceName: svc, InstanceID: id, Timestamp: t0})
		byService[svc] = append(byService[svc], history.Entry{Service: svc, Instance: id, From: watch.Unknown, To: watch.Alive, At: t0.Add(time.Duration(i) * time.Millisecond)})
	}
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		cache := map[string]*cachedEntries{}
		for svc, entries := range byService {
			ce := &cachedEntries{service: svc}
			// Read as the panel reads history: up to 10,000 at a time.
			for rest := entries; len(rest) > 0; {
				k := min(len(rest), 10_000)
				ce.add(tr, slices.Clone(rest[:k]))
				rest = rest[k:]
			}
			cache[svc] = ce
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/instance")
		runtime.KeepAlive(cache)
	}
}

// BenchmarkUptimeOfAFleetThatRuns is one uptime computation of 100,000
// instances in 50 services, every one up since it appeared: "worked out"
// works every instance's figure out, as every computation did before
// whole services kept theirs; "kept" is a computation that finds nothing
// changed.
func BenchmarkUptimeOfAFleetThatRuns(b *testing.B) {
	const n = 100_000
	srv := redistest.Start(b)
	tr := watch.NewTracker(TrackerOptions()...)
	p, err := New(tr, srv.Client(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.met.shutdown() })
	ctx := context.Background()
	now := time.Now()
	recs := make([]history.Record, 0, 5_000)
	for i := range n {
		svc, id := fmt.Sprintf("service_%02d", i%50), fmt.Sprintf("%08x-e5f6-7890-abcd-ef1234567890", i)
		tr.ObserveAt(&wire.Message{ServiceName: svc, InstanceID: id, Timestamp: now, IntervalSeconds: 10, Has: wire.HasInterval}, now)
		recs = append(recs, history.Record{Service: svc, Instance: id, To: watch.Alive, At: now.Add(-time.Hour)})
		if len(recs) == cap(recs) || i == n-1 {
			if _, err := p.store.Apply(ctx, 1, recs); err != nil {
				b.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	p.loaded.Store(true)
	p.reports.compute(ctx, p) // history read into the cache
	for _, c := range []struct {
		name   string
		forget bool
	}{{"worked out", true}, {"kept", false}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if c.forget {
					p.reports.whole = nil
				}
				p.reports.compute(ctx, p)
			}
			if len(p.reports.whole) != 50 {
				b.Fatalf("%d services whole, want 50", len(p.reports.whole))
			}
		})
	}
}

// When the history the cache read is gone from Valkey (a server restarted
// without persistence, the stream deleted, or trimmed past what was read),
// the cache reads what Valkey holds now rather than adding it to what it
// held: a recorder writing the fleet's state again is not counted twice.
func TestHistoryLostInValkeyIsReadAgain(t *testing.T) {
	srv := redistest.Start(t)
	p := newPanelOn(t, watch.NewTracker(TrackerOptions()...), srv)
	ctx := context.Background()
	now := time.Now()
	recs := []history.Record{
		{Service: "svc", Instance: "a", To: watch.Alive, At: now.Add(-2 * time.Hour)},
		{Service: "svc", Instance: "b", To: watch.Alive, At: now.Add(-time.Hour)},
	}
	read := func() []history.Entry {
		t.Helper()
		es, err := p.reports.history.read(ctx, p, "svc", time.Now(), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	apply(t, p, recs...)
	if es := read(); len(es) != 2 {
		t.Fatalf("read %d entries, want 2", len(es))
	}
	srv.Restart()
	apply(t, p, recs[1:]...) // what a recorder writes again
	if es := read(); len(es) != 1 || es[0].Instance != "b" {
		t.Errorf("after Valkey lost history, read %v; want b's entry alone", es)
	}
	// And when the stream is deleted and written again while no read
	// happened in between, with more than before.
	if err := srv.Client(t).Del(ctx, "heartbeat:history:{svc}:events", "heartbeat:history:{svc}:state").Err(); err != nil {
		t.Fatal(err)
	}
	apply(t, p, recs...)
	apply(t, p, history.Record{Service: "svc", Instance: "c", To: watch.Alive, At: now})
	if es := read(); len(es) != 3 {
		t.Errorf("after the stream was written again, read %d entries, want 3: %v", len(es), es)
	}
}

// The values of the last heartbeats heard before the panel stops are
// written before it gives the lease up, not dropped with the second's
// queue: a recorder stopped for a deploy loses none.
func TestTheLastValuesAreWrittenWhenThePanelStops(t *testing.T) {
	r := startRecording(t)
	now := r.beat("i1", 42)
	r.stop() // within the second the writer waits between writes
	if got := r.memory("i1", now); len(got) != 1 || got[0].Last != 42 {
		t.Errorf("after the stop, Valkey holds %v of i1's memory, want the one value 42", got)
	}
	if r.p.Leading() {
		t.Error("the panel still leads after it stopped")
	}
	// A value given once the panel stopped is not queued, to be lost
	// without a word: it is counted dropped.
	r.p.seriesW.Add(&wire.Message{ServiceName: "svc", InstanceID: "i2", Timestamp: now, MemoryUsageMB: 7, Has: wire.HasMemory}, now)
	if d := r.p.seriesW.Dropped(); d != 1 {
		t.Errorf("a value given after the stop: %d values dropped, want its one", d)
	}
}

// A stop that comes while the writer's second write is in flight does not
// cut it short: what it took from the queue is written, not lost without
// being counted.
func TestAStopDoesNotCutAWriteShort(t *testing.T) {
	g := newGate()
	r := startRecording(t, seriesWriteHook(g.hold))
	now := r.beat("i1", 42)
	<-g.entered // the second's write is under way
	r.cancel()
	close(g.release)
	r.stop()
	if got := r.memory("i1", now); len(got) != 1 || got[0].Last != 42 {
		t.Errorf("Valkey holds %v of i1's memory, want the one value 42 (dropped: %d)", got, r.p.seriesW.Dropped())
	}
}

// A stop that comes while a write runs, with the next tick due when it
// ends, goes first: the writer is closed and what it holds written in
// lastWrite, rather than in another regular write first (of its own 5 s,
// the writer still open, the lease's release waiting for it). Between two
// things ready the loop picks at random: twenty stops leave a loop that
// takes the tick first one chance in a million of passing.
func TestAStopDuringAWriteGoesBeforeTheNextTick(t *testing.T) {
	for i := range 20 {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			ticks := make(chan time.Time, 1)
			g := newGate()
			asked := &leaseQuestions{}
			r := startRecordingTicked(t, ticks, seriesWriteHook(g.hold), asked.hook())
			now := r.beat("i1", 42)
			ticks <- now
			<-g.entered // a write is under way
			asked.on.Store(true)
			r.cancel()
			ticks <- now // the next tick, due as the write ends
			close(g.release)
			r.stop()
			if n := asked.n.Load(); n != 1 {
				t.Fatalf("the lease was asked about %d times after the stop, want once (the last write's)", n)
			}
			if got := r.memory("i1", now); len(got) != 1 || got[0].Last != 42 {
				t.Fatalf("Valkey holds %v of i1's memory, want the one value 42", got)
			}
		})
	}
}

// Values the last write could not write are counted among what was lost,
// not only said as a failure: the line said at the stop has their number,
// whether Valkey failed the write, or failed the question whether this
// replica still holds the lease, which it must answer first. Values kept
// for the next tick's write, the question having failed at this one's,
// are counted once, when they are given up.
func TestValuesAWriteFailedAreCountedLost(t *testing.T) {
	for _, c := range []struct {
		name  string
		which func(cmds []redis.Cmder) bool
		ticks int64 // that fail before the stop
	}{
		// A write that failed is done with: the next tick has none.
		{"the write", func(cmds []redis.Cmder) bool { return strings.EqualFold(cmds[0].Name(), "evalsha") }, 1},
		{"the lease's question", func(cmds []redis.Cmder) bool {
			return len(cmds) == 2 && strings.EqualFold(cmds[0].Name(), "get") && strings.HasSuffix(fmt.Sprint(cmds[0].Args()[1]), ":lease")
		}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			failing := errors.New("valkey failed " + c.name)
			h := &failingPipelines{which: c.which, err: failing}
			r := startRecording(t, h)
			h.on.Store(true)
			r.beat("i1", 42)
			r.beat("i2", 43)
			poll.Until(t, 10*time.Second, "ticks to fail", func() bool { return h.failed.Load() >= c.ticks })
			r.stop()
			said := strings.Join(r.said(), "\n")
			unwritten := 0
			for _, m := range regexp.MustCompile(`(?:: |; )(\d+) not written`).FindAllStringSubmatch(said, -1) {
				n, _ := strconv.Atoi(m[1])
				unwritten += n
			}
			if unwritten != 2 || !strings.Contains(said, failing.Error()) {
				t.Errorf("two values not written for %s, counted %d; said:\n%s", c.name, unwritten, said)
			}
		})
	}
}

// failingPipelines fails the pipelines which picks with err, once on,
// and counts them.
type failingPipelines struct {
	which  func(cmds []redis.Cmder) bool
	err    error
	on     atomic.Bool
	failed atomic.Int64
}

func (h *failingPipelines) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *failingPipelines) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *failingPipelines) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) == 0 || !h.on.Load() || !h.which(cmds) {
			return next(ctx, cmds)
		}
		for _, c := range cmds {
			c.SetErr(h.err)
		}
		h.failed.Add(1)
		return h.err
	}
}

// recording is a panel run on its own Valkey, holding the lease.
type recording struct {
	t      *testing.T
	p      *Panel
	tr     *watch.Tracker
	cancel context.CancelFunc
	ran    chan error
	mu     sync.Mutex
	lines  []string // what the panel said
}

// said returns what the panel has said so far.
func (r *recording) said() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lines)
}

// startRecording runs a panel, with hooks on its Valkey client, until it
// holds the lease.
func startRecording(t *testing.T, hooks ...redis.Hook) *recording {
	t.Helper()
	return startRecordingTicked(t, nil, hooks...)
}

// startRecordingTicked is startRecording with the series writer writing
// at each of ticks rather than every second; nil: every second.
func startRecordingTicked(t *testing.T, ticks <-chan time.Time, hooks ...redis.Hook) *recording {
	t.Helper()
	tr := watch.NewTracker(TrackerOptions()...)
	r := &recording{t: t, tr: tr, ran: make(chan error, 1)}
	p := newPanelOn(t, tr, redistest.Start(t), WithLease(time.Second), WithErrorf(func(f string, a ...any) {
		t.Logf(f, a...)
		r.mu.Lock()
		r.lines = append(r.lines, fmt.Sprintf(f, a...))
		r.mu.Unlock()
	}))
	for _, h := range hooks {
		p.client.AddHook(h)
	}
	p.seriesTicks = ticks
	ctx, cancel := context.WithCancel(context.Background())
	r.p, r.cancel = p, cancel
	go func() { r.ran <- p.Run(ctx) }()
	p.Observe(watch.Event{Kind: watch.KindLoaded, At: time.Now()}) // as a watcher that read the keys
	poll.Until(t, 10*time.Second, "the panel to take the lease", p.Leading)
	return r
}

// beat has the panel observe a heartbeat of instance id of svc with its
// memory, and returns when.
func (r *recording) beat(id string, memory float64) time.Time {
	now := time.Now()
	m := &wire.Message{ServiceName: "svc", InstanceID: id, Timestamp: now, MemoryUsageMB: memory, Has: wire.HasMemory}
	r.tr.ObserveAt(m, now)
	slot, _ := r.tr.SlotOf(watch.Key{Service: "svc", Instance: id})
	r.p.Observe(watch.Event{Kind: watch.KindHeartbeat, At: now, Message: m, Slot: slot})
	return now
}

// stop stops the panel and waits for Run to return.
func (r *recording) stop() {
	r.t.Helper()
	r.cancel()
	if err := <-r.ran; err != nil {
		r.t.Fatal(err)
	}
}

// memory is what Valkey holds of id's memory around at.
func (r *recording) memory(id string, at time.Time) []series.Point {
	r.t.Helper()
	_, points, err := r.p.series.Read(context.Background(), "svc", wire.KeyMemoryUsageMB, []string{id}, at.Add(-time.Minute), at.Add(time.Minute))
	if err != nil {
		r.t.Fatal(err)
	}
	return points[id]
}

// gate holds the first caller of hold until release is closed, and
// closes entered as it comes.
type gate struct {
	entered, release chan struct{}
	once             sync.Once
}

func newGate() *gate { return &gate{entered: make(chan struct{}), release: make(chan struct{})} }

func (g *gate) hold() { g.once.Do(func() { close(g.entered); <-g.release }) }

// beforePipelines is a hook that calls f with each pipeline before the
// client sends it.
type beforePipelines func(cmds []redis.Cmder)

func (f beforePipelines) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (f beforePipelines) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (f beforePipelines) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		f(cmds)
		return next(ctx, cmds)
	}
}

// seriesWriteHook calls f before each pipeline that writes values over
// time: script calls on the series' keys, not history's records.
func seriesWriteHook(f func()) redis.Hook {
	return beforePipelines(func(cmds []redis.Cmder) {
		if len(cmds) > 0 && isSeriesWrite(cmds[0]) {
			f()
		}
	})
}

// isSeriesWrite reports whether cmd is a script call on the series' keys:
// EVALSHA, the script, the count of keys, the first key.
func isSeriesWrite(cmd redis.Cmder) bool {
	args := cmd.Args()
	return strings.EqualFold(cmd.Name(), "evalsha") && len(args) > 3 &&
		strings.HasPrefix(fmt.Sprint(args[3]), series.DefaultPrefix)
}

// leaseQuestions counts the lease questions asked (Lease.Holds: the
// lease's holder and epoch, read in one pipeline) once on.
type leaseQuestions struct {
	on atomic.Bool
	n  atomic.Int64
}

// hook is what counts them, on a client.
func (q *leaseQuestions) hook() redis.Hook {
	return beforePipelines(func(cmds []redis.Cmder) {
		if q.on.Load() && len(cmds) == 2 && strings.EqualFold(cmds[0].Name(), "get") &&
			strings.HasSuffix(fmt.Sprint(cmds[0].Args()[1]), ":lease") {
			q.n.Add(1)
		}
	})
}

// Values over time lost are said at once the first time, then at most
// once a minute, with what was lost since: a fleet that overflows the
// queue every second is a line a minute, and nothing lost says nothing.
func TestValuesLostAreSaidOnceAMinute(t *testing.T) {
	var l losses
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	if _, ok := l.tick(t0, true, lossCounts{0, 0, 0}); ok {
		t.Fatal("nothing lost, and something said")
	}
	line, ok := l.tick(t0.Add(time.Second), true, lossCounts{5, 0, 0})
	if !ok || !strings.Contains(line, "5 dropped") || strings.Contains(line, "not kept") || strings.Contains(line, "in the last") {
		t.Fatalf("the first loss: %q, %v", line, ok)
	}
	for s := 2; s < 61; s++ { // a loss every second for the next minute
		if line, ok := l.tick(t0.Add(time.Duration(s)*time.Second), true, lossCounts{int64(5 + s), int64(s), 0}); ok {
			t.Fatalf("said again %d s later: %q", s, line)
		}
	}
	line, ok = l.tick(t0.Add(61*time.Second), true, lossCounts{70, 64, 0})
	if !ok || !strings.Contains(line, "in the last 1m0s: 65 dropped") || !strings.Contains(line, "64 not kept by Valkey") {
		t.Fatalf("a minute on: %q, %v", line, ok)
	}
	if line, ok := l.tick(t0.Add(200*time.Second), true, lossCounts{70, 64, 0}); ok {
		t.Fatalf("nothing more lost, and said %q", line)
	}
	if line, ok := l.tick(t0.Add(201*time.Second), true, lossCounts{70, 65, 0}); !ok || !strings.Contains(line, "in the last 2m20s: 1 not kept") {
		t.Fatalf("one more not kept: %q, %v", line, ok)
	}
}

// What the writer drops while the replica does not record (a standby, or
// one that found its lease gone after a pause) is never said, and the lease
// changing hands does not make losses said more than once a minute; what
// is left when the replica stops is said at once.
func TestValuesLostAreSaidOnlyWhileRecording(t *testing.T) {
	var l losses
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	if line, ok := l.tick(at(1), true, lossCounts{5, 0, 0}); !ok || !strings.Contains(line, "5 dropped") {
		t.Fatalf("the first loss: %q, %v", line, ok)
	}
	// Paused past its lease: the backlog it queued, dropped, then found
	// its lease gone and discarded.
	if line, ok := l.tick(at(2), false, lossCounts{50_005, 0, 0}); ok {
		t.Fatalf("a backlog discarded after a pause said: %q", line)
	}
	// The lease flaps: a value lost each second it holds it (19 of
	// them), ten dropped each second it does not.
	dropped := int64(50_005)
	for s := 3; s < 40; s++ {
		recording := s%2 == 1
		if dropped++; !recording {
			dropped += 9
		}
		if line, ok := l.tick(at(s), recording, lossCounts{dropped, 0, 0}); ok {
			t.Fatalf("said again %d s later, the lease flapping: %q", s, line)
		}
	}
	// A standby says what it lost while it recorded once the minute is
	// up, not what it dropped since.
	if line, ok := l.tick(at(61), false, lossCounts{dropped + 1000, 0, 0}); !ok || !strings.Contains(line, ": 19 dropped") {
		t.Fatalf("a standby a minute on: %q, %v", line, ok)
	}
	if _, ok := l.tick(at(62), true, lossCounts{dropped + 1003, 0, 0}); ok {
		t.Fatal("said within the minute")
	}
	if line, ok := l.end(at(63), lossCounts{dropped + 1003, 1, 0}); !ok || !strings.Contains(line, "in the last 2s: 3 dropped") || !strings.Contains(line, "1 not kept") {
		t.Fatalf("stopping 2 s after the last line: %q, %v", line, ok)
	}
	if line, ok := l.end(at(64), lossCounts{dropped + 1003, 1, 0}); ok {
		t.Fatalf("stopped again with nothing more lost: %q", line)
	}
}
