package watch

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/internal/tools/loadgen/fleet"
)

// ingestInstances is the fleet size the ingest target is set for.
const ingestInstances = 100_000

// BenchmarkIngest measures how many heartbeats a second the monitor decodes
// and hands to its tracker, beside a bare go-redis PSUBSCRIBE loop that
// only counts them,
// in the same run against the same server, alternating the two. Each pass
// is two rounds of a 100,000-instance fleet (the first round fills the
// tracker). The server's pub/sub output buffer is unlimited, so each
// subscriber's own pace is what is measured.
func BenchmarkIngest(b *testing.B) {
	srv := redistest.Start(b, "--client-output-buffer-limit", "pubsub 0 0 0")
	pub := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 4})
	defer pub.Close()
	fl, err := fleet.New(fleet.Config{Services: 50, Instances: ingestInstances, Interval: time.Minute, Connections: 4, Batch: 1000})
	if err != nil {
		b.Fatal(err)
	}
	const rounds = 2
	want := rounds * fl.Len()
	var bare, mon, shown []float64
	var lost int64
	for b.Loop() {
		bare = append(bare, ingestBare(b, srv, pub, fl, rounds, want))
		rate, l := ingestMonitor(b, srv, pub, fl, rounds, want, false)
		mon = append(mon, rate)
		lost += l
		rate, l = ingestMonitor(b, srv, pub, fl, rounds, want, true)
		shown = append(shown, rate)
		lost += l
	}
	mb, mm := median(bare), median(mon)
	b.ReportMetric(mb, "bare-msgs/s")
	b.ReportMetric(mm, "monitor-msgs/s")
	b.ReportMetric(mm/mb, "monitor/bare")
	// The same with every heartbeat handed to a renderer that takes it,
	// as the admin panel's: what the hand-off costs the reader.
	b.ReportMetric(median(shown), "monitor-with-events-msgs/s")
	b.ReportMetric(float64(lost), "lost")
	if lost > 0 {
		b.Errorf("the tracker missed %d heartbeats the subscription delivered", lost)
	}
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// publish sends rounds of the fleet, encoded beforehand so that the
// publisher's own cost stays small beside the subscriber's.
func publish(b *testing.B, pub *redis.Client, fl *fleet.Fleet, rounds int) {
	var all []fleet.Prepared
	for i := 0; i < rounds; i++ {
		msgs, err := fl.Prepare()
		if err != nil {
			b.Fatal(err)
		}
		all = append(all, msgs...)
	}
	if err := fl.PublishPrepared(context.Background(), pub, all); err != nil {
		b.Fatal(err)
	}
}

func ingestBare(b *testing.B, srv *redistest.Server, pub *redis.Client, fl *fleet.Fleet, rounds, want int) float64 {
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	ctx := context.Background()
	ps := c.PSubscribe(ctx, "heartbeat:service:*")
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		b.Fatal(err)
	}
	done := make(chan time.Duration, 1)
	go func() {
		n := 0
		var start time.Time
		for {
			msg, err := ps.Receive(ctx)
			if err != nil {
				done <- 0
				return
			}
			if _, ok := msg.(*redis.Message); ok {
				if n == 0 {
					start = time.Now()
				}
				n++
				if n == want {
					done <- time.Since(start)
					return
				}
			}
		}
	}()
	publish(b, pub, fl, rounds)
	took := <-done
	if took == 0 {
		b.Fatal("bare subscriber failed")
	}
	return float64(want-1) / took.Seconds()
}

func ingestMonitor(b *testing.B, srv *redistest.Server, pub *redis.Client, fl *fleet.Fleet, rounds, want int, events bool) (float64, int64) {
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	opts := []Option{WithTracker(WithMaxInstances(2 * ingestInstances)), WithoutLatestState()}
	if !events {
		opts = append(opts, WithoutHeartbeatEvents())
	}
	m, err := New(Connection{Client: c}, opts...)
	if err != nil {
		b.Fatal(err)
	}
	// Counted where the reader hands each heartbeat to the tracker: that
	// is the ingest rate, whatever a renderer would make of it.
	var start time.Time
	var tracked int
	done := make(chan time.Duration, 1)
	m.afterIngest = func() {
		if tracked == 0 {
			start = time.Now()
		}
		if tracked++; tracked == want {
			done <- time.Since(start)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		_ = m.Run(ctx, func(e Event) {
			if e.Kind == KindLoaded {
				close(ready)
			}
		})
	}()
	defer func() { cancel(); <-ran }()
	<-ready
	publish(b, pub, fl, rounds)
	took := <-done
	if n := m.Tracker().Len(); n != fl.Len() {
		b.Fatalf("tracked %d instances of %d", n, fl.Len())
	}
	var lost int64
	for _, in := range m.Tracker().Snapshot() {
		lost += in.Lost
	}
	return float64(want-1) / took.Seconds(), lost
}

// BenchmarkDecodeAndTrack is the monitor's own cost per heartbeat at
// 100,000 instances, in memory: decode, check the channel and hand it to
// the tracker, as the reader does for every frame. Its rate beside the
// bare subscription's drain rate in BenchmarkIngest says whether the
// tracker can keep up with what a subscription delivers.
func BenchmarkDecodeAndTrack(b *testing.B) {
	fl, err := fleet.New(fleet.Config{Services: 50, Instances: ingestInstances, Interval: time.Minute, Connections: 1, Batch: 1})
	if err != nil {
		b.Fatal(err)
	}
	msgs, err := fl.Prepare()
	if err != nil {
		b.Fatal(err)
	}
	// The client is never dialled: ingest needs no connection.
	client := redis.NewClient(&redis.Options{})
	defer client.Close()
	m, err := New(Connection{Client: client}, WithTracker(WithMaxInstances(2*ingestInstances)), WithoutHeartbeatEvents())
	if err != nil {
		b.Fatal(err)
	}
	ds := newDecodeState()
	ctx := context.Background()
	ob := m.newOutbox(newPipe(len(msgs) + 1))
	for _, p := range msgs { // the first round fills the tracker
		m.ingest(ctx, ob, m.decode(ds, []byte(p.Channel), p.Payload, time.Now()))
	}
	b.ReportAllocs()
	i := 0
	start := time.Now()
	for b.Loop() {
		p := msgs[i%len(msgs)]
		m.ingest(ctx, ob, m.decode(ds, []byte(p.Channel), p.Payload, time.Now()))
		i++
	}
	b.ReportMetric(float64(i)/time.Since(start).Seconds(), "msgs/s")
	if s := m.Stats(); s.Malformed > 0 {
		b.Fatalf("%d malformed", s.Malformed)
	}
}
