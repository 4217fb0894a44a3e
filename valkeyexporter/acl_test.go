package valkeyexporter

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/internal/testing/acl"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

func TestLeastPrivilegePublisherACL(t *testing.T) {
	srv := redistest.Start(t)
	srv.Do(t, acl.SetUser("heartbeat", "publisher-secret", acl.Publisher)...)
	msgs := subscribe(t, srv, "heartbeat:service:*")
	var mu sync.Mutex
	var reported []error
	exp := newExporter(t, srv, WithEndpoint("redis://heartbeat:publisher-secret@"+srv.Addr()),
		withErrorHandler(func(err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() }))
	rm := collect(t, "tracker_fetcher")
	ctx := context.Background()
	must(t, exp.Export(ctx, rm))
	next(t, msgs)
	key := "heartbeat:instance:tracker_fetcher:" + testInstance
	if n, _ := srv.Client(t).Exists(ctx, key).Result(); n != 1 {
		t.Error("latest-state key not written")
	}
	exp.markStopping()
	must(t, exp.Export(ctx, rm))
	if m, _ := wire.Unmarshal([]byte(next(t, msgs).Payload)); m.Status != "stopping" {
		t.Errorf("final status %q", m.Status)
	}
	must(t, exp.Shutdown(ctx))
	if n, _ := srv.Client(t).Exists(ctx, key).Result(); n != 0 {
		t.Error("latest-state key not deleted")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != 0 {
		t.Errorf("the rule was not enough: %v", reported)
	}
}

func TestAuthenticationFailuresAreClearAndHideThePassword(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "right-password")
	srv2 := redistest.Start(t)
	srv2.Do(t, "ACL", "SETUSER", "known", "on", ">known-password", "~*", "&*", "+@all")
	for _, tt := range []struct {
		name, endpoint, secret, want string
	}{
		{"wrong password", "redis://:wrong-password@" + srv.Addr(), "wrong-password", "WRONGPASS"},
		{"unknown ACL user", "redis://nobody:nobody-password@" + srv2.Addr(), "nobody-password", "WRONGPASS"},
		{"no password", "redis://" + srv.Addr(), "right-password", "NOAUTH"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			exp := newExporter(t, srv, WithEndpoint(tt.endpoint))
			err := exp.Export(context.Background(), collect(t, "tracker_fetcher"))
			if err == nil {
				t.Fatal("export succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "PUBLISH heartbeat:service:tracker_fetcher") {
				t.Errorf("error %q: want %s and the command", err, tt.want)
			}
			if strings.Contains(err.Error(), tt.secret) || strings.Contains(exp.Endpoint(), tt.secret) {
				t.Errorf("the password shows in %q / %q", err, exp.Endpoint())
			}
		})
	}
}

// forgeries are what one service's credentials must not do to another
// service's heartbeats: publish on its channel (a forged "stopping" makes a
// crash look like a deploy), write its latest-state key, or delete it.
func forgeries(ctx context.Context, c redis.Cmdable, publish string, victim string) map[string]error {
	key := "heartbeat:instance:" + victim + ":" + testInstance
	channel := "heartbeat:service:" + victim
	pub := c.Publish(ctx, channel, `{"status":"stopping"}`).Err()
	if publish == "SPUBLISH" {
		pub = c.SPublish(ctx, channel, `{"status":"stopping"}`).Err()
	}
	return map[string]error{
		publish + " " + channel: pub,
		"SET " + key:            c.Set(ctx, key, "forged", 0).Err(),
		"DEL " + key:            c.Del(ctx, key).Err(),
		"PERSIST " + key:        c.Persist(ctx, key).Err(),
	}
}

func wantNoPerm(t *testing.T, who string, errs map[string]error) {
	t.Helper()
	for what, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "NOPERM") {
			t.Errorf("%s: %s: want NOPERM, got %v", who, what, err)
		}
	}
}

// The per-service publisher rule is enough for a service to publish and
// keep its latest-state key, and confines it there: it cannot publish on,
// write or delete another service's channel or keys, and a name that is a
// prefix of another ("tracker" of "tracker_fetcher") gains nothing.
func TestPerServicePublisherACLIsolatesServices(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	for _, svc := range []string{"tracker_fetcher", "geocoding_service", "tracker"} {
		srv.Do(t, acl.SetUser(svc, svc+"-secret", acl.PublisherFor(svc))...)
	}
	msgs := subscribe(t, srv, "heartbeat:service:*")
	var mu sync.Mutex
	var reported []error
	handler := withErrorHandler(func(err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() })

	// Each service publishes its own heartbeats, and its stopping one.
	for _, svc := range []string{"tracker_fetcher", "geocoding_service"} {
		exp := newExporter(t, srv, WithEndpoint("redis://"+svc+":"+svc+"-secret@"+srv.Addr()), handler)
		rm := collect(t, svc)
		must(t, exp.Export(ctx, rm))
		if got := next(t, msgs).Channel; got != "heartbeat:service:"+svc {
			t.Errorf("%s published on %s", svc, got)
		}
		if svc == "geocoding_service" {
			exp.markStopping()
			must(t, exp.Export(ctx, rm))
			next(t, msgs)
		}
	}
	mu.Lock()
	if len(reported) != 0 {
		t.Errorf("the per-service rule was not enough: %v", reported)
	}
	mu.Unlock()
	victimKey := "heartbeat:instance:tracker_fetcher:" + testInstance
	if n, _ := srv.Client(t).Exists(ctx, victimKey).Result(); n != 1 {
		t.Fatal("tracker_fetcher's latest-state key not written")
	}

	// Another service's credentials, through the exporter and by hand.
	for _, attacker := range []string{"geocoding_service", "tracker"} {
		forger := newExporter(t, srv, WithEndpoint("redis://"+attacker+":"+attacker+"-secret@"+srv.Addr()), WithServiceName("tracker_fetcher"))
		forger.markStopping()
		if err := forger.Export(ctx, collect(t, "tracker_fetcher")); err == nil || !strings.Contains(err.Error(), "NOPERM") {
			t.Errorf("%s forged tracker_fetcher's stopping heartbeat: %v", attacker, err)
		}
		c := srv.Client(t, func(o *redis.Options) { o.Username, o.Password = attacker, attacker+"-secret" })
		wantNoPerm(t, attacker, forgeries(ctx, c, "PUBLISH", "tracker_fetcher"))
	}
	if n, _ := srv.Client(t).Exists(ctx, victimKey).Result(); n != 1 {
		t.Error("tracker_fetcher's latest-state key was touched by another service")
	}
	// Whatever reaches subscribers next is this marker, not a forgery.
	srv.Client(t).Publish(ctx, "heartbeat:service:zz_marker", "end")
	if m := next(t, msgs); m.Channel != "heartbeat:service:zz_marker" {
		t.Errorf("a forged heartbeat reached subscribers: %s %s", m.Channel, m.Payload)
	}
}

// Sharded mode on a 3-primary cluster: the per-service sharded rule is
// enough to SPUBLISH, register in heartbeat:services and keep the key, and
// confines the service as in global mode; it may add to the registry but
// not remove from it or delete it. The sharded monitor rule is enough for
// the monitor to learn the service from the registry and hear it, and it
// writes nothing.
func TestPerServiceShardedACLIsolatesServices(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range c.Nodes {
		for _, svc := range []string{"service_a", "service_b"} {
			n.Do(t, acl.SetUser(svc, svc+"-secret", acl.ShardedPublisherFor(svc))...)
		}
		n.Do(t, acl.SetUser("monitor", "monitor-secret", acl.ShardedMonitor)...)
		// No connection gets in without a user, so every step below runs
		// with exactly the rules under test.
		n.Do(t, acl.SetUser("admin", "admin-secret", "~* &* +@all")...)
		n.Do(t, "ACL", "SETUSER", "default", "off")
	}
	as := func(user string) *redis.ClusterClient {
		cc := c.Client(t)
		o := cc.Options()
		o.Username, o.Password = user, user+"-secret"
		cc2 := redis.NewClusterClient(o)
		t.Cleanup(func() { _ = cc2.Close() })
		return cc2
	}
	endpoint := func(user string) string {
		return "redis://" + user + ":" + user + "-secret@" + strings.Join(c.Addrs(), ",")
	}

	var mu sync.Mutex
	var reported []error
	handler := withErrorHandler(func(err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() })
	exp := newExporter(t, c.Nodes[0], WithEndpoint(endpoint("service_a")), WithShardedPubSub(), handler)

	// The monitor, as its own ACL user, learns service_a from the registry.
	mon, err := watch.New(watch.Connection{Client: as("monitor"), Sharded: true}, watch.WithRegistryRefresh(50*time.Millisecond))
	must(t, err)
	events := make(chan watch.Event, 1000)
	monCtx, stopMon := context.WithCancel(ctx)
	monDone := make(chan struct{})
	go func() { defer close(monDone); _ = mon.Run(monCtx, func(e watch.Event) { events <- e }) }()
	defer func() { stopMon(); <-monDone }()

	rm := collect(t, "service_a")
	heard := false
	for !heard {
		must(t, exp.Export(ctx, rm))
		select {
		case e := <-events:
			if e.Kind == watch.KindHeartbeat && e.Message.ServiceName == "service_a" {
				heard = true
			}
		case <-time.After(100 * time.Millisecond): // the next heartbeat is the retry
		case <-ctx.Done():
			t.Fatal("the monitor never heard service_a")
		}
	}
	mu.Lock()
	if len(reported) != 0 {
		t.Errorf("the sharded per-service rule was not enough: %v", reported)
	}
	mu.Unlock()
	admin := as("admin")
	if ok, err := admin.SIsMember(ctx, "heartbeat:services", "service_a").Result(); err != nil || !ok {
		t.Errorf("service_a not registered: %v %v", ok, err)
	}

	// service_b's credentials against service_a, and against the registry.
	b := as("service_b")
	wantNoPerm(t, "service_b", forgeries(ctx, b, "SPUBLISH", "service_a"))
	wantNoPerm(t, "service_b", map[string]error{
		"SREM heartbeat:services": b.SRem(ctx, "heartbeat:services", "service_a").Err(),
		"DEL heartbeat:services":  b.Del(ctx, "heartbeat:services").Err(),
		"SET heartbeat:services":  b.Set(ctx, "heartbeat:services", "x", 0).Err(),
	})
	// The monitor's credentials write nothing.
	m := as("monitor")
	wantNoPerm(t, "monitor", forgeries(ctx, m, "SPUBLISH", "service_a"))
	wantNoPerm(t, "monitor", map[string]error{"SADD heartbeat:services": m.SAdd(ctx, "heartbeat:services", "x").Err()})
}
