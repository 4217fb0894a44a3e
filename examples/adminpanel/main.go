// Command adminpanel is the admin panel the services report to: a live web
// page of the fleet, an HTTP API, history and uptime kept in Valkey, and
// liveness metrics for Prometheus.
//
//	adminpanel [--listen 127.0.0.1:8080] [--retention 720h] [--lease 10s]
//	           [--windows 1h,24h,168h,720h] [--min-alive svc=2,other=3]
//	           [--bars 30] [--replica NAME] [--default-interval 60s]
//
// It connects as the library does (OTEL_EXPORTER_VALKEY_ENDPOINT and the
// other OTEL_EXPORTER_VALKEY_* variables, or the seed's HEALTH_REDIS_*).
// Several replicas may run against one Valkey: all serve the page and the
// API, and one at a time records history, chosen by a lease.
//
// Alerts (an instance dead, a service down, the heartbeat source
// unreachable) are evaluated by the replica that records history and sent
// to Prometheus Alertmanager (--alertmanager, API v2) and a signed webhook
// (--webhook, with its HMAC secret in ADMINPANEL_WEBHOOK_SECRET), or as
// --alerts FILE configures them.
//
// It listens on 127.0.0.1 unless told otherwise. ADMINPANEL_TOKEN (a bearer
// token of 16 characters or more) and ADMINPANEL_BASIC_AUTH (user:password,
// for browsers) protect everything but /healthz and /readyz.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/otel-heartbeat/heartbeat/examples/adminpanel/web"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/alerting"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/delivery"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/panel"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch/term"
)

func main() {
	term.QuietGoRedis()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("adminpanel", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "address to serve on")
	retention := fs.Duration("retention", 30*24*time.Hour, "how long history is kept in Valkey")
	lease := fs.Duration("lease", 10*time.Second, "the recorder lease: a standby takes over within it")
	windows := fs.String("windows", "1h,24h,168h,720h", "uptime windows, comma-separated durations (1m to --retention, at most 8)")
	minAlive := fs.String("min-alive", "", "instances that must be up for a service to be up, as svc=N,... (default 1)")
	bars := fs.Int("bars", 30, "heartbeat bars per instance: the last N intervals")
	replica := fs.String("replica", "", "this replica's name in the lease (default: host, pid and a random suffix)")
	defInterval := fs.Duration("default-interval", 0, "interval of senders that do not say theirs until inferred (default HEARTBEAT_INTERVAL, else 60s)")
	maxInstances := fs.Int("max-instances", watch.DefaultMaxInstances, "instances tracked at most")
	alertsFile := fs.String("alerts", "", "the alerting configuration (YAML); the flags below override its receivers")
	amURLs := fs.String("alertmanager", "", "Alertmanager URLs, comma-separated (an HA pair: both receive every alert)")
	webhookURL := fs.String("webhook", "", "a webhook URL; its HMAC secret is in ADMINPANEL_WEBHOOK_SECRET")
	externalURL := fs.String("external-url", "", "the panel's URL as operators reach it: the generatorURL of alerts")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "adminpanel: "+format+"\n", a...)
		return 2
	}
	cfg := panel.Config{Retention: *retention, Lease: *lease, Bars: *bars, Replica: *replica, MaxInstances: *maxInstances,
		DefaultInterval: *defInterval, MinAlive: map[string]int{}}
	switch {
	case *retention < time.Hour:
		return fail("--retention %v: want at least 1h", *retention)
	case *lease < time.Second || *lease > 10*time.Minute:
		return fail("--lease %v: want 1s to 10m: a standby takes over within it", *lease)
	case *bars < 1 || *bars > 1000:
		return fail("--bars %d: want 1 to 1000", *bars)
	case *maxInstances <= 0:
		return fail("--max-instances %d: want a positive number", *maxInstances)
	}
	if *defInterval != 0 {
		if err := watch.CheckInterval(*defInterval); err != nil {
			return fail("--default-interval: %v", err)
		}
	}
	for _, w := range strings.Split(*windows, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(w))
		switch {
		case err != nil || d < time.Minute || d > *retention:
			return fail("--windows: %q is not a duration from 1m to --retention", w)
		case slices.Contains(cfg.Windows, d):
			return fail("--windows: %v is given twice", d)
		case len(cfg.Windows) == 8:
			return fail("--windows: at most 8")
		}
		cfg.Windows = append(cfg.Windows, d)
	}
	if *minAlive != "" {
		for _, kv := range strings.Split(*minAlive, ",") {
			svc, n, ok := strings.Cut(strings.TrimSpace(kv), "=")
			v, err := strconv.Atoi(n)
			switch {
			case !ok || err != nil || v < 1:
				return fail("--min-alive: %q is not service=N with N at least 1", kv)
			case cfg.MinAlive[svc] != 0:
				return fail("--min-alive: %s is given twice", svc)
			}
			cfg.MinAlive[svc] = v
		}
	}
	if cfg.DefaultInterval == 0 {
		if v := getenv(watch.EnvHeartbeatInterval); v != "" {
			d, err := watch.ParseInterval(v)
			if err != nil {
				return fail("%s: %v", watch.EnvHeartbeatInterval, err)
			}
			cfg.DefaultInterval = d
		}
	}
	var err error
	// The receivers note their deliveries and ask whether they may still
	// send through the panel, made below.
	var p *panel.Panel
	delivered := func(a delivery.Alert) {
		if p != nil {
			p.Delivered(a)
		}
	}
	fence := delivery.FenceFunc(func(ctx context.Context, epoch int64) error {
		if p == nil {
			return errors.New("the panel is not running")
		}
		return p.Allow(ctx, epoch)
	})
	acfg := alerting.Default()
	if *alertsFile != "" {
		if acfg, err = alerting.Load(*alertsFile); err != nil {
			return fail("--alerts: %v", err)
		}
	}
	if *amURLs != "" {
		acfg.Alertmanager = nil
		for _, u := range strings.Split(*amURLs, ",") {
			if err := alerting.CheckURL(strings.TrimSpace(u)); err != nil {
				return fail("--alertmanager: %v", err)
			}
			acfg.Alertmanager = append(acfg.Alertmanager, strings.TrimSpace(u))
		}
	}
	if *webhookURL != "" {
		if err := alerting.CheckURL(*webhookURL); err != nil {
			return fail("--webhook: %v", err)
		}
		acfg.Webhook = *webhookURL
	}
	if *externalURL != "" {
		if err := alerting.CheckURL(*externalURL); err != nil {
			return fail("--external-url: %v", err)
		}
		acfg.ExternalURL = *externalURL
	}
	cfg.Alerting = &acfg
	errorf := func(format string, a ...any) { fmt.Fprintf(stderr, "adminpanel: "+format+"\n", a...) }
	if len(acfg.Alertmanager) > 0 {
		r, err := delivery.NewAlertmanager(acfg.Alertmanager, delivery.AlertmanagerConfig{ResendEvery: acfg.ResendEvery, Errorf: errorf, Fence: fence})
		if err != nil {
			return fail("alertmanager: %v", err)
		}
		cfg.Receivers = append(cfg.Receivers, r)
	}
	if acfg.Webhook != "" {
		secret := getenv(acfg.SecretEnv)
		if secret == "" {
			return fail("the webhook needs its HMAC secret in %s", acfg.SecretEnv)
		}
		r, err := delivery.NewWebhook(acfg.Webhook, []byte(secret), delivery.WebhookConfig{Errorf: errorf,
			Delivered: func(a delivery.Alert) { delivered(a) }, Fence: fence})
		if err != nil {
			return fail("webhook: %v", err)
		}
		cfg.Receivers = append(cfg.Receivers, r)
	}
	auth, err := panel.ParseAuth(getenv("ADMINPANEL_TOKEN"), getenv("ADMINPANEL_BASIC_AUTH"))
	if err != nil {
		return fail("%v", err)
	}
	cfg.Auth = auth
	conn, err := watch.ConnectFromEnv(watch.WithGetenv(getenv))
	if err != nil {
		return fail("%v", err)
	}
	defer conn.Client.Close()
	cfg.Conn = conn
	cfg.Errorf = errorf
	cfg.Page = web.Files
	if p, err = panel.New(cfg); err != nil {
		return fail("%v", err)
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "adminpanel: %v\n", err)
		return 1
	}
	srv := &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute, ConnContext: panel.ConnContext}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "admin panel on http://%s/ watching %s\n", ln.Addr(), conn.Endpoint)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- p.Run(ctx) }()
	code := 0
	select {
	case <-ctx.Done():
	case err := <-served:
		fmt.Fprintf(stderr, "adminpanel: %v\n", err)
		code = 1
	case err := <-ran:
		if err != nil {
			fmt.Fprintf(stderr, "adminpanel: %v\n", err)
			code = 1
		}
		ran <- nil
	}
	cancel()
	if err := <-ran; err != nil && code == 0 {
		fmt.Fprintf(stderr, "adminpanel: %v\n", err)
		code = 1
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "adminpanel: shutdown: %v\n", err)
	}
	return code
}
