package valkeyexporter

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/otel-heartbeat/heartbeat/internal/acl"
	"github.com/otel-heartbeat/heartbeat/internal/heartbeat"
	"github.com/otel-heartbeat/heartbeat/internal/redistest"
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
	if m, _ := heartbeat.Unmarshal([]byte(next(t, msgs).Payload)); m.Status != "stopping" {
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
