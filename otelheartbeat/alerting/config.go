package alerting

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"path"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// File is the alerting configuration file: where alerts go and when they
// fire. In YAML:
//
//	external_url: https://panel.example.com/     # the generatorURL of every alert
//	ignore_services: [heartbeat_check_*]           # the default: no alert for these; [] for none
//	health_rules:                                  # alive but stuck: watch.HealthRule
//	  - "tracker_fetcher: last_successful_operation older than 5m"
//	  - "tracker_fetcher: queue_size > 1000 for 2m"
//	  - "tracker_fetcher: api_status != authenticated"
//	receivers:
//	  alertmanager:
//	    urls: [http://am-1:9093, http://am-2:9093]  # an HA pair: both receive every alert
//	    resend_every: 1m                             # below Alertmanager's resolve_timeout (5m)
//	  webhook:
//	    url: https://hooks.example.com/heartbeat
//	    secret_env: ADMINPANEL_WEBHOOK_SECRET        # the variable that holds the HMAC secret
//	rules:
//	  instance_dead: {for: 0s}                       # disabled: true turns a rule off
//	  instance_degraded: {for: 0s}                   # on top of each health rule's own for
//	  service_down:
//	    for: 0s
//	    min_alive: {geofence_service: 2}             # default 1
//	  source_unreachable:
//	    silent_share: 0.5    # this share of the instances falling silent together...
//	    min_instances: 5     # ...and at least this many: the source, not the fleet
type File struct {
	ExternalURL LinkURL `yaml:"external_url"`
	// IgnoreServices are the services no alert is raised for (see
	// WithIgnoredServices); absent, DefaultIgnoredServices.
	IgnoreServices *[]ServicePattern `yaml:"ignore_services"`
	// HealthRules turn alive instances that break them degraded
	// (watch.WithHealthRules), and fire InstanceDegraded.
	HealthRules []HealthRule `yaml:"health_rules"`
	Receivers   Receivers    `yaml:"receivers"`
	Rules       Rules        `yaml:"rules"`
}

// Health returns the file's health rules.
func (f File) Health() []watch.HealthRule {
	out := make([]watch.HealthRule, 0, len(f.HealthRules))
	for _, r := range f.HealthRules {
		out = append(out, watch.HealthRule(r))
	}
	return out
}

// Receivers are where alerts go.
type Receivers struct {
	Alertmanager *AlertmanagerReceiver `yaml:"alertmanager"`
	Webhook      *WebhookReceiver      `yaml:"webhook"`
}

// AlertmanagerReceiver is one or more Alertmanagers (an HA pair: each
// receives every alert).
type AlertmanagerReceiver struct {
	URLs        []URL    `yaml:"urls"`
	ResendEvery Duration `yaml:"resend_every"`
}

// DefaultResendEvery is how often an active alert is posted again to
// Alertmanager.
const DefaultResendEvery = time.Minute

func (a *AlertmanagerReceiver) check() []fieldError {
	d := time.Duration(a.ResendEvery)
	switch {
	case d != 0 && d < time.Second:
		return []fieldError{{"resend_every", fmt.Errorf("%v is under 1s: every active alert would be posted that often", d)}}
	case d >= 5*time.Minute:
		return []fieldError{{"resend_every", fmt.Errorf("%v is not below Alertmanager's default resolve_timeout (5m): alerts would resolve themselves while firing", d)}}
	}
	return nil
}

// WebhookReceiver is a webhook whose HMAC secret is in a variable.
type WebhookReceiver struct {
	URL       URL     `yaml:"url"`
	SecretEnv EnvName `yaml:"secret_env"`
}

// DefaultSecretEnv is the variable that holds the webhook's secret.
const DefaultSecretEnv = "ADMINPANEL_WEBHOOK_SECRET"

// Rules are the rules' settings.
type Rules struct {
	InstanceDead      RuleSettings    `yaml:"instance_dead"`
	InstanceDegraded  RuleSettings    `yaml:"instance_degraded"`
	ServiceDown       ServiceDownRule `yaml:"service_down"`
	SourceUnreachable SourceRule      `yaml:"source_unreachable"`
}

// RuleSettings are one rule's switch and its For: how long its condition
// must hold before the alert fires.
type RuleSettings struct {
	Disabled bool     `yaml:"disabled"`
	For      Duration `yaml:"for"`
}

// ServiceDownRule is the service rule's settings, with each service's
// minimum of instances up.
type ServiceDownRule struct {
	RuleSettings `yaml:",inline"`
	MinAlive     map[ServiceName]Count `yaml:"min_alive"`
}

// SourceRule says when a silence is the source's, not the fleet's.
type SourceRule struct {
	SilentShare  Share `yaml:"silent_share"`
	MinInstances Count `yaml:"min_instances"`
}

// The schema's values, each reading itself from the file's text.
type (
	// URL is an absolute http or https URL; its errors never quote it.
	URL string
	// LinkURL is a URL every alert links to (CheckLinkURL).
	LinkURL string
	// Duration is a Go duration of zero or more, such as 30s or 1m.
	Duration time.Duration
	// EnvName is the name of an environment variable.
	EnvName string
	// ServiceName is a heartbeat's service name.
	ServiceName string
	// ServicePattern matches service names, in watch.MatchService's syntax.
	ServicePattern string
	// Count is a whole number of at least 1.
	Count int
	// Share is a share above 0 and at most 1.
	Share float64
	// HealthRule is a health rule as watch.ParseHealthRule reads it.
	HealthRule watch.HealthRule
)

func (h *HealthRule) joinPair(service, condition string) string { return service + ": " + condition }

func (h *HealthRule) readScalar(s string) error {
	r, err := watch.ParseHealthRule(s)
	if err != nil {
		return err
	}
	*h = HealthRule(r)
	return nil
}

func (u *URL) readScalar(s string) error {
	if err := CheckURL(s); err != nil {
		return err
	}
	*u = URL(s)
	return nil
}

func (u *LinkURL) readScalar(s string) error {
	if err := CheckLinkURL(s); err != nil {
		return err
	}
	*u = LinkURL(s)
	return nil
}

func (d *Duration) readScalar(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("want a duration such as 30s or 1m, got %q", wire.Truncate(s, 64))
	}
	*d = Duration(v)
	return nil
}

func (e *EnvName) readScalar(s string) error {
	for i, r := range s {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return fmt.Errorf("want the name of a variable, such as ADMINPANEL_WEBHOOK_SECRET, got %q", wire.Truncate(s, 64))
		}
	}
	if s == "" {
		return errors.New("want the name of a variable, such as ADMINPANEL_WEBHOOK_SECRET")
	}
	*e = EnvName(s)
	return nil
}

func (n *ServiceName) readScalar(s string) error {
	if err := wire.ValidateServiceName(s); err != nil {
		return err
	}
	*n = ServiceName(s)
	return nil
}

func (p *ServicePattern) readScalar(s string) error {
	if _, err := path.Match(s, ""); err != nil || s == "" || len(s) > wire.MaxNameLength {
		return fmt.Errorf("want a service name pattern such as heartbeat_check_*, got %q", wire.Truncate(s, 64))
	}
	*p = ServicePattern(s)
	return nil
}

func (c *Count) readScalar(s string) error {
	v, err := strconv.Atoi(s)
	switch {
	case err != nil:
		return fmt.Errorf("want a whole number, got %q", wire.Truncate(s, 64))
	case v < 1:
		return fmt.Errorf("want at least 1, got %d", v)
	}
	*c = Count(v)
	return nil
}

func (sh *Share) readScalar(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || !(v > 0 && v <= 1) {
		return fmt.Errorf("want a share above 0 and at most 1, such as 0.5, got %q", wire.Truncate(s, 64))
	}
	*sh = Share(v)
	return nil
}

// CheckURL accepts an absolute http or https URL with a host and a valid
// port. Its errors never quote the URL: credentials may be in it, in the
// user information or in the query.
func CheckURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return errors.New("want an absolute http or https URL with a host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return errors.New("its port is not a number from 1 to 65535")
		}
	}
	return nil
}

// CheckLinkURL accepts what CheckURL does, when it can be the base of the
// links every alert carries (its generatorURL): no credentials, which
// every notification would then show, and no query or fragment, which the
// links to a service's page would follow.
func CheckLinkURL(s string) error {
	if err := CheckURL(s); err != nil {
		return err
	}
	u, _ := url.Parse(s)
	switch {
	case u.User != nil:
		return errors.New("it holds credentials, which every alert would show: the panel's own authentication (ADMINPANEL_TOKEN, ADMINPANEL_BASIC_AUTH) protects it")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#"):
		return errors.New("it has a query or a fragment: links to a service's page are added after its path")
	}
	return nil
}

// Load reads a configuration file. Every error names the file, the line
// and the key that is wrong.
func Load(path string) (File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return File{}, err
	}
	return Parse(path, b)
}

// maxFile bounds a configuration file: a real one is a few hundred bytes.
const maxFile = 1 << 20

// maxErrors bounds the errors Parse lists.
const maxErrors = 20

// Parse reads a configuration from b; name names it in errors. An empty
// document is the defaults. At most 20 errors are listed.
func Parse(name string, b []byte) (File, error) {
	var f File
	if len(b) > maxFile {
		return f, fmt.Errorf("%s: %d bytes, more than %d: not an alerting configuration", name, len(b), maxFile)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc, more yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return f, fmt.Errorf("%s: %v", name, err)
	}
	if err := dec.Decode(&more); err == nil {
		return f, fmt.Errorf("%s line %d: a second YAML document: the configuration is one", name, more.Line)
	}
	if len(doc.Content) == 0 {
		return f, nil
	}
	r := reader{name: name}
	r.read(doc.Content[0], reflect.ValueOf(&f).Elem(), "")
	if len(r.errs) > maxErrors {
		r.errs = append(r.errs[:maxErrors], fmt.Errorf("%s: and %d more errors", name, len(r.errs)-maxErrors))
	}
	return f, errors.Join(r.errs...)
}

// Options are the Engine's options the file sets.
func (f File) Options() []Option {
	minAlive := map[string]int{}
	for svc, n := range f.Rules.ServiceDown.MinAlive {
		minAlive[string(svc)] = int(n)
	}
	opts := []Option{
		WithRule(InstanceDead, f.Rules.InstanceDead),
		WithRule(InstanceDegraded, f.Rules.InstanceDegraded),
		WithRule(ServiceDown, f.Rules.ServiceDown.RuleSettings),
		WithMinAlive(minAlive),
		WithSilentShare(float64(f.Rules.SourceUnreachable.SilentShare), int(f.Rules.SourceUnreachable.MinInstances)),
	}
	if f.ExternalURL != "" {
		opts = append(opts, WithExternalURL(string(f.ExternalURL)))
	}
	if f.IgnoreServices != nil {
		patterns := []string{}
		for _, p := range *f.IgnoreServices {
			patterns = append(patterns, string(p))
		}
		opts = append(opts, WithIgnoredServices(patterns...))
	}
	return opts
}
