package history

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
)

// BenchmarkBytesPerInstanceDay writes a day of history for 1,000
// instances and reports what it holds in Valkey (MEMORY USAGE of every
// history key) per instance: "quiet" instances run all day (one entry,
// their appearance, and their recorded state), "churning" ones restart
// once a day (stopped, forgotten, a successor appears) and lose
// heartbeats twice.
func BenchmarkBytesPerInstanceDay(b *testing.B) {
	const instances = 1000
	for _, churn := range []bool{false, true} {
		name := "quiet"
		if churn {
			name = "churning"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				srv := redistest.Start(b)
				c := srv.Client(b)
				s, err := NewStore(c)
				if err != nil {
					b.Fatal(err)
				}
				day := time.Now().Add(-24 * time.Hour)
				var recs []Record
				for i := 0; i < instances; i++ {
					svc := fmt.Sprintf("service_%02d", i%20)
					id := fmt.Sprintf("%08x-e5f6-7890-abcd-ef1234567890", i)
					at := day.Add(time.Duration(i) * time.Second)
					recs = append(recs, Record{Service: svc, Instance: id, To: watch.Alive, At: at, Count: 1})
					if churn {
						next := fmt.Sprintf("%08x-0000-4000-8000-000000000000", i)
						recs = append(recs,
							Record{Service: svc, Instance: id, Event: LostHeartbeats, At: at.Add(time.Hour), Count: 60, Lost: 1},
							Record{Service: svc, Instance: id, Event: LostHeartbeats, At: at.Add(2 * time.Hour), Count: 120, Lost: 2},
							Record{Service: svc, Instance: id, To: watch.Stopped, At: at.Add(12 * time.Hour), Count: 720},
							Record{Service: svc, Instance: next, To: watch.Alive, At: at.Add(12*time.Hour + time.Second), Count: 1},
							Record{Service: svc, Instance: id, Event: Forgotten, At: at.Add(13 * time.Hour)})
					}
				}
				if _, err := s.Apply(ctx, 1, recs); err != nil {
					b.Fatal(err)
				}
				keys, err := c.Keys(ctx, DefaultPrefix+"*").Result()
				if err != nil {
					b.Fatal(err)
				}
				var bytes int64
				for _, k := range keys {
					if strings.HasSuffix(k, "lease") || strings.HasSuffix(k, "epoch") || strings.HasSuffix(k, "watched") {
						continue
					}
					n, err := c.MemoryUsage(ctx, k, 0).Result()
					if err != nil {
						b.Fatal(err)
					}
					bytes += n
				}
				b.ReportMetric(float64(bytes)/instances, "B/instance-day")
				b.ReportMetric(float64(len(recs))/instances, "writes/instance-day")
			}
		})
	}
}
