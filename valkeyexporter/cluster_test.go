package valkeyexporter

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// On a 3-primary cluster, configured by the same variables as a single
// node, heartbeats reach a subscriber on any node and every latest-state
// key is on the node that owns its slot.
func TestClusterPublishesEverywhereAndKeysLandOnTheirSlots(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	env := map[string]string{
		"OTEL_EXPORTER_VALKEY_ENDPOINT": "redis://" + c.Nodes[0].Addr(), // one seed is enough
		"OTEL_EXPORTER_VALKEY_CLUSTER":  "true",
	}
	exp, err := New(withEnv(func(k string) string { return env[k] }))
	must(t, err)
	defer exp.Shutdown(context.Background())
	if !strings.Contains(exp.Endpoint(), c.Nodes[0].Addr()) {
		t.Errorf("endpoint %s", exp.Endpoint())
	}
	// A subscriber on the last node, which the exporter was never told of.
	msgs := c.Nodes[2].PSubscribe(t, "heartbeat:service:*").Channel()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const services = 12
	owners := map[int]bool{}
	for i := 0; i < services; i++ {
		name := fmt.Sprintf("service_%02d", i)
		rm := &metricdata.ResourceMetrics{Resource: resource.NewSchemaless(
			attribute.String("service.name", name), attribute.String("service.instance.id", testInstance)),
			ScopeMetrics: []metricdata.ScopeMetrics{{Scope: instrumentation.Scope{Name: ScopeName}}}}
		must(t, exp.Export(ctx, rm))
		select {
		case m := <-msgs:
			hb, err := wire.Unmarshal([]byte(m.Payload))
			must(t, err)
			if hb.ServiceName != name || m.Channel != "heartbeat:service:"+name {
				t.Errorf("got %s on %s, want %s", hb.ServiceName, m.Channel, name)
			}
		case <-ctx.Done():
			t.Fatalf("%s's heartbeat did not reach a subscriber on another node", name)
		}
		key := wire.Key(wire.DefaultKeyPrefix, name, testInstance)
		slot, err := c.Nodes[0].Client(t).ClusterKeySlot(ctx, key).Result()
		must(t, err)
		owner := c.Owner(int(slot))
		got, err := owner.Client(t).Get(ctx, key).Result()
		if err != nil || !strings.Contains(got, `"service_name":"`+name+`"`) {
			t.Errorf("%s on the node owning slot %d: %q, %v", key, slot, got, err)
		}
		owners[owner.Port()] = true
	}
	if len(owners) != 3 {
		t.Errorf("keys landed on %d of 3 primaries; pick more services", len(owners))
	}
}

// In sharded mode the exporter SPUBLISHes on the same channel names, which
// reach a shard subscriber on the channel's owner only, and registers the
// service for monitors to find.
func TestShardedPubSubOnACluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	exp, err := New(WithClient(c.Client(t)), WithShardedPubSub(), withEnv(func(string) string { return "" }))
	must(t, err)
	defer exp.Shutdown(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 6; i++ {
		name := fmt.Sprintf("service_%02d", i)
		channel := "heartbeat:service:" + name
		slot, err := c.Nodes[0].Client(t).ClusterKeySlot(ctx, channel).Result()
		must(t, err)
		ss := c.Owner(int(slot)).Client(t).SSubscribe(ctx, channel)
		if _, err := ss.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		must(t, exp.Export(ctx, &metricdata.ResourceMetrics{Resource: resource.NewSchemaless(
			attribute.String("service.name", name), attribute.String("service.instance.id", testInstance)),
			ScopeMetrics: []metricdata.ScopeMetrics{{Scope: instrumentation.Scope{Name: ScopeName}}}}))
		msg, err := ss.ReceiveMessage(ctx)
		must(t, err)
		if hb, err := wire.Unmarshal([]byte(msg.Payload)); err != nil || hb.ServiceName != name {
			t.Errorf("%s: %v %v", name, hb, err)
		}
		_ = ss.Close()
	}
	members, err := c.Client(t).SMembers(ctx, wire.DefaultRegistryKey).Result()
	must(t, err)
	if len(members) != 6 {
		t.Errorf("registry %v", members)
	}
}
