package otelheartbeat

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/valkeyexporter"
)

// An instance advertises where it serves from the standard resource
// attributes or an option; without either the heartbeat is the original design's,
// with no instance_address key at all. A malformed address never withholds
// the heartbeat: it is left out and reported once, without the password
// it held.
func TestInstanceAddress(t *testing.T) {
	srv := redistest.Start(t)
	t.Setenv("OTEL_SERVICE_NAME", "")
	for _, tc := range []struct {
		name, resource string
		opts           []Option
		want           string // the raw JSON's instance_address, or "" for none
		reported       string
	}{
		{name: "none", want: ""},
		{name: "server.address and server.port", resource: "server.address=10.0.0.7,server.port=8080", want: `"instance_address":"10.0.0.7:8080"`},
		{name: "IPv6 server.address", resource: "server.address=2001:db8::7,server.port=8080", want: `"instance_address":"[2001:db8::7]:8080"`},
		{name: "url.full wins", resource: "url.full=http://geo-1.internal:8080/v1,server.address=10.0.0.7,server.port=8080", want: `"instance_address":"http://geo-1.internal:8080/v1"`},
		{name: "the option wins", resource: "url.full=http://geo-1.internal:8080", opts: []Option{WithInstanceAddress("10.0.0.9:9000")}, want: `"instance_address":"10.0.0.9:9000"`},
		{name: "credentials in url.full", resource: "url.full=http://svc:hunter2@geo-1:8080", want: "", reported: "url.full: address holds '@'"},
		{name: "server.address without a port", resource: "server.address=10.0.0.7", want: "", reported: "server.address: address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("OTEL_RESOURCE_ATTRIBUTES", tc.resource)
			hbs := subscribe(t, srv)
			var mu sync.Mutex
			var reported []string
			// The exporter reports through OpenTelemetry's global handler.
			prev := otel.GetErrorHandler()
			otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { mu.Lock(); reported = append(reported, err.Error()); mu.Unlock() }))
			defer otel.SetErrorHandler(prev)
			opts := append([]Option{WithInterval(50 * time.Millisecond), WithExporterOptions(valkeyexporter.WithEndpoint(srv.URL()))}, tc.opts...)
			m, err := NewManager("geocoding_service", opts...)
			must(t, err)
			must(t, m.Start(context.Background()))
			for i := 0; i < 3; i++ {
				hb, raw := hbs.next()
				switch {
				case tc.want == "" && (strings.Contains(raw, "instance_address") || hb.InstanceAddress != ""):
					t.Errorf("heartbeat %d carries an address: %s", i, raw)
				case tc.want != "" && !strings.Contains(raw, tc.want):
					t.Errorf("heartbeat %d: %s, want %s", i, raw, tc.want)
				}
			}
			stop(t, m)
			mu.Lock()
			defer mu.Unlock()
			n := 0
			for _, r := range reported {
				if strings.Contains(r, "hunter2") {
					t.Errorf("reported the password: %s", r)
				}
				if tc.reported != "" && strings.Contains(r, tc.reported) {
					n++
				}
			}
			if tc.reported != "" && n != 1 {
				t.Errorf("reported %q %d times over three heartbeats, want once: %q", tc.reported, n, reported)
			}
		})
	}
	if _, err := NewManager("geocoding_service", WithInstanceAddress("http://u:hunter2@h:1")); err == nil ||
		!strings.Contains(err.Error(), "WithInstanceAddress") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("an option with credentials: %v", err)
	}
}
