package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/alerting"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/delivery"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/panel"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/series"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
)

// errUsage is a flag the flag package has already reported.
var errUsage = errors.New("usage")

// settings are the command's flags and variables, checked, as the
// library's options.
type settings struct {
	listen      string
	externalURL string // the panel's URL for alerts, as given (--external-url, or the alerts file); "" if not
	forgetAfter time.Duration
	windows     []time.Duration
	tracker     []watch.TrackerOption
	panel       []panel.Option
}

// flags are the command line as given.
type flags struct {
	listen, windows, minAlive, replica, alertsFile, amURLs, webhookURL, externalURL string
	metricsLink                                                                     string
	healthRules                                                                     []string
	retention, lease, defInterval, forgetAfter, seriesRetention                     time.Duration
	bars, maxInstances                                                              int
	set                                                                             map[string]bool // the flags given
}

// defaultWindows are the uptime windows unless --windows says.
const defaultWindows = "1h,24h,168h,720h"

func parseFlags(args []string, stderr io.Writer) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("adminpanel", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address to serve on")
	fs.DurationVar(&f.retention, "retention", 30*24*time.Hour, "how long history is kept in Valkey")
	fs.DurationVar(&f.seriesRetention, "series-retention", series.DefaultSpan, "how long heartbeat values over time are kept in Valkey for the charts (1h to 720h, whole 5m; 0: none)")
	fs.DurationVar(&f.lease, "lease", 10*time.Second, "the recorder lease: a standby takes over within it")
	fs.StringVar(&f.windows, "windows", defaultWindows, "uptime windows, comma-separated durations (1m to --retention, at most 8)")
	fs.StringVar(&f.minAlive, "min-alive", "", "instances that must be up for a service to be up, as svc=N,... (default 1)")
	fs.IntVar(&f.bars, "bars", 30, "heartbeat bars per instance: the last N intervals")
	fs.StringVar(&f.replica, "replica", "", "this replica's name in the lease (default: host, pid and a random suffix)")
	fs.DurationVar(&f.defInterval, "default-interval", 0, "interval of senders that do not say theirs until inferred (default HEARTBEAT_INTERVAL, else 60s)")
	fs.IntVar(&f.maxInstances, "max-instances", watch.DefaultMaxInstances, "instances tracked at most")
	fs.DurationVar(&f.forgetAfter, "forget-after", panel.DefaultForgetAfter, "how long a dead or stopped instance that nothing replaced stays listed")
	fs.StringVar(&f.alertsFile, "alerts", "", "the alerting configuration (YAML); the flags below override its receivers")
	fs.StringVar(&f.amURLs, "alertmanager", "", "Alertmanager URLs, comma-separated (an HA pair: both receive every alert)")
	fs.StringVar(&f.webhookURL, "webhook", "", "a webhook URL; its HMAC secret is in ADMINPANEL_WEBHOOK_SECRET")
	fs.Func("health-rule", "a health rule, repeatable: 'SERVICE: FIELD older than DURATION', 'SERVICE: FIELD > NUMBER [for DURATION]' (<, >=, <=), 'SERVICE: FIELD != VALUE'", func(v string) error {
		f.healthRules = append(f.healthRules, v)
		return nil
	})
	fs.StringVar(&f.metricsLink, "metrics-link", "", "link from each instance to its own metrics, with {service_name} and {instance_id}, e.g. a Grafana dashboard URL")
	fs.StringVar(&f.externalURL, "external-url", "", "the panel's URL as operators reach it: the generatorURL of alerts (default: from --listen when it names a host)")
	if err := fs.Parse(args); err != nil {
		return f, errUsage
	}
	f.set = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	return f, nil
}

// parseSettings checks every flag and variable before anything connects;
// an error names the flag or variable at fault.
func parseSettings(args []string, getenv func(string) string, stderr io.Writer) (settings, error) {
	f, err := parseFlags(args, stderr)
	if err != nil {
		return settings{}, err
	}
	s := settings{listen: f.listen, tracker: panel.TrackerOptions()}
	if !f.set["forget-after"] {
		f.forgetAfter = min(f.forgetAfter, f.retention)
	}
	switch {
	case f.retention < time.Hour:
		return s, fmt.Errorf("--retention %v: want at least 1h", f.retention)
	case f.lease < time.Second || f.lease > 10*time.Minute:
		return s, fmt.Errorf("--lease %v: want 1s to 10m: a standby takes over within it", f.lease)
	case f.bars < 1 || f.bars > 1000:
		return s, fmt.Errorf("--bars %d: want 1 to 1000", f.bars)
	case f.maxInstances <= 0:
		return s, fmt.Errorf("--max-instances %d: want a positive number", f.maxInstances)
	case f.forgetAfter < time.Minute || f.forgetAfter > f.retention:
		return s, fmt.Errorf("--forget-after %v: want 1m to --retention (%v)", f.forgetAfter, f.retention)
	case f.seriesRetention != 0 && series.CheckRetention(f.seriesRetention) != nil:
		return s, fmt.Errorf("--series-retention %v: want 1h to 720h, a whole number of 5m, or 0 to keep none", f.seriesRetention)
	}
	if f.seriesRetention == 0 {
		s.panel = append(s.panel, panel.WithSeriesRetention(-1))
	} else {
		s.panel = append(s.panel, panel.WithSeriesRetention(f.seriesRetention))
	}
	s.panel = append(s.panel, panel.WithRetention(f.retention), panel.WithLease(f.lease), panel.WithBars(f.bars), panel.WithReplica(f.replica))
	s.tracker = append(s.tracker, watch.WithMaxInstances(f.maxInstances), watch.WithRetention(f.forgetAfter))
	interval, err := defaultInterval(f.defInterval, getenv)
	if err != nil {
		return s, err
	}
	if interval > 0 {
		s.tracker = append(s.tracker, watch.WithDefaultInterval(interval))
	}
	windows, err := parseWindows(f.windows, f.retention, !f.set["windows"])
	if err != nil {
		return s, err
	}
	s.forgetAfter, s.windows = f.forgetAfter, windows
	minAlive, err := parseMinAlive(f.minAlive)
	if err != nil {
		return s, err
	}
	s.panel = append(s.panel, panel.WithWindows(windows...), panel.WithMinAlive(minAlive))
	alerts, externalURL, fileRules, err := alertOptions(f, getenv)
	if err != nil {
		return s, err
	}
	rules := fileRules
	for _, spec := range f.healthRules {
		r, err := watch.ParseHealthRule(spec)
		if err != nil {
			return s, fmt.Errorf("--health-rule: %w", err)
		}
		rules = append(rules, r)
	}
	if len(rules) > 0 {
		s.tracker = append(s.tracker, watch.WithHealthRules(rules...))
	}
	if f.metricsLink != "" {
		if err := panel.CheckMetricsLink(f.metricsLink); err != nil {
			return s, fmt.Errorf("--metrics-link: %w", err)
		}
		s.panel = append(s.panel, panel.WithMetricsLink(f.metricsLink))
	}
	s.externalURL = externalURL
	auth, err := panel.ParseAuth(getenv("ADMINPANEL_TOKEN"), getenv("ADMINPANEL_BASIC_AUTH"))
	if err != nil {
		return s, err
	}
	s.panel = append(append(s.panel, alerts...), panel.WithAuth(auth))
	return s, nil
}

func defaultInterval(flagged time.Duration, getenv func(string) string) (time.Duration, error) {
	if flagged != 0 {
		if err := watch.CheckInterval(flagged); err != nil {
			return 0, fmt.Errorf("--default-interval: %w", err)
		}
		return flagged, nil
	}
	v := getenv(watch.EnvHeartbeatInterval)
	if v == "" {
		return 0, nil
	}
	d, err := watch.ParseInterval(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", watch.EnvHeartbeatInterval, err)
	}
	return d, nil
}

// parseWindows reads --windows. The defaults (cut) that reach past the
// retention are cut to it: a shorter --retention alone is a working panel.
func parseWindows(list string, retention time.Duration, cut bool) ([]time.Duration, error) {
	var out []time.Duration
	for _, w := range strings.Split(list, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(w))
		if cut && err == nil && d > retention {
			if !slices.Contains(out, retention) {
				out = append(out, retention)
			}
			continue
		}
		switch {
		case err != nil || d < time.Minute || d > retention:
			return nil, fmt.Errorf("--windows: %q is not a duration from 1m to --retention", w)
		case slices.Contains(out, d):
			return nil, fmt.Errorf("--windows: %v is given twice", d)
		case len(out) == 8:
			return nil, errors.New("--windows: at most 8")
		}
		out = append(out, d)
	}
	return out, nil
}

func parseMinAlive(list string) (map[string]int, error) {
	out := map[string]int{}
	if list == "" {
		return out, nil
	}
	for _, kv := range strings.Split(list, ",") {
		svc, n, ok := strings.Cut(strings.TrimSpace(kv), "=")
		v, err := strconv.Atoi(n)
		switch {
		case !ok || err != nil || v < 1:
			return nil, fmt.Errorf("--min-alive: %q is not service=N with N at least 1", kv)
		case out[svc] != 0:
			return nil, fmt.Errorf("--min-alive: %s is given twice", svc)
		}
		out[svc] = v
	}
	return out, nil
}

// alertOptions are the alerting file's rules and receivers, the flags
// overriding its receivers, the panel's URL for alerts when the flags or
// the file give it, and the file's health rules.
func alertOptions(f flags, getenv func(string) string) ([]panel.Option, string, []watch.HealthRule, error) {
	var file alerting.File
	if f.alertsFile != "" {
		var err error
		if file, err = alerting.Load(f.alertsFile); err != nil {
			return nil, "", nil, fmt.Errorf("--alerts: %w", err)
		}
	}
	am, hook := file.Receivers.Alertmanager, file.Receivers.Webhook
	if f.amURLs != "" {
		am = &alerting.AlertmanagerReceiver{ResendEvery: resendEvery(am)}
		for _, u := range strings.Split(f.amURLs, ",") {
			if err := alerting.CheckURL(strings.TrimSpace(u)); err != nil {
				return nil, "", nil, fmt.Errorf("--alertmanager: %w", err)
			}
			am.URLs = append(am.URLs, alerting.URL(strings.TrimSpace(u)))
		}
	}
	if f.webhookURL != "" {
		if err := alerting.CheckURL(f.webhookURL); err != nil {
			return nil, "", nil, fmt.Errorf("--webhook: %w", err)
		}
		hook = &alerting.WebhookReceiver{URL: alerting.URL(f.webhookURL), SecretEnv: alerting.EnvName(secretEnv(hook))}
	}
	if f.externalURL != "" {
		if err := alerting.CheckLinkURL(f.externalURL); err != nil {
			return nil, "", nil, fmt.Errorf("--external-url: %w", err)
		}
		file.ExternalURL = alerting.LinkURL(f.externalURL)
	}
	opts := []panel.Option{panel.WithAlerting(file.Options()...)}
	if am != nil && len(am.URLs) > 0 {
		urls := make([]string, len(am.URLs))
		for i, u := range am.URLs {
			urls[i] = string(u)
		}
		opts = append(opts, panel.WithAlertmanager(urls, delivery.WithResendEvery(time.Duration(am.ResendEvery))))
	}
	if hook != nil {
		env := secretEnv(hook)
		secret := getenv(env)
		if secret == "" {
			return nil, "", nil, fmt.Errorf("the webhook needs its HMAC secret in %s", env)
		}
		opts = append(opts, panel.WithWebhook(string(hook.URL), []byte(secret)))
	}
	return opts, string(file.ExternalURL), file.Health(), nil
}

func resendEvery(am *alerting.AlertmanagerReceiver) alerting.Duration {
	if am == nil {
		return 0
	}
	return am.ResendEvery
}

func secretEnv(hook *alerting.WebhookReceiver) string {
	if hook == nil || hook.SecretEnv == "" {
		return alerting.DefaultSecretEnv
	}
	return string(hook.SecretEnv)
}

// externalURLFrom is the panel's URL derived from --listen, for alerts'
// generatorURL: http://HOST:PORT/ when listen names a host or an address
// others can use as it is, with the port the panel got (bound: listen's
// port 0 is another); false for a wildcard (":8080", "0.0.0.0:8080",
// "[::]:8080"), which names no host to link to.
func externalURLFrom(listen, bound string) (string, bool) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil || host == "" {
		return "", false
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return "", false
	}
	_, port, err := net.SplitHostPort(bound)
	if err != nil {
		return "", false
	}
	u := (&url.URL{Scheme: "http", Host: net.JoinHostPort(host, port), Path: "/"}).String()
	if alerting.CheckURL(u) != nil {
		return "", false
	}
	return u, true
}
