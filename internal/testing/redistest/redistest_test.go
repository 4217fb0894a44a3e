package redistest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestServerLifecycle(t *testing.T) {
	s := Start(t)
	c := s.Client(t)
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}

	s.Kill()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("ping succeeded on a killed server")
	}

	s.Restart()
	if got, err := c.Get(ctx, "k").Result(); err == nil {
		t.Fatalf("data survived a crash without persistence: %q", got)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping after restart: %v", err)
	}

	s.Pause()
	pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err := c.Ping(pctx).Err()
	cancel()
	if err == nil {
		t.Fatal("ping on a paused server succeeded")
	}
	s.Resume()
	// The timed-out connection was discarded; a new one answers.
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping after resume: %v", err)
	}
}

func TestMissingBinaryFailsWithInstallHint(t *testing.T) {
	t.Setenv("REDIS_SERVER", "")
	t.Setenv("PATH", t.TempDir())
	_, err := Binary()
	if err == nil {
		t.Fatal("found a server on an empty PATH")
	}
	for _, want := range []string{"apt-get install --no-install-recommends redis-server", "REDIS_SERVER"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestClusterAndSentinel(t *testing.T) {
	c := StartCluster(t, 3)
	cc := c.Client(t)
	ctx := context.Background()
	for i := 0; i < 30; i++ {
		if err := cc.Set(ctx, fmt.Sprint("k", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	slot, err := c.Nodes[0].Client(t).ClusterKeySlot(ctx, "k7").Result()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Owner(int(slot)).Client(t).Get(ctx, "k7").Result(); err != nil || got != "7" {
		t.Errorf("k7 on its owner: %q %v", got, err)
	}

	s := StartSentinel(t)
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinel.Addr()})
	defer sc.Close()
	addr, err := sc.GetMasterAddrByName(ctx, s.Master).Result()
	if err != nil || addr[1] != fmt.Sprint(s.Primary.Port()) {
		t.Errorf("sentinel says the primary is %v (%v)", addr, err)
	}
}
