package series

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/internal/testing/leaktest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

// t0 is on a coarse step, so that the test's steps are easy to count.
var t0 = time.Unix(1_767_225_600, 0) // 2026-01-01T00:00:00Z

func fetcher(id string, mem float64, queue int64) *wire.Message {
	return &wire.Message{ServiceName: "tracker_fetcher", InstanceID: id, Timestamp: t0, MemoryUsageMB: mem, CPUUsagePercent: 1.5,
		Has: wire.HasMemory | wire.HasCPU, Fields: []wire.Field{
			{Key: "queue_size", Value: wire.Int(queue)},
			{Key: "api_status", Value: wire.String("authenticated")},
			{Key: "ratio", Value: wire.Float(0.25)},
		}}
}

// memoryBeat is a heartbeat of instance id of service svc: its memory,
// v, and numeric service fields f00, f01, ... worth v too, fields values
// in all.
func memoryBeat(svc, id string, v float64, fields int) *wire.Message {
	m := &wire.Message{ServiceName: svc, InstanceID: id, MemoryUsageMB: v, Has: wire.HasMemory}
	for f := range fields - 1 {
		m.Fields = append(m.Fields, wire.Field{Key: fmt.Sprintf("f%02d", f), Value: wire.Int(int64(v))})
	}
	return m
}

func newStore(t *testing.T, opts ...Option) *Store {
	t.Helper()
	return storeOn(t, redistest.Start(t), opts...)
}

// storeOn is a store on srv, for a test that asks the server itself.
func storeOn(t *testing.T, srv *redistest.Server, opts ...Option) *Store {
	t.Helper()
	s, err := NewStore(srv.Client(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Each fine step keeps the last, least and greatest of what arrived in
// it; strings are not kept; the points come back oldest first, at the
// steps' starts.
func TestEveryNumericFieldIsKeptAsRollupsPerStep(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	w := NewWriter(s, 0)
	// Two minutes of heartbeats every second, flushed every 7 s: the
	// queue is cut mid-step, and the slots merge what each batch saw.
	for i := 0; i < 120; i++ {
		at := t0.Add(time.Duration(i) * time.Second)
		w.Add(fetcher("f1", 100+float64(i), int64(1000-i)), at)
		if i%7 == 6 {
			if _, err := w.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(2 * time.Minute)
	s.now = func() time.Time { return now }
	tier, got, err := s.Read(ctx, "tracker_fetcher", "memory_usage_mb", []string{"f1", "nobody"}, now.Add(-time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	if tier.Step != FineStep || len(got) != 1 || len(got["f1"]) != 4 {
		t.Fatalf("tier %v, %d series, %v", tier, len(got), got)
	}
	for i, p := range got["f1"] {
		first := 100 + float64(30*i)
		if want := (Point{At: t0.Add(time.Duration(30*i) * time.Second), Last: first + 29, Min: first, Max: first + 29}); p != want {
			t.Errorf("point %d: %+v, want %+v", i, p, want)
		}
	}
	_, got, _ = s.Read(ctx, "tracker_fetcher", "queue_size", []string{"f1"}, now.Add(-time.Hour), now)
	if p := got["f1"][0]; p.Last != 971 || p.Min != 971 || p.Max != 1000 {
		t.Errorf("queue_size: %+v", p)
	}
	for field, want := range map[string]int{"cpu_usage_percent": 4, "ratio": 4, "api_status": 0} {
		if _, got, _ := s.Read(ctx, "tracker_fetcher", field, []string{"f1"}, now.Add(-time.Hour), now); len(got["f1"]) != want {
			t.Errorf("%s: %d points, want %d", field, len(got["f1"]), want)
		}
	}
	// Beyond the hour, the coarse tier: one 5-minute point.
	tier, got, _ = s.Read(ctx, "tracker_fetcher", "memory_usage_mb", []string{"f1"}, now.Add(-2*time.Hour), now)
	if tier.Step != CoarseStep || len(got["f1"]) != 1 || got["f1"][0] != (Point{At: t0, Last: 219, Min: 100, Max: 219}) {
		t.Errorf("coarse: %v %+v", tier, got)
	}
}

// A ring comes round: the fine tier keeps the last hour only, the coarse
// one the retention, and a ring's size never grows.
func TestTheRingsKeepTheirSpanAndTheirSize(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, WithRetention(2*time.Hour))
	w := NewWriter(s, 0)
	end := t0.Add(5 * time.Hour)
	for at := t0; at.Before(end); at = at.Add(10 * time.Second) {
		w.Add(fetcher("f1", float64(at.Sub(t0)/time.Second), 1), at)
		if _, err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	s.now = func() time.Time { return end }
	_, fine, _ := s.Read(ctx, "tracker_fetcher", "memory_usage_mb", []string{"f1"}, end.Add(-time.Hour), end)
	_, all, _ := s.Read(ctx, "tracker_fetcher", "memory_usage_mb", []string{"f1"}, end.Add(-time.Hour*10), end)
	if n := len(fine["f1"]); n != 120 {
		t.Errorf("the last hour: %d fine points, want 120", n)
	}
	if n := len(all["f1"]); n != 24 {
		t.Errorf("ten hours back: %d coarse points, want 24 (the 2h retention)", n)
	}
	if first := all["f1"][0].At; !first.Equal(end.Add(-2 * time.Hour)) {
		t.Errorf("the oldest coarse point is at %v, want %v", first, end.Add(-2*time.Hour))
	}
	c := s.c
	if n, want := c.StrLen(ctx, s.ringKey(s.tiers[0], "tracker_fetcher", "f1")).Val(), 120*recordBytes(4); n != want {
		t.Errorf("fine ring of %d bytes, want %d", n, want)
	}
	if ttl := c.PTTL(ctx, s.ringKey(s.tiers[1], "tracker_fetcher", "f1")).Val(); ttl <= 2*time.Hour || ttl > 2*time.Hour+CoarseStep {
		t.Errorf("coarse ring expires in %v, want its span and a step", ttl)
	}
	if ttl := c.PTTL(ctx, s.columnsKey("tracker_fetcher", "f1")).Val(); ttl <= 2*time.Hour || ttl > 2*time.Hour+CoarseStep {
		t.Errorf("the columns expire in %v, want the coarse ring's span and a step", ttl)
	}
	// The fine ring's is renewed with the coarse one's: a coarse step more.
	fineRing := s.ringKey(s.tiers[0], "tracker_fetcher", "f1")
	if ttl := c.PTTL(ctx, fineRing).Val(); ttl <= time.Hour+CoarseStep || ttl > time.Hour+CoarseStep+FineStep {
		t.Errorf("fine ring expires in %v, want its span, a coarse step and a fine one", ttl)
	}
	// One made again mid coarse step has its time to live at once.
	c.Del(ctx, fineRing)
	w.Add(fetcher("f1", 1, 1), end.Add(-5*time.Second)) // the last coarse step still
	if _, err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if ttl := c.PTTL(ctx, fineRing).Val(); ttl <= time.Hour+CoarseStep || ttl > time.Hour+CoarseStep+FineStep {
		t.Errorf("fine ring made again mid-step expires in %v, want its span, a coarse step and a fine one", ttl)
	}
}

// Two writers in one step (a standby taking over mid-step) merge into
// the same point; a Valkey that forgot the script is sent it again.
func TestWritersMergeAndAForgottenScriptIsSentAgain(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	a, b := NewWriter(s, 0), NewWriter(s, 0)
	a.Add(fetcher("f1", 50, 1), t0)
	a.Add(fetcher("f1", 10, 1), t0.Add(time.Second))
	if _, err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	b.Add(fetcher("f1", 30, 1), t0.Add(2*time.Second))
	if _, err := b.Flush(ctx); err != nil {
		t.Fatalf("after SCRIPT FLUSH: %v", err)
	}
	s.now = func() time.Time { return t0 }
	_, got, _ := s.Read(ctx, "tracker_fetcher", "memory_usage_mb", []string{"f1"}, t0.Add(-time.Minute), t0.Add(time.Minute))
	if p := got["f1"]; len(p) != 1 || p[0] != (Point{At: t0, Last: 30, Min: 10, Max: 50}) {
		t.Errorf("merged: %+v", p)
	}
}

// Ids and fields that would make another's key if joined naively stay
// apart, and a hostile value cannot reach Valkey as anything but a number.
func TestIDsAndFieldsCannotCollide(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	w := NewWriter(s, 0)
	m1 := &wire.Message{ServiceName: "svc", InstanceID: "a:1", Fields: []wire.Field{{Key: "b", Value: wire.Int(1)}}}
	m2 := &wire.Message{ServiceName: "svc", InstanceID: "a", Fields: []wire.Field{{Key: "1:b", Value: wire.Int(2)}}}
	m3 := &wire.Message{ServiceName: "svc", InstanceID: "}x{", Fields: []wire.Field{{Key: "huge", Value: wire.Float(math.MaxFloat64)}}}
	// Spaces and numbers where the script's arguments have theirs.
	m4 := &wire.Message{ServiceName: "svc", InstanceID: "1 2", Fields: []wire.Field{{Key: " 3 4 5 6 ", Value: wire.Int(4)}}}
	for _, m := range []*wire.Message{m1, m2, m3, m4} {
		w.Add(m, t0)
	}
	if _, err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return t0 }
	for _, c := range []struct {
		id, field string
		want      float64
	}{{"a:1", "b", 1}, {"a", "1:b", 2}, {"}x{", "huge", 3.4028235e+38}, {"1 2", " 3 4 5 6 ", 4}} { // the greatest 32-bit float, as it reads
		_, got, _ := s.Read(ctx, "svc", c.field, []string{c.id}, t0, t0.Add(time.Minute))
		if p := got[c.id]; len(p) != 1 || p[0].Last != c.want {
			t.Errorf("%q %q: %+v, want %v", c.id, c.field, p, c.want)
		}
	}
}

// The queue is bounded: what does not fit is counted, not held.
func TestTheQueueIsBounded(t *testing.T) {
	s := newStore(t)
	w := NewWriter(s, 10)
	for i := 0; i < 5; i++ {
		w.Add(fetcher("f"+strconv.Itoa(i), 1, 1), t0) // 4 numbers each
	}
	if d := w.Dropped(); d != 10 {
		t.Errorf("dropped %d, want 10", d)
	}
	m := &wire.Message{ServiceName: "svc", InstanceID: "wide"}
	for i := 0; i < 40; i++ {
		m.Fields = append(m.Fields, wire.Field{Key: fmt.Sprint("f", i), Value: wire.Int(int64(i))})
	}
	w2 := NewWriter(s, 0)
	w2.Add(m, t0)
	if n := len(w2.queue); n != MaxFields {
		t.Errorf("a heartbeat of 40 numbers queued %d, want %d", n, MaxFields)
	}
}

// Once closed, the writer queues nothing more: a value that merges into
// one queued is written with it, any other is counted dropped, and Flush
// writes what was queued.
func TestAClosedWriterCountsWhatComesAfter(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	w := NewWriter(s, 0)
	w.Add(fetcher("f1", 10, 1), t0)
	w.Close()
	w.Add(fetcher("f1", 30, 1), t0.Add(time.Second)) // the same step: merges
	w.Add(fetcher("f2", 20, 1), t0)                  // 4 numbers, after Close
	if d := w.Dropped(); d != 4 {
		t.Errorf("dropped %d after Close, want f2's 4", d)
	}
	if _, err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return t0 }
	_, got, err := s.Read(ctx, "tracker_fetcher", wire.KeyMemoryUsageMB, []string{"f1", "f2"}, t0, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if p := got["f1"]; len(p) != 1 || p[0].Last != 30 || p[0].Min != 10 || p[0].Max != 30 {
		t.Errorf("f1's memory %+v, want one point of 10 to 30, last 30", p)
	}
	if p, ok := got["f2"]; ok {
		t.Errorf("f2's memory, added after Close, was written: %+v", p)
	}
}

// An instance keeps at most MaxFields fields whatever names its
// heartbeats carry over time, and fields the API could not ask for are
// not kept; the fields kept are listed.
func TestAnInstanceKeepsAtMostItsFieldsOverTime(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	w := NewWriter(s, 0)
	for h := 0; h < 20; h++ {
		m := &wire.Message{ServiceName: "rot", InstanceID: "r1"}
		for k := 0; k < 5; k++ {
			m.Fields = append(m.Fields, wire.Field{Key: fmt.Sprintf("f%d_%d", h, k), Value: wire.Int(1)})
		}
		m.Fields = append(m.Fields, wire.Field{Key: strings.Repeat("x", MaxFieldName+1), Value: wire.Int(1)},
			wire.Field{Key: "bell\a", Value: wire.Int(1)})
		w.Add(m, t0.Add(time.Duration(h)*time.Second))
		if _, err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := s.c.Keys(ctx, "heartbeat:series:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 {
		t.Errorf("%d keys after 100 distinct fields, want 3 (two rings and their columns)", len(keys))
	}
	if n, want := s.c.StrLen(ctx, s.ringKey(s.tiers[0], "rot", "r1")).Val(), 120*recordBytes(MaxFields); n != want {
		t.Errorf("fine ring of %d bytes, want %d: %d columns", n, want, MaxFields)
	}
	fields, err := s.Fields(ctx, "rot", []string{"r1", "nobody"})
	if err != nil || len(fields) != MaxFields || fields[0] != "f0_0" {
		t.Errorf("fields %v, %v", fields, err)
	}
	// The values past the columns are counted not kept: 100 readable
	// fields' values, 16 kept (the names the API cannot ask for are not
	// written at all).
	if n := w.Unkept(); n != 100-MaxFields {
		t.Errorf("%d values not kept, want %d", n, 100-MaxFields)
	}
}

// A ring written under another retention is made again at its new size,
// and never answers a step twice.
func TestARetentionChangeRemakesTheRings(t *testing.T) {
	ctx := context.Background()
	c := redistest.Start(t).Client(t)
	day, _ := NewStore(c)
	two, _ := NewStore(c, WithRetention(2*time.Hour))
	for _, s := range []*Store{day, two} {
		s.now = func() time.Time { return t0.Add(time.Minute) }
		w := NewWriter(s, 0)
		w.Add(fetcher("f1", 10, 1), t0)
		if _, err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n, want := c.StrLen(ctx, two.ringKey(two.tiers[1], "tracker_fetcher", "f1")).Val(), 24*recordBytes(4); n != want {
		t.Errorf("the 2h ring is %d bytes, want %d", n, want)
	}
	_, got, _ := two.Read(ctx, "tracker_fetcher", "memory_usage_mb", []string{"f1"}, t0.Add(-90*time.Minute), t0.Add(time.Minute))
	if len(got["f1"]) != 1 || got["f1"][0].Last != 10 {
		t.Errorf("read %+v", got)
	}
	// Read under the retention before, the ring is not of its size: it
	// has no points rather than records cut at the wrong places.
	if _, got, _ := day.Read(ctx, "tracker_fetcher", "memory_usage_mb", []string{"f1"}, t0.Add(-90*time.Minute), t0.Add(time.Minute)); len(got) != 0 {
		t.Errorf("read under another retention: %+v", got)
	}
}

// A service's keys share a hash tag that is never empty, whatever braces
// its name holds, and values come back as the numbers written.
func TestKeysShareANonEmptyHashTag(t *testing.T) {
	s, _ := NewStore(redistest.Start(t).Client(t))
	tag := func(k string) string {
		i := strings.Index(k, "{")
		j := strings.Index(k[i+1:], "}")
		return k[i+1 : i+1+j]
	}
	for _, svc := range []string{"}x", "a{b}c", "plain"} {
		k1, k2 := s.ringKey(s.tiers[0], svc, "i"), s.columnsKey(svc, "j")
		if tag(k1) == "" || tag(k1) != tag(k2) {
			t.Errorf("%q: tags %q and %q", svc, tag(k1), tag(k2))
		}
	}
	if v := value(math.Float32bits(11.6)); v != 11.6 {
		t.Errorf("11.6 reads back as %v", v)
	}
}

// A value goes into its slot bit for bit, whatever it is (the least
// denormal, the greatest float32, a negative zero, an integer float32
// rounds), and a field's name whole, spaces, braces and all: the slot
// holds the float32 the writer queued, least and greatest merged in the
// queue and across flushes of one step.
func TestValuesAndNamesGoInExactly(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	w := NewWriter(s, 0)
	values := []float64{math.SmallestNonzeroFloat32, math.MaxFloat32, -math.MaxFloat32, math.Copysign(0, -1), 16_777_217, 0.1, -3.75e-7, 1e39}
	fields := []string{"a b  c", "ünïcödé", "}{", "x y"}
	at := t0.Add(time.Second)
	for i, v := range values { // two heartbeats a flush, in one fine step
		m := &wire.Message{ServiceName: "svc", InstanceID: "i 1"}
		for _, f := range fields {
			m.Fields = append(m.Fields, wire.Field{Key: f, Value: wire.Float(v)})
		}
		w.Add(m, at.Add(time.Duration(i)*time.Second))
		if i%2 == 0 {
			continue
		}
		if n, err := w.Flush(ctx); err != nil || n != len(fields) {
			t.Fatalf("flush %d: %d, %v", i, n, err)
		}
	}
	f32 := func(v float64) float32 { return float32(max(min(v, math.MaxFloat32), -math.MaxFloat32)) }
	last := f32(values[len(values)-1])
	lo, hi := f32(values[0]), f32(values[0])
	for _, v := range values {
		lo, hi = min(lo, f32(v)), max(hi, f32(v))
	}
	// t0 is the first record of both rings.
	size := recordBytes(int64(len(fields)))
	for _, f := range fields {
		col, err := s.c.HGet(ctx, s.columnsKey("svc", "i 1"), f).Int64()
		if err != nil || col < 1 || col > int64(len(fields)) {
			t.Fatalf("%q: column %d, %v", f, col, err)
		}
		for _, tier := range s.tiers {
			b, err := s.c.GetRange(ctx, s.ringKey(tier, "svc", "i 1"), 0, size-1).Bytes()
			if err != nil || int64(len(b)) != size {
				t.Fatalf("%q %v: %q, %v", f, tier, b, err)
			}
			le := binary.LittleEndian
			c := b[stampBytes+columnBytes*(col-1):]
			got := [4]uint32{le.Uint32(b), le.Uint32(c), le.Uint32(c[4:]), le.Uint32(c[8:])}
			want := [4]uint32{uint32(t0.Unix()), math.Float32bits(last), math.Float32bits(lo), math.Float32bits(hi)}
			if got != want {
				t.Errorf("%q %v: record %x, want %x", f, tier, got, want)
			}
		}
	}
	got, err := s.Fields(ctx, "svc", []string{"i 1"})
	if want := slices.Sorted(slices.Values(fields)); err != nil || !slices.Equal(got, want) {
		t.Errorf("fields %q, %v; want %q", got, err, want)
	}
}

// An instance's columns always expire: when they are made again mid-step
// (deleted, evicted), and when the call that added to them failed later
// on another instance's key.
func TestAnInstancesColumnsAlwaysExpire(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	c := s.c
	w := NewWriter(s, 0)
	mem := func(id string) *wire.Message { return memoryBeat("svc", id, 1, 1) }
	expires := func(what, key string) {
		t.Helper()
		if ttl := c.PTTL(ctx, key).Val(); ttl <= 24*time.Hour || ttl > 24*time.Hour+CoarseStep {
			t.Errorf("%s: expires in %v, want a day and a step", what, ttl)
		}
	}
	w.Add(mem("b"), t0)
	if _, err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Del(ctx, s.columnsKey("svc", "b")).Err(); err != nil {
		t.Fatal(err)
	}
	w.Add(mem("b"), t0.Add(time.Minute)) // the same steps
	if _, err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	expires("columns made again mid-step", s.columnsKey("svc", "b"))

	// z's columns are a list: the call fails there, after a's were added.
	if err := c.RPush(ctx, s.columnsKey("svc", "z"), "x").Err(); err != nil {
		t.Fatal(err)
	}
	w.Add(mem("a"), t0)
	w.Add(mem("z"), t0)
	if _, err := w.Flush(ctx); err == nil {
		t.Fatal("a flush onto a list: no error")
	}
	expires("columns added to by a call that failed", s.columnsKey("svc", "a"))
}

// A value received at a time a slot cannot hold (32-bit Unix seconds:
// before 1970 or from 2106) is not kept, and counted as dropped, rather
// than written into the slot of a time it wraps to.
func TestAValueAtATimeASlotCannotHoldIsNotKept(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	w := NewWriter(s, 0)
	for _, at := range []time.Time{{}, time.Unix(-5, 0), time.Unix(1<<32+15, 0)} {
		w.Add(fetcher("f1", 1, 1), at)
	}
	if n, err := w.Flush(ctx); n != 0 || err != nil {
		t.Errorf("flush: %d written, %v; want none", n, err)
	}
	if d := w.Dropped(); d != 12 {
		t.Errorf("%d values dropped, want 12 (four a heartbeat)", d)
	}
	if keys := s.c.Keys(ctx, "*").Val(); len(keys) != 0 {
		t.Errorf("written: %q", keys)
	}
}

// Columns grown huge by another client (the writer keeps 16 at most)
// cost a call what its instance's fields do, not what the hash holds: the
// call never reads it whole.
func TestHugeColumnsAreNotReadWhole(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	s := storeOn(t, srv)
	w := NewWriter(s, 0)
	w.Add(fetcher("f1", 1, 1), t0)
	if _, err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	junk := make([]any, 0, 100_000)
	for i := range 50_000 {
		junk = append(junk, fmt.Sprintf("junk%06d", i), 1)
	}
	if err := s.c.HSet(ctx, s.columnsKey("tracker_fetcher", "f1"), junk...).Err(); err != nil {
		t.Fatal(err)
	}
	w.Add(fetcher("f1", 2, 1), t0.Add(time.Second))
	if _, err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, whole := range []string{"hgetall", "hkeys", "hvals", "hscan"} {
		if n := srv.Calls(t, whole); n != 0 {
			t.Errorf("the hash read whole %d times (%s)", n, whole)
		}
	}
	if n := s.c.HLen(ctx, s.columnsKey("tracker_fetcher", "f1")).Val(); n != 50_005 {
		t.Errorf("the full hash now holds %d", n)
	}
	s.now = func() time.Time { return t0.Add(time.Minute) }
	_, got, _ := s.Read(ctx, "tracker_fetcher", "memory_usage_mb", []string{"f1"}, t0.Add(-time.Hour), t0.Add(time.Minute))
	if p := got["f1"]; len(p) != 1 || p[0].Last != 2 || p[0].Min != 1 {
		t.Errorf("read %+v", got)
	}
}

// The fields listed of an instance are at most what the writer keeps of
// it, and only names it could keep, whatever another client put in its
// columns.
func TestTheFieldsListedAreOnlyWhatCouldBeKept(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	junk := []any{"bad\nfield", 1, "del\x7f", 2, strings.Repeat("x", MaxFieldName+1), 3}
	for i := range 40 {
		junk = append(junk, fmt.Sprintf("junk%02d", i), i)
	}
	if err := s.c.HSet(ctx, s.columnsKey("svc", "i1"), junk...).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := s.Fields(ctx, "svc", []string{"i1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) > MaxFields || slices.ContainsFunc(got, func(f string) bool { return !ReadableField(f) }) {
		t.Errorf("listed %d fields: %q", len(got), got)
	}
}

func TestRetentionIsChecked(t *testing.T) {
	for _, d := range []time.Duration{0, 59 * time.Minute, 31 * 24 * time.Hour, time.Hour + time.Second} {
		if err := CheckRetention(d); err == nil {
			t.Errorf("%v: accepted", d)
		}
	}
	if err := CheckRetention(7 * 24 * time.Hour); err != nil {
		t.Error(err)
	}
}

// BenchmarkSeriesBytesPerInstanceDay measures what one instance's values cost
// Valkey at the default retention (a day): the seed's tracker fetcher's
// four numbers (memory, CPU, queue_size and one more), every slot of both
// rings written, by MEMORY USAGE of their keys on a real redis-server.
// It fails above the documented bound: 52 bytes a record (a stamp and
// four columns), 15% for the allocator's size classes, and 250 bytes a key
// (two rings and the columns) for its key, expiry and entry.
func BenchmarkSeriesBytesPerInstanceDay(b *testing.B) {
	ctx := context.Background()
	s, err := NewStore(redistest.Start(b).Client(b))
	if err != nil {
		b.Fatal(err)
	}
	w := NewWriter(s, 0)
	end := t0.Add(24 * time.Hour)
	for i := 0; i < b.N; i++ {
		for at := t0; at.Before(end); at = at.Add(30 * time.Second) {
			w.Add(fetcher("f1", 100, 5), at)
		}
		if _, err := w.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	total := s.c.MemoryUsage(ctx, s.columnsKey("tracker_fetcher", "f1")).Val()
	for _, t := range s.tiers {
		n, err := s.c.MemoryUsage(ctx, s.ringKey(t, "tracker_fetcher", "f1")).Result()
		if err != nil {
			b.Fatal(err)
		}
		total += n
	}
	bound := s.BytesPerInstance(4)*115/100 + 3*250
	b.ReportMetric(float64(total), "B/instance/day")
	b.ReportMetric(float64(total)/4, "B/field/day")
	if total > bound {
		b.Fatalf("one instance's four fields hold %d bytes in Valkey, over the bound of %d", total, bound)
	}
}

// BenchmarkWriterFlush measures what keeping values over time costs, per
// value written: 2,000 tracker fetchers of 50 services, four numbers each,
// a heartbeat every 10 s each, queued and flushed to a real redis-server
// once a heartbeat, as a panel flushes every second a fleet that beats
// every 10 s: three heartbeats in a fine step, thirty in a coarse one.
// It reports this process's CPU (cpu-ns/value) and the server's
// (server-cpu-ns/value): Valkey runs the scripts that merge the values
// into their rings, one thread for every client.
func BenchmarkWriterFlush(b *testing.B) {
	ctx := context.Background()
	w, msgs, srv := fetchers(b, 50)
	at := t0
	for range CoarseStep / (10 * time.Second) { // the rings made, a coarse step's heartbeats written
		at = at.Add(10 * time.Second)
		for _, m := range msgs {
			w.Add(m, at)
		}
		if _, err := w.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	// The commands the script runs, counted by the server: what its CPU
	// mostly pays for, without the noise of a shared machine.
	commands := func() int64 { return commandsRun(b, srv) }
	b.ReportAllocs()
	values := 0
	cpu0, srv0, cmd0 := cpuTime(b), srv.CPU(b), commands()
	for b.Loop() {
		at = at.Add(10 * time.Second)
		for _, m := range msgs {
			w.Add(m, at)
		}
		n, err := w.Flush(ctx)
		if err != nil {
			b.Fatal(err)
		}
		values += n
	}
	b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(values), "cpu-ns/value")
	b.ReportMetric(float64((srv.CPU(b)-srv0).Nanoseconds())/float64(values), "server-cpu-ns/value")
	b.ReportMetric(float64(commands()-cmd0)/float64(values), "server-commands/value")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(values), "ns/value")
}

// cpuTime is this process's CPU time, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Within a step, each field of an instance is one rollup in the queue,
// also when a field first comes after other instances' values were
// queued: the rollup has every value of the step.
func TestAFieldThatJoinsLateIsOneRollup(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	w := NewWriter(s, 0)
	plain := func(id string, mem float64, at time.Time) {
		w.Add(&wire.Message{ServiceName: "tracker_fetcher", InstanceID: id, Timestamp: at, MemoryUsageMB: mem, Has: wire.HasMemory}, at)
	}
	plain("f1", 10, t0)
	plain("f2", 20, t0)
	for i, q := range []int64{7, 3, 9} { // f1 now sends queue_size too, after f2's values
		w.Add(fetcher("f1", 11+float64(i), q), t0.Add(time.Duration(i+1)*time.Second))
		plain("f2", 21, t0.Add(time.Duration(i+1)*time.Second))
	}
	w.mu.Lock()
	queued := len(w.queue)
	w.mu.Unlock()
	// f1: memory, CPU, queue_size, ratio; f2: memory.
	if queued != 5 {
		t.Errorf("%d values queued, want 5", queued)
	}
	if _, err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Minute)
	s.now = func() time.Time { return now }
	_, got, err := s.Read(ctx, "tracker_fetcher", "queue_size", []string{"f1"}, now.Add(-time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	if p := got["f1"]; len(p) != 1 || p[0].Last != 9 || p[0].Min != 3 || p[0].Max != 9 {
		t.Errorf("queue_size: %+v", p)
	}
	_, got, _ = s.Read(ctx, "tracker_fetcher", "memory_usage_mb", []string{"f1"}, now.Add(-time.Hour), now)
	if p := got["f1"]; len(p) != 1 || p[0].Last != 13 || p[0].Min != 10 || p[0].Max != 13 {
		t.Errorf("memory: %+v", p)
	}
}

// A flush writes its queue a batch at a time, so that the room it builds
// its calls in is a batch's, whatever the rate of heartbeats: 40,000
// values a second (100,000 instances every 10 s, four values each) held
// about 15 MB of calls at once. Every value is written all the same.
func TestAFlushsRoomIsABatchsNotTheQueues(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	w := NewWriter(s, 0)
	const instances = 10_000
	for i := range instances {
		m := fetcher(fmt.Sprintf("f%05d", i), float64(i), int64(i))
		m.ServiceName = fmt.Sprintf("service_%02d", i%50)
		w.Add(m, t0)
	}
	if n, err := w.Flush(ctx); err != nil || n != 4*instances {
		t.Fatalf("flush: %d, %v; want %d values written", n, err, 4*instances)
	}
	room := cap(w.text) + cap(w.keys)*int(unsafe.Sizeof(span{})) + cap(w.args)*int(unsafe.Sizeof(span{})) +
		cap(w.refs)*int(unsafe.Sizeof(arg{})) + cap(w.anys)*int(unsafe.Sizeof(any(nil)))
	if room > 2<<20 {
		t.Errorf("the flush kept %d KiB of room for its calls; want a batch's, at most 2 MiB", room>>10)
	}
	now := t0.Add(time.Minute)
	s.now = func() time.Time { return now }
	for _, id := range []int{0, instances / 2, instances - 1} {
		svc, name := fmt.Sprintf("service_%02d", id%50), fmt.Sprintf("f%05d", id)
		_, got, err := s.Read(ctx, svc, "queue_size", []string{name}, now.Add(-time.Hour), now)
		if err != nil {
			t.Fatal(err)
		}
		if p := got[name]; len(p) != 1 || p[0].Last != float64(id) {
			t.Errorf("%s/%s queue_size: %+v, want %d", svc, name, p, id)
		}
	}
	// Out of time, the batches left are dropped, and that is said once.
	for i := range instances {
		w.Add(fetcher(fmt.Sprintf("f%05d", i), 1, 1), t0.Add(FineStep))
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	n, err := w.Flush(cctx)
	if n != 0 || !errors.Is(err, context.Canceled) || strings.Count(err.Error(), "canceled") != 1 {
		t.Errorf("a flush out of time: %d written, %v; want none, and the reason once", n, err)
	}
}

// pipelineHook calls before ahead of each pipeline a client sends.
type pipelineHook struct{ before func(cmds []redis.Cmder) }

func (h *pipelineHook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *pipelineHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *pipelineHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.before != nil {
			h.before(cmds)
		}
		return next(ctx, cmds)
	}
}

// scriptCalls reports whether cmds are a flush's script calls.
func scriptCalls(cmds []redis.Cmder) bool { return len(cmds) > 0 && cmds[0].Name() == "evalsha" }

// hookedWriter is a writer to a real redis-server through a client whose
// pipelines h sees, and its store.
func hookedWriter(t *testing.T) (*Writer, *Store, *pipelineHook) {
	t.Helper()
	c := redistest.Start(t).Client(t)
	h := &pipelineHook{}
	c.AddHook(h)
	s, err := NewStore(c)
	if err != nil {
		t.Fatal(err)
	}
	return NewWriter(s, 0), s, h
}

// queueFetchers queues a heartbeat of four values for each of n instances
// spread over services, and returns how many values.
func queueFetchers(w *Writer, services, n int) int {
	for i := range n {
		m := fetcher(fmt.Sprintf("f%05d", i), float64(i), int64(i))
		m.ServiceName = fmt.Sprintf("service_%02d", i%services)
		w.Add(m, t0)
	}
	return 4 * n
}

// A flush says how many rollups it wrote, also when a call among them
// failed: one service's call refused (a key of the wrong type) leaves the
// other services' values written and counted, and the reason said once.
func TestAFlushCountsWhatItWroteWhenACallFails(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	c, s := srv.Client(t), storeOn(t, srv)
	w := NewWriter(s, 0)
	total := queueFetchers(w, 4, 400) // four calls of 400 rollups, one round trip
	if err := c.LPush(ctx, s.columnsKey("service_00", "f00000"), "x").Err(); err != nil {
		t.Fatal(err)
	}
	n, err := w.Flush(ctx)
	if n != total*3/4 || err == nil || strings.Count(err.Error(), "WRONGTYPE") != 1 || !strings.Contains(err.Error(), `(service "service_00")`) {
		t.Errorf("flush: %d written, %v; want %d, and the refusal said once, naming its service", n, err, total*3/4)
	}
	if u := w.Unwritten(); u != int64(total/4) {
		t.Errorf("%d counted unwritten, want the refused call's %d", u, total/4)
	}
	// Valkey's refusal is said once, whatever the services it refused,
	// each named: two services now.
	w2 := NewWriter(s, 0)
	queueFetchers(w2, 4, 400)
	if err := c.Del(ctx, s.columnsKey("service_01", "f00001")).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.LPush(ctx, s.columnsKey("service_01", "f00001"), "x").Err(); err != nil {
		t.Fatal(err)
	}
	n, err = w2.Flush(ctx)
	if n != total/2 || err == nil || strings.Count(err.Error(), "WRONGTYPE") != 1 || !strings.Contains(err.Error(), `(services "service_00" and "service_01")`) {
		t.Errorf("two services refused: %d written, %v; want %d, the refusal said once naming both", n, err, total/2)
	}
	var re redis.Error
	if !errors.As(err, &re) {
		t.Errorf("the refusal %v is not Valkey's own error", err)
	}
}

// A refusal of the whole server (out of memory, a replica read-only) is
// not of the services whose calls it refused: it is said once, naming
// none.
func TestAServerWideRefusalNamesNoService(t *testing.T) {
	srv := redistest.Start(t)
	c, s := srv.Client(t), storeOn(t, srv)
	w := NewWriter(s, 0)
	queueFetchers(w, 5, 10)
	if _, err := w.Flush(context.Background()); err != nil { // the rings made
		t.Fatal(err)
	}
	if err := c.ConfigSet(context.Background(), "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	queueFetchers(w, 5, 10)
	n, err := w.Flush(context.Background())
	if n != 0 || err == nil || strings.Count(err.Error(), "OOM") != 1 || strings.Contains(err.Error(), "(service") {
		t.Errorf("flush to a server out of memory: %d written, %q; want none, and OOM once, naming no service", n, err)
	}
	if u := w.Unwritten(); u != 40 {
		t.Errorf("%d counted unwritten, want the 40 refused", u)
	}
}

// A refusal of many services names a few of them and counts the rest.
func TestARefusalNamesAFewServices(t *testing.T) {
	for _, c := range []struct {
		services []string
		want     string
	}{
		{[]string{"a"}, `service "a"`},
		{[]string{"a", "b"}, `services "a" and "b"`},
		{[]string{"a", "b", "c"}, `services "a", "b" and "c"`},
		{[]string{"a", "b", "c", "d"}, `services "a", "b", "c" and 1 more`},
		{[]string{"a", "b", "c", "d", "e"}, `services "a", "b", "c" and 2 more`},
	} {
		if got := forServices(c.services[:min(len(c.services), namedServices)], len(c.services)); got != c.want {
			t.Errorf("%q: %s, want %s", c.services, got, c.want)
		}
	}
	// A refusal of every service of a large fleet, each refused in two
	// calls, as a flush writes them: counted once each, three named.
	var r refusals
	for i := range 10_000 {
		for range 2 {
			r.add(errors.New("OOM command not allowed"), fmt.Sprintf("svc-%05d", i))
		}
	}
	r.add(errors.New("READONLY"), "svc-00003")
	errs := r.errs()
	if len(errs) != 2 || errs[0].Error() != `OOM command not allowed (services "svc-00000", "svc-00001", "svc-00002" and 9997 more)` ||
		errs[1].Error() != `READONLY (service "svc-00003")` || len(r.said[0].named) != namedServices {
		t.Errorf("refusals of 10,000 services: %q", errs)
	}
}

// Cancelled while its batches are on their way, a flush counts the ones
// written and says why the rest were not, once.
func TestAFlushCancelledMidwaySaysSoOnce(t *testing.T) {
	w, _, h := hookedWriter(t)
	queueFetchers(w, 5, 10_000) // 40,000 rollups: many batches
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	h.before = func(cmds []redis.Cmder) {
		if !scriptCalls(cmds) {
			return
		}
		if calls++; calls == 2 {
			cancel()
		}
	}
	n, err := w.Flush(ctx)
	if n != flushBatch || !errors.Is(err, context.Canceled) || strings.Count(err.Error(), "canceled") != 1 {
		t.Errorf("cancelled on the second batch: %d written, %v; want %d, and the reason once", n, err, flushBatch)
	}
	if u := w.Unwritten(); u != 40_000-flushBatch {
		t.Errorf("%d counted unwritten, want the %d not sent", u, 40_000-flushBatch)
	}
	// What is abandoned is counted too; what is discarded is not (a
	// standby's, never to be written).
	queueFetchers(w, 5, 10)
	w.Discard()
	queueFetchers(w, 5, 10)
	if w.Abandon(); w.Unwritten() != 40_000-flushBatch+40 {
		t.Errorf("%d counted unwritten after 40 abandoned, want %d", w.Unwritten(), 40_000-flushBatch+40)
	}
}

// BenchmarkWriterAdd measures queueing one heartbeat's values, as the
// panel does for every heartbeat it hears: 2,000 instances beating every
// second, so each heartbeat but the first of a step merges into its
// step's rollups.
func BenchmarkWriterAdd(b *testing.B) {
	w, msgs, _ := fetchers(b, 1)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		w.Add(msgs[i%len(msgs)], t0.Add(time.Duration(i/len(msgs))*time.Second))
		i++
		if i%(30*len(msgs)) == 0 {
			w.Discard() // a step's worth: what a flush takes
		}
	}
}

// A script call writes at most maxPerScript records, two an instance, so
// that Valkey is never held long by one: 1,500 instances of one service
// are two calls. And a call holds a batch's rollups at most: 1,000
// instances of four values are two calls too.
func TestAScriptCallWritesAtMostItsBoundOfRecords(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	s := storeOn(t, srv)
	w := NewWriter(s, 0)
	w.Add(fetcher("warm", 1, 1), t0) // the script loaded
	if _, err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	calls := func() int64 { return srv.Calls(t, "evalsha") }
	for _, c := range []struct {
		instances, values int
		message           func(id string) *wire.Message
	}{
		{1500, 1, func(id string) *wire.Message { return memoryBeat("tracker_fetcher", id, 1, 1) }},
		{1000, 4, func(id string) *wire.Message { return fetcher(id, 1, 1) }},
	} {
		before := calls()
		for i := range c.instances {
			w.Add(c.message(fmt.Sprintf("f%04d", i)), t0)
		}
		// Fields joining the first instances' columns wait, past a
		// call's budget (see TestFieldsJoiningManyInstancesLayOutABoundOfBytesACall).
		unkept := w.Unkept()
		if n, err := w.Flush(ctx); err != nil || int64(n)+w.Unkept()-unkept != int64(c.instances*c.values) {
			t.Fatalf("flush: %d written, %d not kept, %v; want %d in all", n, w.Unkept()-unkept, err, c.instances*c.values)
		}
		if got := calls() - before; got != 2 {
			t.Errorf("%d script calls for %d instances of %d values, want 2", got, c.instances, c.values)
		}
	}
}

// fetchers is a writer to a real redis-server, the heartbeats of 2,000
// tracker fetchers of services services, and the server.
func fetchers(b *testing.B, services int) (*Writer, []*wire.Message, *redistest.Server) {
	srv := redistest.Start(b)
	s, err := NewStore(srv.Client(b))
	if err != nil {
		b.Fatal(err)
	}
	msgs := make([]*wire.Message, 2000)
	for i := range msgs {
		msgs[i] = fetcher(fmt.Sprintf("f%04d", i), 100, int64(i))
		if services > 1 {
			msgs[i].ServiceName = fmt.Sprintf("service_%02d", i%services)
		}
	}
	return NewWriter(s, 0), msgs, srv
}

// On a cluster, each service's script call goes straight to the node that
// owns its hash tag (no node answers MOVED), through flushes that reuse
// one another's room, and every value can be read back.
func TestACallGoesToTheNodeOfItsService(t *testing.T) {
	ctx := context.Background()
	c := redistest.StartCluster(t, 3)
	s, err := NewStore(c.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(s, 0)
	services := []string{"tracker_fetcher", "geocoding", "geofence", "billing", "mailer", "search"}
	for step := range 3 {
		at := t0.Add(time.Duration(step) * FineStep)
		for i, svc := range services {
			for _, id := range []string{"a", "b"} {
				m := fetcher(id, float64(100*step+i), int64(step))
				m.ServiceName = svc
				w.Add(m, at)
			}
		}
		if _, err := w.Flush(ctx); err != nil {
			t.Fatalf("flush %d: %v", step, err)
		}
	}
	for i, n := range c.Nodes {
		if info := n.Do(t, "INFO", "errorstats").(string); strings.Contains(info, "MOVED") {
			t.Errorf("node %d was sent calls of another's services: %s", i, info)
		}
	}
	now := t0.Add(3 * FineStep)
	s.now = func() time.Time { return now }
	for i, svc := range services {
		_, got, err := s.Read(ctx, svc, "memory_usage_mb", []string{"a", "b"}, t0, now)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"a", "b"} {
			var lasts []float64
			for _, p := range got[id] {
				lasts = append(lasts, p.Last)
			}
			if want := []float64{float64(i), float64(100 + i), float64(200 + i)}; !slices.Equal(lasts, want) {
				t.Errorf("%s/%s: memory over the steps %v, want %v", svc, id, lasts, want)
			}
		}
	}
}

// flushBurst queues a heartbeat of n instances, received at at, and
// flushes it.
func flushBurst(t *testing.T, w *Writer, n int, at time.Time) {
	t.Helper()
	for i := range n {
		w.Add(fetcher(fmt.Sprint("burst-", i), 100, 1), at)
	}
	if _, err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// The room a burst needed is not kept once the flow is quiet: a flush
// with nothing to write gives it up.
func TestABurstsRoomIsNotKeptWhileQuiet(t *testing.T) {
	ctx := context.Background()
	w := NewWriter(newStore(t), 0)
	flushBurst(t, w, 2000, t0)
	if cap(w.text) == 0 {
		t.Fatal("the flush kept no room: the test no longer shows anything")
	}
	if _, err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := cap(w.text) + cap(w.refs)*int(unsafe.Sizeof(arg{})) + cap(w.anys)*16 + (cap(w.keys)+cap(w.args))*int(unsafe.Sizeof(span{})) +
		(cap(w.order)+cap(w.svcOf))*4; n != 0 {
		t.Errorf("after an empty flush, the writer keeps %d bytes of the burst's room", n)
	}
}

// After a burst, a flow of a few values keeps the room a few values need,
// not the burst's: the queue's, its names' and its order's.
func TestABurstsRoomIsNotKeptForAFewValues(t *testing.T) {
	w := NewWriter(newStore(t), 0)
	flushBurst(t, w, 20_000, t0)
	flushBurst(t, w, 10, t0.Add(FineStep))
	held := cap(w.spare)*int(unsafe.Sizeof(update{})) + cap(w.spareWhos)*int(unsafe.Sizeof(who{})) + (cap(w.order)+cap(w.svcOf))*4
	if held > 128<<10 {
		t.Errorf("after a burst of 80,000 values and a flush of 40, the writer keeps %d bytes of room", held)
	}
}

// A heartbeat costs Valkey a few commands however many numeric fields it
// carries: an instance's values of a step are one record of its rings, read
// and written once a tier, and its columns asked once. At heartbeats every
// 10 s that is five commands, and a few more every coarse step for the
// times to live.
func TestAHeartbeatCostsValkeyAFewCommandsWhateverItsFields(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	w := NewWriter(storeOn(t, srv), 0)
	msgs := make([]*wire.Message, 200)
	for i := range msgs {
		msgs[i] = fetcher(fmt.Sprintf("f%03d", i), 100, int64(i)) // four numbers
	}
	beat := func(at time.Time) {
		for _, m := range msgs {
			w.Add(m, at)
		}
		if _, err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	at := t0
	beat(at) // the rings made
	before := commandsRun(t, srv)
	const beats = 30 // a coarse step's, every 10 s
	for range beats {
		at = at.Add(10 * time.Second)
		beat(at)
	}
	perHeartbeat := float64(commandsRun(t, srv)-before) / float64(beats*len(msgs))
	if perHeartbeat > 5.2 {
		t.Errorf("%.2f commands a heartbeat of four values, want 5.2 at most", perHeartbeat)
	}
}

// commandsRun is how many commands srv ran other than the scripts' calls
// and the test's own questions: what the scripts ran.
func commandsRun(t testing.TB, srv *redistest.Server) (n int64) {
	t.Helper()
	info, _ := srv.Do(t, "INFO", "commandstats").(string)
	for _, l := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(l, "cmdstat_"), ":calls=")
		if !ok || slices.Contains([]string{"eval", "evalsha", "info", "script", "ping", "hello", "client", "select"}, name) {
			continue
		}
		c, err := strconv.ParseInt(rest[:strings.IndexByte(rest+",", ',')], 10, 64)
		if err != nil {
			t.Fatalf("INFO commandstats: %q: %v", l, err)
		}
		n += c
	}
	return n
}

// A field that joins an instance's heartbeats later takes a column more
// in its records: what its rings held of the other fields stays, and a
// step in which a field had no value has no point of it.
func TestAFieldThatJoinsKeepsTheOthersPoints(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	w := NewWriter(s, 0)
	beat := func(at time.Time, mem *float64, queue *int64) {
		t.Helper()
		m := &wire.Message{ServiceName: "svc", InstanceID: "i1"}
		if mem != nil {
			m.MemoryUsageMB, m.Has = *mem, wire.HasMemory
		}
		if queue != nil {
			m.Fields = []wire.Field{{Key: "queue_size", Value: wire.Int(*queue)}}
		}
		w.Add(m, at)
		if _, err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	mem := func(v float64) *float64 { return &v }
	queue := func(v int64) *int64 { return &v }
	beat(t0, mem(10), nil)
	beat(t0.Add(FineStep), mem(11), nil)
	beat(t0.Add(2*FineStep), mem(12), queue(5)) // queue_size joins
	beat(t0.Add(3*FineStep), nil, queue(6))     // memory leaves
	if n, want := s.c.StrLen(ctx, s.ringKey(s.tiers[1], "svc", "i1")).Val(), 288*recordBytes(2); n != want {
		t.Errorf("coarse ring of %d bytes, want %d: two columns", n, want)
	}
	now := t0.Add(2 * time.Minute)
	s.now = func() time.Time { return now }
	read := func(field string, since time.Time) []Point {
		t.Helper()
		_, got, err := s.Read(ctx, "svc", field, []string{"i1"}, since, now)
		if err != nil {
			t.Fatal(err)
		}
		return got["i1"]
	}
	at := func(steps int) time.Time { return t0.Add(time.Duration(steps) * FineStep) }
	want := map[string][]Point{
		"memory_usage_mb": {{at(0), 10, 10, 10}, {at(1), 11, 11, 11}, {at(2), 12, 12, 12}},
		"queue_size":      {{at(2), 5, 5, 5}, {at(3), 6, 6, 6}},
	}
	for field, w := range want {
		if got := read(field, now.Add(-time.Hour)); !slices.Equal(got, w) {
			t.Errorf("%s: %+v, want %+v", field, got, w)
		}
	}
	coarse := map[string][]Point{
		"memory_usage_mb": {{t0, 12, 10, 12}},
		"queue_size":      {{t0, 6, 5, 6}},
	}
	for field, w := range coarse {
		if got := read(field, now.Add(-2*time.Hour)); !slices.Equal(got, w) {
			t.Errorf("%s, coarse: %+v, want %+v", field, got, w)
		}
	}
}

// Columns the writer did not make (no count, or one out of range: another
// client's, or a hash evicted while its rings were not) say nothing of
// the rings' records: the rings are made again rather than read or
// written under columns they were not laid out in.
func TestColumnsNotTheWritersAreMadeAgain(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	now := t0.Add(time.Minute)
	s.now = func() time.Time { return now }
	w := NewWriter(s, 0)
	for i, spoil := range []func(key string) error{
		func(key string) error { return s.c.Del(ctx, key).Err() },
		func(key string) error { return s.c.HSet(ctx, key, "", "17").Err() },
		func(key string) error { return s.c.HSet(ctx, key, "", "two").Err() },
		// Numbers Lua would read, but the writer never writes.
		func(key string) error { return s.c.HSet(ctx, key, "", "4.0").Err() },
		func(key string) error { return s.c.HSet(ctx, key, "", "0x4").Err() },
		func(key string) error { return s.c.HSet(ctx, key, "", " 4 ").Err() },
		func(key string) error { return s.c.HSet(ctx, key, "", "+4").Err() },
		func(key string) error { return s.c.HSet(ctx, key, "", "04").Err() },
	} {
		w.Add(fetcher("f1", 1, 100), t0)
		if _, err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := spoil(s.columnsKey("tracker_fetcher", "f1")); err != nil {
			t.Fatal(err)
		}
		w.Add(&wire.Message{ServiceName: "tracker_fetcher", InstanceID: "f1", Fields: []wire.Field{{Key: "queue_size", Value: wire.Int(7)}}}, t0.Add(time.Second))
		if _, err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		_, got, _ := s.Read(ctx, "tracker_fetcher", "queue_size", []string{"f1"}, t0.Add(-time.Hour), now)
		if p := got["f1"]; len(p) != 1 || p[0] != (Point{t0, 7, 7, 7}) {
			t.Errorf("spoilt %d: queue_size %+v, want the one value written since", i, p)
		}
		if _, got, _ := s.Read(ctx, "tracker_fetcher", "memory_usage_mb", []string{"f1"}, t0.Add(-time.Hour), now); len(got) != 0 {
			t.Errorf("spoilt %d: memory %+v, want none", i, got)
		}
		s.c.FlushAll(ctx)
	}
}

// Fields joining many instances at once lay out again at most a call's
// bound of ring bytes a call (wholeBudget), so that no call holds Valkey
// for long however long the retention: at 30 days and a 16th field, one
// instance's rings a call. The other instances' joining fields wait for a
// later call; their other fields are written all the same, and in the end
// every instance has its new column.
func TestFieldsJoiningManyInstancesLayOutABoundOfBytesACall(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, WithRetention(MaxSpan))
	w := NewWriter(s, 0)
	const instances = 6
	beat := func(i int, v float64, fields int) *wire.Message {
		return memoryBeat("svc", fmt.Sprintf("i%d", i), v, fields)
	}
	// Made over a few flushes: making rings is bound too.
	for flushes := 0; ; flushes++ {
		if flushes > instances {
			t.Fatal("the instances' rings are not all made")
		}
		for i := range instances {
			w.Add(beat(i, 1, MaxFields-1), t0)
		}
		if _, err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if s.c.Exists(ctx, s.ringKey(s.tiers[1], "svc", fmt.Sprintf("i%d", instances-1))).Val() == 1 {
			break
		}
	}
	pair := s.BytesPerInstance(MaxFields)
	joined := func() (n int) {
		for i := range instances {
			if c, _ := s.c.HGet(ctx, s.columnsKey("svc", fmt.Sprintf("i%d", i)), "").Int(); c == MaxFields {
				n++
			}
		}
		return n
	}
	flushes := 0
	for at := t0.Add(FineStep); joined() < instances; at = at.Add(FineStep) {
		if flushes++; flushes > instances {
			t.Fatalf("%d flushes, and %d of %d instances have their new column", flushes, joined(), instances)
		}
		was := joined()
		for i := range instances {
			w.Add(beat(i, float64(flushes+1), MaxFields), at)
		}
		unkept := w.Unkept()
		n, err := w.Flush(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// The field that waits is not kept; the others are.
		if waiting := instances - was - 1; n != instances*MaxFields-waiting || w.Unkept()-unkept != int64(waiting) {
			t.Fatalf("flush %d: %d values written and %d not kept, with %d instances waiting for their 16th field",
				flushes, n, w.Unkept()-unkept, waiting)
		}
		// 16 MiB a call, a byte laid out again counted 16 times: one
		// instance's rings of 16 fields at 30 days.
		if got := joined() - was; got != 1 || int64(got) > max(1, wholeBudget/(16*pair)) {
			t.Fatalf("flush %d laid out %d instances' rings again, want one", flushes, got)
		}
	}
	if flushes != instances {
		t.Errorf("%d flushes laid out %d instances' rings of 30 days", flushes, instances)
	}
	now := t0.Add(time.Duration(flushes+1) * FineStep)
	s.now = func() time.Time { return now }
	_, got, err := s.Read(ctx, "svc", "memory_usage_mb", []string{"i0", fmt.Sprintf("i%d", instances-1)}, now.Add(-time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	for id, p := range got {
		if len(p) != flushes+1 {
			t.Errorf("%s: %d points of memory, want one a flush: %d", id, len(p), flushes+1)
		}
	}
	if len(got) != 2 {
		t.Errorf("read %d instances, want 2", len(got))
	}
}

// Rings gone under their columns (evicted by a Valkey short of memory)
// are made again within a call's budget too: an instance whose rings wait
// is written in neither tier, and its values are counted not kept. (A
// budget of a byte: a call makes its first ring, and no other.)
func TestValuesWrittenInNoRingAreNotKept(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	w := NewWriter(s, 0)
	const instances = 5
	id := func(i int) string { return fmt.Sprintf("i%d", i) }
	for i := range instances {
		w.Add(memoryBeat("svc", id(i), 1, MaxFields), t0)
	}
	if n, err := w.Flush(ctx); err != nil || n != instances*MaxFields {
		t.Fatalf("the rings made: %d values written, %v", n, err)
	}
	for i := range instances {
		s.c.Del(ctx, s.ringKey(s.tiers[0], "svc", id(i)), s.ringKey(s.tiers[1], "svc", id(i)))
	}
	s.budget = 1
	for i := range instances {
		w.Add(memoryBeat("svc", id(i), 2, MaxFields), t0.Add(time.Hour))
	}
	unkept := w.Unkept()
	n, err := w.Flush(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rings := 0
	for i := range instances {
		rings += int(s.c.Exists(ctx, s.ringKey(s.tiers[0], "svc", id(i)), s.ringKey(s.tiers[1], "svc", id(i))).Val())
	}
	if rings != 1 || n != MaxFields || w.Unkept()-unkept != (instances-1)*MaxFields {
		t.Errorf("%d values written and %d not kept, %d rings made again; want %d, %d and one",
			n, w.Unkept()-unkept, rings, MaxFields, (instances-1)*MaxFields)
	}
}

// A flush that cannot make its calls (a password Valkey refuses) writes
// nothing, and says why, once.
func TestAFlushRefusedAtItsConnectionWritesNothing(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "s3cret-pw")
	c := srv.Client(t, func(o *redis.Options) { o.Password = "wrong-pw" })
	s, err := NewStore(c)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWriter(s, 0)
	queueFetchers(w, 5, 10)
	n, err := w.Flush(context.Background())
	if n != 0 || err == nil || strings.Count(err.Error(), "WRONGPASS") != 1 || strings.Contains(err.Error(), "(service") || strings.Contains(err.Error(), "wrong-pw") {
		t.Errorf("flush with a wrong password: %d written, %q; want none, and WRONGPASS once, naming no service", n, err)
	}
}

// Many instances first heard at once make their rings over several calls
// (wholeBudget), so that no call holds Valkey for long zeroing them: at
// 30 days and 16 fields, nine instances' a call. Those waiting lose that
// heartbeat's values; the next ones are kept.
func TestNewInstancesMakeABoundOfRingBytesACall(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, WithRetention(MaxSpan))
	w := NewWriter(s, 0)
	const instances = 30
	made := func() (n int) {
		for i := range instances {
			n += int(s.c.Exists(ctx, s.ringKey(s.tiers[1], "svc", fmt.Sprintf("i%02d", i))).Val())
		}
		return n
	}
	for flushes := 1; made() < instances; flushes++ {
		if flushes > instances {
			t.Fatalf("%d of %d instances' rings made", made(), instances)
		}
		was := made()
		for i := range instances {
			w.Add(memoryBeat("svc", fmt.Sprintf("i%02d", i), 1, MaxFields), t0.Add(time.Duration(flushes)*time.Second))
		}
		unkept := w.Unkept()
		n, err := w.Flush(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := made() - was; got > 9 || got == 0 {
			t.Fatalf("flush %d made %d instances' rings, want 1 to 9", flushes, got)
		}
		// What waits is not counted written, but not kept.
		if now := made(); n != now*MaxFields || w.Unkept()-unkept != int64(instances-now)*MaxFields {
			t.Fatalf("flush %d: %d values written and %d not kept, with %d of %d instances made, %d values each",
				flushes, n, w.Unkept()-unkept, now, instances, MaxFields)
		}
		// Each instance made has both rings, and expiring.
		for i := range instances {
			id := fmt.Sprintf("i%02d", i)
			if s.c.Exists(ctx, s.columnsKey("svc", id)).Val() == 0 {
				continue
			}
			for _, tier := range s.tiers {
				if n, want := s.c.StrLen(ctx, s.ringKey(tier, "svc", id)).Val(), tier.slots()*recordBytes(MaxFields); n != want {
					t.Fatalf("%s %v: ring of %d bytes, want %d", id, tier.Step, n, want)
				}
				if ttl := s.c.PTTL(ctx, s.ringKey(tier, "svc", id)).Val(); ttl <= 0 {
					t.Fatalf("%s %v: ring expires in %v", id, tier.Step, ttl)
				}
			}
		}
	}
}

// A flush of one instance's values over many steps (a writer that
// flushes seldom) writes them all, in calls of a batch's values at most.
func TestManyStepsOfOneInstanceAreWrittenInBoundedCalls(t *testing.T) {
	ctx := context.Background()
	w, s, h := hookedWriter(t)
	const steps = 600
	for i := range steps {
		m := &wire.Message{ServiceName: "svc", InstanceID: "i1"}
		for f := range MaxFields {
			m.Fields = append(m.Fields, wire.Field{Key: fmt.Sprintf("f%02d", f), Value: wire.Int(int64(i))})
		}
		w.Add(m, t0.Add(time.Duration(i)*FineStep))
	}
	// The rollups of each call: its runs' counts.
	var largest int
	h.before = func(cmds []redis.Cmder) {
		if !scriptCalls(cmds) {
			return
		}
		for _, c := range cmds {
			args := c.Args()
			keys, _ := args[2].(int)
			values := 0
			for _, a := range args[3+keys:] {
				if run, ok := a.(*arg); ok { // not the head's numbers
					values += int(binary.LittleEndian.Uint32(run.b[4:]))
				}
			}
			largest = max(largest, values)
		}
	}
	if n, err := w.Flush(ctx); err != nil || n != steps*MaxFields {
		t.Fatalf("flush: %d, %v; want %d written", n, err, steps*MaxFields)
	}
	if largest > flushBatch+maxRun {
		t.Errorf("a call of %d values, want %d at most", largest, flushBatch+maxRun)
	}
	end := t0.Add(steps * FineStep)
	s.now = func() time.Time { return end }
	_, got, err := s.Read(ctx, "svc", "f15", []string{"i1"}, end.Add(-time.Hour), end)
	if err != nil || len(got["i1"]) != 120 || got["i1"][119].Last != steps-1 {
		t.Errorf("the last hour of f15: %d points, %v", len(got["i1"]), err)
	}
}

// The panel stamps values with its own clock: once a clock that ran
// ahead is set right, the values written are the ones to keep, though
// their records' slots hold later steps, written under the wrong time.
func TestACorrectedClockIsBelieved(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	w := NewWriter(s, 0)
	mem := func(v float64) *wire.Message { return memoryBeat("svc", "i1", v, 1) }
	now := t0.Add(10 * time.Hour)
	for at := now.Add(time.Hour); at.Before(now.Add(3 * time.Hour)); at = at.Add(10 * time.Second) { // two hours ahead
		w.Add(mem(1), at)
		if _, err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for at := now.Add(-30 * time.Minute); at.Before(now); at = at.Add(10 * time.Second) { // set right
		w.Add(mem(2), at)
		if _, err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	s.now = func() time.Time { return now }
	_, got, err := s.Read(ctx, "svc", "memory_usage_mb", []string{"i1"}, now.Add(-time.Hour), now)
	if p := got["i1"]; err != nil || len(p) != 60 || p[0].Last != 2 || p[59].Last != 2 {
		t.Errorf("the last half hour: %d points, %v; want 60 of the clock set right", len(p), err)
	}
}

// A count or a column is read as the merge script reads it: digits only,
// no sign, no leading zero, within range.
func TestColumnsAreReadAsTheScriptReadsThem(t *testing.T) {
	for s, want := range map[any]int64{"1": 1, "16": 16, "9": 9} {
		if n, ok := number(s, MaxFields); !ok || n != want {
			t.Errorf("%q: %d, %v", s, n, ok)
		}
	}
	for _, s := range []any{"", "0", "17", "04", "+4", "-4", " 4", "4.0", "0x4", "1e1", "４", nil, int64(4), "100"} {
		if n, ok := number(s, MaxFields); ok {
			t.Errorf("%q: read as %d", s, n)
		}
	}
}

// A field that joins an instance between a read's look at its columns
// and its look at its rings lays the rings out anew under the read: the
// instance is read again rather than left out of the answer.
func TestAReadWhileAFieldJoinsStillAnswers(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	w := NewWriter(storeOn(t, srv), 0)
	reader := storeOn(t, srv)
	now := t0.Add(time.Minute)
	reader.now = func() time.Time { return now }
	w.Add(memoryBeat("svc", "i1", 5, 1), t0)
	if _, err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	joined := false
	reader.c.AddHook(&pipelineHook{before: func(cmds []redis.Cmder) {
		if joined || len(cmds) == 0 || cmds[0].Name() != "strlen" {
			return
		}
		joined = true
		m := memoryBeat("svc", "i1", 6, 1)
		m.Fields = []wire.Field{{Key: "queue_size", Value: wire.Int(1)}}
		w.Add(m, t0.Add(time.Second))
		if _, err := w.Flush(ctx); err != nil {
			t.Error(err)
		}
	}})
	_, got, err := reader.Read(ctx, "svc", "memory_usage_mb", []string{"i1"}, t0.Add(-time.Hour), now)
	if !joined {
		t.Fatal("no field joined under the read")
	}
	if p := got["i1"]; err != nil || len(p) != 1 || p[0] != (Point{t0, 6, 5, 6}) {
		t.Errorf("read %+v, %v; want the step's point", got, err)
	}
}

// A value's fine step is the start of the 30 s it falls in, as
// time.Truncate has it, for every second, before 1970 too.
func TestFineStepIsTheTruncatedSecond(t *testing.T) {
	for _, sec := range []int64{math.MinInt32, -61, -60, -31, -30, -29, -1, 0, 1, 29, 30, 31, 1733400000, 1733400029, 1733400030, math.MaxUint32} {
		if got, want := fineStep(sec), time.Unix(sec, 0).Truncate(FineStep).Unix(); got != want {
			t.Errorf("fineStep(%d) = %d, want %d", sec, got, want)
		}
	}
}

// A field's values are kept when its name is one the API can ask for:
// not empty, not too long, without a control character, whatever else it
// holds (characters past ASCII, bytes that are not UTF-8).
func TestAFieldIsReadableUnlessItsNameHoldsAControlCharacter(t *testing.T) {
	for c := range 256 {
		want := c >= ' ' && c != 0x7f
		if got := ReadableField("a" + string(rune(c)) + "b"); got != want {
			t.Errorf("character %#x: readable %v, want %v", c, got, want)
		}
		if got := ReadableField("a" + string([]byte{byte(c)}) + "b"); got != want {
			t.Errorf("byte %#x: readable %v, want %v", c, got, want)
		}
	}
	for name, want := range map[string]bool{
		"": false, "queue_size": true, "état": true, "\u2028x": true, "a\u0085b": true,
		strings.Repeat("a", MaxFieldName): true, strings.Repeat("a", MaxFieldName+1): false,
	} {
		if got := ReadableField(name); got != want {
			t.Errorf("%q: readable %v, want %v", name, got, want)
		}
	}
}
