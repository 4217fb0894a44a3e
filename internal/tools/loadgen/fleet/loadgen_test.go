package fleet

import (
	"context"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
)

// Fewer instances than connections: every instance beats at its pace, and
// cancelling stops it at once (a worker with nothing of its own once spun
// and ignored its context).
func TestFewerInstancesThanConnections(t *testing.T) {
	srv := redistest.Start(t)
	f, err := New(Config{Services: 1, Instances: 2, Connections: 4, Interval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { n, _ := f.Run(ctx, srv.Client(t)); done <- n }()
	<-time.After(300 * time.Millisecond) // six intervals
	cancel()
	select {
	case n := <-done:
		if n < 6 {
			t.Errorf("%d heartbeats in six intervals of two instances", n)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run still running 2 s after its context was cancelled")
	}
}
