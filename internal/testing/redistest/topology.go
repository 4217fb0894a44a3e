package redistest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// topologyTimeout bounds how long a cluster or sentinel set-up may take.
const topologyTimeout = 30 * time.Second

// Cluster is a Redis Cluster of primaries on loopback, torn down with the
// test.
type Cluster struct {
	Nodes []*Server
	// Slots[i] is the first slot of Nodes[i]; it owns up to the next one.
	Slots []int
}

// StartCluster starts n primaries with cluster mode on, gives each an equal
// range of the 16384 slots, introduces them, and returns when every node
// says the cluster is ok.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{}
	buses := make([]int, n)
	for i := 0; i < n; i++ {
		bus, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		buses[i] = bus
		c.Nodes = append(c.Nodes, Start(t,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(bus),
			"--cluster-node-timeout", "2000",
		))
	}
	var ok []<-chan struct{}
	for _, node := range c.Nodes {
		ok = append(ok, node.Expect("Cluster state changed: ok"))
	}
	for i, node := range c.Nodes {
		first, last := i*16384/n, (i+1)*16384/n-1
		c.Slots = append(c.Slots, first)
		node.Do(t, "CLUSTER", "ADDSLOTSRANGE", first, last)
		if i > 0 {
			c.Nodes[0].Do(t, "CLUSTER", "MEET", "127.0.0.1", node.Port(), buses[i])
		}
	}
	deadline := time.After(topologyTimeout)
	for i, ch := range ok {
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("redistest: node %d of the cluster did not reach state ok in %v", i, topologyTimeout)
		}
	}
	c.waitForMesh(t)
	return c
}

// waitForMesh returns when every node has a live cluster-bus link to every
// other. "State ok" comes first: the nodes the first one met learn of each
// other by gossip a moment later, and until then a global PUBLISH may not
// reach all of them. No log line says so, so this asks CLUSTER NODES.
func (c *Cluster) waitForMesh(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(topologyTimeout)
	for _, n := range c.Nodes {
		for {
			nodes, _ := n.Do(t, "CLUSTER", "NODES").(string)
			lines := strings.Split(strings.TrimSpace(nodes), "\n")
			meshed := len(lines) == len(c.Nodes)
			for _, l := range lines {
				if !strings.Contains(l, " connected") || strings.Contains(l, "handshake") || strings.Contains(l, "noaddr") {
					meshed = false
				}
			}
			if meshed {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redistest: the cluster bus is not a full mesh after %v:\n%s", topologyTimeout, nodes)
			}
			time.Sleep(20 * time.Millisecond) // gossip has no event to wait on from outside
		}
	}
}

// Addrs returns every node's address.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.Addr())
	}
	return out
}

// Owner returns the node that owns slot.
func (c *Cluster) Owner(slot int) *Server {
	owner := c.Nodes[0]
	for i, first := range c.Slots {
		if slot >= first {
			owner = c.Nodes[i]
		}
	}
	return owner
}

// Client returns a cluster client, closed with the test.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: c.Addrs(), MaxRetries: 3, ContextTimeoutEnabled: true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// Sentinel is a primary, a replica and one sentinel watching them.
type Sentinel struct {
	Primary, Replica, Sentinel *Server
	Master                     string
}

// StartSentinel starts a primary, a replica of it and a sentinel with a
// quorum of one that fails over after half a second of silence.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	primary := Start(t)
	replica := Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(primary.Port()))
	synced := replica.Expect("MASTER <-> REPLICA sync: Finished with success")
	select {
	case <-synced:
	case <-time.After(topologyTimeout):
		// It may have synced before we looked; ask.
		if role, _ := replica.Do(t, "ROLE").([]any); len(role) < 4 || role[3] != "connected" {
			t.Fatalf("redistest: the replica did not sync in %v", topologyTimeout)
		}
	}
	const master = "heartbeat-primary"
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	cfg := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 1\nsentinel down-after-milliseconds %s 500\nsentinel failover-timeout %s 5000\n",
		master, primary.Port(), master, master)
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, bin: bin, dir: dir, config: conf, ready: "+monitor master"}
	for attempt := 0; ; attempt++ {
		if s.port, err = FreePort(); err != nil {
			t.Fatal(err)
		}
		if err = s.start(); err == nil {
			break
		}
		if attempt == 3 {
			t.Fatalf("redistest: sentinel: %v", err)
		}
	}
	t.Cleanup(s.stop)
	return &Sentinel{Primary: primary, Replica: replica, Sentinel: s, Master: master}
}

// AddReplica starts a node that replicates Nodes[primary] and returns once
// it has synchronised, so that the cluster can fail over to it.
func (c *Cluster) AddReplica(t testing.TB, primary int) *Server {
	t.Helper()
	bus, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	r := Start(t,
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf",
		"--cluster-port", strconv.Itoa(bus),
		"--cluster-node-timeout", "2000",
	)
	synced := r.Expect("MASTER <-> REPLICA sync: Finished with success")
	p := c.Nodes[primary]
	p.Do(t, "CLUSTER", "MEET", "127.0.0.1", r.Port(), bus)
	id := p.Do(t, "CLUSTER", "MYID")
	// The new node must learn the primary's id by gossip before it can
	// replicate it; until then CLUSTER REPLICATE says it does not know it.
	deadline := time.Now().Add(topologyTimeout)
	for {
		c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
		err := c.Do(context.Background(), "CLUSTER", "REPLICATE", id).Err()
		c.Close()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: CLUSTER REPLICATE: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // gossip has no event to wait on from outside
	}
	select {
	case <-synced:
	case <-time.After(topologyTimeout):
		t.Fatal("redistest: the cluster replica did not sync")
	}
	return r
}
