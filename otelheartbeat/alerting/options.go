package alerting

import (
	"maps"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
)

// Option configures an Engine.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// config is what the options set; newConfig applies them, then the
// defaults.
type config struct {
	externalURL   string
	minAlive      map[string]int
	rules         map[string]RuleSettings
	silentShare   float64
	silentMinimum int
	errorf        func(format string, args ...any)
	fence         WriteFence
	ignored       []string // service name patterns; nil: DefaultIgnoredServices
}

// Defaults.
const (
	DefaultSilentShare = 0.5
	DefaultMinSilent   = 5
)

// DefaultIgnoredServices are the services no alert is raised for unless
// asked: those examples/check publishes to prove a deployment (its
// default --name), which crash on purpose.
var DefaultIgnoredServices = []string{"heartbeat_check_*"}

func newConfig(opts []Option) config {
	c := config{minAlive: map[string]int{}, rules: map[string]RuleSettings{}}
	for _, o := range opts {
		o.apply(&c)
	}
	if c.silentShare <= 0 || c.silentShare > 1 {
		c.silentShare = DefaultSilentShare
	}
	if c.silentMinimum <= 0 {
		c.silentMinimum = DefaultMinSilent
	}
	if c.errorf == nil {
		c.errorf = func(string, ...any) {}
	}
	if c.ignored == nil {
		c.ignored = DefaultIgnoredServices
	}
	return c
}

// ignores reports whether no alert is raised for service.
func (c *config) ignores(service string) bool {
	for _, p := range c.ignored {
		if watch.MatchService(p, service) {
			return true
		}
	}
	return false
}

// WithIgnoredServices sets the services no alert is raised for: those
// whose name matches one of patterns, in watch.MatchService's syntax (service
// names hold none of its special characters). Their instances count for
// no rule, the source's included. Default: DefaultIgnoredServices; none
// alerts on every service. A malformed pattern matches nothing.
func WithIgnoredServices(patterns ...string) Option {
	patterns = append([]string{}, patterns...)
	return optionFunc(func(c *config) { c.ignored = patterns })
}

// WithExternalURL sets the panel's URL as operators reach it: every
// alert's generatorURL links to its service's page there. Default: none.
func WithExternalURL(u string) Option { return optionFunc(func(c *config) { c.externalURL = u }) }

// WithMinAlive sets, per service, how many instances must be up for the
// service to be up (default 1). The map is copied; later options add to
// what earlier ones set.
func WithMinAlive(m map[string]int) Option {
	m = maps.Clone(m)
	return optionFunc(func(c *config) { maps.Copy(c.minAlive, m) })
}

// WithRule sets a rule's switch and its For: how long its condition must
// hold before the alert fires. name is the alert's name (InstanceDead,
// ServiceDown); default: on, fired at once (the liveness thresholds
// already include grace).
func WithRule(name string, s RuleSettings) Option {
	return optionFunc(func(c *config) { c.rules[name] = s })
}

// WithSilentShare sets when a silence is the source's, not the fleet's:
// share of the instances (above 0, at most 1; default 0.5), and at least
// minimum of them (default 5), of two services or more, falling silent
// together.
func WithSilentShare(share float64, minimum int) Option {
	return optionFunc(func(c *config) { c.silentShare, c.silentMinimum = share, minimum })
}

// WithErrorf sets where failures to keep alerts in Valkey are reported,
// once until they recover. Default: nowhere.
func WithErrorf(f func(format string, args ...any)) Option {
	return optionFunc(func(c *config) { c.errorf = f })
}

// A WriteFence guards the engine's writes in Valkey: each is made by a
// script that first checks that every key holds its value, so an engine
// that lost the right to write (its replica paused past the recorder
// lease) writes nothing, and sends nothing of what it would have written.
// history.Lease is one.
type WriteFence interface {
	FenceKeys() []string
	FenceValues() []string
}

// WithWriteFence guards every write of the engine with f. Default: none,
// for a single evaluator.
func WithWriteFence(f WriteFence) Option { return optionFunc(func(c *config) { c.fence = f }) }
