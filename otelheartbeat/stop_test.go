package otelheartbeat

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/collectors"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/valkeyexporter"
)

// Start holds the first heartbeat until it is sent or fails; with Valkey
// stalled that is up to the export timeout. A Stop meanwhile must still
// return by its own context.
func TestStopReturnsByItsContextWhileStartIsFlushing(t *testing.T) {
	srv := redistest.Start(t)
	p, err := NewPublisher("tracker_fetcher", WithInterval(5*time.Second),
		WithExporterOptions(valkeyexporter.WithEndpoint(srv.URL())), withErrorHandler(func(error) {}))
	must(t, err)
	captureOTelErrors(t)
	collecting := make(chan struct{})
	var once sync.Once
	must(t, p.AddDataCollector("queue_size", collectors.Int(func() int64 {
		once.Do(func() { close(collecting) })
		return 1
	})))
	srv.Pause()
	defer srv.Resume()

	started := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		started <- p.Start(ctx)
	}()
	<-collecting // Start is inside its first heartbeat

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	begin := time.Now()
	_ = p.Stop(ctx)
	if took := time.Since(begin); took > time.Second {
		t.Errorf("Stop took %v with a 300ms context while Start was flushing", took)
	}
	select {
	case err := <-started:
		if err != nil {
			t.Errorf("Start: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Start did not return after Stop")
	}
	if err := p.Start(context.Background()); err != ErrStopped {
		t.Errorf("Start after Stop: %v", err)
	}
}

// A graceful stop is not a failure: nothing goes to otel.Handle or the
// Publisher's error handler, even when Stop lands in the middle of a
// collection.
func TestCleanStopReportsNothing(t *testing.T) {
	srv := redistest.Start(t)
	// Budgets far above the interval, so that a loaded machine cannot make
	// a heartbeat fail for want of time: only the stop is under test.
	t.Setenv("OTEL_METRIC_EXPORT_TIMEOUT", "5000")
	otelErrs := captureOTelErrors(t)
	var mu sync.Mutex
	var handled []error
	for i := 0; i < 20; i++ {
		p, err := NewPublisher("tracker_fetcher", WithInterval(10*time.Millisecond), WithCollectorTimeout(5*time.Second),
			WithExporterOptions(valkeyexporter.WithEndpoint(srv.URL())),
			withErrorHandler(func(err error) { mu.Lock(); handled = append(handled, err); mu.Unlock() }))
		must(t, err)
		collected := make(chan struct{}, 100)
		must(t, p.AddDataCollector("queue_size", collectors.Int(func() int64 {
			select {
			case collected <- struct{}{}:
			default:
			}
			return 1
		})))
		must(t, p.Start(context.Background()))
		for j := 0; j < 1+i%4; j++ {
			<-collected
		}
		must(t, p.Stop(context.Background()))
	}
	mu.Lock()
	defer mu.Unlock()
	otelErrs.mu.Lock()
	defer otelErrs.mu.Unlock()
	if len(handled) != 0 || len(otelErrs.errs) != 0 {
		t.Errorf("a clean Stop reported errors: handler %v, otel.Handle %v", handled, otelErrs.errs)
	}
}

// With Valkey stalled when the service starts, at the default 60 s
// interval: Start gives up on its first heartbeat at its context, but the
// SDK's reader goes on sending it, and go-redis bounds that only by its
// own read timeout. Stop must still return by its context, and leave
// nothing running.
func TestStopReturnsByItsContextAfterAStartAgainstAStalledValkey(t *testing.T) {
	srv := redistest.Start(t)
	p, err := NewPublisher("tracker_fetcher", WithExporterOptions(valkeyexporter.WithEndpoint(srv.URL())), withErrorHandler(func(error) {}))
	must(t, err)
	captureOTelErrors(t)
	srv.Pause()
	defer srv.Resume()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	begin := time.Now()
	_ = p.Stop(ctx)
	if took := time.Since(begin); took > time.Second {
		t.Errorf("Stop took %v with a 300ms context", took)
	}
}
