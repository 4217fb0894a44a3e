package valkeyexporter

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/internal/valkeyconf"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// Option configures an Exporter.
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	client         redis.UniversalClient
	endpoint       *string
	username       *string
	password       *string
	tlsConfig      *tls.Config
	interval       time.Duration
	channel        *string
	channelPrefix  *string
	address        *string
	key            *string
	latestState    *bool
	sharded        *bool
	serviceName    string
	serviceNameSet bool
	getenv         func(string) string
	handle         func(error)
}

// WithClient makes the exporter publish through client, which may be a
// single node, Sentinel or Cluster client. The exporter never closes it.
// The endpoint, credential and TLS variables are then not read, and
// WithEndpoint, WithAuth and WithTLSConfig are refused.
// Set ContextTimeoutEnabled on the client so exports honour their deadline.
func WithClient(client redis.UniversalClient) Option {
	return optionFunc(func(c *config) { c.client = client })
}

// WithEndpoint sets where Valkey is: a redis://, rediss://, valkey:// or
// valkeys:// URL, optionally with user, password and database, or host:port.
// It overrides OTEL_EXPORTER_VALKEY_ENDPOINT and the HEALTH_REDIS_* variables.
// Default: localhost:6379.
func WithEndpoint(endpoint string) Option {
	return optionFunc(func(c *config) { c.endpoint = &endpoint })
}

// WithAuth sets the ACL user and password (username may be empty for the
// default user). It overrides the endpoint URL's credentials and
// OTEL_EXPORTER_VALKEY_USERNAME, OTEL_EXPORTER_VALKEY_PASSWORD and
// HEALTH_REDIS_PASSWORD.
func WithAuth(username, password string) Option {
	return optionFunc(func(c *config) { c.username, c.password = &username, &password })
}

// WithTLSConfig makes the connection use TLS with cfg, whatever the
// endpoint's scheme. It replaces OTEL_EXPORTER_VALKEY_CERTIFICATE and the
// client certificate variables, which are then not read. Default: TLS for rediss:// and valkeys://
// endpoints only, verifying the server against the system's CAs.
func WithTLSConfig(cfg *tls.Config) Option {
	return optionFunc(func(c *config) { c.tlsConfig = cfg })
}

// WithInterval sets the heartbeat interval: the period of NewReader, the
// interval_seconds field and, times three, the latest-state key's TTL. It
// overrides HEARTBEAT_INTERVAL. Default: 60 s.
func WithInterval(d time.Duration) Option {
	return optionFunc(func(c *config) { c.interval = d })
}

// WithChannel sets the channel a heartbeat is published on, as a template
// around "{service_name}", for example the original design's other spelling
// "health:service:{service_name}:heartbeat" (see wire.ChannelTemplate).
// Monitors must be given the same template. It overrides
// OTEL_EXPORTER_VALKEY_CHANNEL and OTEL_EXPORTER_VALKEY_CHANNEL_PREFIX.
// Default: "heartbeat:service:{service_name}".
func WithChannel(template string) Option {
	return optionFunc(func(c *config) { c.channel = &template })
}

// WithChannelPrefix sets the channel as a prefix followed by the service
// name: WithChannelPrefix("hb:") is WithChannel("hb:{service_name}"). It
// overrides OTEL_EXPORTER_VALKEY_CHANNEL_PREFIX. Giving it and WithChannel
// is an error.
func WithChannelPrefix(prefix string) Option {
	return optionFunc(func(c *config) { c.channelPrefix = &prefix })
}

// WithInstanceAddress sets where the instance serves, published as
// instance_address for consumers that discover instances by their
// heartbeats: host:port or an absolute URL, never with credentials (see
// wire.ValidateAddress). Without it the address is the Resource's
// url.full, else its server.address with server.port (as in
// OTEL_RESOURCE_ATTRIBUTES=server.address=10.0.0.7,server.port=8080), else
// there is none and the heartbeat is the original design's.
func WithInstanceAddress(addr string) Option {
	return optionFunc(func(c *config) { c.address = &addr })
}

// WithKeyPrefix sets the prefix of the latest-state keys. It overrides
// OTEL_EXPORTER_VALKEY_KEY_PREFIX. Default: "heartbeat:instance:".
func WithKeyPrefix(prefix string) Option {
	return optionFunc(func(c *config) { c.key = &prefix })
}

// WithoutLatestState stops the exporter from writing the latest-state key,
// for a deployment that wants the original design's PUBLISH alone. It overrides
// OTEL_EXPORTER_VALKEY_LATEST_STATE. Default: the key is written.
func WithoutLatestState() Option {
	return optionFunc(func(c *config) { f := false; c.latestState = &f })
}

// WithServiceName sets the service_name of every heartbeat, overriding the
// Resource's service.name. The name is checked by New. Default: the
// Resource's service.name (OTEL_SERVICE_NAME).
func WithServiceName(name string) Option {
	return optionFunc(func(c *config) { c.serviceName = name; c.serviceNameSet = true })
}

// WithShardedPubSub publishes with SPUBLISH instead of PUBLISH, on the
// same channel names, so that on a Valkey Cluster a heartbeat's traffic
// stays inside the shard that owns its channel instead of reaching every
// node. Each heartbeat also adds the service name to the registry set
// heartbeat:services, from which monitors learn the channels. It overrides
// OTEL_EXPORTER_VALKEY_SHARDED. Default: global PUBLISH.
func WithShardedPubSub() Option {
	return optionFunc(func(c *config) { t := true; c.sharded = &t })
}

// withEnv replaces os.Getenv, for tests.
func withEnv(getenv func(string) string) Option {
	return optionFunc(func(c *config) { c.getenv = getenv })
}

// withErrorHandler replaces otel.Handle, for tests.
func withErrorHandler(h func(error)) Option {
	return optionFunc(func(c *config) { c.handle = h })
}

// settings is a config resolved against the environment. Resolving is
// pure: it reads variables and files but builds nothing; New builds the
// client from clientOptions.
type settings struct {
	client        redis.UniversalClient // the caller's, from WithClient
	clientOptions *redis.UniversalOptions
	endpoint      string
	interval      time.Duration
	exportTimeout time.Duration
	channel       wire.ChannelTemplate
	keyPrefix     string
	address       string
	latestState   bool
	sharded       bool
	serviceName   string
	now           func() time.Time
	handle        func(error)
}

// newSettings applies opts, then the environment, then defaults.
func newSettings(opts []Option) (settings, error) {
	var c config
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	getenv := c.getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	s := settings{
		interval:    wire.DefaultInterval,
		keyPrefix:   wire.DefaultKeyPrefix,
		latestState: true,
		now:         time.Now,
		handle:      c.handle,
	}
	var errs []error
	if c.serviceNameSet {
		if err := wire.ValidateServiceName(c.serviceName); err != nil {
			errs = append(errs, fmt.Errorf("WithServiceName: %w", err))
		}
		s.serviceName = c.serviceName
	}

	switch {
	case c.interval != 0:
		if err := valkeyconf.CheckInterval(c.interval); err != nil {
			errs = append(errs, fmt.Errorf("WithInterval: %w", err))
		}
		s.interval = c.interval
	case getenv(valkeyconf.EnvHeartbeatInterval) != "":
		d, err := valkeyconf.ParseInterval(valkeyconf.EnvHeartbeatInterval, getenv(valkeyconf.EnvHeartbeatInterval))
		errs = append(errs, err)
		s.interval = d
	}
	// The export timeout: the variable, else the smaller of the SDK's
	// default and the interval, so that a stalled Valkey cannot hold one
	// export past the next heartbeat. The export interval is only checked:
	// the SDK would log a malformed value and carry on.
	s.exportTimeout = min(defaultExportTimeout, s.interval)
	if v := getenv(valkeyconf.EnvMetricExportTimeout); v != "" {
		d, err := valkeyconf.ParseMillis(valkeyconf.EnvMetricExportTimeout, v)
		errs = append(errs, err)
		s.exportTimeout = d
	}
	if v := getenv(valkeyconf.EnvMetricExportInterval); v != "" {
		_, err := valkeyconf.ParseMillis(valkeyconf.EnvMetricExportInterval, v)
		errs = append(errs, err)
	}
	var err error
	switch {
	case c.channel != nil || c.channelPrefix != nil:
		// An empty option is set all the same: it is refused, not skipped.
		tpl, prefix := deref(c.channel), deref(c.channelPrefix)
		switch {
		case c.channel != nil && c.channelPrefix != nil:
			err = errors.New("WithChannel and WithChannelPrefix are both given: use WithChannel alone")
		case c.channel != nil:
			if s.channel, err = wire.ParseChannelTemplate(tpl); err != nil {
				err = fmt.Errorf("WithChannel: %w", err)
			}
		default:
			if s.channel, err = wire.PrefixTemplate(prefix); err != nil {
				err = fmt.Errorf("WithChannelPrefix: %w", err)
			}
		}
	default:
		s.channel, err = valkeyconf.ChannelTemplate(valkeyconf.EnvChannel, getenv(valkeyconf.EnvChannel),
			valkeyconf.EnvChannelPrefix, getenv(valkeyconf.EnvChannelPrefix))
	}
	errs = append(errs, err)
	switch {
	case c.key != nil:
		if s.keyPrefix, err = valkeyconf.Prefix("WithKeyPrefix", *c.key); err != nil {
			errs = append(errs, err)
		}
	case getenv(valkeyconf.EnvKeyPrefix) != "":
		if s.keyPrefix, err = valkeyconf.Prefix(valkeyconf.EnvKeyPrefix, getenv(valkeyconf.EnvKeyPrefix)); err != nil {
			errs = append(errs, err)
		}
	}
	if c.address != nil {
		if err := wire.ValidateAddress(*c.address); err != nil {
			errs = append(errs, fmt.Errorf("WithInstanceAddress: %w", err))
		}
		s.address = *c.address
	}
	switch {
	case c.latestState != nil:
		s.latestState = *c.latestState
	case getenv(valkeyconf.EnvLatestState) != "":
		v, err := valkeyconf.ParseBool(valkeyconf.EnvLatestState, getenv(valkeyconf.EnvLatestState))
		errs = append(errs, err)
		s.latestState = v
	}

	switch {
	case c.sharded != nil:
		s.sharded = *c.sharded
	case getenv(valkeyconf.EnvSharded) != "":
		v, err := valkeyconf.ParseBool(valkeyconf.EnvSharded, getenv(valkeyconf.EnvSharded))
		errs = append(errs, err)
		s.sharded = v
	}

	if c.client != nil {
		// The caller's client decides where and how to connect; options
		// that say so too would do nothing.
		for _, o := range []struct {
			set  bool
			name string
		}{{c.endpoint != nil, "WithEndpoint"}, {c.username != nil, "WithAuth"}, {c.tlsConfig != nil, "WithTLSConfig"}} {
			if o.set {
				errs = append(errs, fmt.Errorf("%s does nothing with WithClient: configure the client instead", o.name))
			}
		}
		s.client = c.client
		s.endpoint = endpointOf(c.client)
		return s, errors.Join(errs...)
	}

	var conn valkeyconf.Connection
	if c.endpoint != nil {
		conn, err = valkeyconf.ConnectionWithEndpoint(*c.endpoint, "WithEndpoint", getenv)
	} else {
		conn, err = valkeyconf.ConnectionFromEnv(getenv)
	}
	if err != nil {
		errs = append(errs, err)
	}
	if c.username != nil {
		conn.Username, conn.Password = *c.username, *c.password
	}
	if err := errors.Join(errs...); err != nil {
		return s, err
	}
	if c.tlsConfig != nil {
		// The option replaces the certificate variables: they are not read.
		conn.TLS = true
		conn.CAFile, conn.CertFile, conn.KeyFile = "", "", ""
	}
	opt, err := conn.ClientOptions(0)
	if err != nil {
		return s, err
	}
	if c.tlsConfig != nil {
		opt.TLSConfig = c.tlsConfig.Clone()
	}
	s.clientOptions = opt
	s.endpoint = conn.Endpoint.String()
	return s, nil
}

// endpointOf names a caller's client for error messages, without credentials.
func endpointOf(c redis.UniversalClient) string {
	switch c := c.(type) {
	case *redis.Client:
		return valkeyconf.Redact("redis://" + c.Options().Addr)
	case *redis.ClusterClient:
		return valkeyconf.Redact(fmt.Sprintf("cluster %v", c.Options().Addrs))
	case *redis.Ring:
		return "ring"
	}
	return fmt.Sprintf("%T", c)
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
