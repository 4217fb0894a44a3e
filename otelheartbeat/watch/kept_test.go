package watch

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// A kept heartbeat holds what the views need within its bytes: every
// documented field and the address, the service fields in their order
// while they fit, long strings cut and marked, long raw values left out;
// what was cut is counted, per instance and in all.
func TestAKeptHeartbeatIsBoundedInBytes(t *testing.T) {
	tr := NewTracker(WithHeartbeats(), WithHeartbeatBudget(2048, 1<<20))
	m := beat("geo", "a", 1)
	m.InstanceAddress = "http://10.0.0.7:8080"
	m.Fields = []wire.Field{
		{Key: "queue_size", Value: wire.Int(1380)},
		{Key: "api_status", Value: wire.String(strings.Repeat("é", 600))}, // 1,200 bytes
		{Key: "shards", Value: wire.Value{Kind: wire.KindRaw, Raw: json.RawMessage("[" + strings.Repeat("1,", 200) + "1]")}},
	}
	for i := range 20 {
		m.Fields = append(m.Fields, wire.Field{Key: fmt.Sprintf("f%02d", i), Value: wire.String(strings.Repeat("x", 200))})
	}
	tr.Observe(m)
	in, _ := tr.Get(Key{Service: "geo", Instance: "a"})
	h := in.Heartbeat()
	if h == m || h.InstanceAddress != m.InstanceAddress || h.HeartbeatCount != 1 || h.InstanceID != "a" {
		t.Fatalf("kept %+v", h)
	}
	if size := in.kept.size(); size > 2048 || size < 2048-300 {
		t.Errorf("the kept heartbeat holds %d bytes, more than its 2048", size)
	}
	if v, _ := h.Field("queue_size"); v.Int != 1380 {
		t.Errorf("queue_size %+v", v)
	}
	v, _ := h.Field("api_status")
	if len(v.Str) > MaxKeptString || !strings.HasSuffix(v.Str, "é…") {
		t.Errorf("a long string kept as %d bytes %q", len(v.Str), v.Str[max(len(v.Str)-8, 0):])
	}
	if _, ok := h.Field("shards"); ok {
		t.Error("a long raw value was kept")
	}
	kept := len(h.Fields)
	if want := 2 + 20 - (kept - 2); in.Cut != 1+1+(20-(kept-2)) || kept < 4 || kept >= 22 {
		t.Errorf("kept %d fields, cut %d (want the string, the raw value and the %d that did not fit)", kept, in.Cut, want)
	}
	if tr.Cut() != int64(in.Cut) {
		t.Errorf("tracker cut %d, instance %d", tr.Cut(), in.Cut)
	}
	for i, f := range h.Fields[2:] { // in their order: the first ones fit
		if f.Key != fmt.Sprintf("f%02d", i) {
			t.Errorf("field %d is %s", i, f.Key)
		}
	}
	m.Fields[0].Value = wire.Int(0) // the caller's message stays the caller's
	if v, _ := h.Field("queue_size"); v.Int != 1380 {
		t.Error("the kept heartbeat changed with the caller's message")
	}
}

// Together the kept heartbeats stay within the budget: each instance's
// share shrinks as more are tracked, and what the tracker forgets is given
// back.
func TestKeptHeartbeatsShareTheBudget(t *testing.T) {
	const budget = 64 << 10
	tr := NewTracker(WithHeartbeats(), WithHeartbeatBudget(4<<10, budget), WithMaxInstances(1000))
	fat := func(id string) *wire.Message {
		m := beat("geo", id, 1)
		for i := range 30 {
			m.Fields = append(m.Fields, wire.Field{Key: fmt.Sprintf("f%02d", i), Value: wire.String(strings.Repeat("x", 200))})
		}
		return m
	}
	// What no heartbeat can do without, the message itself, is kept even
	// past the budget; its service fields are not.
	empty, _ := keep(&keepScratch{}, beat("geo", "0", 1), 0)
	base := empty.size()
	for i := range 1000 {
		tr.Observe(fat(fmt.Sprint(i)))
		if kept, _ := tr.KeptBytes(); kept > budget+(i+1)*base {
			t.Fatalf("after %d instances %d bytes kept, past the budget", i+1, kept)
		}
	}
	first, _ := tr.Get(Key{Service: "geo", Instance: "0"})
	last, _ := tr.Get(Key{Service: "geo", Instance: "999"})
	if len(first.Heartbeat().Fields) <= len(last.Heartbeat().Fields) || len(last.Heartbeat().Fields) != 0 {
		t.Errorf("the first kept %d fields, the last %d: the share does not shrink", len(first.Heartbeat().Fields), len(last.Heartbeat().Fields))
	}
	tr.Observe(fat("0")) // its next heartbeat is held to today's share
	if again, _ := tr.Get(Key{Service: "geo", Instance: "0"}); len(again.Heartbeat().Fields) != 0 {
		t.Errorf("after its next heartbeat the first keeps %d fields", len(again.Heartbeat().Fields))
	}
}

// What the tracker counts as kept (KeptBytes, what the budget is held
// against) is what its instances hold, through heartbeats that grow and
// shrink, instances evicted at its bound and instances forgotten.
func TestKeptBytesAreWhatTheInstancesHold(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock), WithRetention(time.Minute), WithHeartbeats(), WithHeartbeatBudget(1<<10, 40<<10), WithMaxInstances(60))
	held := func() int {
		n := 0
		for _, svc := range tr.services {
			for _, e := range svc.members {
				n += e.kept.size()
			}
		}
		return n
	}
	r := rand.New(rand.NewPCG(5, 6))
	for step := range 3000 {
		switch r.IntN(20) {
		case 0:
			clock.Advance(time.Duration(r.IntN(90)) * time.Second)
			tr.Tick()
		default:
			m := withInterval(beat(fmt.Sprint("svc", r.IntN(3)), fmt.Sprint(r.IntN(100)), int64(step)), 10*time.Second)
			for i := range r.IntN(12) {
				m.Fields = append(m.Fields, wire.Field{Key: fmt.Sprint("f", i), Value: wire.String(strings.Repeat("x", r.IntN(300)))})
			}
			tr.Observe(m)
		}
		if kept, _ := tr.KeptBytes(); kept != held() {
			t.Fatalf("step %d: %d bytes counted as kept, the instances hold %d", step, kept, held())
		}
	}
}

// Keeping a heartbeat costs one allocation, its packed bytes, whatever
// its fields: a panel keeps ten thousand a second at a hundred thousand
// instances.
func TestKeepingAHeartbeatAllocatesOnce(t *testing.T) {
	m := beat("geo", "a", 1)
	m.InstanceAddress = "10.0.0.7:8080"
	m.Fields = []wire.Field{
		{Key: "queue_size", Value: wire.Int(1380)},
		{Key: "api_status", Value: wire.String("authenticated")},
		{Key: "ratio", Value: wire.Float(0.25)},
		{Key: "note", Value: wire.String(strings.Repeat("x", 2*MaxKeptString))}, // cut short
	}
	var s keepScratch
	if n := testing.AllocsPerRun(100, func() { keep(&s, m, 1<<20) }); n != 1 {
		t.Errorf("keeping a heartbeat of four fields: %v allocations, want 1", n)
	}
}

// A field cut short and then left out for lack of room counts once.
func TestAFieldCutThenLeftOutCountsOnce(t *testing.T) {
	m := beat("geo", "a", 1)
	m.Fields = []wire.Field{
		{Key: "note", Value: wire.String(strings.Repeat("x", 2*MaxKeptString))},
		{Key: "queue_size", Value: wire.Int(1)},
	}
	if _, cut := keep(&keepScratch{}, m, 0); cut != 2 {
		t.Errorf("two fields left out, one of them cut first: counted %d, want 2", cut)
	}
}

// A monitor's tracker keeps a packed copy of the heartbeat it decoded,
// the one the event carries, cut where it must be; one decoded into again
// (WithoutHeartbeatEvents) keeps its own.
func TestAMonitorKeepsACopyOfTheHeartbeatItDecoded(t *testing.T) {
	client := redis.NewClient(&redis.Options{}) // never dialled: ingest needs no connection
	defer client.Close()
	payload := func(id, note string) []byte {
		b, err := wire.Marshal(&wire.Message{ServiceName: "geo", InstanceID: id, Timestamp: t0, HeartbeatCount: 1, Has: wire.HasHeartbeatCount,
			Fields: []wire.Field{{Key: "queue_size", Value: wire.Int(7)}, {Key: "note", Value: wire.String(note)}}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	channel := []byte(wire.DefaultChannelPrefix + "geo")
	ctx := context.Background()

	m, err := New(Connection{Client: client}, WithTracker(WithHeartbeats()))
	if err != nil {
		t.Fatal(err)
	}
	ob := m.newOutbox(newPipe(8))
	ds := newDecodeState()
	m.ingest(ctx, ob, m.decode(ds, channel, payload("a", "short"), time.Now()))
	m.ingest(ctx, ob, m.decode(ds, channel, payload("b", strings.Repeat("x", 2*MaxKeptString)), time.Now()))
	events := drain(ob)
	for _, want := range []struct {
		id   string
		cut  int
		note string
	}{{"a", 0, "short"}, {"b", 1, strings.Repeat("x", MaxKeptString-len(ellipsis)) + ellipsis}} {
		var e Event
		for len(events) > 0 && e.Kind != KindHeartbeat {
			e, events = events[0], events[1:]
		}
		in, _ := m.Tracker().Get(Key{Service: "geo", Instance: want.id})
		hb := in.Heartbeat()
		if hb == e.Message || hb.InstanceID != want.id || hb.Timestamp != t0 {
			t.Errorf("%s: kept %+v", want.id, hb)
		}
		if v, _ := hb.Field("queue_size"); v.Int != 7 {
			t.Errorf("%s: kept queue_size %v", want.id, v)
		}
		if v, _ := hb.Field("note"); v.Str != want.note || in.Cut != want.cut {
			t.Errorf("%s: kept note of %d bytes, cut %d; want %d bytes, cut %d", want.id, len(v.Str), in.Cut, len(want.note), want.cut)
		}
	}

	quiet, err := New(Connection{Client: client}, WithTracker(WithHeartbeats()), WithoutHeartbeatEvents())
	if err != nil {
		t.Fatal(err)
	}
	ds = newDecodeState()
	qob := quiet.newOutbox(newPipe(8))
	quiet.ingest(ctx, qob, quiet.decode(ds, channel, payload("a", "first"), time.Now()))
	quiet.ingest(ctx, qob, quiet.decode(ds, channel, payload("b", "second"), time.Now()))
	if in, _ := quiet.Tracker().Get(Key{Service: "geo", Instance: "a"}); in.Heartbeat().InstanceID != "a" {
		t.Errorf("a's kept heartbeat became %s's", in.Heartbeat().InstanceID)
	} else if v, _ := in.Heartbeat().Field("note"); v.Str != "first" {
		t.Errorf("a's kept note became %q", v.Str)
	}
}

// The message an event carries is its reader's: the tracker keeps a
// copy, so a reader who changes it races with nobody reading the kept
// heartbeat (run with -race), and changes nothing kept.
func TestAnEventsMessageIsItsReaders(t *testing.T) {
	client := redis.NewClient(&redis.Options{}) // never dialled: ingest needs no connection
	defer client.Close()
	m, err := New(Connection{Client: client}, WithTracker(WithHeartbeats()))
	if err != nil {
		t.Fatal(err)
	}
	b, err := wire.Marshal(&wire.Message{ServiceName: "geo", InstanceID: "a", Timestamp: t0, Fields: []wire.Field{{Key: "queue_size", Value: wire.Int(7)}}})
	if err != nil {
		t.Fatal(err)
	}
	ob := m.newOutbox(newPipe(8)) // the heartbeat, and the transition it makes
	m.ingest(context.Background(), ob, m.decode(newDecodeState(), []byte(wire.DefaultChannelPrefix+"geo"), b, time.Now()))
	e := drain(ob)[0]
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.Message.Fields[0].Value = wire.Int(8)
		e.Message.InstanceAddress = "10.0.0.9:80"
	}()
	in, _ := m.Tracker().Get(Key{Service: "geo", Instance: "a"})
	<-done
	hb := in.Heartbeat()
	if v, _ := hb.Field("queue_size"); hb.ServiceName != "geo" || hb.InstanceID != "a" || v.Int != 7 || hb.InstanceAddress != "" {
		t.Errorf("kept heartbeat %+v after its event's message changed", hb)
	}
}

// At a million instances each heartbeat's share of the default budget is
// 134 bytes: the original design's heartbeat, its three service fields
// included, is kept whole in it.
func TestTheOriginalHeartbeatIsKeptWholeAtAMillionsShare(t *testing.T) {
	const n = 1000
	tr := NewTracker(WithHeartbeats(), WithHeartbeatBudget(DefaultHeartbeatBytes, n*(DefaultHeartbeatBudget/1_000_000)))
	for i := range n {
		m := withInterval(beat("tracker_fetcher", fmt.Sprintf("a1b2c3d4-e5f6-7890-abcd-%012d", i), 42), time.Minute)
		m.UptimeSeconds, m.MemoryUsageMB, m.CPUUsagePercent = 3600.5, 45.2, 2.5
		m.Has |= wire.HasUptime | wire.HasMemory | wire.HasCPU
		m.Status = wire.StatusRunning
		m.Fields = []wire.Field{
			{Key: "queue_size", Value: wire.Int(int64(i))},
			{Key: "api_status", Value: wire.String("authenticated")},
			{Key: "last_successful_fetch", Value: wire.Time(t0.Add(-15 * time.Second))},
		}
		tr.Observe(m)
	}
	if tr.Cut() != 0 {
		t.Errorf("%d fields cut from heartbeats that fit their share", tr.Cut())
	}
	in, _ := tr.Get(Key{Service: "tracker_fetcher", Instance: fmt.Sprintf("a1b2c3d4-e5f6-7890-abcd-%012d", n-1)})
	if hb := in.Heartbeat(); len(hb.Fields) != 3 {
		t.Errorf("the last instance kept %d service fields of 3", len(hb.Fields))
	}
	if kept, budget := tr.KeptBytes(); kept > budget {
		t.Errorf("%d bytes kept, past the budget of %d", kept, budget)
	}
}

// What a heartbeat keeps past the budget is bounded too: a status other
// than the wire's two is cut short, an address longer than any publisher
// or decoder allows is left out, so heartbeats given to Observe by hand
// cannot grow the tracker past its budget with them.
func TestWhatIsKeptPastTheBudgetIsBounded(t *testing.T) {
	tr := NewTracker(WithHeartbeats(), WithHeartbeatBudget(100, 1000))
	for i := range 100 {
		m := beat("geo", fmt.Sprint(i), 1)
		m.Status = strings.Repeat("x", 10_000)
		m.InstanceAddress = "10.0.0.7:" + strings.Repeat("8", 10_000)
		tr.Observe(m)
	}
	if kept, _ := tr.KeptBytes(); kept > 1000+100*(25+maxKeptStatus) {
		t.Errorf("%d bytes kept past a budget of 1000 for 100 instances", kept)
	}
	in, _ := tr.Get(Key{Service: "geo", Instance: "7"})
	if hb := in.Heartbeat(); len(hb.Status) > maxKeptStatus || hb.InstanceAddress != "" {
		t.Errorf("kept a status of %d bytes and an address of %d", len(hb.Status), len(hb.InstanceAddress))
	}
}

// A value is judged by what its Kind names: an integer whose unused raw
// bytes are long is an integer, kept; and a long string of bytes that are
// not UTF-8 is cut at its length, not emptied looking for a character's
// start.
func TestAValueIsCutByWhatItsKindNames(t *testing.T) {
	tr := NewTracker(WithHeartbeats())
	m := beat("geo", "a", 1)
	m.Fields = []wire.Field{
		{Key: "n", Value: wire.Value{Kind: wire.KindInt, Int: 7, Raw: json.RawMessage(strings.Repeat("1", 300))}},
		{Key: "bytes", Value: wire.String(strings.Repeat("\x80", 1024))},
	}
	tr.Observe(m)
	in, _ := tr.Get(Key{Service: "geo", Instance: "a"})
	hb := in.Heartbeat()
	if v, ok := hb.Field("n"); !ok || v.Int != 7 {
		t.Errorf("the integer: %+v, kept %v", v, ok)
	}
	if v, _ := hb.Field("bytes"); len(v.Str) != MaxKeptString {
		t.Errorf("1,024 bytes that are not UTF-8 kept as %d bytes, want %d", len(v.Str), MaxKeptString)
	}
	if in.Cut != 1 {
		t.Errorf("cut %d, want 1 (the long string)", in.Cut)
	}
}
