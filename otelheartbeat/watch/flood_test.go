package watch

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// floodIDs is how many distinct instance ids BenchmarkIDFlood sends: twice
// the default bound, so that half of them are evicted.
const floodIDs = 2_000_000

// The documented cap on the heap a Monitor's tracker keeps: at most
// capPerInstance bytes per tracked instance (BenchmarkMemoryPerInstance
// measures about 400) plus capOverhead for what does not grow with the
// fleet (the decoder's interned strings, channel names, the monitor).
const (
	capPerInstance = 512
	capOverhead    = 16 << 20
)

// floodServices are the few services a flood of made-up ids claims to be.
var floodServices = []string{"checkout", "payments", "tracker_fetcher", "search_indexer", "notifications", "ledger", "auth", "media_resizer"}

// floodID writes a UUID-like instance id for i into id (36 bytes): each i
// gives a distinct id, spread over the whole key space as random ids are.
func floodID(id []byte, i uint64) []byte {
	const hex = "0123456789abcdef"
	x := i*0x9e3779b97f4a7c15 ^ 0x5851f42d4c957f2d // distinct for distinct i
	y := i ^ 0xd6e8feb86659fd93
	id = id[:0]
	for n := 0; n < 32; n++ {
		if n == 8 || n == 12 || n == 16 || n == 20 {
			id = append(id, '-')
		}
		v := x
		if n >= 16 {
			v = y
		}
		id = append(id, hex[(v>>(60-4*(n%16)))&0xf])
	}
	return id
}

// BenchmarkIDFlood sends 2,000,000 heartbeats with distinct instance ids
// (36-byte UUID-like ids, eight services, service fields with strings
// that vary) through the monitor's decode and ingest, in memory, with the
// tracker at its default bound (DefaultMaxInstances). It samples the live
// heap after a collection as the flood goes on and fails if its peak
// exceeds the documented cap (capPerInstance per tracked instance plus
// capOverhead), if the tracker does not hold exactly the bound at the end,
// or if the evictions are not exactly the ids past it.
func BenchmarkIDFlood(b *testing.B) {
	bound := DefaultMaxInstances
	client := redis.NewClient(&redis.Options{}) // never dialled: ingest needs no connection
	defer client.Close()
	for b.Loop() {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapAlloc

		m, err := New(Connection{Client: client}, WithoutHeartbeatEvents())
		if err != nil {
			b.Fatal(err)
		}
		// With NoHeartbeats, ingest emits only transitions: one (unknown to
		// alive) per new instance. They are drained as a renderer would.
		p := newPipe(DefaultQueue)
		ob := m.newOutbox(p)
		drained := make(chan int)
		go func() {
			n := 0
			for b := range p.out {
				for _, e := range b {
					if e.Kind == KindTransition {
						n++
					}
				}
				m.release(p, b, 0)
			}
			drained <- n
		}()

		ds := newDecodeState()
		ctx := context.Background()
		var payload, channel, id []byte
		msg := &wire.Message{
			Status: wire.StatusRunning, IntervalSeconds: 30, MemoryUsageMB: 156.3,
			Has:    wire.HasUptime | wire.HasHeartbeatCount | wire.HasMemory | wire.HasCPU | wire.HasInterval,
			Fields: make([]wire.Field, 3),
		}
		var peak uint64
		var sampling time.Duration // not part of the ingest rate
		sample := func() {
			defer func(t time.Time) { sampling += time.Since(t) }(time.Now())
			runtime.GC()
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > base {
				peak = max(peak, ms.HeapAlloc-base)
			}
		}
		start := time.Now()
		for i := 0; i < floodIDs; i++ {
			svc := floodServices[i%len(floodServices)]
			id = floodID(id, uint64(i))
			msg.ServiceName, msg.InstanceID = svc, string(id)
			msg.Timestamp = start
			msg.UptimeSeconds, msg.HeartbeatCount, msg.CPUUsagePercent = float64(i%86400), int64(i%1000+1), float64(i%100)
			msg.Fields[0] = wire.Field{Key: "queue_size", Value: wire.Int(int64(i % 2000))}
			msg.Fields[1] = wire.Field{Key: "last_job", Value: wire.String("job-" + strconv.Itoa(i))}
			msg.Fields[2] = wire.Field{Key: "region", Value: wire.String(floodServices[i%3])}
			if payload, err = wire.AppendJSON(payload[:0], msg); err != nil {
				b.Fatal(err)
			}
			channel = append(append(channel[:0], wire.DefaultChannelPrefix...), svc...)
			m.ingest(ctx, ob, m.decode(ds, channel, payload, time.Now()))
			if (i+1)%(floodIDs/8) == 0 {
				sample()
			}
		}
		ob.flush(ctx)
		took := time.Since(start) - sampling
		close(p.out)
		transitions := <-drained
		s := m.Stats()
		tracked := m.Tracker().Len()

		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
		b.ReportMetric(float64(peak)/float64(tracked), "heap-B/instance")
		b.ReportMetric(float64(tracked), "tracked")
		b.ReportMetric(float64(s.Evicted), "evicted")
		b.ReportMetric(floodIDs/took.Seconds(), "msgs/s")

		if s.Malformed > 0 {
			b.Fatalf("%d malformed", s.Malformed)
		}
		if tracked != bound {
			b.Fatalf("tracked %d instances after the flood, want the bound %d", tracked, bound)
		}
		if s.Evicted != floodIDs-int64(bound) {
			b.Fatalf("evicted %d, want %d", s.Evicted, floodIDs-bound)
		}
		if transitions != floodIDs {
			b.Fatalf("%d transitions, want one for each of the %d ids", transitions, floodIDs)
		}
		if cap := uint64(bound*capPerInstance + capOverhead); peak > cap {
			b.Fatalf("peak live heap %d B (%.0f B per instance) exceeds the documented cap of %d B (%d B per instance + %d MiB)",
				peak, float64(peak)/float64(bound), cap, capPerInstance, capOverhead>>20)
		}
		runtime.KeepAlive(m)
	}
}

// fatHeartbeat is a heartbeat of about 60 KB: 58 service fields of
// 1,000-byte strings, within what the decoder accepts.
func fatHeartbeat(b *testing.B, service string, id []byte, count int64) []byte {
	msg := &wire.Message{ServiceName: service, InstanceID: string(id), Timestamp: time.Now(), HeartbeatCount: count,
		IntervalSeconds: 60, Status: wire.StatusRunning, Has: wire.HasHeartbeatCount | wire.HasInterval}
	filler := strings.Repeat("x", 1000)
	for i := range 58 {
		msg.Fields = append(msg.Fields, wire.Field{Key: fmt.Sprintf("field_%02d", i), Value: wire.String(filler)})
	}
	raw, err := wire.Marshal(msg)
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// BenchmarkFatHeartbeatFlood sends heartbeats of about 60 KB under 10,000
// distinct instance ids, twice the bound it gives the tracker,
// through the monitor's decode and ingest with the tracker keeping
// heartbeats (WithHeartbeats, as the admin panel and service discovery
// do), while the renderer takes nothing until the end. The memory the
// monitor keeps must not follow the heartbeats' size: it samples the live
// heap and fails if its peak exceeds the stated cap, capPerInstance per
// tracked instance, DefaultHeartbeatBytes of kept heartbeat each, the
// event queue's DefaultQueueBytes and capOverhead. Before the bound, the
// tracker kept every heartbeat whole (about 70 KB each, 700 MB here) and
// the queue ten thousand of them (700 MB more).
func BenchmarkFatHeartbeatFlood(b *testing.B) {
	const bound, ids = 5_000, 10_000
	client := redis.NewClient(&redis.Options{}) // never dialled: ingest needs no connection
	defer client.Close()
	payloads := make([][]byte, ids)
	var id []byte
	for i := range payloads {
		id = floodID(id, uint64(i))
		payloads[i] = fatHeartbeat(b, "fat", id, 1)
	}
	for b.Loop() {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapAlloc
		m, err := New(Connection{Client: client}, WithTracker(WithHeartbeats(), WithMaxInstances(bound)))
		if err != nil {
			b.Fatal(err)
		}
		// A renderer that takes nothing until the end, with room for the
		// verdicts (which wait for it) but not for the heartbeats' bytes.
		p := newPipe(2 * ids)
		ob := m.newOutbox(p)
		ds := newDecodeState()
		ctx := context.Background()
		channel := []byte(wire.DefaultChannelPrefix + "fat")
		var peak uint64
		for i, p := range payloads {
			m.ingest(ctx, ob, m.decode(ds, channel, p, time.Now()))
			if (i+1)%(ids/8) == 0 {
				runtime.GC()
				runtime.ReadMemStats(&ms)
				if ms.HeapAlloc > base {
					peak = max(peak, ms.HeapAlloc-base)
				}
			}
		}
		kept, _ := m.Tracker().KeptBytes()
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
		b.ReportMetric(float64(kept)/float64(m.Tracker().Len()), "kept-B/instance")
		b.ReportMetric(float64(m.Stats().Dropped), "not-shown")
		b.ReportMetric(float64(m.Tracker().Cut()), "fields-cut")
		if m.Stats().Malformed > 0 {
			b.Fatalf("%d malformed", m.Stats().Malformed)
		}
		if m.Tracker().Len() != bound {
			b.Fatalf("tracked %d, want the bound %d", m.Tracker().Len(), bound)
		}
		if cap := uint64(bound*(capPerInstance+DefaultHeartbeatBytes) + DefaultQueueBytes + capOverhead); peak > cap {
			b.Fatalf("peak live heap %d B exceeds the stated cap of %d B (%d B and %d B of kept heartbeat per instance, %d MiB of queue, %d MiB)",
				peak, cap, capPerInstance, DefaultHeartbeatBytes, DefaultQueueBytes>>20, capOverhead>>20)
		}
		runtime.KeepAlive(p)
	}
}

// BenchmarkLoadFatLatestKeys has a monitor keeping heartbeats
// (WithHeartbeats) read 3,000 latest-state keys of about 60 KB each (180 MB
// in Valkey) at start, from a real redis-server, and samples its live heap
// meanwhile, after a collection: read a batch at a time into the tracker, which keeps 4 KiB of
// each, it stays under the stated cap (what the tracker keeps, a batch of
// 100 keys read and decoded, and 16 MiB), where reading them all at once
// held every one of them, decoded (about 250 MB here).
func BenchmarkLoadFatLatestKeys(b *testing.B) {
	const keys = 3_000
	srv := redistest.Start(b)
	c := srv.Client(b)
	ctx := context.Background()
	pipe := c.Pipeline()
	var id []byte
	for i := range keys {
		id = floodID(id, uint64(i))
		pipe.Set(ctx, wire.Key(wire.DefaultKeyPrefix, "fat", string(id)), fatHeartbeat(b, "fat", id, 1), 3*time.Minute)
		if pipe.Len() == 100 {
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		m, err := New(Connection{Client: c}, WithTracker(WithHeartbeats()))
		if err != nil {
			b.Fatal(err)
		}
		var n int
		peak := peakHeap(func() { n = m.loadLatest(ctx, func(Event) {}) })
		if n != keys {
			b.Fatalf("loaded %d instances, want %d", n, keys)
		}
		// The baseline, in the same run: every key read at once, as
		// ReadLatest returns them.
		var all []Latest
		whole := peakHeap(func() { all, _ = ReadLatest(ctx, c, wire.DefaultKeyPrefix, "") })
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
		b.ReportMetric(float64(whole)/(1<<20), "all-at-once-peak-heap-MiB")
		if cap := uint64(keys*DefaultHeartbeatBytes + readBatch*2*wire.MaxMessageSize + capOverhead); peak > cap {
			b.Fatalf("peak heap %d B while loading, more than the stated cap of %d B (what is kept, a batch, %d MiB)", peak, cap, capOverhead>>20)
		}
		runtime.KeepAlive(m)
		runtime.KeepAlive(all)
	}
}

// peakHeap runs f and returns the most live heap it added, sampled after a
// collection every 20 ms meanwhile.
func peakHeap(f func()) uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				runtime.GC() // the live heap, not what awaits collection
				runtime.ReadMemStats(&ms)
				if ms.HeapAlloc > base && ms.HeapAlloc-base > peak.Load() {
					peak.Store(ms.HeapAlloc - base)
				}
			}
		}
	}()
	f()
	close(stop)
	<-sampled
	return peak.Load()
}
