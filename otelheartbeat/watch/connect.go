package watch

import (
	"context"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/internal/valkeyconf"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// The variables a watcher reads, the same ones the publishers read, so that
// a monitor or admin panel deployed beside a service finds its Valkey.
const (
	// EnvEndpoint is the Valkey endpoint: a redis://, rediss://, valkey://
	// or valkeys:// URL, or host:port; several addresses separated by
	// commas are cluster seed nodes or sentinels.
	EnvEndpoint = valkeyconf.EnvEndpoint
	// EnvHealthHost is the original design's host variable, read (with
	// HEALTH_REDIS_PORT and HEALTH_REDIS_PASSWORD) only when EnvEndpoint is
	// unset.
	EnvHealthHost = valkeyconf.EnvHealthHost
	// EnvChannel is the publishers' channel template, such as
	// "health:service:{service_name}:heartbeat"; EnvChannelPrefix the
	// older spelling as a prefix. Setting both is an error.
	EnvChannel       = valkeyconf.EnvChannel
	EnvChannelPrefix = valkeyconf.EnvChannelPrefix
	// EnvSharded says the publishers use sharded pub/sub (SPUBLISH).
	EnvSharded = valkeyconf.EnvSharded
	// EnvHeartbeatInterval is the publishers' interval in seconds (or a Go
	// duration): a watcher's default for senders that do not say theirs.
	EnvHeartbeatInterval = valkeyconf.EnvHeartbeatInterval
)

// DefaultCommandTimeout is how long one Valkey command of a client built by
// ConnectFromEnv may take, unless WithCommandTimeout says otherwise.
const DefaultCommandTimeout = 5 * time.Second

// Connection is a client to Valkey built from the library's variables, with
// the names a watcher needs beside it: New watches what it names. A
// Connection of a client alone (Connection{Client: c}) names the defaults.
type Connection struct {
	// Client is the connection to Valkey: one node, a cluster or a
	// Sentinel-managed primary. The caller closes it.
	Client redis.UniversalClient
	// Endpoint names the server for messages, as a URL without its
	// password.
	Endpoint string
	// Channel is OTEL_EXPORTER_VALKEY_CHANNEL (a template such as
	// "health:service:{service_name}:heartbeat") or
	// OTEL_EXPORTER_VALKEY_CHANNEL_PREFIX (a prefix), or the default
	// wire.DefaultChannelTemplate: the publishers' variables, so a watcher
	// subscribes where they publish.
	Channel wire.ChannelTemplate
	// KeyPrefix is OTEL_EXPORTER_VALKEY_KEY_PREFIX, or
	// wire.DefaultKeyPrefix.
	KeyPrefix string
	// Sharded is OTEL_EXPORTER_VALKEY_SHARDED: the publishers use sharded
	// pub/sub, so a watcher subscribes with SSUBSCRIBE to the channel of
	// every service in the registry set, on the node that owns it, instead
	// of PSUBSCRIBE.
	Sharded bool
}

// ConnectOption configures ConnectFromEnv.
type ConnectOption interface{ apply(*connectConfig) }

type connectConfig struct {
	endpoint, source string
	timeout          time.Duration
	getenv           func(string) string
	adjust           func(*redis.UniversalOptions)
}

type connectOptionFunc func(*connectConfig)

func (f connectOptionFunc) apply(c *connectConfig) { f(c) }

// WithEndpoint connects to endpoint (any form EnvEndpoint takes) instead of
// the endpoint the variables name; the credential variables are then not
// read, and the TLS and topology variables still are. source names where
// the endpoint came from, such as a command's "--endpoint" flag, for
// errors; empty means "WithEndpoint". An empty endpoint changes nothing.
func WithEndpoint(endpoint, source string) ConnectOption {
	return connectOptionFunc(func(c *connectConfig) { c.endpoint, c.source = endpoint, source })
}

// WithCommandTimeout bounds one Valkey command (dial, read and write) of
// the client. Default DefaultCommandTimeout. The client also honours every
// call's context deadline.
func WithCommandTimeout(d time.Duration) ConnectOption {
	return connectOptionFunc(func(c *connectConfig) { c.timeout = d })
}

// WithGetenv reads the variables through getenv instead of os.Getenv, for
// configuration that does not live in the process environment, and tests.
func WithGetenv(getenv func(string) string) ConnectOption {
	return connectOptionFunc(func(c *connectConfig) { c.getenv = getenv })
}

// WithClientOptions lets adjust change the go-redis options (a pool size,
// say) before the client is built from them.
func WithClientOptions(adjust func(*redis.UniversalOptions)) ConnectOption {
	return connectOptionFunc(func(c *connectConfig) { c.adjust = adjust })
}

// ConnectFromEnv builds a client to Valkey from the same variables the
// publishers read: OTEL_EXPORTER_VALKEY_ENDPOINT and its companions
// (credentials, TLS files, cluster and sentinel settings, prefixes,
// sharded mode), else the original design's HEALTH_REDIS_HOST, HEALTH_REDIS_PORT and
// HEALTH_REDIS_PASSWORD, else localhost:6379. Options win over variables.
//
// It does not connect: the first command does. A malformed variable is an
// error that names it; no error, and no Endpoint, contains a password.
// The client honours context deadlines, tries each command once and does
// not send CLIENT SETNAME, which a least-privilege ACL user may not run.
func ConnectFromEnv(opts ...ConnectOption) (Connection, error) {
	cfg := connectConfig{timeout: DefaultCommandTimeout, getenv: os.Getenv}
	for _, o := range opts {
		o.apply(&cfg)
	}
	if cfg.timeout <= 0 {
		cfg.timeout = DefaultCommandTimeout
	}
	getenv := valkeyconf.Getenv(cfg.getenv)
	var conn valkeyconf.Connection
	var err error
	if cfg.endpoint != "" {
		source := cfg.source
		if source == "" {
			source = "WithEndpoint"
		}
		conn, err = valkeyconf.ConnectionWithEndpoint(cfg.endpoint, source, getenv)
	} else {
		conn, err = valkeyconf.ConnectionFromEnv(getenv)
	}
	if err != nil {
		return Connection{}, err
	}
	c := Connection{Endpoint: conn.Endpoint.String()}
	if c.Channel, c.KeyPrefix, err = valkeyconf.NamesFromEnv(getenv); err != nil {
		return Connection{}, err
	}
	if v := getenv(EnvSharded); v != "" {
		if c.Sharded, err = ParseSharded(v); err != nil {
			return Connection{}, err
		}
	}
	ro, err := conn.ClientOptions(cfg.timeout)
	if err != nil {
		return Connection{}, err
	}
	if cfg.adjust != nil {
		cfg.adjust(ro)
	}
	c.Client = redis.NewUniversalClient(ro)
	return c, nil
}

// ParseSharded reads a value of OTEL_EXPORTER_VALKEY_SHARDED: true/false,
// 1/0, yes/no or on/off. The error names the variable.
func ParseSharded(s string) (bool, error) { return valkeyconf.ParseBool(EnvSharded, s) }

// ParseInterval reads a value of HEARTBEAT_INTERVAL: a number of seconds
// ("60", "0.5") as the original design writes it, or a Go duration ("1m30s"), within
// wire.MinInterval and wire.MaxInterval. The error names the variable.
func ParseInterval(s string) (time.Duration, error) {
	return valkeyconf.ParseInterval(EnvHeartbeatInterval, s)
}

// CheckInterval reports whether d is an interval a publisher can have
// (wire.MinInterval to wire.MaxInterval), for an interval given as a flag.
func CheckInterval(d time.Duration) error { return valkeyconf.CheckInterval(d) }

// QuietGoRedis stops go-redis's own log lines, for a program that reports
// connection trouble itself (a watcher says when it cannot see). It is
// process-wide, so the library never calls it: a program owns its process.
func QuietGoRedis() { redis.SetLogger(quiet{}) }

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}
