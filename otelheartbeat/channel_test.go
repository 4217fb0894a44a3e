package otelheartbeat

import (
	"context"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// The original design's other channel spelling, health:service:{service_name}:heartbeat,
// set once in OTEL_EXPORTER_VALKEY_CHANNEL: the publisher publishes there
// and nowhere else, and a watcher built from the same variable hears both
// it and a seed-format publisher on that channel, and nothing on the
// default one.
func TestChannelTemplateFromOneVariableOnBothSides(t *testing.T) {
	srv := redistest.Start(t)
	t.Setenv("OTEL_EXPORTER_VALKEY_ENDPOINT", srv.URL())
	t.Setenv("OTEL_EXPORTER_VALKEY_CHANNEL", "health:service:{service_name}:heartbeat")
	t.Setenv("HEARTBEAT_INTERVAL", "200ms")
	t.Setenv("OTEL_SERVICE_NAME", "")

	// One connection for both patterns, so that what it receives is in
	// publication order: two heartbeats on the template's channel with
	// nothing between them on the default one.
	ps := srv.PSubscribe(t, "health:service:*:heartbeat", "heartbeat:service:*")
	raw := ps.Channel()
	m, err := NewManager("geocoding_service")
	must(t, err)
	must(t, m.Start(context.Background()))
	defer stop(t, m)
	for i := 0; i < 2; i++ {
		select {
		case msg := <-raw:
			if msg.Channel != "health:service:geocoding_service:heartbeat" {
				t.Fatalf("heartbeat %d on %q", i, msg.Channel)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no heartbeat on the template's channel within 10s")
		}
	}
	must(t, ps.Close())

	conn, err := watch.ConnectFromEnv()
	must(t, err)
	defer conn.Client.Close()
	mon, err := watch.New(conn)
	must(t, err)
	if got := mon.Subscription(); got != "health:service:*:heartbeat" {
		t.Errorf("the watcher's pattern is %q", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan watch.Event, 100)
	done := make(chan error, 1)
	go func() {
		done <- mon.Run(ctx, func(e watch.Event) {
			select {
			case events <- e:
			case <-ctx.Done():
			}
		})
	}()
	defer func() {
		cancel()
		<-done
	}()

	// A seed-format publisher (no interval, no keys) on the template's
	// channel, and a stray one on the default channel that must not count.
	c := srv.Client(t)
	seed := func(channel, service string, count int64) {
		b, err := wire.Marshal(&wire.Message{ServiceName: service, InstanceID: "python-1", Timestamp: time.Now(),
			HeartbeatCount: count, Has: wire.HasHeartbeatCount})
		must(t, err)
		must(t, c.Publish(context.Background(), channel, b).Err())
	}
	heard := map[string]bool{}
	deadline := time.After(10 * time.Second)
	for count := int64(1); !heard["geocoding_service"] || !heard["python_service"]; count++ {
		seed("heartbeat:service:python_service", "python_service", count)
		seed("health:service:python_service:heartbeat", "python_service", count)
		select {
		case e := <-events:
			switch e.Kind {
			case watch.KindHeartbeat:
				heard[e.Message.ServiceName] = true
				if e.Channel != (wire.ChannelTemplate{}).Channel(e.Message.ServiceName) && e.Channel != "health:service:"+e.Message.ServiceName+":heartbeat" {
					t.Errorf("heartbeat of %s on %q", e.Message.ServiceName, e.Channel)
				}
				if e.Channel == "heartbeat:service:python_service" {
					t.Errorf("the watcher heard the default channel")
				}
			case watch.KindMalformed:
				t.Errorf("malformed: %v", e.Err)
			}
		case <-deadline:
			t.Fatalf("heard %v within 10s", heard)
		}
	}
}
