package watch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
	"github.com/otel-heartbeat/heartbeat/valkeyexporter"
)

func TestKeySlotAgreesWithTheServer(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	n := c.Nodes[0].Client(t)
	for i, key := range []string{"", "a", "heartbeat:service:tracker_fetcher", "x{tag}y", "{}", "{", "a{b}{c}", "ü", fmt.Sprint("heartbeat:service:s", 99)} {
		want, err := n.ClusterKeySlot(context.Background(), key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got := KeySlot(key); got != int(want) {
			t.Errorf("%d: KeySlot(%q) = %d, the server says %d", i, key, got, want)
		}
	}
}

// shardedRun runs a sharded monitor on the cluster until the test ends.
func shardedRun(t *testing.T, c *redistest.Cluster) *running {
	return runMonitor(t, Connection{Client: c.Client(t), Sharded: true}, WithoutLatestState(), WithRegistryRefresh(100*time.Millisecond))
}

// runMonitor runs a monitor with cfg until the test ends.
func runMonitor(t *testing.T, conn Connection, opts ...Option) *running {
	t.Helper()
	m, err := New(conn, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return runWith(t, m)
}

// runWith runs m until the test ends.
func runWith(t *testing.T, m *Monitor) *running {
	t.Helper()
	return runRendering(t, m, nil)
}

// runStuckOnFirstHeartbeat runs m until the test ends with a renderer that
// stops at the first heartbeat until release is closed: one that cannot
// keep up.
func runStuckOnFirstHeartbeat(t *testing.T, m *Monitor, release <-chan struct{}) *running {
	t.Helper()
	blocked := false
	return runRendering(t, m, func(e Event) {
		if e.Kind == KindHeartbeat && !blocked {
			blocked = true
			<-release
		}
	})
}

// runRendering runs m until the test ends, calling render (when not nil)
// on each event before the test sees it.
func runRendering(t *testing.T, m *Monitor, render func(Event)) *running {
	t.Helper()
	events := make(chan Event, 100_000)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = m.Run(ctx, func(e Event) {
			if render != nil {
				render(e)
			}
			events <- e
		})
	}()
	stopped := false
	r := &running{t: t, m: m, events: events, stop: func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}}
	t.Cleanup(r.stop)
	return r
}

// publish registers a service and SPUBLISHes one heartbeat of it, as an
// exporter in sharded mode does.
func spublish(t *testing.T, cc *redis.ClusterClient, service string, count int64) {
	ctx := context.Background()
	if err := cc.SAdd(ctx, wire.DefaultRegistryKey, service).Err(); err != nil {
		t.Fatal(err)
	}
	if err := cc.SPublish(ctx, "heartbeat:service:"+service, message(service, "aaaa", time.Minute, count)).Err(); err != nil {
		t.Fatal(err)
	}
}

// The sharded monitor learns services from the registry as they appear and
// hears every one, whichever of the three primaries owns its channel.
func TestShardedMonitorHearsEveryShard(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	cc := c.Client(t)
	r := shardedRun(t, c)
	r.waitFor(KindLoaded)
	const services = 30
	owners := map[int]bool{}
	heard := map[string]bool{}
	for i := 0; i < services; i++ {
		name := fmt.Sprintf("service_%02d", i)
		owners[c.Owner(KeySlot("heartbeat:service:"+name)).Port()] = true
		// Publish until the monitor has picked the new service up.
		deadline := time.Now().Add(10 * time.Second)
		for count := int64(1); !heard[name]; count++ {
			if time.Now().After(deadline) {
				t.Fatalf("%s was never heard", name)
			}
			spublish(t, cc, name, count)
			select {
			case e := <-r.events:
				if e.Kind == KindHeartbeat {
					heard[e.Message.ServiceName] = true
				}
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	if len(owners) != 3 {
		t.Errorf("channels on %d of 3 primaries", len(owners))
	}
}

// A shard channel's slot moves to another primary: the server unsubscribes
// the monitor there, and the monitor resubscribes where the slot went.
func TestShardedMonitorFollowsASlotMigration(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	cc := c.Client(t)
	// A service whose channel's slot holds no key, so it can move at once.
	var name string
	var slot int
	for i := 0; ; i++ {
		name = fmt.Sprintf("mover_%d", i)
		slot = KeySlot("heartbeat:service:" + name)
		if slot != KeySlot(wire.DefaultRegistryKey) {
			break
		}
	}
	from := c.Owner(slot)
	var to *redistest.Server
	for _, n := range c.Nodes {
		if n != from {
			to = n
			break
		}
	}
	r := shardedRun(t, c)
	r.waitFor(KindLoaded)
	for count := int64(1); ; count++ {
		spublish(t, cc, name, count)
		select {
		case e := <-r.events:
			if e.Kind != KindHeartbeat {
				continue
			}
		case <-time.After(100 * time.Millisecond):
			continue
		}
		break
	}

	toID := to.Do(t, "CLUSTER", "MYID")
	to.Do(t, "CLUSTER", "SETSLOT", slot, "NODE", toID)
	from.Do(t, "CLUSTER", "SETSLOT", slot, "NODE", toID)
	for _, n := range c.Nodes {
		if n != from && n != to {
			n.Do(t, "CLUSTER", "SETSLOT", slot, "NODE", toID)
		}
	}
	if e := r.waitFor(KindDisconnected); !errors.Is(e.Err, errSlotMoved) {
		t.Errorf("disconnected by %v, want the slot move", e.Err)
	}
	r.waitFor(KindReconnected)
	deadline := time.Now().Add(10 * time.Second)
	for count := int64(100); ; count++ {
		if time.Now().After(deadline) {
			t.Fatal("no heartbeat heard after the slot moved")
		}
		spublish(t, cc, name, count)
		select {
		case e := <-r.events:
			if e.Kind == KindHeartbeat && e.Message.ServiceName == name {
				return
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// The primary owning a shard channel dies and the cluster promotes its
// replica: the monitor loses its connection, finds the new owner and hears
// the service again, published by the exporter in sharded mode, which
// finds the new owner too.
func TestShardedMonitorFollowsAFailover(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	name := "failover_svc"
	owner := 0
	for i, n := range c.Nodes {
		if n == c.Owner(KeySlot("heartbeat:service:"+name)) {
			owner = i
		}
	}
	replica := c.AddReplica(t, owner)
	exp, err := valkeyexporter.New(valkeyexporter.WithClient(c.Client(t)), valkeyexporter.WithShardedPubSub(),
		valkeyexporter.WithoutLatestState(), valkeyexporter.WithServiceName(name))
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Shutdown(context.Background())
	rm := &metricdata.ResourceMetrics{Resource: resource.NewSchemaless(attribute.String("service.instance.id", "aaaa")),
		ScopeMetrics: []metricdata.ScopeMetrics{{Scope: instrumentation.Scope{Name: valkeyexporter.ScopeName}}}}
	r := shardedRun(t, c)
	r.waitFor(KindLoaded)
	hear := func() {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			if time.Now().After(deadline) {
				t.Fatalf("%s not heard", name)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = exp.Export(ctx, rm) // fails while there is no primary
			cancel()
			select {
			case e := <-r.events:
				if e.Kind == KindHeartbeat && e.Message.ServiceName == name {
					return
				}
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	hear()
	promoted := replica.Expect("Failover election won")
	c.Nodes[owner].Kill()
	select {
	case <-promoted:
	case <-time.After(30 * time.Second):
		t.Fatal("the replica was not promoted")
	}
	r.waitFor(KindDisconnected)
	hear()
}

// A service new in the registry is added to the subscription that is
// already there: the other services' heartbeats go on arriving on the same
// connection, and none is lost.
func TestShardedMonitorAddsAServiceWithoutDisturbingTheOthers(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	c.SAdd(ctx, wire.DefaultRegistryKey, "steady")
	r := runMonitor(t, Connection{Client: srv.Client(t), Sharded: true}, WithoutLatestState(), WithRegistryRefresh(20*time.Millisecond))
	r.waitFor(KindLoaded)
	pubsubClients := func() string {
		var ids []string
		for _, line := range strings.Split(c.ClientList(ctx).Val(), "\n") {
			if strings.Contains(line, "cmd=ssubscribe") || strings.Contains(line, "ssub=") && !strings.Contains(line, "ssub=0") {
				ids = append(ids, strings.Fields(line)[0])
			}
		}
		return strings.Join(ids, ",")
	}
	steady := Key{Service: "steady", Instance: "aaaa"}
	spub := func(service string, count int64) {
		if err := c.SPublish(ctx, "heartbeat:service:"+service, message(service, "aaaa", time.Minute, count)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	spub("steady", 1)
	r.collectUntilCount(steady, 1)
	before := pubsubClients()
	if before == "" {
		t.Fatal("no sharded subscriber in CLIENT LIST")
	}
	c.SAdd(ctx, wire.DefaultRegistryKey, "newcomer")
	count := int64(1)
	deadline := time.After(10 * time.Second)
	for heard := false; !heard; {
		count++
		spub("steady", count)
		spub("newcomer", count)
		for more := true; more && !heard; {
			select {
			case e := <-r.events:
				heard = e.Kind == KindHeartbeat && e.Message.ServiceName == "newcomer"
				if e.Kind == KindDisconnected {
					t.Errorf("adding a service cost the subscription: %v", e.Err)
				}
			case <-deadline:
				t.Fatal("the new service was never heard")
			default:
				more = false
			}
		}
	}
	r.collectUntilCount(steady, count)
	if in, _ := r.m.Tracker().Get(steady); in.Lost != 0 {
		t.Errorf("%d heartbeats of the steady service lost while a service was added", in.Lost)
	}
	if after := pubsubClients(); after != before {
		t.Errorf("subscriber connections %s became %s: the subscription was rebuilt", before, after)
	}
}
