// Package valkeyconf reads the Valkey connection and heartbeat settings from
// the environment, shared by the exporter and the monitoring tools so that
// both read the same variables the same way.
//
// Precedence, highest first: options passed in code (applied by the caller
// after this package), then the OTEL_EXPORTER_VALKEY_* variables, then the
// original design's HEALTH_REDIS_* variables, then the default localhost:6379. The two
// groups of variables are not mixed: when OTEL_EXPORTER_VALKEY_ENDPOINT is
// set, HEALTH_REDIS_HOST, HEALTH_REDIS_PORT and HEALTH_REDIS_PASSWORD are
// ignored.
//
// Every error names the variable that was wrong. No error, and no String
// method here, ever contains a password.
package valkeyconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// Environment variables.
const (
	EnvEndpoint          = "OTEL_EXPORTER_VALKEY_ENDPOINT"
	EnvUsername          = "OTEL_EXPORTER_VALKEY_USERNAME"
	EnvPassword          = "OTEL_EXPORTER_VALKEY_PASSWORD"
	EnvCertificate       = "OTEL_EXPORTER_VALKEY_CERTIFICATE"
	EnvClientCertificate = "OTEL_EXPORTER_VALKEY_CLIENT_CERTIFICATE"
	EnvClientKey         = "OTEL_EXPORTER_VALKEY_CLIENT_KEY"
	EnvChannel           = "OTEL_EXPORTER_VALKEY_CHANNEL"
	EnvChannelPrefix     = "OTEL_EXPORTER_VALKEY_CHANNEL_PREFIX"
	EnvKeyPrefix         = "OTEL_EXPORTER_VALKEY_KEY_PREFIX"
	EnvLatestState       = "OTEL_EXPORTER_VALKEY_LATEST_STATE"
	EnvCluster           = "OTEL_EXPORTER_VALKEY_CLUSTER"
	EnvSharded           = "OTEL_EXPORTER_VALKEY_SHARDED"
	EnvSentinelMaster    = "OTEL_EXPORTER_VALKEY_SENTINEL_MASTER"
	EnvSentinelPassword  = "OTEL_EXPORTER_VALKEY_SENTINEL_PASSWORD"

	// The SDK's periodic reader variables, in milliseconds. The heartbeat
	// reader's export timeout is the first; the second is only checked,
	// since the heartbeat keeps its own interval.
	EnvMetricExportTimeout  = "OTEL_METRIC_EXPORT_TIMEOUT"
	EnvMetricExportInterval = "OTEL_METRIC_EXPORT_INTERVAL"

	EnvHeartbeatInterval = "HEARTBEAT_INTERVAL"
	EnvHealthHost        = "HEALTH_REDIS_HOST"
	EnvHealthPort        = "HEALTH_REDIS_PORT"
	EnvHealthPassword    = "HEALTH_REDIS_PASSWORD"
)

// DefaultAddr is where the library looks for Valkey when nothing says otherwise.
const DefaultAddr = "localhost:6379"

// Interval bounds. Below the minimum a heartbeat is load, not liveness;
// above the maximum the latest-state TTL and a monitor's thresholds stop
// making sense.
const (
	MinInterval = 10 * time.Millisecond
	MaxInterval = 24 * time.Hour
)

// Endpoint is where and how to connect.
type Endpoint struct {
	Addr string // host:port, the first of Addrs
	// Addrs are every address given: cluster seed nodes, or sentinels.
	Addrs    []string
	Username string
	Password string
	DB       int
	TLS      bool
	// Source is the variable or option the endpoint came from, for errors.
	Source string
}

// String returns the endpoint as a URL without its password.
func (e Endpoint) String() string {
	scheme := "redis"
	if e.TLS {
		scheme = "rediss"
	}
	var b strings.Builder
	b.WriteString(scheme)
	b.WriteString("://")
	if e.Username != "" {
		b.WriteString(url.User(e.Username).String())
		b.WriteByte('@')
	}
	if len(e.Addrs) > 1 {
		b.WriteString(strings.Join(e.Addrs, ","))
	} else {
		b.WriteString(e.Addr)
	}
	if e.DB != 0 {
		b.WriteByte('/')
		b.WriteString(strconv.Itoa(e.DB))
	}
	return b.String()
}

// Redact hides the secrets in an endpoint as a user typed it, for messages
// that must quote it: whatever stands before the last '@' is userinfo, and
// only the user name before its first ':' is kept (a user name is shown
// wherever the endpoint is, as a password never is); a query string or
// fragment is replaced whole, after its '?' or '#'. What stands before
// "://" is kept as the scheme only when it is one (credentials typed
// before it, u:pw@redis://h, are not). It works on URLs and on bare
// host:port lists alike, and on input that does not parse, since that is
// when it is needed.
func Redact(s string) string {
	scheme, rest := "", s
	if i := strings.Index(s, "://"); i >= 0 && isScheme(s[:i]) {
		// What precedes :// is kept only when it is a scheme: in
		// u:pw@redis://h it is credentials, redacted below.
		scheme, rest = s[:i+3], s[i+3:]
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		user := rest[:at]
		if c := strings.IndexByte(user, ':'); c >= 0 {
			user = user[:c] + ":xxxxx"
		}
		rest = user + rest[at:]
	}
	if q := strings.IndexAny(rest, "?#"); q >= 0 {
		rest = rest[:q+1] + "xxxxx"
	}
	return scheme + rest
}

// isScheme reports whether s is a URL scheme (RFC 3986): a letter, then
// letters, digits, "+", "-" or ".".
func isScheme(s string) bool {
	for i, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// ErrBareCredentials is returned by ParseEndpoint for credentials written
// into a bare host:port, which would otherwise be taken for a host name
// and printed wherever the address is.
var ErrBareCredentials = errors.New("credentials are not accepted in a bare host:port; write a URL, redis://USER:PASSWORD@HOST:PORT")

// errBareSuffix is a bare host:port holding a query, a fragment or a
// path: not quoted, since ?password=... is a common way to write a secret.
var errBareSuffix = errors.New("a bare host:port holds a query, a fragment or a path, which are not accepted (it is not quoted here: it may hold a secret); write host:port alone, and pass a password in a variable")

// ParseEndpoint reads an endpoint in one of the forms redis://, rediss://,
// valkey://, valkeys:// (user, password and database optional) or a bare
// host[:port]. Several addresses, for cluster seed nodes or sentinels, are
// separated by commas: redis://user:pw@h1:7000,h2:7001 or h1:7000,h2:7001.
// The port defaults to 6379.
func ParseEndpoint(s string) (Endpoint, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Endpoint{}, errors.New("endpoint is empty")
	}
	if !strings.Contains(s, "://") {
		if strings.Contains(s, "@") {
			return Endpoint{}, ErrBareCredentials
		}
		if strings.ContainsAny(s, "?#/") {
			return Endpoint{}, errBareSuffix
		}
		var e Endpoint
		for _, part := range strings.Split(s, ",") {
			addr, err := hostPort(strings.TrimSpace(part), "")
			if err != nil {
				return Endpoint{}, err
			}
			e.Addrs = append(e.Addrs, addr)
		}
		e.Addr = e.Addrs[0]
		return e, nil
	}
	// url.Parse takes one host; take the others out first.
	var extra []string
	if i := strings.Index(s, "://"); i >= 0 {
		rest := s[i+3:]
		hostEnd := strings.IndexAny(rest, "/?#")
		if hostEnd < 0 {
			hostEnd = len(rest)
		}
		at := strings.LastIndex(rest[:hostEnd], "@")
		if at >= 0 && strings.Contains(rest[:at], ",") {
			// Credentials after an address (redis://h1,u:p@h2), or on a
			// second one (redis://u:p@h1,u2:p2@h2), would otherwise be read
			// as one host with a password or user made of the rest.
			return Endpoint{}, fmt.Errorf("%q: credentials are written once, before the first address (redis://USER:PASSWORD@H1:P1,H2:P2); a comma in a password is written %%2C and an @ as %%40", Redact(s))
		}
		hosts := strings.Split(rest[at+1:hostEnd], ",")
		if len(hosts) > 1 {
			extra = hosts[1:]
			s = s[:i+3] + rest[:at+1] + hosts[0] + rest[hostEnd:]
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		// url.Error quotes the input, password included.
		return Endpoint{}, fmt.Errorf("%q is not a valid URL", Redact(s))
	}
	var e Endpoint
	switch strings.ToLower(u.Scheme) {
	case "redis", "valkey":
	case "rediss", "valkeys":
		e.TLS = true
	default:
		return Endpoint{}, fmt.Errorf("%q: unsupported scheme %q (want redis, rediss, valkey or valkeys)", Redact(s), u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" {
		return Endpoint{}, fmt.Errorf("%q has no host", Redact(s))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		// Not quoted: ?password=... is a common way to write a secret.
		return Endpoint{}, fmt.Errorf("%q: query parameters and fragments are not supported; use the OTEL_EXPORTER_VALKEY_* variables", Redact(s))
	}
	if e.Addr, err = hostPort(u.Host, ""); err != nil {
		return Endpoint{}, fmt.Errorf("%q: %w", Redact(s), err)
	}
	e.Addrs = []string{e.Addr}
	for _, h := range extra {
		addr, err := hostPort(strings.TrimSpace(h), "")
		if err != nil {
			return Endpoint{}, fmt.Errorf("%q: %w", Redact(s), err)
		}
		e.Addrs = append(e.Addrs, addr)
	}
	if u.User != nil {
		e.Username = u.User.Username()
		e.Password, _ = u.User.Password()
	}
	switch path := strings.Trim(u.Path, "/"); {
	case path == "":
	default:
		db, err := strconv.Atoi(path)
		if err != nil || db < 0 || db > 1<<16 {
			return Endpoint{}, fmt.Errorf("%q: database %q is not a number", Redact(s), path)
		}
		e.DB = db
	}
	return e, nil
}

func hostPort(s, defaultPort string) (string, error) {
	if strings.IndexFunc(s, unicode.IsSpace) >= 0 {
		return "", fmt.Errorf("address %q holds whitespace", s)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// No port: a bare host, or a bare IPv6 literal.
		host, port = strings.Trim(s, "[]"), defaultPort
		if port == "" {
			port = "6379"
		}
	}
	if host == "" {
		return "", fmt.Errorf("address %q has no host", s)
	}
	if _, err := ParsePort(port); err != nil {
		return "", fmt.Errorf("address %q: %w", s, err)
	}
	return net.JoinHostPort(host, port), nil
}

// ParsePort reads a TCP port, 1 to 65535.
func ParsePort(s string) (int, error) {
	p, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	return p, nil
}

// Connection is everything needed to build a client.
type Connection struct {
	Endpoint
	// CAFile, CertFile and KeyFile are PEM files for TLS.
	CAFile, CertFile, KeyFile string
	// Cluster forces cluster mode for a single address (a configuration
	// endpoint); several addresses without SentinelMaster mean a cluster.
	Cluster bool
	// SentinelMaster names the primary the sentinels at Addrs watch.
	SentinelMaster   string
	SentinelPassword string
}

// Getenv looks a variable up; os.Getenv in production, a map in tests.
type Getenv func(string) string

// ConnectionFromEnv reads the connection settings. A variable that is set
// but empty counts as unset.
func ConnectionFromEnv(getenv Getenv) (Connection, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	c := Connection{Endpoint: Endpoint{Addr: DefaultAddr, Addrs: []string{DefaultAddr}, Source: "default"}}
	if v := getenv(EnvEndpoint); strings.TrimSpace(v) != "" {
		e, err := ParseEndpoint(v)
		if errors.Is(err, ErrBareCredentials) {
			return Connection{}, fmt.Errorf("%s: %w, or set %s (and %s)", EnvEndpoint, err, EnvPassword, EnvUsername)
		}
		if err != nil {
			return Connection{}, fmt.Errorf("%s: %w", EnvEndpoint, err)
		}
		e.Source = EnvEndpoint
		c.Endpoint = e
	} else if host, port := getenv(EnvHealthHost), getenv(EnvHealthPort); host != "" || port != "" {
		if strings.Contains(host, "@") {
			return Connection{}, fmt.Errorf("%s: credentials are not accepted in a host name; set %s (or use %s=redis://USER:PASSWORD@HOST:PORT)", EnvHealthHost, EnvHealthPassword, EnvEndpoint)
		}
		if strings.ContainsAny(host, "?#/") {
			return Connection{}, fmt.Errorf("%s: a host name holds no query, fragment or path (it is not quoted here: it may hold a secret); set %s for the password", EnvHealthHost, EnvHealthPassword)
		}
		if host == "" {
			host = "localhost"
		}
		if port == "" {
			port = "6379"
		}
		if _, err := ParsePort(port); err != nil {
			return Connection{}, fmt.Errorf("%s: %w", EnvHealthPort, err)
		}
		addr, err := hostPort(net.JoinHostPort(strings.Trim(host, "[]"), port), "")
		if err != nil {
			return Connection{}, fmt.Errorf("%s: %w", EnvHealthHost, err)
		}
		c.Addr, c.Addrs, c.Source = addr, []string{addr}, EnvHealthHost
		c.Password = getenv(EnvHealthPassword)
	} else if pw := getenv(EnvHealthPassword); pw != "" {
		c.Password, c.Source = pw, EnvHealthPassword
	}
	if v := getenv(EnvUsername); v != "" {
		c.Username = v
	}
	if v := getenv(EnvPassword); v != "" {
		c.Password = v
	}
	if v := getenv(EnvCluster); v != "" {
		b, err := ParseBool(EnvCluster, v)
		if err != nil {
			return Connection{}, err
		}
		c.Cluster = b
	}
	if v := strings.TrimSpace(getenv(EnvSentinelMaster)); v != "" {
		if strings.IndexFunc(v, unicode.IsSpace) >= 0 {
			return Connection{}, fmt.Errorf("%s=%q holds whitespace", EnvSentinelMaster, v)
		}
		if c.Cluster {
			return Connection{}, fmt.Errorf("%s and %s do not mix", EnvSentinelMaster, EnvCluster)
		}
		c.SentinelMaster = v
	}
	c.SentinelPassword = getenv(EnvSentinelPassword)
	c.CAFile = getenv(EnvCertificate)
	c.CertFile = getenv(EnvClientCertificate)
	c.KeyFile = getenv(EnvClientKey)
	if (c.CertFile == "") != (c.KeyFile == "") {
		return Connection{}, fmt.Errorf("%s and %s must be set together", EnvClientCertificate, EnvClientKey)
	}
	if (c.CAFile != "" || c.CertFile != "") && !c.TLS {
		return Connection{}, fmt.Errorf("%s or %s is set but the endpoint %s is not TLS; use rediss://", EnvCertificate, EnvClientCertificate, c.Endpoint)
	}
	return c, nil
}

// TLSConfig returns the TLS configuration for the connection, or nil when it
// is not TLS. Certificate verification is always on; the server name is the
// endpoint's host.
func (c Connection) TLSConfig() (*tls.Config, error) {
	if !c.TLS {
		return nil, nil
	}
	host, _, _ := net.SplitHostPort(c.Addr)
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvCertificate, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: %s holds no PEM certificate", EnvCertificate, c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", EnvClientCertificate, EnvClientKey, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// ClientOptions returns go-redis options for a single-endpoint client built
// the way the library wants its own clients: context deadlines honoured (so
// an export never outlives its context), bounded dial, read and write
// timeouts, a small pool, no maintenance-notification handshake, and no
// CLIENT SETNAME, which a least-privilege ACL user may not run.
func (c Connection) ClientOptions(timeout time.Duration) (*redis.UniversalOptions, error) {
	tlsCfg, err := c.TLSConfig()
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	addrs := c.Addrs
	if len(addrs) == 0 {
		addrs = []string{c.Addr}
	}
	return &redis.UniversalOptions{
		Addrs:                 addrs,
		IsClusterMode:         c.Cluster || len(addrs) > 1 && c.SentinelMaster == "",
		MasterName:            c.SentinelMaster,
		SentinelPassword:      c.SentinelPassword,
		Username:              c.Username,
		Password:              c.Password,
		DB:                    c.DB,
		TLSConfig:             tlsCfg,
		DialTimeout:           timeout,
		ReadTimeout:           timeout,
		WriteTimeout:          timeout,
		PoolTimeout:           timeout,
		ContextTimeoutEnabled: true,
		PoolSize:              2,
		MaxRetries:            -1, // one attempt: the next heartbeat is the retry
		DialerRetries:         1,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	}, nil
}

// ParseInterval reads a heartbeat interval: a number of seconds ("60",
// "0.5") as the original design writes it, or a Go duration ("1m30s", "500ms"). It must
// lie within [MinInterval, MaxInterval]. name is the variable, for the error.
func ParseInterval(name, s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var d time.Duration
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || f > MaxInterval.Seconds() || f < -MaxInterval.Seconds() {
			return 0, fmt.Errorf("%s=%q: want at most %v", name, s, MaxInterval)
		}
		d = time.Duration(f * float64(time.Second))
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, fmt.Errorf("%s=%q: want seconds (e.g. 60) or a duration (e.g. 1m30s)", name, s)
	}
	if err := CheckInterval(d); err != nil {
		return 0, fmt.Errorf("%s=%q: %w", name, s, err)
	}
	return d, nil
}

// ParseMillis reads a positive whole number of milliseconds, the form of
// the SDK's OTEL_METRIC_EXPORT_* variables. name is the variable, for the
// error.
func ParseMillis(name, s string) (time.Duration, error) {
	ms, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || ms <= 0 || ms > int64(math.MaxInt64/time.Millisecond) {
		return 0, fmt.Errorf("%s=%q: want a positive whole number of milliseconds", name, s)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// CheckInterval reports whether d is a usable heartbeat interval.
func CheckInterval(d time.Duration) error {
	if d < MinInterval || d > MaxInterval {
		return fmt.Errorf("interval %v is outside [%v, %v]", d, MinInterval, MaxInterval)
	}
	return nil
}

// ParseBool reads a boolean variable: true/false, 1/0, yes/no, on/off.
func ParseBool(name, s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "yes", "on":
		return true, nil
	case "false", "0", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("%s=%q: want true or false", name, s)
}

// Prefix reads a channel or key prefix variable. A prefix must not hold glob
// characters or whitespace, for the same reason a service name must not.
func Prefix(name, s string) (string, error) {
	if err := wire.ValidatePrefix(s); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

// ChannelTemplate reads the channel from a template or a prefix, each
// named for errors (an option or a variable); an empty one is unset. Both
// set is an error: one would silently win.
func ChannelTemplate(templateName, template, prefixName, prefix string) (wire.ChannelTemplate, error) {
	switch {
	case template != "" && prefix != "":
		return wire.ChannelTemplate{}, fmt.Errorf("%s and %s are both set: use %s alone", templateName, prefixName, templateName)
	case template != "":
		t, err := wire.ParseChannelTemplate(template)
		if err != nil {
			return t, fmt.Errorf("%s: %w", templateName, err)
		}
		return t, nil
	case prefix != "":
		t, err := wire.PrefixTemplate(prefix)
		if err != nil {
			return t, fmt.Errorf("%s: %w", prefixName, err)
		}
		return t, nil
	}
	return wire.ChannelTemplate{}, nil
}

// ConnectionWithEndpoint is the connection when code names the endpoint:
// where to connect and as whom come from endpoint; the TLS files and the
// topology variables still come from the environment; the endpoint and
// credential variables are not read. source names the option or flag, for
// errors.
func ConnectionWithEndpoint(endpoint, source string, getenv Getenv) (Connection, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if _, err := ParseEndpoint(endpoint); err != nil {
		return Connection{}, fmt.Errorf("%s: %w", source, err)
	}
	c, err := ConnectionFromEnv(func(k string) string {
		switch k {
		case EnvEndpoint:
			return endpoint
		case EnvUsername, EnvPassword, EnvHealthHost, EnvHealthPort, EnvHealthPassword:
			return ""
		}
		return getenv(k)
	})
	if err != nil {
		return Connection{}, err
	}
	c.Source = source
	return c, nil
}

// NamesFromEnv returns the channel template and the key prefix: the
// variables, or the defaults.
func NamesFromEnv(getenv Getenv) (channel wire.ChannelTemplate, key string, err error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if channel, err = ChannelTemplate(EnvChannel, getenv(EnvChannel), EnvChannelPrefix, getenv(EnvChannelPrefix)); err != nil {
		return channel, "", err
	}
	key = wire.DefaultKeyPrefix
	if v := getenv(EnvKeyPrefix); v != "" {
		if key, err = Prefix(EnvKeyPrefix, v); err != nil {
			return channel, "", err
		}
	}
	return channel, key, nil
}
