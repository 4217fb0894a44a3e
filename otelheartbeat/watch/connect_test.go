package watch

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func env(kv map[string]string) ConnectOption {
	return WithGetenv(func(k string) string { return kv[k] })
}

func TestConnectFromEnvReadsThePublishersVariables(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		vars                   map[string]string
		opts                   []ConnectOption
		endpoint, channel, key string
		sharded                bool
	}{
		{name: "nothing set", endpoint: "redis://localhost:6379", channel: "heartbeat:service:{service_name}", key: "heartbeat:instance:"},
		{name: "the library's variables", vars: map[string]string{
			EnvEndpoint: "rediss://monitor:secret@cache.example:6380", EnvSharded: "true",
			EnvChannelPrefix: "hb:svc:", "OTEL_EXPORTER_VALKEY_KEY_PREFIX": "hb:inst:",
		}, endpoint: "rediss://monitor@cache.example:6380", channel: "hb:svc:{service_name}", key: "hb:inst:", sharded: true},
		{name: "a channel template", vars: map[string]string{EnvChannel: "health:service:{service_name}:heartbeat"},
			endpoint: "redis://localhost:6379", channel: "health:service:{service_name}:heartbeat", key: "heartbeat:instance:"},
		{name: "the original design's variables", vars: map[string]string{
			EnvHealthHost: "dragonfly", "HEALTH_REDIS_PORT": "6390", "HEALTH_REDIS_PASSWORD": "secret",
		}, endpoint: "redis://dragonfly:6390", channel: "heartbeat:service:{service_name}", key: "heartbeat:instance:"},
		{name: "an endpoint in code wins", vars: map[string]string{EnvEndpoint: "redis://elsewhere:1"},
			opts:     []ConnectOption{WithEndpoint("redis://u:secret@here:7000", "--endpoint")},
			endpoint: "redis://u@here:7000", channel: "heartbeat:service:{service_name}", key: "heartbeat:instance:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ConnectFromEnv(append([]ConnectOption{env(tc.vars)}, tc.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Client.Close()
			if c.Endpoint != tc.endpoint || c.Channel.String() != tc.channel || c.KeyPrefix != tc.key || c.Sharded != tc.sharded {
				t.Errorf("got %q %q %q %v; want %q %q %q %v", c.Endpoint, c.Channel, c.KeyPrefix, c.Sharded,
					tc.endpoint, tc.channel, tc.key, tc.sharded)
			}
			m, err := New(c)
			if err != nil {
				t.Fatal(err)
			}
			if cfg := m.cfg; cfg.Client != c.Client || cfg.Endpoint != c.Endpoint || cfg.Channel != c.Channel ||
				cfg.KeyPrefix != c.KeyPrefix || cfg.Sharded != c.Sharded {
				t.Errorf("a monitor of the connection is of %+v", cfg)
			}
		})
	}
}

func TestConnectFromEnvNamesTheMalformedVariable(t *testing.T) {
	for name, vars := range map[string]map[string]string{
		EnvSharded:       {EnvSharded: "maybe"},
		EnvEndpoint:      {EnvEndpoint: "redis://u:secret@host:notaport"},
		EnvChannelPrefix: {EnvChannelPrefix: "heartbeat:*"},
		EnvChannel:       {EnvChannel: "health:service:heartbeat"},
	} {
		_, err := ConnectFromEnv(env(vars))
		if err == nil || !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: got %v; want an error naming it without the password", name, err)
		}
	}
	if _, err := ConnectFromEnv(env(nil), WithEndpoint("u:secret@host:1", "--endpoint")); err == nil ||
		!strings.Contains(err.Error(), "--endpoint") || strings.Contains(err.Error(), "secret") {
		t.Errorf("--endpoint with bare credentials: got %v; want an error naming the flag without the password", err)
	}
}

func TestConnectFromEnvAppliesTimeoutAndClientOptions(t *testing.T) {
	c, err := ConnectFromEnv(env(nil), WithCommandTimeout(1500*time.Millisecond),
		WithClientOptions(func(o *redis.UniversalOptions) { o.PoolSize = 7 }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Client.Close()
	o := c.Client.(*redis.Client).Options()
	if o.PoolSize != 7 || o.ReadTimeout != 1500*time.Millisecond {
		t.Errorf("pool %d, read timeout %v; want 7 and 1.5s", o.PoolSize, o.ReadTimeout)
	}
}

func TestIntervalAndShardedHelpersNameTheirVariables(t *testing.T) {
	if d, err := ParseInterval("0.5"); err != nil || d != 500*time.Millisecond {
		t.Errorf("ParseInterval(0.5) = %v, %v", d, err)
	}
	if _, err := ParseInterval("forever"); err == nil || !strings.Contains(err.Error(), EnvHeartbeatInterval) {
		t.Errorf("ParseInterval(forever) = %v; want an error naming %s", err, EnvHeartbeatInterval)
	}
	if b, err := ParseSharded("on"); err != nil || !b {
		t.Errorf("ParseSharded(on) = %v, %v", b, err)
	}
	if err := CheckInterval(time.Millisecond); err == nil {
		t.Error("CheckInterval(1ms) accepted an interval no publisher can have")
	}
}
