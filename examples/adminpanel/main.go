// Command adminpanel is the admin panel the services report to: a live web
// page of the fleet, an HTTP API, history and uptime kept in Valkey,
// alerts, and liveness metrics for Prometheus. It is flags to the library's
// packages (watch, panel, alerting, delivery) and the web page.
//
//	adminpanel [--listen 127.0.0.1:8080] [--retention 720h] [--lease 10s]
//	           [--windows 1h,24h,168h,720h] [--min-alive svc=2,other=3]
//	           [--bars 30] [--replica NAME] [--default-interval 60s]
//	           [--alerts FILE] [--alertmanager URLS] [--webhook URL] [--external-url URL]
//
// It connects as the library does (OTEL_EXPORTER_VALKEY_ENDPOINT and the
// other OTEL_EXPORTER_VALKEY_* variables, or the original design's HEALTH_REDIS_*).
// Several replicas may run against one Valkey: all serve the page and the
// API, and one at a time records history and sends alerts, chosen by a
// lease.
//
// Alerts link to the panel (generatorURL) at --external-url, or the alerts
// file's external_url; without either, at the address --listen names, when
// it names a host rather than a wildcard. It says which at start.
//
// It listens on 127.0.0.1 unless told otherwise. ADMINPANEL_TOKEN (a bearer
// token of 16 characters or more) and ADMINPANEL_BASIC_AUTH (user:password,
// for browsers) protect everything but /healthz and /readyz; the webhook's
// HMAC secret is in ADMINPANEL_WEBHOOK_SECRET (or the variable the alerts
// file names).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/otel-heartbeat/heartbeat/examples/adminpanel/web"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/alerting"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/panel"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
)

func main() {
	watch.QuietGoRedis()
	collectSooner(os.LookupEnv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// gcPercent is the panel's GOGC when its environment sets none: the
// runtime collects when the heap has grown by a quarter of what was live,
// rather than doubled. The panel's heap is mostly what it tracks, long
// lived, and it allocates little a heartbeat (under 2 MB a second at
// 10,000 heartbeats a second), so collecting sooner costs it little CPU
// for much memory: at 100,000 instances every 10 s, GOGC=25 against 50
// took 96 MB resident against 112, for 0.5% of a core more in the
// collector (performance.md); against 100, 50 had taken a fifth off.
const gcPercent = 25

// collectSooner sets the runtime's GOGC to gcPercent unless the
// environment sets one (GOGC=100 is the runtime's own default).
func collectSooner(lookupEnv func(string) (string, bool)) {
	if _, set := lookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
}

// run parses the flags, connects, and serves until ctx is done: exit 2 for
// a flag or variable refused, 1 for a failure to serve.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	s, err := parseSettings(args, getenv, stderr)
	if err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintf(stderr, "adminpanel: %v\n", err)
		}
		return 2
	}
	conn, err := watch.ConnectFromEnv(watch.WithGetenv(getenv))
	if err != nil {
		fmt.Fprintf(stderr, "adminpanel: %v\n", err)
		return 2
	}
	defer conn.Client.Close()
	errorf := func(format string, a ...any) { fmt.Fprintf(stderr, "adminpanel: "+format+"\n", a...) }
	// The panel takes what it needs of each heartbeat as it observes it:
	// the watcher decodes the next into the same message.
	mon, err := watch.New(conn, watch.WithTracker(s.tracker...), watch.WithReusedMessages())
	if err != nil {
		fmt.Fprintf(stderr, "adminpanel: %v\n", err)
		return 2
	}
	ln, err := net.Listen("tcp", s.listen)
	if err != nil {
		fmt.Fprintf(stderr, "adminpanel: %v\n", err)
		return 1
	}
	defer ln.Close()
	opts := append(s.panel, panel.WithEndpoint(conn.Endpoint), panel.WithErrorf(errorf), panel.WithPage(web.Files))
	if s.externalURL == "" {
		// Alerts link to the panel where --listen says it is, if it says.
		if u, ok := externalURLFrom(s.listen, ln.Addr().String()); ok {
			opts = append(opts, panel.WithAlerting(alerting.WithExternalURL(u)))
			fmt.Fprintf(stderr, "adminpanel: alerts link to %s (from --listen; set --external-url for a link that works from elsewhere)\n", u)
		} else {
			fmt.Fprintf(stderr, "adminpanel: alerts carry no link (generatorURL): --listen %s names no host to link to; set --external-url\n", s.listen)
		}
	} else {
		fmt.Fprintf(stderr, "adminpanel: alerts link to %s\n", s.externalURL)
	}
	p, err := panel.New(mon.Tracker(), conn.Client, append(opts, panel.WithSeen(mon.Seen))...)
	if err != nil {
		fmt.Fprintf(stderr, "adminpanel: %v\n", err)
		return 2
	}
	fmt.Fprintf(stdout, "admin panel on http://%s/ watching %s\n", ln.Addr(), conn.Endpoint)
	if err := serve(ctx, ln, mon, p); err != nil {
		fmt.Fprintf(stderr, "adminpanel: %v\n", err)
		return 1
	}
	return 0
}

// serve runs the watcher, the panel and the HTTP server on ln until ctx is
// done or one of them fails, then stops all three, the panel last of its
// watcher.
func serve(ctx context.Context, ln net.Listener, mon *watch.Monitor, p *panel.Panel) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv := &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute, ConnContext: panel.ConnContext}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, http.ErrServerClosed) {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
		cancel()
	}
	// The panel stops after the watcher, so that the values of the last
	// heartbeats the watcher delivered are written before the lease is
	// given up (panel.Run).
	panelCtx, stopPanel := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPanel()
	wg.Go(func() { fail(srv.Serve(ln)) })
	wg.Go(func() {
		defer stopPanel()
		fail(mon.Run(ctx, p.Observe))
	})
	wg.Go(func() { fail(p.Run(panelCtx)) })
	<-ctx.Done()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	fail(srv.Shutdown(sctx))
	wg.Wait()
	return errors.Join(errs...)
}
