package watch

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
)

// The monitor on a cluster: it reads the latest-state keys from every
// primary at start, and its pattern subscription, on whichever node it
// reaches, receives every service's heartbeats.
func TestMonitorOnACluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	cc := c.Client(t)
	ctx := context.Background()
	const services = 30
	onNode := map[int]bool{}
	for i := 0; i < services; i++ {
		name := fmt.Sprintf("service_%02d", i)
		key := "heartbeat:instance:" + name + ":aaaa"
		if err := cc.Set(ctx, key, message(name, "aaaa", time.Minute, 1), 3*time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		slot, err := cc.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		onNode[c.Owner(int(slot)).Port()] = true
	}
	if len(onNode) != 3 {
		t.Fatalf("keys on %d of 3 primaries", len(onNode))
	}

	r := runMonitor(t, Connection{Client: cc})
	if loaded := r.waitFor(KindLoaded); loaded.Count != services {
		t.Errorf("read %d latest-state keys across the cluster, want %d", loaded.Count, services)
	}
	// Published through each node in turn.
	for i, node := range c.Nodes {
		name := fmt.Sprintf("service_%02d", i)
		node.Client(t).Publish(ctx, "heartbeat:service:"+name, message(name, "aaaa", time.Minute, 2))
		if hb := r.waitFor(KindHeartbeat); hb.Message.ServiceName != name {
			t.Errorf("got %s, want %s", hb.Message.ServiceName, name)
		}
	}
}

func TestMonitorBehindSentinel(t *testing.T) {
	s := redistest.StartSentinel(t)
	fc := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: s.Master, SentinelAddrs: []string{s.Sentinel.Addr()}})
	defer fc.Close()
	if _, ok := leanOptions(fc); ok {
		t.Fatal("the lean subscriber would dial a failover client's placeholder address")
	}
	r := runMonitor(t, Connection{Client: fc})
	r.waitFor(KindLoaded)
	s.Primary.Client(t).Publish(context.Background(), "heartbeat:service:svc", message("svc", "i", time.Minute, 1))
	if hb := r.waitFor(KindHeartbeat); hb.Message.ServiceName != "svc" {
		t.Errorf("got %+v", hb.Message)
	}
}
