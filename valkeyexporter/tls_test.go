package valkeyexporter

import (
	"context"
	"crypto/tls"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
)

func TestTLS(t *testing.T) {
	ca := redistest.NewCA(t, "heartbeat-test")
	cert, key := ca.Issue(t, "localhost") // a DNS name only: no IP SAN
	srv := redistest.StartTLS(t, cert, key)
	port := strconv.Itoa(srv.Port())
	sub := srv.Client(t, func(o *redis.Options) { o.Addr, o.TLSConfig = "localhost:"+port, ca.ClientConfig("localhost") })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ps := sub.PSubscribe(ctx, "heartbeat:service:*")
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatalf("TLS subscriber: %v", err)
	}
	other := redistest.NewCA(t, "someone-else")

	for _, tt := range []struct {
		name     string
		endpoint string
		caFile   string
		wantErr  string // empty: must succeed
	}{
		{"rediss with the CA", "rediss://localhost:" + port, ca.CertPEM, ""},
		{"valkeys with the CA", "valkeys://localhost:" + port, ca.CertPEM, ""},
		{"verification is on by default", "rediss://localhost:" + port, "", "certificate signed by unknown authority"},
		{"wrong CA", "rediss://localhost:" + port, other.CertPEM, "certificate signed by unknown authority"},
		{"wrong host name", "rediss://127.0.0.1:" + port, ca.CertPEM, "doesn't contain any IP SANs"},
		{"plain text to a TLS port", "redis://localhost:" + port, "", "PUBLISH"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"OTEL_EXPORTER_VALKEY_CERTIFICATE": tt.caFile}
			if !strings.HasPrefix(tt.endpoint, "rediss") && !strings.HasPrefix(tt.endpoint, "valkeys") {
				env = nil
			}
			exp, err := New(WithEndpoint(tt.endpoint), withEnv(func(k string) string { return env[k] }))
			must(t, err)
			defer exp.Shutdown(context.Background())
			ectx, ecancel := context.WithTimeout(ctx, 3*time.Second)
			defer ecancel()
			err = exp.Export(ectx, collect(t, "tracker_fetcher"))
			if tt.wantErr == "" {
				must(t, err)
				msg, err := ps.ReceiveMessage(ctx)
				must(t, err)
				if msg.Channel != "heartbeat:service:tracker_fetcher" {
					t.Errorf("channel %q", msg.Channel)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestMutualTLS(t *testing.T) {
	ca := redistest.NewCA(t, "heartbeat-test")
	cert, key := ca.Issue(t, "localhost")
	srv := redistest.StartTLS(t, cert, key, "--tls-auth-clients", "yes", "--tls-ca-cert-file", ca.CertPEM)
	clientCert, clientKey := ca.Issue(t, "tracker_fetcher")
	endpoint := "rediss://localhost:" + strconv.Itoa(srv.Port())
	for _, tt := range []struct {
		name    string
		env     map[string]string
		wantErr bool
	}{
		{"with a client certificate", map[string]string{
			"OTEL_EXPORTER_VALKEY_CERTIFICATE":        ca.CertPEM,
			"OTEL_EXPORTER_VALKEY_CLIENT_CERTIFICATE": clientCert,
			"OTEL_EXPORTER_VALKEY_CLIENT_KEY":         clientKey,
		}, false},
		{"without one", map[string]string{"OTEL_EXPORTER_VALKEY_CERTIFICATE": ca.CertPEM}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			exp, err := New(WithEndpoint(endpoint), withEnv(func(k string) string { return tt.env[k] }))
			must(t, err)
			defer exp.Shutdown(context.Background())
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			err = exp.Export(ctx, collect(t, "tracker_fetcher"))
			if (err != nil) != tt.wantErr {
				t.Errorf("export: %v, want error %v", err, tt.wantErr)
			}
		})
	}
	if _, err := New(WithEndpoint(endpoint), withEnv(func(k string) string {
		return map[string]string{"OTEL_EXPORTER_VALKEY_CLIENT_CERTIFICATE": clientCert, "OTEL_EXPORTER_VALKEY_CLIENT_KEY": "/nonexistent.pem"}[k]
	})); err == nil || !strings.Contains(err.Error(), "OTEL_EXPORTER_VALKEY_CLIENT_KEY") {
		t.Errorf("a missing key file: %v", err)
	}
}

// A TLS configuration passed in code wins over the certificate variables,
// as every option wins over its variable; a CA file that cannot be read is
// an error naming the variable when nothing in code replaces it. Neither
// panics.
func TestTLSConfigOptionWithAMissingCertificateFile(t *testing.T) {
	env := map[string]string{"OTEL_EXPORTER_VALKEY_CERTIFICATE": "/missing"}
	getenv := withEnv(func(k string) string { return env[k] })
	exp, err := New(WithEndpoint("rediss://localhost:1"), WithTLSConfig(&tls.Config{ServerName: "localhost"}), getenv)
	if err != nil {
		t.Fatalf("WithTLSConfig replaces OTEL_EXPORTER_VALKEY_CERTIFICATE, want no error: %v", err)
	}
	must(t, exp.Shutdown(context.Background()))

	env["OTEL_EXPORTER_VALKEY_ENDPOINT"] = "rediss://localhost:1"
	exp, err = New(WithTLSConfig(&tls.Config{ServerName: "localhost"}), getenv)
	if err != nil {
		t.Fatalf("WithTLSConfig with the endpoint from the environment: %v", err)
	}
	must(t, exp.Shutdown(context.Background()))

	if _, err := New(getenv); err == nil || !strings.Contains(err.Error(), "OTEL_EXPORTER_VALKEY_CERTIFICATE") {
		t.Errorf("missing CA file without WithTLSConfig: want an error naming the variable, got %v", err)
	}
}
