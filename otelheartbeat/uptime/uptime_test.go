package uptime

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/history"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
)

var t0 = time.Date(2025, 1, 16, 8, 0, 0, 0, time.UTC)

func at(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

// e is an entry from a to b at minute m; b "forgotten" is the watcher
// forgetting the instance.
func e(inst, from, to string, m int) history.Entry {
	f, _ := watch.ParseState(from)
	if to == "forgotten" {
		return history.Entry{Service: "geo", Instance: inst, Event: history.Forgotten, From: f, At: at(m)}
	}
	t, _ := watch.ParseState(to)
	return history.Entry{Service: "geo", Instance: inst, From: f, To: t, At: at(m)}
}

// A worked example, computed by hand: two instances alive before the
// window; a dies at 10 min, b at 20 (the service is down), nobody watched
// from 30 to 40 min, c replaces them at 50, b stops gracefully at 55.
func TestComputeAgreesWithAHandComputation(t *testing.T) {
	entries := []history.Entry{
		e("a", "unknown", "alive", -60), e("b", "unknown", "alive", -60),
		{Service: "geo", Instance: "a", Event: history.LostHeartbeats, Lost: 3, At: at(5)},
		e("a", "alive", "dead", 10), e("b", "alive", "dead", 20),
		e("c", "unknown", "alive", 50), e("b", "dead", "stopped", 55),
	}
	gaps := []history.Gap{{From: at(30), To: at(40)}}
	r := Compute("geo", entries, gaps, Window{From: at(0), To: at(60)}, 1)

	want := Times{Up: 30 * time.Minute, Down: 20 * time.Minute, Unknown: 10 * time.Minute}
	if r.Times != want {
		t.Errorf("service times %+v, want %+v", r.Times, want)
	}
	if u, ok := r.Uptime(); !ok || u != 0.6 {
		t.Errorf("uptime %v %v, want 0.6", u, ok)
	}
	// Down on both sides of the span nobody watched: one incident, with
	// that span counted as unknown, not as downtime.
	if got := fmt.Sprint(len(r.Incidents), r.Incidents[0].Start.Sub(t0), r.Incidents[0].End.Sub(t0), r.Incidents[0].Instances,
		r.Incidents[0].Unknown); got != "1 20m0s 50m0s [a b] 10m0s" {
		t.Errorf("incidents %s", got)
	}
	if r.Restarts != 1 || r.Lost != 3 {
		t.Errorf("restarts %d lost %d, want 1 and 3", r.Restarts, r.Lost)
	}
	byID := map[string]InstanceReport{}
	for _, in := range r.Instances {
		byID[in.Instance] = in
	}
	if a := byID["a"]; a.Up != 10*time.Minute || a.Down != 40*time.Minute || a.Unknown != 10*time.Minute || a.Lost != 3 {
		t.Errorf("a: %+v", a)
	}
	if b := byID["b"]; b.Up != 20*time.Minute || b.Down != 25*time.Minute || b.Planned != 5*time.Minute {
		t.Errorf("b: %+v", b)
	}
	if c := byID["c"]; c.Up != 10*time.Minute || c.Down != 0 {
		t.Errorf("c: %+v", c)
	}
}

// A service whose every instance stopped gracefully is planned, never
// down; a service still down at the window's end has an open incident.
func TestPlannedStopsAndOpenIncidents(t *testing.T) {
	stopped := Compute("geo", []history.Entry{e("a", "unknown", "alive", 0), e("a", "alive", "stopped", 30)}, nil,
		Window{From: at(0), To: at(60)}, 1)
	if stopped.Down != 0 || stopped.Planned != 30*time.Minute || len(stopped.Incidents) != 0 {
		t.Errorf("graceful stop: %+v", stopped)
	}
	down := Compute("geo", []history.Entry{e("a", "unknown", "alive", 0), e("a", "alive", "stale", 29), e("a", "stale", "dead", 30)}, nil,
		Window{From: at(0), To: at(60)}, 1)
	if len(down.Incidents) != 1 || !down.Incidents[0].Open() || down.Incidents[0].Duration(at(60)) != 30*time.Minute {
		t.Errorf("open incident: %+v", down.Incidents)
	}
	if u, _ := down.Uptime(); u != 0.5 {
		t.Errorf("uptime %v, want 0.5 (stale counts as up)", u)
	}
	// Two instances required: one alive is not enough.
	two := Compute("geo", []history.Entry{e("a", "unknown", "alive", 0), e("b", "unknown", "alive", 0), e("b", "alive", "dead", 30)}, nil,
		Window{From: at(0), To: at(60)}, 2)
	if two.Down != 30*time.Minute {
		t.Errorf("min alive 2: %+v", two.Times)
	}
}

// An outage that began and ended before the window is no incident of it:
// not an open one from the window's start, when the service has been up
// all along since. One that ended inside the window is reported from the
// window's start to its end.
func TestAnOutageBeforeTheWindowIsNoIncidentOfIt(t *testing.T) {
	entries := []history.Entry{e("a", "unknown", "alive", 0), e("a", "alive", "dead", 10), e("a", "dead", "alive", 20)}
	before := Compute("geo", entries, nil, Window{From: at(30), To: at(90)}, 1)
	if len(before.Incidents) != 0 || before.Up != 60*time.Minute || before.Down != 0 {
		t.Errorf("an outage from 10 to 20 min, over 30 to 90 min: %+v", before)
	}
	across := Compute("geo", entries, nil, Window{From: at(15), To: at(90)}, 1)
	if len(across.Incidents) != 1 || across.Incidents[0].Start != at(15) || across.Incidents[0].End != at(20) || across.Down != 5*time.Minute {
		t.Errorf("an outage from 10 to 20 min, over 15 to 90 min: %+v", across)
	}
	if r := Windows("geo", entries, nil, []Window{{From: at(30), To: at(90)}, {From: at(15), To: at(90)}}, 1, 0); len(r[0].Incidents) != 0 || len(r[1].Incidents) != 1 {
		t.Errorf("both windows at once: %+v", r)
	}
}

// BenchmarkThirtyDays computes 30-day uptime for a service of 1,000
// instances, each with a restart a day (four entries a day: 120,000
// entries), as the panel does for its 30 d column.
func BenchmarkThirtyDays(b *testing.B) {
	const instances, days = 1000, 30
	end := t0.Add(days * 24 * time.Hour)
	var entries []history.Entry
	for i := 0; i < instances; i++ {
		id := fmt.Sprintf("%08x-0000-4000-8000-000000000000", i)
		for d := 0; d < days; d++ {
			base := t0.Add(time.Duration(d)*24*time.Hour + time.Duration(i)*time.Second)
			entries = append(entries,
				history.Entry{Service: "geo", Instance: id, From: watch.Unknown, To: watch.Alive, At: base},
				history.Entry{Service: "geo", Instance: id, From: watch.Alive, To: watch.Stale, At: base.Add(20 * time.Hour)},
				history.Entry{Service: "geo", Instance: id, From: watch.Stale, To: watch.Dead, At: base.Add(20*time.Hour + time.Minute)},
				history.Entry{Service: "geo", Instance: id, From: watch.Dead, Event: history.Forgotten, At: base.Add(23 * time.Hour)})
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		r := Compute("geo", entries, nil, Window{From: t0, To: end}, 1)
		if len(r.Instances) != instances {
			b.Fatalf("%d instances", len(r.Instances))
		}
	}
	b.ReportMetric(float64(len(entries)), "entries")
}

// A dead instance forgotten by the watcher (its retention passed, or a new
// replica never tracked it) does not end the outage: the service stays
// down until an instance is up again.
func TestForgettingTheDeadDoesNotEndTheOutage(t *testing.T) {
	entries := []history.Entry{e("a", "unknown", "alive", 0), e("a", "alive", "dead", 10), e("a", "dead", "forgotten", 30)}
	r := Compute("geo", entries, nil, Window{From: at(0), To: at(60)}, 1)
	if r.Down != 50*time.Minute || len(r.Incidents) != 1 || !r.Incidents[0].Open() {
		t.Errorf("forgotten dead: %+v, incidents %+v", r.Times, r.Incidents)
	}
	if a := r.Instances[0]; a.Down != 20*time.Minute {
		t.Errorf("the instance's own downtime: %+v", a)
	}
	back := Compute("geo", append(entries, e("b", "unknown", "alive", 50)), nil, Window{From: at(0), To: at(60)}, 1)
	if back.Down != 40*time.Minute || len(back.Incidents) != 1 || back.Incidents[0].End.Sub(t0) != 50*time.Minute || back.Restarts != 1 {
		t.Errorf("a successor: %+v, incidents %+v, restarts %d", back.Times, back.Incidents, back.Restarts)
	}
	// Forgetting a stopped instance leaves a stopped service.
	stopped := Compute("geo", []history.Entry{e("a", "unknown", "alive", 0), e("a", "alive", "stopped", 10), e("a", "stopped", "forgotten", 30)}, nil,
		Window{From: at(0), To: at(60)}, 1)
	if stopped.Down != 0 || len(stopped.Incidents) != 0 {
		t.Errorf("forgotten stopped: %+v %+v", stopped.Times, stopped.Incidents)
	}
}

// A recorded replacement is a restart, counted once whether the new
// instance appeared before the crashed one was dead or after; the replaced
// instance leaves the service at once, and is no ghost keeping it down.
func TestAReplacementIsOneRestart(t *testing.T) {
	replaced := func(inst, by string, m int) history.Entry {
		return history.Entry{Service: "geo", Instance: inst, Event: history.Replaced, From: watch.Dead, By: by, At: at(m)}
	}
	for _, tt := range []struct {
		name     string
		entries  []history.Entry
		restarts int
		down     time.Duration
	}{
		{"restarted before the old one was dead", []history.Entry{
			e("a", "unknown", "alive", 0), e("a", "alive", "stale", 9), e("b", "unknown", "alive", 9),
			e("a", "stale", "dead", 10), replaced("a", "b", 10)}, 1, 0},
		{"restarted after", []history.Entry{
			e("a", "unknown", "alive", 0), e("a", "alive", "dead", 10), e("b", "unknown", "alive", 20), replaced("a", "b", 20)}, 1, 10 * time.Minute},
		{"one of three dead replaced", []history.Entry{
			e("a", "unknown", "alive", 0), e("b", "unknown", "alive", 0), e("c", "unknown", "alive", 0),
			e("a", "alive", "dead", 10), e("b", "alive", "dead", 10), e("c", "alive", "dead", 10),
			e("d", "unknown", "alive", 20), replaced("a", "d", 20)}, 1, 10 * time.Minute},
		{"a fleet restarted whole, each new instance seen before the old one died", []history.Entry{
			e("a", "unknown", "alive", 0), e("b", "unknown", "alive", 0),
			e("a2", "unknown", "alive", 9), e("b2", "unknown", "alive", 9),
			e("a", "alive", "dead", 10), replaced("a", "a2", 10), e("b", "alive", "dead", 10), replaced("b", "b2", 10)}, 2, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := Compute("geo", tt.entries, nil, Window{From: at(0), To: at(60)}, 1)
			if r.Restarts != tt.restarts || r.Down != tt.down || len(r.Incidents) > 0 && r.Incidents[len(r.Incidents)-1].Open() {
				t.Errorf("restarts %d, down %v, incidents %+v; want %d restarts, down %v, no open incident", r.Restarts, r.Down, r.Incidents, tt.restarts, tt.down)
			}
		})
	}
}

// The instances a watcher finds at start are recorded at one moment: a
// service that needs two is not down, for no time, between the first
// and the second.
func TestInstancesFoundTogetherAreNoIncident(t *testing.T) {
	entries := []history.Entry{e("a", "unknown", "alive", 0), e("b", "unknown", "alive", 0)}
	r := Compute("geo", entries, nil, Window{From: at(0), To: at(60)}, 2)
	if len(r.Incidents) != 0 || r.Down != 0 || r.Up != time.Hour {
		t.Errorf("incidents %+v, times %+v: want none, and an hour up", r.Incidents, r.Times)
	}
}

// Windows is Compute over each window, the instances' reports of one
// window only, whatever the history: random ones of a few instances that
// appear, change state, lose heartbeats, are forgotten and replaced, over
// windows that cut them anywhere and end anywhere, with gaps.
func TestWindowsIsComputeOverEachWindow(t *testing.T) {
	states := []watch.State{watch.Alive, watch.Stale, watch.Dead, watch.Stopped}
	for seed := range 300 {
		r := rand.New(rand.NewPCG(uint64(seed), 7))
		var entries []history.Entry
		ids := []string{"a", "b", "c", "d", "e"}
		state := map[string]watch.State{}
		for m := 0; m < 120; m += 1 + r.IntN(4) {
			id := ids[r.IntN(len(ids))]
			en := history.Entry{Service: "geo", Instance: id, From: state[id], At: at(m)}
			switch k := r.IntN(10); {
			case k == 0:
				en.Event, en.Lost = history.LostHeartbeats, int64(1+r.IntN(3))
			case k == 1:
				en.Event = history.Forgotten
			case k == 2:
				en.Event, en.By = history.Replaced, ids[r.IntN(len(ids))]
			default:
				en.To = states[r.IntN(len(states))]
			}
			if en.Event == history.Changed {
				state[id] = en.To
			} else if en.Event != history.LostHeartbeats {
				state[id] = watch.Unknown
			}
			entries = append(entries, en)
		}
		gaps := []history.Gap{{From: at(r.IntN(60)), To: at(60 + r.IntN(60))}}
		windows := make([]Window, 1+r.IntN(4))
		for i := range windows {
			from := r.IntN(100)
			windows[i] = Window{From: at(from), To: at(from + 1 + r.IntN(60))}
		}
		minAlive, with := 1+r.IntN(2), r.IntN(len(windows)+1)-1
		got := Windows("geo", entries, gaps, windows, minAlive, with)
		if of := WindowsOf("geo", countedSource{entries: entries}, gaps, windows, minAlive, with); !reflect.DeepEqual(of, got) {
			t.Fatalf("seed %d: WindowsOf:\n%+v\nwant Windows'\n%+v", seed, of, got)
		}
		// Each instance given as it is worked out: those Windows reports,
		// in another order, and no slice of them.
		var each []InstanceReport
		eachOf := WindowsOfEach("geo", countedSource{entries: entries}, gaps, windows, minAlive, with, func(r InstanceReport) { each = append(each, r) })
		want := slices.Clone(got)
		if with >= 0 {
			want[with].Instances = nil
			slices.SortFunc(each, func(a, b InstanceReport) int { return strings.Compare(a.Instance, b.Instance) })
			if wi := got[with].Instances; len(each) != len(wi) || len(each) > 0 && !reflect.DeepEqual(each, wi) {
				t.Fatalf("seed %d: WindowsOfEach gave\n%+v\nwant Windows' instances\n%+v", seed, each, wi)
			}
		} else if each != nil {
			t.Fatalf("seed %d: WindowsOfEach gave %d instances, and no window reports them", seed, len(each))
		}
		if !reflect.DeepEqual(eachOf, want) {
			t.Fatalf("seed %d: WindowsOfEach:\n%+v\nwant Windows', without instances\n%+v", seed, eachOf, want)
		}
		if len(entries) > 1 {
			// Out of order: read into a slice and sorted, as Windows does.
			shuffled := slices.Clone(entries)
			r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			if of, want := WindowsOf("geo", countedSource{entries: shuffled}, gaps, windows, minAlive, with), Windows("geo", shuffled, gaps, windows, minAlive, with); !reflect.DeepEqual(of, want) {
				t.Fatalf("seed %d, entries out of order: WindowsOf:\n%+v\nwant Windows'\n%+v", seed, of, want)
			}
		}
		for i, w := range windows {
			want := Compute("geo", entries, gaps, w, minAlive)
			// What comes at or after a window's end is none of its report.
			before := entries[:sort.Search(len(entries), func(j int) bool { return !entries[j].At.Before(w.To) })]
			if upTo := Compute("geo", before, gaps, w, minAlive); !reflect.DeepEqual(upTo, want) {
				t.Fatalf("seed %d, window %d: \n%+v\nwant, from the entries before its end alone,\n%+v", seed, i, want, upTo)
			}
			if i != with {
				want.Instances = nil
			}
			if !reflect.DeepEqual(got[i], want) {
				t.Fatalf("seed %d, window %d of %d (instances of %d): \n%+v\nwant Compute's\n%+v", seed, i, len(windows), with, got[i], want)
			}
		}
	}
}

// BenchmarkPanelWindows is what the panel computes for one service every
// 10 s: four windows (1h, 24h, 7d, 30d) over 100,000 instances that
// appeared a day ago, the instances reported for the first. Beside it, in
// the same run, one Compute a window, as the panel did first.
func BenchmarkPanelWindows(b *testing.B) {
	const n = 100_000
	now := t0.Add(30 * 24 * time.Hour)
	entries := make([]history.Entry, n)
	for i := range entries {
		entries[i] = history.Entry{Service: "geo", Instance: fmt.Sprintf("%08x-0000-4000-8000-000000000000", i), To: watch.Alive,
			At: now.Add(-24*time.Hour + time.Duration(i)*time.Millisecond)}
	}
	var wins []Window
	for _, d := range []time.Duration{time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour} {
		wins = append(wins, Window{From: now.Add(-d), To: now})
	}
	b.Run("windows", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if r := Windows("geo", entries, nil, wins, 1, 0); len(r[0].Instances) != n {
				b.Fatalf("%d instances", len(r[0].Instances))
			}
		}
	})
	b.Run("compute-each", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, w := range wins {
				Compute("geo", entries, nil, w, 1)
			}
		}
	})
}

// Instances are reported in the order of their ids as strings.Compare
// has it (the panel looks them up by binary search), whatever the ids
// share: a long common prefix, one id the prefix of another, zero bytes
// where a shorter id has none, bytes past ASCII.
func TestInstancesAreInTheOrderOfTheirIDs(t *testing.T) {
	alphabet := []byte{0, 1, '-', '0', '9', 'a', 'z', 0x7f, 0x80, 0xff}
	for seed := range 200 {
		r := rand.New(rand.NewPCG(uint64(seed), 11))
		prefix := strings.Repeat("geocoding-worker-", r.IntN(3))
		n := 1 + r.IntN(300)
		var entries []history.Entry
		for i := range n {
			id := make([]byte, r.IntN(12))
			for j := range id {
				id[j] = alphabet[r.IntN(len(alphabet))]
			}
			entries = append(entries, history.Entry{Service: "geo", Instance: prefix + string(id), To: watch.Alive, At: at(i % 50)})
		}
		got := Compute("geo", entries, nil, Window{From: at(0), To: at(60)}, 1).Instances
		if !slices.IsSortedFunc(got, func(a, b InstanceReport) int { return strings.Compare(a.Instance, b.Instance) }) {
			t.Fatalf("seed %d: instances not in the order of their ids: %q", seed, ids(got))
		}
		distinct := map[string]bool{}
		for _, e := range entries {
			distinct[e.Instance] = true
		}
		if len(got) != len(distinct) {
			t.Fatalf("seed %d: %d instances reported, want %d", seed, len(got), len(distinct))
		}
	}
}

func ids(rs []InstanceReport) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Instance
	}
	return out
}

// Windows keeps its room for the next call: calls one after another and
// at once, over services of other sizes, each answer as Compute does.
func TestWindowsCallsShareNothing(t *testing.T) {
	fleet := func(n int, id string) []history.Entry {
		var entries []history.Entry
		for i := range n {
			inst := fmt.Sprintf("%s-%04d", id, (i*7919)%n)
			entries = append(entries, e(inst, "unknown", "alive", i%30), e(inst, "alive", []string{"dead", "stopped", "stale"}[i%3], 30+i%40))
		}
		return entries
	}
	windows := []Window{{From: at(0), To: at(90)}, {From: at(45), To: at(90)}}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for round := range 20 {
				n := 1 + (g*31+round*17)%1500
				entries := fleet(n, fmt.Sprintf("g%d", g))
				got := Windows("geo", entries, nil, windows, 1, round%2)
				for i, w := range windows {
					want := Compute("geo", entries, nil, w, 1)
					if i != round%2 {
						want.Instances = nil
					}
					if !reflect.DeepEqual(got[i], want) {
						t.Errorf("goroutine %d, round %d (%d instances), window %d: not Compute's", g, round, n, i)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

// countedSource is entries as a Source, counting the entries read.
type countedSource struct {
	entries []history.Entry
	read    *int
}

func (s countedSource) Len() int { return len(s.entries) }
func (s countedSource) Entry(i int) history.Entry {
	if s.read != nil {
		*s.read++
	}
	return s.entries[i]
}

// WindowsOf reads a source in order a few times over, and never holds
// its entries as history.Entry: what it allocates does not grow with
// them by the 96 bytes each that Windows' slice holds.
func TestWindowsOfReadsEntriesWhereTheyAre(t *testing.T) {
	const n = 10_000
	entries := make([]history.Entry, n)
	for i := range entries {
		entries[i] = history.Entry{Service: "geo", Instance: "i" + strconv.Itoa(i%100), To: watch.Alive, At: at(i)}
	}
	windows := []Window{{From: at(0), To: at(n)}}
	read := 0
	WindowsOf("geo", countedSource{entries: entries, read: &read}, nil, windows, 1, 0)
	if read > 3*n {
		t.Errorf("read %d entries of %d, want each at most three times (order, fold, the time its instance's state began)", read, n)
	}
	// Its scratch holds each entry's instance (8 bytes); the reports and
	// 100 instances are the rest. Windows' slice alone would be 96 bytes
	// an entry.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	WindowsOf("geo", countedSource{entries: entries}, nil, windows, 1, 0)
	runtime.ReadMemStats(&after)
	if b := after.TotalAlloc - before.TotalAlloc; b > n*96/2 {
		t.Errorf("WindowsOf allocated %d bytes for %d entries, want under %d", b, n, n*96/2)
	}
}

// A scratch is kept for the next call only while it is small: a service
// of many instances works in megabytes of room, and kept in the pool
// from one computation to the next (a panel's are seconds apart) it is
// live at every collection between, which raises the heap's goal by as
// much, where a service of a few thousand instances' room is reused by
// the next service of the same computation.
func TestALargeScratchIsNotKept(t *testing.T) {
	const n = 20_000
	entries := make([]history.Entry, n)
	for i := range entries {
		entries[i] = history.Entry{Service: "geo", Instance: "i" + strconv.Itoa(i), To: watch.Alive, At: at(i)}
	}
	windows := []Window{{From: at(0), To: at(n)}}
	for range 4 { // a pool may drop what it is given (as under -race): more than once
		WindowsOf("geo", entrySlice(entries), nil, windows, 1, 0)
	}
	var got []*scratch
	for range 8 {
		sc := scratches.Get().(*scratch)
		got = append(got, sc)
		if b := sc.room(); b > keepAtMost {
			t.Errorf("the pool kept a scratch of %d bytes, want at most %d", b, keepAtMost)
		}
	}
	for _, sc := range got {
		scratches.Put(sc)
	}
}

// A scratch finds every instance it made by id, and none it did not,
// over services of many sizes one after another in one scratch, as a
// kept scratch serves them, and with ids that share long prefixes.
func TestAScratchFindsItsInstancesByID(t *testing.T) {
	sc := &scratch{index: index{seed: maphash.MakeSeed()}}
	for round, n := range []int{3000, 10, 1, 1500, blockSize, blockSize + 1, 0, 3500, 5000, 7} {
		id := func(i int) string { return fmt.Sprintf("geocoding-worker-%d-%08d", round, i*7919%100_003) }
		left := n + 50 // entries left to read: more than the instances
		for i := range n {
			in := sc.instance(id(i), left)
			if in.Instance != id(i) {
				t.Fatalf("round %d: made %q for %q", round, in.Instance, id(i))
			}
			if again := sc.instance(id(i), left); again != in {
				t.Fatalf("round %d: %q made twice", round, id(i))
			}
			left--
		}
		if sc.made != n {
			t.Fatalf("round %d: %d instances made, want %d", round, sc.made, n)
		}
		for i := range n {
			if in := sc.lookup(id(i)); in == nil || in.Instance != id(i) {
				t.Fatalf("round %d: %q found as %v", round, id(i), in)
			}
			if in := sc.at(int32(i)); in.Instance != id(i) {
				t.Fatalf("round %d: instance %d is %q, want %q", round, i, in.Instance, id(i))
			}
		}
		for _, absent := range []string{"", id(n), "geocoding-worker-", id(0) + "x"} {
			if in := sc.lookup(absent); in != nil {
				t.Fatalf("round %d: %q found, as %q, and was never made", round, absent, in.Instance)
			}
		}
		if load := float64(sc.made) / float64(max(1, len(sc.index.slots))); load > 0.75 {
			t.Fatalf("round %d: the index is %.2f full", round, load)
		}
		sc.reset() // as put does, without giving it to the pool
	}
}

// The window reported by instance has its Instances, empty rather than
// nil when it has none (as JSON, [] rather than null): a window that ends
// before the first entry, or no entries at all. Only a window not
// reported by instance has none.
func TestAWindowWithoutInstancesReportsNoneEmpty(t *testing.T) {
	entries := []history.Entry{e("a", "unknown", "alive", 60)}
	before := Window{From: at(0), To: at(30)}
	for name, got := range map[string][]InstanceReport{
		"Windows, a window before the first entry":   Windows("geo", entries, nil, []Window{before}, 1, 0)[0].Instances,
		"WindowsOf, a window before the first entry": WindowsOf("geo", entrySlice(entries), nil, []Window{before}, 1, 0)[0].Instances,
		"Compute, a window before the first entry":   Compute("geo", entries, nil, before, 1).Instances,
		"Windows, no entries":                        Windows("geo", nil, nil, []Window{before}, 1, 0)[0].Instances,
		"Compute, no entries":                        Compute("geo", nil, nil, before, 1).Instances,
	} {
		if got == nil || len(got) != 0 {
			t.Errorf("%s: instances %#v, want empty, not nil", name, got)
		}
	}
	if got := Windows("geo", entries, nil, []Window{before}, 1, -1)[0].Instances; got != nil {
		t.Errorf("a window not reported by instance: instances %#v, want nil", got)
	}
}

// An instance the watcher forgot before the window is none of its
// instances: it was not there. One forgotten during it is, with its time
// up to then, and unknown time after.
func TestAnInstanceForgottenBeforeTheWindowIsNotReported(t *testing.T) {
	entries := []history.Entry{
		e("gone", "unknown", "alive", 0), e("gone", "alive", "dead", 2), e("gone", "dead", "forgotten", 5),
		e("a", "unknown", "alive", 1),
		e("late", "unknown", "alive", 12), e("late", "alive", "forgotten", 40),
	}
	w := Window{From: at(10), To: at(60)}
	want := []string{"a", "late"}
	if got := ids(Compute("geo", entries, nil, w, 1).Instances); !slices.Equal(got, want) {
		t.Errorf("Compute reports %q, want %q", got, want)
	}
	var each []string
	WindowsOfEach("geo", entrySlice(entries), nil, []Window{w}, 1, 0, func(r InstanceReport) { each = append(each, r.Instance) })
	if slices.Sort(each); !slices.Equal(each, want) {
		t.Errorf("WindowsOfEach gives %q, want %q", each, want)
	}
	for _, r := range Compute("geo", entries, nil, w, 1).Instances {
		if r.Instance == "late" && (r.Up != 28*time.Minute || r.Unknown != 20*time.Minute) {
			t.Errorf("late: %+v, want up 28 min, then unknown 20", r.Times)
		}
	}
	// From the start, all three were there.
	if got := ids(Compute("geo", entries, nil, Window{From: at(0), To: at(60)}, 1).Instances); !slices.Equal(got, []string{"a", "gone", "late"}) {
		t.Errorf("over the whole span, Compute reports %q, want all three", got)
	}
}
