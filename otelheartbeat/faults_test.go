package otelheartbeat

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"

	"github.com/otel-heartbeat/heartbeat/collectors"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
	"github.com/otel-heartbeat/heartbeat/valkeyexporter"
)

// exportErrors captures what the SDK reports to otel.Handle for the test.
type exportErrors struct {
	mu   sync.Mutex
	at   []time.Time
	errs []error
}

func captureOTelErrors(t *testing.T) *exportErrors {
	e := &exportErrors{}
	prev := otel.GetErrorHandler()
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		e.mu.Lock()
		e.at = append(e.at, time.Now())
		e.errs = append(e.errs, err)
		e.mu.Unlock()
	}))
	t.Cleanup(func() { otel.SetErrorHandler(prev) })
	return e
}

func (e *exportErrors) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.errs)
}

// Valkey down when the service starts: the service starts, and heartbeats
// begin within one interval of Valkey accepting them.
func TestHeartbeatsBeginWithinOneIntervalOfValkeyComingUp(t *testing.T) {
	port, err := redistest.FreePort()
	must(t, err)
	const interval = 500 * time.Millisecond
	p, err := NewPublisher("tracker_fetcher", WithInterval(interval),
		WithExporterOptions(valkeyexporter.WithEndpoint("127.0.0.1:"+strconv.Itoa(port))),
		withErrorHandler(func(error) {}))
	must(t, err)
	captureOTelErrors(t)
	must(t, p.Start(context.Background())) // nothing listens yet

	// The server comes up refusing unauthenticated clients, so that the
	// test's subscriber is in place before the first heartbeat can land;
	// dropping the password is the moment Valkey "comes up".
	srv := redistest.StartOnPort(t, port, "--requirepass", "closed")
	sub := srv.Client(t, func(o *redis.Options) { o.Password = "closed" })
	ctx := context.Background()
	ps := sub.PSubscribe(ctx, "heartbeat:service:*")
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sub.ConfigSet(ctx, "requirepass", "").Err(); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	msg, err := ps.ReceiveMessage(rctx)
	must(t, err)
	const tolerance = 300 * time.Millisecond
	if d := time.Since(up); d > interval+tolerance {
		t.Errorf("first heartbeat %v after Valkey came up; want within one interval (%v) + %v", d, interval, tolerance)
	}
	m, err := wire.Unmarshal([]byte(msg.Payload))
	must(t, err)
	if m.HeartbeatCount < 2 {
		t.Errorf("heartbeat_count %d: the heartbeats lost while Valkey was down should be counted", m.HeartbeatCount)
	}
	stop(t, p)
}

func TestValkeyRestartedMidRun(t *testing.T) {
	srv := redistest.Start(t)
	p, err := NewPublisher("geocoding_service", WithInterval(200*time.Millisecond),
		WithExporterOptions(valkeyexporter.WithEndpoint(srv.URL())))
	must(t, err)
	captureOTelErrors(t) // the export failures while the server is down
	must(t, p.Start(context.Background()))
	before, _ := subscribe(t, srv).next()

	srv.Restart()
	// A new subscriber: the old one's connection died with the server.
	hbs := subscribe(t, srv)
	after, _ := hbs.next()
	if after.HeartbeatCount <= before.HeartbeatCount || after.InstanceID != before.InstanceID {
		t.Errorf("after the restart: count %d (before %d), instance %s (before %s)", after.HeartbeatCount, before.HeartbeatCount, after.InstanceID, before.InstanceID)
	}
	// The latest-state key, lost with the server's memory, is back.
	key := wire.Key(wire.DefaultKeyPrefix, "geocoding_service", p.InstanceID())
	next, _ := hbs.next()
	if got, _ := srv.Client(t).Get(context.Background(), key).Result(); got == "" {
		t.Errorf("latest-state key not rewritten after the restart (heartbeat %d)", next.HeartbeatCount)
	}
	stop(t, p)
}

// Valkey stalled (SIGSTOP) for several intervals: exports fail at their
// deadline, the service's own work goes on, and heartbeats resume after
// SIGCONT with heartbeat_count still increasing.
func TestValkeyStalled(t *testing.T) {
	srv := redistest.Start(t)
	const interval = 200 * time.Millisecond
	p, err := NewPublisher("geofence_service", WithInterval(interval),
		WithExporterOptions(valkeyexporter.WithEndpoint(srv.URL())))
	must(t, err)
	errs := captureOTelErrors(t)
	must(t, p.AddDataCollector("active_geofences", collectors.Int(func() int64 { return 12 })))
	must(t, p.Start(context.Background()))
	hbs := subscribe(t, srv)
	last, _ := hbs.next()

	// The service's own work: a loop that must not be held up.
	var work atomic.Int64
	workCtx, stopWork := context.WithCancel(context.Background())
	workDone := make(chan struct{})
	go func() {
		defer close(workDone)
		tk := time.NewTicker(10 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-workCtx.Done():
				return
			case <-tk.C:
				work.Add(1)
			}
		}
	}()

	srv.Pause()
	const stall = 5 * interval
	stallStart := time.Now()
	workBefore := work.Load()
	// Calls the service makes during the stall return at once.
	begin := time.Now()
	must(t, p.AddDataCollector("pending_events", collectors.Int(func() int64 { return 1 })))
	if d := time.Since(begin); d > 100*time.Millisecond {
		t.Errorf("AddDataCollector took %v during the stall", d)
	}
	<-time.After(stall) // the stall itself is the thing under test
	srv.Resume()
	resumed := time.Now()
	stopWork()
	<-workDone
	if done := work.Load() - workBefore; done < int64(stall/(10*time.Millisecond))/4 {
		t.Errorf("the service's work loop ran %d times in %v", done, stall)
	}
	// Every export during the stall failed at its deadline (the interval),
	// so there is one failure per interval, not one stuck export.
	if n := errs.count(); n < 3 {
		t.Errorf("%d export failures reported during a %v stall at a %v interval; want about %d", n, time.Since(stallStart).Round(time.Millisecond), interval, stall/interval)
	}

	// Heartbeats resume, counting on. Commands written during the stall may
	// be delivered late, and in any order, on resume; what matters is a
	// fresh one.
	for {
		m, _ := hbs.next()
		if m.HeartbeatCount <= last.HeartbeatCount {
			t.Fatalf("heartbeat_count went from %d before the stall to %d", last.HeartbeatCount, m.HeartbeatCount)
		}
		if m.Timestamp.After(resumed) {
			if m.HeartbeatCount < last.HeartbeatCount+int64(stall/interval) {
				t.Errorf("heartbeat_count %d after the stall, %d before: the stalled beats were not counted", m.HeartbeatCount, last.HeartbeatCount)
			}
			if _, ok := m.Field("pending_events"); !ok {
				t.Error("the collector added during the stall is missing")
			}
			break
		}
	}
	stop(t, p)
}

func TestMalformedOTelVariablesAreNamed(t *testing.T) {
	for _, tt := range []struct {
		name, key, value, want string
	}{
		{"resource attributes without a value", "OTEL_RESOURCE_ATTRIBUTES", "deployment.environment", "OTEL_RESOURCE_ATTRIBUTES"},
		{"instance id with whitespace", "OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=pod%207", "service.instance.id"},
		{"instance id with a colon", "OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=a:b", "service.instance.id"},
		{"service name with a glob", "OTEL_SERVICE_NAME", "tracker*", "OTEL_SERVICE_NAME"},
		{"export timeout not a number", "OTEL_METRIC_EXPORT_TIMEOUT", "abc", "OTEL_METRIC_EXPORT_TIMEOUT"},
		{"export timeout zero", "OTEL_METRIC_EXPORT_TIMEOUT", "0", "OTEL_METRIC_EXPORT_TIMEOUT"},
		{"export timeout in seconds", "OTEL_METRIC_EXPORT_TIMEOUT", "5s", "OTEL_METRIC_EXPORT_TIMEOUT"},
		{"export interval not a number", "OTEL_METRIC_EXPORT_INTERVAL", "abc", "OTEL_METRIC_EXPORT_INTERVAL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("OTEL_SERVICE_NAME", "svc")
			t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "")
			t.Setenv(tt.key, tt.value)
			p, err := NewPublisher("")
			if err == nil {
				stop(t, p)
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not name %s", err, tt.want)
			}
		})
	}
}
