package fleet

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/internal/testing/leaktest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

// BenchmarkClusterPubSub compares global PUBLISH with sharded SPUBLISH on a
// local 3-primary cluster: heartbeats a second from publisher to
// subscriber, and the CPU all three servers spend per heartbeat. Global
// pub/sub is drained by one pattern subscriber, as a monitor does; sharded
// by one shard subscriber per channel on its owner. The two alternate.
func BenchmarkClusterPubSub(b *testing.B) {
	c := redistest.StartCluster(b, 3)
	cc := c.Client(b)
	fleet, err := New(Config{Services: 50, Instances: 20_000, Interval: time.Minute, Connections: 4, Batch: 500})
	if err != nil {
		b.Fatal(err)
	}
	var rate, cpu [2][]float64
	for b.Loop() {
		for mode := 0; mode < 2; mode++ {
			r, u := clusterPass(b, c, cc, fleet, mode == 1)
			rate[mode] = append(rate[mode], r)
			cpu[mode] = append(cpu[mode], u)
		}
	}
	b.ReportMetric(median(rate[0]), "publish-msgs/s")
	b.ReportMetric(median(rate[1]), "spublish-msgs/s")
	b.ReportMetric(median(cpu[0]), "publish-server-µs/heartbeat")
	b.ReportMetric(median(cpu[1]), "spublish-server-µs/heartbeat")
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// serverCPU sums used_cpu_sys and used_cpu_user over the nodes, in seconds.
func serverCPU(b *testing.B, c *redistest.Cluster) float64 {
	total := 0.0
	for _, n := range c.Nodes {
		info, ok := n.Do(b, "INFO", "cpu").(string)
		if !ok {
			b.Fatal("INFO cpu")
		}
		for _, line := range strings.Split(info, "\r\n") {
			k, v, _ := strings.Cut(line, ":")
			if k == "used_cpu_sys" || k == "used_cpu_user" {
				f, _ := strconv.ParseFloat(v, 64)
				total += f
			}
		}
	}
	return total
}

func clusterPass(b *testing.B, c *redistest.Cluster, cc *redis.ClusterClient, fleet *Fleet, sharded bool) (float64, float64) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	msgs, err := fleet.Prepare()
	if err != nil {
		b.Fatal(err)
	}
	var subs []*redis.PubSub
	defer func() {
		for _, s := range subs {
			_ = s.Close()
		}
	}()
	if sharded {
		byOwner := map[*redistest.Server]*redis.PubSub{}
		for _, ch := range fleet.Services() {
			slot, err := cc.ClusterKeySlot(ctx, ch).Result()
			if err != nil {
				b.Fatal(err)
			}
			owner := c.Owner(int(slot))
			ps := byOwner[owner]
			if ps == nil {
				ps = owner.Client(b).SSubscribe(ctx)
				byOwner[owner] = ps
				subs = append(subs, ps)
			}
			if err := ps.SSubscribe(ctx, ch); err != nil {
				b.Fatal(err)
			}
			if _, err := ps.Receive(ctx); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		subs = append(subs, c.Nodes[0].PSubscribe(b, "heartbeat:service:*"))
	}
	got := make(chan int, 1024)
	for _, ps := range subs {
		go func(ps *redis.PubSub) {
			for {
				msg, err := ps.Receive(ctx)
				if err != nil {
					return // closed at the end of the pass
				}
				if _, ok := msg.(*redis.Message); ok {
					got <- 1
				}
			}
		}(ps)
	}
	cpu0 := serverCPU(b, c)
	start := time.Now()
	if sharded {
		err = fleet.SPublishPrepared(ctx, cc, msgs)
	} else {
		err = fleet.PublishPrepared(ctx, cc, msgs)
	}
	if err != nil {
		b.Fatal(err)
	}
	for received := 0; received < len(msgs); {
		select {
		case n := <-got:
			received += n
		case <-ctx.Done():
			b.Fatalf("received %d of %d", received, len(msgs))
		}
	}
	took := time.Since(start)
	cpu := serverCPU(b, c) - cpu0
	return float64(len(msgs)) / took.Seconds(), cpu / float64(len(msgs)) * 1e6
}
