package otelheartbeat

import (
	"errors"
	"time"

	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/otel-heartbeat/heartbeat/valkeyexporter"
)

// Option configures a Publisher or Manager.
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	interval         time.Duration
	exporterOpts     []valkeyexporter.Option
	readers          []sdkmetric.Reader
	resource         *resource.Resource
	provider         metric.MeterProvider
	heartbeatReader  *valkeyexporter.Reader
	collectorTimeout time.Duration
	handle           func(error)
	// addressGiven: WithInstanceAddress was given, so that its refusal
	// with WithMeterProvider names it, not the exporter option it is.
	addressGiven bool
}

// WithInterval sets the time between heartbeats. It overrides
// HEARTBEAT_INTERVAL. Default: 60 s. Refused with WithMeterProvider, where
// the heartbeat reader's interval rules: pass valkeyexporter.WithInterval to
// NewReader.
func WithInterval(d time.Duration) Option {
	return optionFunc(func(c *config) { c.interval = d })
}

// WithExporterOptions passes options to the Valkey exporter: where Valkey is
// (valkeyexporter.WithEndpoint, WithClient, WithAuth, WithTLSConfig), channel
// and key prefixes, the latest-state key. They override the OTEL_EXPORTER_VALKEY_*
// and HEALTH_REDIS_* variables. Refused with WithMeterProvider: pass them to
// NewReader.
func WithExporterOptions(opts ...valkeyexporter.Option) Option {
	return optionFunc(func(c *config) { c.exporterOpts = append(c.exporterOpts, opts...) })
}

// WithInstanceAddress publishes where this instance serves, as the
// heartbeat's instance_address, for consumers that pick instances by their
// heartbeats (watch.Tracker.Alive): host:port or an absolute URL, without
// credentials. Without it the address comes from the Resource's url.full,
// or server.address and server.port (OTEL_RESOURCE_ATTRIBUTES), and when
// neither is set the heartbeat carries none. It is
// valkeyexporter.WithInstanceAddress.
//
// Refused with WithMeterProvider: pass valkeyexporter.WithInstanceAddress
// to NewReader.
func WithInstanceAddress(addr string) Option {
	return optionFunc(func(c *config) {
		c.exporterOpts = append(c.exporterOpts, valkeyexporter.WithInstanceAddress(addr))
		c.addressGiven = true
	})
}

// WithReader adds a reader to the Publisher's own MeterProvider, beside the
// heartbeat reader: an OTLP, Prometheus or stdout reader then exports the
// heartbeat gauges too. The Publisher shuts it down on Stop. Refused with
// WithMeterProvider: add the reader to that provider.
func WithReader(r sdkmetric.Reader) Option {
	return optionFunc(func(c *config) { c.readers = append(c.readers, r) })
}

// WithResource merges res into the Publisher's Resource, over what the
// environment says; the service name passed to NewPublisher still wins.
// Refused with WithMeterProvider, whose own Resource rules.
func WithResource(res *resource.Resource) Option {
	return optionFunc(func(c *config) { c.resource = res })
}

// WithMeterProvider makes the Publisher register its gauges on mp, a
// MeterProvider the service already has, to which heartbeatReader (from
// NewReader) was added. Stop then shuts down only heartbeatReader; mp and
// its other readers stay the service's to shut down.
func WithMeterProvider(mp metric.MeterProvider, heartbeatReader *valkeyexporter.Reader) Option {
	return optionFunc(func(c *config) { c.provider, c.heartbeatReader = mp, heartbeatReader })
}

// WithCollectorTimeout sets how long a service collector may run per
// heartbeat before its field is left out of that heartbeat. Default:
// collectors.TimeoutFor(interval), the smaller of 1 s and half the interval.
func WithCollectorTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.collectorTimeout = d })
}

// unusedWithProvider refuses the options that would do nothing with
// WithMeterProvider, naming each and where it belongs instead.
func (c *config) unusedWithProvider() error {
	var errs []error
	if c.interval != 0 {
		errs = append(errs, errors.New("otelheartbeat: WithInterval does nothing with WithMeterProvider: pass valkeyexporter.WithInterval to NewReader"))
	}
	switch {
	case c.addressGiven && len(c.exporterOpts) == 1:
		errs = append(errs, errors.New("otelheartbeat: WithInstanceAddress does nothing with WithMeterProvider: pass valkeyexporter.WithInstanceAddress to NewReader"))
	case c.addressGiven:
		errs = append(errs, errors.New("otelheartbeat: WithExporterOptions and WithInstanceAddress do nothing with WithMeterProvider: pass the options (valkeyexporter.WithInstanceAddress for the address) to NewReader"))
	case len(c.exporterOpts) > 0:
		errs = append(errs, errors.New("otelheartbeat: WithExporterOptions does nothing with WithMeterProvider: pass the options to NewReader"))
	}
	if len(c.readers) > 0 {
		errs = append(errs, errors.New("otelheartbeat: WithReader does nothing with WithMeterProvider: add the reader to that MeterProvider with sdkmetric.WithReader"))
	}
	if c.resource != nil {
		errs = append(errs, errors.New("otelheartbeat: WithResource does nothing with WithMeterProvider: the MeterProvider's own Resource describes the service"))
	}
	return errors.Join(errs...)
}

// withErrorHandler replaces otel.Handle for collector and start-up
// failures, for tests.
func withErrorHandler(h func(error)) Option {
	return optionFunc(func(c *config) { c.handle = h })
}
