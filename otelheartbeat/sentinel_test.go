package otelheartbeat

import (
	"context"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// Behind Sentinel, configured by the same variables: the primary dies, the
// sentinel promotes its replica, and heartbeats go on there, losing at
// most those in flight while there was no primary.
func TestSentinelFailoverWhilePublishing(t *testing.T) {
	s := redistest.StartSentinel(t)
	t.Setenv("OTEL_EXPORTER_VALKEY_ENDPOINT", "redis://"+s.Sentinel.Addr())
	t.Setenv("OTEL_EXPORTER_VALKEY_SENTINEL_MASTER", s.Master)
	const interval = 200 * time.Millisecond
	p, err := NewPublisher("tracker_fetcher", WithInterval(interval), withErrorHandler(func(error) {}))
	must(t, err)
	captureOTelErrors(t)
	// PUBLISH is replicated, so a subscriber on the replica hears the
	// heartbeats now and, once it is promoted, afterwards.
	hbs := heartbeats{t, s.Replica.PSubscribe(t, "heartbeat:service:*").Channel()}
	must(t, p.Start(context.Background()))
	before, _ := hbs.next()
	before, _ = hbs.next()

	promoted := s.Sentinel.Expect("+switch-master")
	killed := time.Now()
	s.Primary.Kill()
	select {
	case <-promoted:
	case <-time.After(30 * time.Second):
		t.Fatal("the sentinel did not fail over")
	}
	// The first heartbeat published to the new primary.
	var after *wire.Message
	for after == nil || after.HeartbeatCount <= before.HeartbeatCount {
		after, _ = hbs.next()
	}
	outage := time.Since(killed)
	lost := after.HeartbeatCount - before.HeartbeatCount - 1
	t.Logf("failover: %v without a primary, %d heartbeats lost", outage.Round(time.Millisecond), lost)
	if max := int64(outage/interval) + 2; lost > max {
		t.Errorf("%d heartbeats lost in a %v outage at a %v interval; want at most those in flight (%d)", lost, outage, interval, max)
	}
	// Once failed over, none is lost.
	for i := 0; i < 3; i++ {
		next, _ := hbs.next()
		if next.HeartbeatCount != after.HeartbeatCount+1 {
			t.Fatalf("heartbeat_count %d after %d: lost after the failover", next.HeartbeatCount, after.HeartbeatCount)
		}
		after = next
	}
	key := wire.Key(wire.DefaultKeyPrefix, "tracker_fetcher", p.InstanceID())
	if n, _ := s.Replica.Client(t).Exists(context.Background(), key).Result(); n != 1 {
		t.Error("no latest-state key on the new primary")
	}
	stop(t, p)
}
