package otelheartbeat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/otel-heartbeat/heartbeat/collectors"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/valkeyexporter"
)

// noValkeyBlame fails the test when something blamed Valkey: these
// mistakes are wiring, and Valkey is up.
func noValkeyBlame(t *testing.T, reported *exportErrors, err error) {
	t.Helper()
	reported.mu.Lock()
	defer reported.mu.Unlock()
	for _, e := range append(reported.errs, err) {
		if e != nil && strings.Contains(e.Error(), "Valkey is reachable") {
			t.Errorf("a wiring mistake blamed on Valkey: %v", e)
		}
	}
}

func shutdownProvider(t *testing.T, mp *sdkmetric.MeterProvider) {
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
}

// A service on OpenTelemetry that forgets sdkmetric.WithReader(hb) would
// otherwise get a nil Start and never a heartbeat.
func TestReaderMissingFromTheProviderIsAnErrorFromStart(t *testing.T) {
	srv := redistest.Start(t)
	reported := captureOTelErrors(t)
	hb, err := NewReader("tracker_fetcher", valkeyexporter.WithEndpoint(srv.URL()), valkeyexporter.WithInterval(time.Hour))
	must(t, err)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(resource.NewSchemaless(attribute.String("service.name", "tracker_fetcher"))))
	shutdownProvider(t, mp)
	p, err := NewPublisher("tracker_fetcher", WithMeterProvider(mp, hb))
	must(t, err)
	defer stop(t, p)
	err = p.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "sdkmetric.WithReader") {
		t.Errorf("Start with the reader on no provider: want an error saying to add sdkmetric.WithReader, got %v", err)
	}
	noValkeyBlame(t, reported, err)

	// Registered, but on another provider than the one the gauges go to.
	other := sdkmetric.NewMeterProvider(sdkmetric.WithReader(hb),
		sdkmetric.WithResource(resource.NewSchemaless(attribute.String("service.name", "tracker_fetcher"))))
	shutdownProvider(t, other)
	q, err := NewPublisher("tracker_fetcher", WithMeterProvider(mp, hb))
	must(t, err)
	defer stop(t, q)
	err = q.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "sdkmetric.WithReader") {
		t.Errorf("Start with the reader on another provider: want an error, got %v", err)
	}
	noValkeyBlame(t, reported, err)
}

// The name the Publisher reports is the one on the wire; with no name
// anywhere, Start says where to put one instead of every export failing.
func TestServiceNameWithAnExistingProviderIsTheOneOnTheWire(t *testing.T) {
	t.Setenv("OTEL_SERVICE_NAME", "")
	srv := redistest.Start(t)
	hbs := subscribe(t, srv)
	reported := captureOTelErrors(t)

	// The provider's Resource names the service: that name, not the
	// convenience constructor's default, is on the wire and reported.
	hb, err := NewReader("", valkeyexporter.WithEndpoint(srv.URL()), valkeyexporter.WithInterval(time.Hour))
	must(t, err)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(hb),
		sdkmetric.WithResource(resource.NewSchemaless(attribute.String("service.name", "geocoder-prod"))))
	shutdownProvider(t, mp)
	m, err := NewGeocodingHeartbeat(geocoding{}, WithMeterProvider(mp, hb))
	must(t, err)
	must(t, m.Start(context.Background()))
	msg, raw := hbs.next()
	if msg.ServiceName != "geocoder-prod" || m.ServiceName() != msg.ServiceName {
		t.Errorf("ServiceName() %q, on the wire %s", m.ServiceName(), raw)
	}
	stop(t, m)
	hbs.next() // stopping

	// No service.name on the provider and none given to NewReader.
	hb2, err := NewReader("", valkeyexporter.WithEndpoint(srv.URL()), valkeyexporter.WithInterval(time.Hour))
	must(t, err)
	mp2 := sdkmetric.NewMeterProvider(sdkmetric.WithReader(hb2),
		sdkmetric.WithResource(resource.NewSchemaless(attribute.String("service.instance.id", "pod-7"))))
	shutdownProvider(t, mp2)
	g, err := NewGeocodingHeartbeat(geocoding{}, WithMeterProvider(mp2, hb2))
	must(t, err)
	defer stop(t, g)
	err = g.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "service.name") || !strings.Contains(err.Error(), "NewReader") {
		t.Errorf("Start without any service name: want an error saying where to set one, got %v", err)
	}
	if g.ServiceName() != "" {
		t.Errorf("ServiceName() = %q, but nothing is published under it", g.ServiceName())
	}
	noValkeyBlame(t, reported, err)

	// A name passed to NewPublisher that the reader would not use.
	hb3, err := NewReader("tracker_fetcher", valkeyexporter.WithEndpoint(srv.URL()))
	must(t, err)
	defer func() { _ = hb3.Shutdown(context.Background()) }()
	if _, err := NewPublisher("other_name", WithMeterProvider(mp, hb3)); err == nil || !strings.Contains(err.Error(), "tracker_fetcher") {
		t.Errorf("NewPublisher name unlike the reader's: want an error naming both, got %v", err)
	}
}

// Options the Publisher cannot honour with an existing provider are
// refused, each by name, rather than dropped.
func TestOptionsThatDoNothingWithAnExistingProviderAreRefused(t *testing.T) {
	hb, err := NewReader("tracker_fetcher", valkeyexporter.WithEndpoint("localhost:1"))
	must(t, err)
	defer func() { _ = hb.Shutdown(context.Background()) }()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(hb))
	shutdownProvider(t, mp)
	for name, opt := range map[string]Option{
		"WithInterval":        WithInterval(time.Second),
		"WithExporterOptions": WithExporterOptions(valkeyexporter.WithEndpoint("localhost:2")),
		"WithReader":          WithReader(sdkmetric.NewManualReader()),
		"WithResource":        WithResource(resource.Empty()),
		"WithInstanceAddress": WithInstanceAddress("10.0.0.7:8080"),
	} {
		p, err := NewPublisher("tracker_fetcher", WithMeterProvider(mp, hb), opt)
		if err == nil {
			stop(t, p)
		}
		if err == nil || !strings.Contains(err.Error(), name+" ") || strings.Count(err.Error(), "otelheartbeat:") != 1 {
			t.Errorf("%s with WithMeterProvider: want one error naming it, got %v", name, err)
		}
	}
}

// A field is checked by one set of rules, with one wording, whether it is
// added before Start or after.
func TestFieldErrorsDoNotDependOnWhenTheFieldWasAdded(t *testing.T) {
	srv := redistest.Start(t)
	ok := collectors.Int(func() int64 { return 1 })
	attempts := func(p *Publisher) []string {
		var out []string
		for _, a := range []struct {
			name string
			c    collectors.Collector
		}{{"queue-size", ok}, {"timestamp", ok}, {"queue_size", ok}, {"empty", collectors.Collector{}}} {
			err := p.AddDataCollector(a.name, a.c)
			out = append(out, fmt.Sprint(err))
		}
		return out
	}
	newP := func() *Publisher {
		p, err := NewPublisher("tracker_fetcher", WithExporterOptions(valkeyexporter.WithEndpoint(srv.URL())), WithInterval(time.Hour))
		must(t, err)
		must(t, p.AddDataCollector("queue_size", ok))
		return p
	}
	before := newP()
	defer stop(t, before)
	after := newP()
	defer stop(t, after)
	must(t, after.Start(context.Background()))
	b, a := attempts(before), attempts(after)
	for i := range b {
		if b[i] != a[i] || b[i] == "<nil>" {
			t.Errorf("before Start %q, after Start %q", b[i], a[i])
		}
	}
}

// A Start that failed for its wiring leaves nothing running: Stop shuts the
// heartbeat reader down as the docs promise, so it does not go on
// reporting the same failure every interval for the life of the process.
func TestStopAfterAMiswiredStartShutsTheReaderDown(t *testing.T) {
	t.Setenv("OTEL_SERVICE_NAME", "")
	srv := redistest.Start(t)
	captureOTelErrors(t)
	hb, err := NewReader("", valkeyexporter.WithEndpoint(srv.URL()), valkeyexporter.WithInterval(100*time.Millisecond))
	must(t, err)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(resource.Empty()), sdkmetric.WithReader(hb))
	shutdownProvider(t, mp)
	p, err := NewPublisher("", WithMeterProvider(mp, hb), withErrorHandler(func(error) {}))
	must(t, err)
	if err := p.Start(context.Background()); err == nil {
		t.Fatal("Start with no service.name anywhere succeeded")
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if err := hb.ForceFlush(context.Background()); !errors.Is(err, sdkmetric.ErrReaderShutdown) {
		t.Errorf("after Stop the heartbeat reader still runs: ForceFlush says %v", err)
	}
}

// A heartbeat reader that was already shut down (by an earlier Publisher's
// Stop, or with its MeterProvider) can send nothing: Start says so instead
// of promising heartbeats "when Valkey is reachable".
func TestAReaderAlreadyShutDownIsAnErrorFromStart(t *testing.T) {
	t.Setenv("OTEL_SERVICE_NAME", "")
	srv := redistest.Start(t)
	captureOTelErrors(t)
	hb, err := NewReader("reused", valkeyexporter.WithEndpoint(srv.URL()), valkeyexporter.WithInterval(time.Hour))
	must(t, err)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(hb))
	shutdownProvider(t, mp)
	first, err := NewPublisher("", WithMeterProvider(mp, hb))
	must(t, err)
	must(t, first.Start(context.Background()))
	must(t, first.Stop(context.Background()))
	second, err := NewPublisher("", WithMeterProvider(mp, hb), withErrorHandler(func(error) {}))
	must(t, err)
	err = second.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "shut down") {
		t.Errorf("Start with a reader already shut down: %v", err)
	}
	_ = second.Stop(context.Background())
}
