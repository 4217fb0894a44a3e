package series

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// Values queued by slot are the values queued by names, in the same
// order: over random heartbeats of instances whose slots are given again
// to others (within a queue and across them), whose fields join late, and
// whose steps turn, with queues flushed (discarded) now and then.
func TestAddingBySlotQueuesWhatAddingByNamesDoes(t *testing.T) {
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 1))
		byNames, bySlot := NewWriter(nil, 0), NewWriter(nil, 0)
		type holder struct {
			service, id string
			slot        watch.Slot
		}
		slots := make([]holder, 6) // an instance a slot, given again now and then
		gen, next := uint32(0), 0
		at := t0
		for step := range 400 {
			i := rng.IntN(len(slots))
			if slots[i].id == "" || rng.IntN(10) == 0 {
				gen++
				next++
				slots[i] = holder{service: "tracker_fetcher", id: fmt.Sprint("i", next), slot: watch.Slot{Index: int32(i), Gen: gen}}
				if rng.IntN(3) == 0 {
					slots[i].service = "geocoding"
				}
			}
			at = at.Add(time.Duration(rng.IntN(4000)) * time.Millisecond)
			m := fetcher(slots[i].id, float64(step), int64(step))
			m.ServiceName = slots[i].service
			m.Fields = m.Fields[:rng.IntN(len(m.Fields)+1)] // fields that come and go
			byNames.Add(m, at)
			bySlot.AddSlot(slots[i].slot, m, at)
			if rng.IntN(40) == 0 {
				byNames.Discard()
				bySlot.Discard()
			}
			if got, want := queued(bySlot), queued(byNames); got != want {
				t.Fatalf("seed %d, step %d: by slot\n%s\nby names\n%s", seed, step, got, want)
			}
		}
	}
}

// queued is what w holds, each value with its instance's names.
func queued(w *Writer) string {
	var b strings.Builder
	for _, u := range w.queue {
		who := w.whos[u.who]
		fmt.Fprintf(&b, "%s/%s %s at %d: %v %v %v\n", who.service, who.instance, u.field, u.at, u.last, u.lo, u.hi)
	}
	return b.String()
}

// A slot that names no instance, or one beyond what a writer keeps runs
// at, queues by names: nothing is lost, and no room is made for it.
func TestAddingByABadSlotQueuesByNames(t *testing.T) {
	w := NewWriter(nil, 0)
	for _, s := range []watch.Slot{{}, {Index: -1, Gen: 1}, {Index: 1 << 30, Gen: 1}, {Index: maxSlot, Gen: 1}} {
		w.AddSlot(s, fetcher(fmt.Sprint(s.Index), 1, 1), t0)
		w.AddSlot(s, fetcher(fmt.Sprint(s.Index), 2, 2), t0.Add(time.Second))
	}
	if len(w.queue) != 4*4 || len(w.runs) != 4 {
		t.Errorf("%d values, %d runs by names: want 16 and 4 (four instances of four values, merged)", len(w.queue), len(w.runs))
	}
	if len(w.slots) != 0 {
		t.Errorf("room for %d slots made for slots that name nothing", len(w.slots))
	}
}

// BenchmarkWriterAddSlot is BenchmarkWriterAdd as the panel sees it at
// 100,000 instances every 10 s: each heartbeat the first of its instance
// since the last flush (a second), found by names and by slot.
func BenchmarkWriterAddSlot(b *testing.B) {
	msgs := make([]*wire.Message, 20_000)
	for i := range msgs {
		msgs[i] = fetcher(fmt.Sprintf("%08x-0000-4000-8000-000000000000", i), 100, int64(i))
		msgs[i].ServiceName = fmt.Sprintf("service_%02d", i%50)
	}
	for _, bySlot := range []bool{false, true} {
		b.Run(map[bool]string{false: "names", true: "slots"}[bySlot], func(b *testing.B) {
			w := NewWriter(nil, 0)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				k := i % len(msgs)
				if bySlot {
					w.AddSlot(watch.Slot{Index: int32(k), Gen: 1}, msgs[k], t0)
				} else {
					w.Add(msgs[k], t0)
				}
				if i++; i%10_000 == 0 { // a second's heartbeats: what a flush takes
					w.Discard()
				}
			}
		})
	}
}

// Where queueing by slot starts a second rollup of a step (an instance
// evicted at its tracker's bound and heard again under another slot
// before the flush, heartbeats out of order),
// Valkey merges the two: what is written is what queueing by names
// writes. A real tracker at a bound of three gives the slots to ten
// instances, and both writers' values are read back from a real
// redis-server.
func TestAddingBySlotWritesWhatAddingByNamesDoes(t *testing.T) {
	ctx := context.Background()
	c := redistest.Start(t).Client(t)
	for seed := range uint64(20) {
		store := func(prefix string) *Store {
			s, err := NewStore(c, WithPrefix(fmt.Sprintf("%s%d:", prefix, seed)))
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		names, slots := store("names:"), store("slots:")
		byNames, bySlot := NewWriter(names, 0), NewWriter(slots, 0)
		rng := rand.New(rand.NewPCG(seed, 7))
		tr := watch.NewTracker(watch.WithMaxInstances(3))
		at, last := t0, t0
		ids := map[string]bool{}
		twice := 0
		for i := range 600 {
			at = at.Add(time.Duration(rng.IntN(1500)) * time.Millisecond)
			heard := at
			if rng.IntN(20) == 0 {
				heard = at.Add(-FineStep) // out of order: a step before
			}
			if heard.After(last) {
				last = heard
			}
			id := fmt.Sprint("i", rng.IntN(10))
			ids[id] = true
			m := fetcher(id, float64(rng.IntN(1000)), int64(rng.IntN(1000)))
			m.Fields = m.Fields[:rng.IntN(len(m.Fields)+1)]
			tr.ObserveAt(m, heard)
			slot, _ := tr.SlotOf(watch.Key{Service: m.ServiceName, Instance: id})
			byNames.Add(m, heard)
			bySlot.AddSlot(slot, m, heard)
			if i%25 == 24 {
				twice += len(bySlot.queue) - len(byNames.queue)
				for _, w := range []*Writer{byNames, bySlot} {
					if _, err := w.Flush(ctx); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		if twice <= 0 {
			t.Fatalf("seed %d: queueing by slot made no second rollup of a step (%d): the test shows nothing", seed, twice)
		}
		var instances []string
		for id := range ids {
			instances = append(instances, id)
		}
		names.now = func() time.Time { return last }
		slots.now = func() time.Time { return last }
		for _, field := range []string{wire.KeyMemoryUsageMB, wire.KeyCPUUsagePercent, "queue_size", "ratio"} {
			_, want, err := names.Read(ctx, "tracker_fetcher", field, instances, t0.Add(-2*FineStep), last)
			if err != nil {
				t.Fatal(err)
			}
			_, got, err := slots.Read(ctx, "tracker_fetcher", field, instances, t0.Add(-2*FineStep), last)
			if err != nil {
				t.Fatal(err)
			}
			if len(want) == 0 || !reflect.DeepEqual(got, want) {
				t.Errorf("seed %d, %s by slot:\n%v\nby names:\n%v", seed, field, got, want)
			}
		}
	}
}

// A queued value holds its field's name and its rollup; its instance's
// names are held once for all the values of a heartbeat. At 100,000
// instances every 10 s a second's values are 40,000, and a writer holds
// two seconds' room (the queue being written, and the next).
func TestAQueuedValueHoldsItsInstancesNamesOnceAHeartbeat(t *testing.T) {
	const beats = 10_000
	msgs := make([]*wire.Message, beats)
	for i := range msgs {
		msgs[i] = fetcher(fmt.Sprintf("%08x-0000-4000-8000-000000000000", i), 100, int64(i))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	w := NewWriter(nil, 0)
	for i, m := range msgs {
		w.AddSlot(watch.Slot{Index: int32(i), Gen: 1}, m, t0)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	values := len(w.queue)
	if values != 4*beats {
		t.Fatalf("%d values queued of %d heartbeats of four numbers", values, beats)
	}
	// 40 bytes a value, 32 a heartbeat's names (8 a value), 8 bytes a
	// slot (2 a value), and what the slices grew by beyond (up to a
	// quarter): 62 at most. A value that held its names held 72 bytes,
	// 87 with the room grown.
	if per := float64(after.HeapAlloc-before.HeapAlloc) / float64(values); per > 72 {
		t.Errorf("a queued value holds %.1f bytes, want at most 72", per)
	}
	runtime.KeepAlive(w)
	runtime.KeepAlive(msgs)
}
