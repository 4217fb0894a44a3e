package valkeyconf

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

func env(kv ...string) Getenv {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestConnectionFromEnvPrecedence(t *testing.T) {
	tests := []struct {
		name                   string
		env                    Getenv
		addr, user, pass, from string
		tls                    bool
		db                     int
	}{
		{"default", env(), "localhost:6379", "", "", "default", false, 0},
		{"seed host only", env(EnvHealthHost, "dragonfly"), "dragonfly:6379", "", "", EnvHealthHost, false, 0},
		{"seed host port password", env(EnvHealthHost, "dragonfly", EnvHealthPort, "6380", EnvHealthPassword, "pw"), "dragonfly:6380", "", "pw", EnvHealthHost, false, 0},
		{"seed password alone", env(EnvHealthPassword, "pw"), "localhost:6379", "", "pw", EnvHealthPassword, false, 0},
		{"seed ipv6 host", env(EnvHealthHost, "::1"), "[::1]:6379", "", "", EnvHealthHost, false, 0},
		{"endpoint wins over seed", env(EnvEndpoint, "redis://v:7000", EnvHealthHost, "dragonfly", EnvHealthPassword, "seedpw"), "v:7000", "", "", EnvEndpoint, false, 0},
		{"rediss with ACL user", env(EnvEndpoint, "rediss://hb:s3cret@cache.example:6380/2"), "cache.example:6380", "hb", "s3cret", EnvEndpoint, true, 2},
		{"valkeys scheme", env(EnvEndpoint, "valkeys://cache.example"), "cache.example:6379", "", "", EnvEndpoint, true, 0},
		{"bare host:port", env(EnvEndpoint, "10.0.0.5:7001"), "10.0.0.5:7001", "", "", EnvEndpoint, false, 0},
		{"password only in URL", env(EnvEndpoint, "redis://:pw@h"), "h:6379", "", "pw", EnvEndpoint, false, 0},
		{"username and password variables win over URL", env(EnvEndpoint, "redis://u:p@h", EnvUsername, "u2", EnvPassword, "p2"), "h:6379", "u2", "p2", EnvEndpoint, false, 0},
		{"empty endpoint counts as unset", env(EnvEndpoint, "  ", EnvHealthHost, "x"), "x:6379", "", "", EnvHealthHost, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ConnectionFromEnv(tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if c.Addr != tt.addr || c.Username != tt.user || c.Password != tt.pass || c.Source != tt.from || c.TLS != tt.tls || c.DB != tt.db {
				t.Errorf("got %+v", c)
			}
		})
	}
}

func TestMalformedVariablesAreNamedAndPasswordsHidden(t *testing.T) {
	tests := []struct {
		name    string
		env     Getenv
		wantVar string
	}{
		{"port not a number", env(EnvHealthHost, "h", EnvHealthPort, "abc"), EnvHealthPort},
		{"port zero", env(EnvHealthPort, "0"), EnvHealthPort},
		{"port negative", env(EnvHealthPort, "-1"), EnvHealthPort},
		{"port too large", env(EnvHealthPort, "65536"), EnvHealthPort},
		{"host with space", env(EnvHealthHost, "a b"), EnvHealthHost},
		{"unknown scheme", env(EnvEndpoint, "http://u:hunter2@h"), EnvEndpoint},
		{"unparsable URL", env(EnvEndpoint, "redis://u:hunter2@h:port:x"), EnvEndpoint},
		{"URL with bad port", env(EnvEndpoint, "redis://u:hunter2@h:99999"), EnvEndpoint},
		{"URL with query", env(EnvEndpoint, "rediss://u:hunter2@h?skip_verify=true"), EnvEndpoint},
		{"URL with bad db", env(EnvEndpoint, "redis://u:hunter2@h/abc"), EnvEndpoint},
		{"URL without host", env(EnvEndpoint, "redis://u:hunter2@"), EnvEndpoint},
		// Credentials before the scheme: what precedes :// is not a
		// scheme, and is redacted as credentials.
		{"credentials before the scheme", env(EnvEndpoint, "u:hunter2@redis://h"), EnvEndpoint},
		{"credentials before an empty scheme", env(EnvEndpoint, "u:hunter2@://"), EnvEndpoint},
		{"client cert without key", env(EnvEndpoint, "rediss://h", EnvClientCertificate, "c.pem"), EnvClientKey},
		{"CA without TLS", env(EnvEndpoint, "redis://u:hunter2@h", EnvCertificate, "ca.pem"), EnvCertificate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ConnectionFromEnv(tt.env)
			if err == nil {
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tt.wantVar) {
				t.Errorf("error %q does not name %s", err, tt.wantVar)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestEndpointStringNeverShowsPassword(t *testing.T) {
	e, err := ParseEndpoint("rediss://hb:hunter2@cache.example:6380/3")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := e.String(), "rediss://hb@cache.example:6380/3"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := Redact("redis://u:hunter2@h:1"); got != "redis://u:xxxxx@h:1" {
		t.Errorf("Redact = %q", got)
	}
}

func TestTLSConfigVerifiesByDefault(t *testing.T) {
	c, err := ConnectionFromEnv(env(EnvEndpoint, "rediss://cache.example:6380"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := c.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.InsecureSkipVerify || cfg.ServerName != "cache.example" {
		t.Errorf("got %+v", cfg)
	}
	c.CAFile = "/nonexistent/ca.pem"
	if _, err := c.TLSConfig(); err == nil || !strings.Contains(err.Error(), EnvCertificate) {
		t.Errorf("missing CA file: %v", err)
	}
}

func TestParseInterval(t *testing.T) {
	good := map[string]time.Duration{
		"60": time.Minute, "0.5": 500 * time.Millisecond, " 5 ": 5 * time.Second,
		"1m30s": 90 * time.Second, "250ms": 250 * time.Millisecond, "86400": 24 * time.Hour,
	}
	for in, want := range good {
		got, err := ParseInterval(EnvHeartbeatInterval, in)
		if err != nil || got != want {
			t.Errorf("ParseInterval(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "abc", "0", "-5", "NaN", "Inf", "1e300", "0.001", "86401", "25h", "-1s", "60 s"} {
		_, err := ParseInterval(EnvHeartbeatInterval, in)
		if err == nil || !strings.Contains(err.Error(), EnvHeartbeatInterval) {
			t.Errorf("ParseInterval(%q) error %v, want one naming %s", in, err, EnvHeartbeatInterval)
		}
	}
}

func TestParseBoolAndPrefix(t *testing.T) {
	for in, want := range map[string]bool{"true": true, "1": true, "off": false, "No": false} {
		if got, err := ParseBool(EnvLatestState, in); err != nil || got != want {
			t.Errorf("ParseBool(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseBool(EnvLatestState, "maybe"); err == nil || !strings.Contains(err.Error(), EnvLatestState) {
		t.Errorf("ParseBool(maybe) = %v", err)
	}
	for _, bad := range []string{"", "hb:*:", "a b", "x?", strings.Repeat("p", 129)} {
		if _, err := Prefix(EnvChannelPrefix, bad); err == nil || !strings.Contains(err.Error(), EnvChannelPrefix) {
			t.Errorf("Prefix(%q) = %v", bad, err)
		}
	}
}

func FuzzConnectionFromEnv(f *testing.F) {
	f.Add(uint8(0), "rediss", "cache.example:6380/2", "secretpw", "dragonfly", "6379")
	f.Add(uint8(0), "redis", "h:port:x", "secretpw", "", "abc")
	f.Add(uint8(0), "valkey", "[::1]:7000", "secretpw", "", "")
	f.Add(uint8(0), "http", "h?x=1", "secretpw", "a b", "-1")
	f.Add(uint8(1), "", "cache.internal:6379", "secretpw", "", "")
	f.Add(uint8(2), "redis", "h:6379", "secretpw", "", "")
	f.Add(uint8(3), "", "", "secretpw", "dragonfly", "6379")
	f.Fuzz(func(t *testing.T, form uint8, scheme, rest, password, host, port string) {
		// The forms a password is written in: URL userinfo, a bare
		// host's userinfo, a query string, the original design host's userinfo.
		var endpoint string
		switch form % 4 {
		case 0:
			endpoint = scheme + "://user:" + password + "@" + rest
		case 1:
			endpoint = "user:" + password + "@" + rest
		case 2:
			endpoint = scheme + "://" + rest + "?password=" + password
		case 3:
			host = "user:" + password + "@" + host
		}
		c, err := ConnectionFromEnv(env(EnvEndpoint, endpoint, EnvHealthHost, host, EnvHealthPort, port, EnvHealthPassword, password))
		// Only a password that cannot be mistaken for the rest of the input
		// is checked; "a" is in every error message.
		// Errors quote the input with %q, so a password that a quoted
		// input spells out ("\x00000000" holds "00000000"), or that holds
		// the quoting characters themselves, is not checked either.
		quoted := strconv.Quote(scheme) + strconv.Quote(rest) + strconv.Quote(host) + strconv.Quote(port)
		secret := len(password) >= 6 && !strings.ContainsAny(password, "@/:?#%\"\\") &&
			!strings.Contains(scheme+rest+host+port, password) && !strings.Contains(quoted, password)
		if err != nil {
			if secret && strings.Contains(err.Error(), password) {
				t.Fatalf("error %q shows the password", err)
			}
			return
		}
		if c.Addr == "" {
			t.Fatal("accepted a connection with no address")
		}
		if secret && strings.Contains(c.Endpoint.String(), password) {
			t.Fatalf("String() %q shows the password", c.Endpoint.String())
		}
	})
}

func TestCertificateFileWithoutACertificate(t *testing.T) {
	path := t.TempDir() + "/ca.pem"
	if err := os.WriteFile(path, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := ConnectionFromEnv(env(EnvEndpoint, "rediss://h", EnvCertificate, path))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.TLSConfig(); err == nil || !strings.Contains(err.Error(), EnvCertificate) || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("got %v", err)
	}
}

func TestClusterAndSentinelEndpoints(t *testing.T) {
	for _, tt := range []struct {
		name     string
		env      Getenv
		addrs    []string
		user     string
		pass     string
		cluster  bool
		sentinel string
		mode     string // which go-redis client NewUniversalClient would build
	}{
		{"one address", env(EnvEndpoint, "redis://h1:7000"), []string{"h1:7000"}, "", "", false, "", "single"},
		{"cluster seeds in a URL", env(EnvEndpoint, "rediss://hb:pw@h1:7000,h2:7001,h3/2"), []string{"h1:7000", "h2:7001", "h3:6379"}, "hb", "pw", false, "", "cluster"},
		{"cluster seeds bare", env(EnvEndpoint, "h1:7000, h2:7001"), []string{"h1:7000", "h2:7001"}, "", "", false, "", "cluster"},
		{"configuration endpoint", env(EnvEndpoint, "rediss://cfg.example:6379", EnvCluster, "true"), []string{"cfg.example:6379"}, "", "", true, "", "cluster"},
		{"sentinels", env(EnvEndpoint, "redis://s1:26379,s2:26379", EnvSentinelMaster, "mymaster", EnvSentinelPassword, "spw"), []string{"s1:26379", "s2:26379"}, "", "", false, "mymaster", "sentinel"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ConnectionFromEnv(tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(c.Addrs, ",") != strings.Join(tt.addrs, ",") || c.Username != tt.user || c.Password != tt.pass || c.Cluster != tt.cluster || c.SentinelMaster != tt.sentinel {
				t.Errorf("got %+v", c)
			}
			o, err := c.ClientOptions(0)
			if err != nil {
				t.Fatal(err)
			}
			mode := "single"
			switch {
			case o.MasterName != "":
				mode = "sentinel"
			case o.IsClusterMode:
				mode = "cluster"
			}
			if mode != tt.mode {
				t.Errorf("mode %s, want %s", mode, tt.mode)
			}
			if strings.Contains(c.Endpoint.String(), "pw") {
				t.Errorf("String() %q shows the password", c.Endpoint.String())
			}
		})
	}
	for _, bad := range []Getenv{
		env(EnvEndpoint, "redis://h1:7000,h2:port"),
		env(EnvEndpoint, "h1,,h2"),
		env(EnvCluster, "maybe"),
		env(EnvSentinelMaster, "my master"),
		env(EnvSentinelMaster, "m", EnvCluster, "true"),
	} {
		if _, err := ConnectionFromEnv(bad); err == nil {
			t.Errorf("accepted %v", bad)
		}
	}
}

func TestConnectionWithEndpointKeepsTheRestOfTheEnvironment(t *testing.T) {
	getenv := env(EnvEndpoint, "redis://ignored:1", EnvPassword, "env-pw", EnvHealthHost, "dragonfly",
		EnvCertificate, "/etc/ca.pem", EnvCluster, "true")
	c, err := ConnectionWithEndpoint("rediss://u:code-pw@h:7000", "WithEndpoint", getenv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "h:7000" || c.Password != "code-pw" || c.Username != "u" || !c.TLS || c.CAFile != "/etc/ca.pem" || !c.Cluster || c.Source != "WithEndpoint" {
		t.Errorf("got %+v", c)
	}
	if _, err := ConnectionWithEndpoint("ftp://x", "--endpoint", getenv); err == nil || !strings.HasPrefix(err.Error(), "--endpoint: ") {
		t.Errorf("bad endpoint: %v", err)
	}
	if _, err := ConnectionWithEndpoint("h:1", "WithEndpoint", env(EnvCluster, "maybe")); err == nil || !strings.Contains(err.Error(), EnvCluster) {
		t.Errorf("a malformed topology variable is still an error: %v", err)
	}
	ch, key, err := NamesFromEnv(env(EnvKeyPrefix, "hb:i:"))
	if err != nil || ch.String() != wire.DefaultChannelTemplate || key != "hb:i:" {
		t.Errorf("names %q %q %v", ch, key, err)
	}
}

// The channel comes from a template, from a prefix, or from neither;
// from both it is an error naming both, and a malformed one names its
// variable.
func TestChannelFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string // the template, or a piece of the error
		ok   bool
	}{
		{map[string]string{}, "heartbeat:service:{service_name}", true},
		{map[string]string{EnvChannel: "health:service:{service_name}:heartbeat"}, "health:service:{service_name}:heartbeat", true},
		{map[string]string{EnvChannelPrefix: "hb:"}, "hb:{service_name}", true},
		{map[string]string{EnvChannel: "a:{service_name}", EnvChannelPrefix: "hb:"}, EnvChannel + " and " + EnvChannelPrefix + " are both set", false},
		{map[string]string{EnvChannel: "health:service:heartbeat"}, EnvChannel + `: channel template "health:service:heartbeat" does not hold {service_name}`, false},
		{map[string]string{EnvChannelPrefix: "hb:*"}, EnvChannelPrefix + `: prefix "hb:*" holds '*'`, false},
	} {
		ch, _, err := NamesFromEnv(func(k string) string { return tc.env[k] })
		switch {
		case tc.ok && (err != nil || ch.String() != tc.want):
			t.Errorf("%v: %q %v", tc.env, ch, err)
		case !tc.ok && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: error %v, want %q", tc.env, err, tc.want)
		}
	}
}

// Credentials written into a bare host would otherwise be taken whole as
// a host name, and then printed wherever the address is (start-up lines,
// export errors, go-redis's dial log). They are refused with an error that
// says how to pass them, and that never quotes them.
func TestCredentialsInABareHostAreRefused(t *testing.T) {
	tests := []struct {
		name     string
		env      Getenv
		wantVar  string
		wantHint string
	}{
		{"endpoint", env(EnvEndpoint, "user:hunter2@cache.internal:6379"), EnvEndpoint, EnvPassword},
		{"endpoint password only", env(EnvEndpoint, ":hunter2@cache.internal"), EnvEndpoint, "redis://"},
		{"endpoint, second address", env(EnvEndpoint, "h1:7000,u:hunter2@h2:7001"), EnvEndpoint, EnvPassword},
		{"endpoint with whitespace too", env(EnvEndpoint, "u:hunter2 @h"), EnvEndpoint, EnvPassword},
		{"seed host", env(EnvHealthHost, "u:hunter2@dragonfly"), EnvHealthHost, EnvHealthPassword},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ConnectionFromEnv(tt.env)
			if err == nil {
				t.Fatalf("want an error, got address %s", c.Endpoint)
			}
			if !strings.Contains(err.Error(), tt.wantVar) || !strings.Contains(err.Error(), tt.wantHint) {
				t.Errorf("error %q: want it to name %s and say how (%s)", err, tt.wantVar, tt.wantHint)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
	if _, err := ConnectionWithEndpoint("u:hunter2@h:1", "--endpoint", env()); err == nil ||
		!strings.Contains(err.Error(), "--endpoint") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("--endpoint with credentials in a bare host: %v", err)
	}
}

// A query string is refused; the error must not quote it, since
// ?password=... is a common way to write a secret there.
func TestQueryStringSecretsAreNotEchoed(t *testing.T) {
	for _, tc := range []struct{ name, value string }{
		{EnvEndpoint, "redis://h:6379?password=hunter2"},
		{EnvEndpoint, "redis://u:pw@h:6379/0?password=hunter2"},
		{EnvEndpoint, "redis://h#hunter2"},
		// A bare host:port is not a URL: a query, a fragment or a path in
		// it would be taken for part of the host, and printed with it.
		{EnvEndpoint, "127.0.0.1:46390?password=hunter2"},
		{EnvEndpoint, "127.0.0.1?password=hunter2"},
		{EnvEndpoint, "cache.internal:6379/?password=hunter2"},
		{EnvEndpoint, "cache.internal:6379#hunter2"},
		{EnvEndpoint, "h1:6379,h2:6379?password=hunter2"},
		{EnvHealthHost, "cache.internal?password=hunter2"},
		{EnvHealthHost, "cache.internal/hunter2"},
	} {
		_, err := ConnectionFromEnv(env(tc.name, tc.value))
		if err == nil || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("%s=%s: want an error naming %s, got %v", tc.name, tc.value, tc.name, err)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s=%s: error %q shows the secret", tc.name, tc.value, err)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"redis://u:hunter2@h:1":          "redis://u:xxxxx@h:1",
		"redis://:hunter2@h:1":           "redis://:xxxxx@h:1",
		"redis://u:hun@ter2@h:1":         "redis://u:xxxxx@h:1",
		"redis://h:1?password=hunter2":   "redis://h:1?xxxxx",
		"redis://:hunter2@h:1#frag":      "redis://:xxxxx@h:1#xxxxx",
		"redis://u:p@h:1/2?x=hunter2#f":  "redis://u:xxxxx@h:1/2?xxxxx",
		"u:hunter2@cache.internal:6379":  "u:xxxxx@cache.internal:6379",
		"h1:1,u:hunter2@h2:2":            "h1:xxxxx@h2:2",
		"cache.internal:6379":            "cache.internal:6379",
		"rediss://cache.internal:6379/1": "rediss://cache.internal:6379/1",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// Credentials on a second address used to swallow the first address into
// the password: redis://hb:P1@h1:7000,hb2:P2@h2:7001 became one host with
// the password "P1@h1:7000,hb2:P2". It is refused, and neither password
// is quoted.
func TestCredentialsOnASecondAddressAreRefused(t *testing.T) {
	_, err := ParseEndpoint("redis://hb:P1secret@127.0.0.1:7000,hb2:P2secret@127.0.0.1:7001")
	if err == nil {
		t.Fatal("accepted")
	}
	if strings.Contains(err.Error(), "P1secret") || strings.Contains(err.Error(), "P2secret") {
		t.Errorf("the error quotes a password: %v", err)
	}
	if !strings.Contains(err.Error(), "before the first address") {
		t.Errorf("the error does not say how to write it: %v", err)
	}
	for _, in := range []string{"redis://127.0.0.1:7000,:P3secret@127.0.0.1:7001", "redis://127.0.0.1:7000,u%3AP3secret@127.0.0.1:7001"} {
		_, err := ParseEndpoint(in)
		if err == nil || strings.Contains(err.Error(), "P3secret") {
			t.Errorf("%s: %v", in, err)
		}
	}
	e, err := ParseEndpoint("redis://hb:p%40ss@127.0.0.1:7000,127.0.0.1:7001")
	if err != nil || e.Password != "p@ss" || len(e.Addrs) != 2 {
		t.Errorf("a percent-encoded @ in the password: %+v, %v", e, err)
	}
}
