package redistest

import (
	"context"
	"strings"
	"testing"
	"time"
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
	if want := "apt-get install redis-server"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}

}
