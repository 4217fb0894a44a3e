package monitor

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/internal/liveness"
	"github.com/otel-heartbeat/heartbeat/internal/loadgen"
	"github.com/otel-heartbeat/heartbeat/internal/redistest"
)

// ingestInstances is the fleet size the ingest target is set for.
const ingestInstances = 100_000

// BenchmarkIngest measures how many heartbeats a second the monitor decodes
// and tracks, beside a bare go-redis PSUBSCRIBE loop that only counts them,
// in the same run against the same server, alternating the two. Each pass
// is two rounds of a 100,000-instance fleet (the first round fills the
// tracker). The server's pub/sub output buffer is unlimited, so each
// subscriber's own pace is what is measured.
func BenchmarkIngest(b *testing.B) {
	srv := redistest.Start(b, "--client-output-buffer-limit", "pubsub 0 0 0")
	pub := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 4})
	defer pub.Close()
	fleet, err := loadgen.New(loadgen.Config{Services: 50, Instances: ingestInstances, Interval: time.Minute, Connections: 4, Batch: 1000})
	if err != nil {
		b.Fatal(err)
	}
	const rounds = 2
	want := rounds * fleet.Len()
	var bare, mon []float64
	var dropped int64
	for b.Loop() {
		bare = append(bare, ingestBare(b, srv, pub, fleet, rounds, want))
		rate, d := ingestMonitor(b, srv, pub, fleet, rounds, want)
		mon = append(mon, rate)
		dropped += d
	}
	mb, mm := median(bare), median(mon)
	b.ReportMetric(mb, "bare-msgs/s")
	b.ReportMetric(mm, "monitor-msgs/s")
	b.ReportMetric(mm/mb, "monitor/bare")
	b.ReportMetric(float64(dropped), "dropped")
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// publish sends rounds of the fleet, encoded beforehand so that the
// publisher's own cost stays small beside the subscriber's.
func publish(b *testing.B, pub *redis.Client, fleet *loadgen.Fleet, rounds int) {
	var all []loadgen.Prepared
	for i := 0; i < rounds; i++ {
		msgs, err := fleet.Prepare()
		if err != nil {
			b.Fatal(err)
		}
		all = append(all, msgs...)
	}
	if err := fleet.PublishPrepared(context.Background(), pub, all); err != nil {
		b.Fatal(err)
	}
}

func ingestBare(b *testing.B, srv *redistest.Server, pub *redis.Client, fleet *loadgen.Fleet, rounds, want int) float64 {
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
	publish(b, pub, fleet, rounds)
	took := <-done
	if took == 0 {
		b.Fatal("bare subscriber failed")
	}
	return float64(want-1) / took.Seconds()
}

func ingestMonitor(b *testing.B, srv *redistest.Server, pub *redis.Client, fleet *loadgen.Fleet, rounds, want int) (float64, int64) {
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	m, err := New(Config{Client: c, SkipLatest: true, Queue: 10_000,
		Tracker: []liveness.Option{liveness.WithMaxInstances(2 * ingestInstances)}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{})
	done := make(chan time.Duration, 1)
	var dropped, handled int64
	go func() {
		var start time.Time
		finished := false
		_ = m.Run(ctx, func(e Event) {
			switch e.Kind {
			case KindLoaded:
				close(ready)
			case KindDropped:
				dropped += int64(e.Count)
			case KindHeartbeat:
				if handled == 0 {
					start = time.Now()
				}
				handled++
			}
			if !finished && handled+dropped >= int64(want) {
				finished = true
				done <- time.Since(start)
			}
		})
	}()
	<-ready
	publish(b, pub, fleet, rounds)
	took := <-done
	cancel()
	if m.Tracker().Len() != fleet.Len() && dropped == 0 {
		b.Fatalf("tracked %d instances of %d", m.Tracker().Len(), fleet.Len())
	}
	// Only what was decoded and tracked counts.
	return float64(handled-1) / took.Seconds(), dropped
}
