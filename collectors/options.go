package collectors

import (
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/otel-heartbeat/heartbeat/internal/convention"
)

// DefaultTimeout is how long a service collector may take per heartbeat
// when nothing says otherwise.
const DefaultTimeout = time.Second

// TimeoutFor is the budget of a service collector at a heartbeat interval:
// DefaultTimeout, or half the interval when that is shorter, so that a slow
// collector cannot delay the heartbeat past its interval.
func TimeoutFor(interval time.Duration) time.Duration {
	if interval <= 0 {
		return DefaultTimeout
	}
	return min(DefaultTimeout, interval/2)
}

// Option configures NewProcess and NewFields.
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	provider metric.MeterProvider
	timeout  time.Duration
	handle   func(error)
}

// WithMeterProvider sets the MeterProvider the instruments are registered
// on. Default: the global MeterProvider (otel.GetMeterProvider).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) { c.provider = mp })
}

// WithTimeout sets how long each service collector may run per heartbeat
// before its field is left out of that heartbeat. It should be well under
// the heartbeat interval. Default: DefaultTimeout. Ignored by NewProcess.
func WithTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.timeout = d })
}

// WithErrorHandler sends collector failures to h instead of otel.Handle.
func WithErrorHandler(h func(error)) Option {
	return optionFunc(func(c *config) { c.handle = h })
}

func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	if c.provider == nil {
		c.provider = otel.GetMeterProvider()
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	return c
}

func (c config) meter() metric.Meter {
	return c.provider.Meter(convention.ScopeName)
}
