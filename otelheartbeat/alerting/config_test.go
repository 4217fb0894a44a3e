package alerting

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseReadsEveryKey(t *testing.T) {
	c, err := Parse("alerts.yml", []byte(`
external_url: https://panel.example.com/
health_rules:
  - "tracker_fetcher: last_successful_operation older than 5m"
  - tracker_fetcher: queue_size > 1000 for 2m
receivers:
  alertmanager:
    urls: [http://am-1:9093, http://am-2:9093]
    resend_every: 30s
  webhook:
    url: https://hooks.example.com/heartbeat
    secret_env: HOOK_SECRET
rules:
  instance_dead: {for: 10s}
  instance_degraded: {for: 1m}
  service_down:
    disabled: true
    min_alive: {geofence_service: 2}
  source_unreachable: {silent_share: 0.8, min_instances: 3}
`))
	if err != nil {
		t.Fatal(err)
	}
	am, hook, rules := c.Receivers.Alertmanager, c.Receivers.Webhook, c.Rules
	if c.ExternalURL != "https://panel.example.com/" || len(am.URLs) != 2 || am.ResendEvery != Duration(30*time.Second) ||
		hook.URL != "https://hooks.example.com/heartbeat" || hook.SecretEnv != "HOOK_SECRET" || rules.InstanceDead.For != Duration(10*time.Second) ||
		!rules.ServiceDown.Disabled || rules.ServiceDown.MinAlive["geofence_service"] != 2 || rules.InstanceDegraded.For != Duration(time.Minute) ||
		len(c.Health()) != 2 || c.Health()[1].String() != "tracker_fetcher: queue_size > 1000 for 2m0s" ||
		rules.SourceUnreachable.SilentShare != 0.8 || rules.SourceUnreachable.MinInstances != 3 {
		t.Errorf("parsed %+v", c)
	}
	cfg := newConfig(c.Options())
	if cfg.externalURL != "https://panel.example.com/" || cfg.minAlive["geofence_service"] != 2 || cfg.silentShare != 0.8 ||
		cfg.silentMinimum != 3 || !cfg.rules[ServiceDown].Disabled {
		t.Errorf("options %+v", cfg)
	}
	if c, err := Parse("empty.yml", nil); err != nil || c.Receivers.Alertmanager != nil {
		t.Errorf("empty file: %+v %v", c, err)
	}
	if cfg := newConfig(File{}.Options()); cfg.silentShare != DefaultSilentShare || cfg.silentMinimum != DefaultMinSilent {
		t.Errorf("the defaults: %+v", cfg)
	}
}

// Every mistake is an error naming the file, the line and the key, and a
// URL with credentials is never quoted.
func TestParseErrorsNameTheLineAndTheKey(t *testing.T) {
	_, err := Parse("alerts.yml", []byte(`receivers:
  alertmanager:
    urls: [http://am-1:9093, "ftp://user:hunter2@x"]
    resend_every: soon
  webhok:
    url: x
rules:
  instance_dead: {for: -1s}
  service_down:
    min_alive: {"bad name": 1, geo: 0}
  source_unreachable: {silent_share: 2}
health_rules: ["geo: queue_size >> 5", ~]
`))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`alerts.yml line 3: receivers.alertmanager.urls[1]: want an absolute http or https URL`,
		`alerts.yml line 4: receivers.alertmanager.resend_every: want a duration such as 30s or 1m, got "soon"`,
		`alerts.yml line 5: receivers.webhok: unknown key (known here: alertmanager, webhook)`,
		`alerts.yml line 8: rules.instance_dead.for: want a duration`,
		`alerts.yml line 10: rules.service_down.min_alive.bad name:`,
		`alerts.yml line 10: rules.service_down.min_alive.geo: want at least 1, got 0`,
		`alerts.yml line 11: rules.source_unreachable.silent_share: want a share above 0 and at most 1`,
		`alerts.yml line 12: health_rules[0]: "geo: queue_size >> 5": ">>" is not an operator`,
		`alerts.yml line 12: health_rules[1]: an empty item`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("the error quotes a password:\n%v", err)
	}
	if _, err := Parse("a.yml", []byte("receivers: {alertmanager: {urls: [http://a:1], resend_every: 10m}}")); err == nil ||
		!strings.Contains(err.Error(), "resolve_timeout") {
		t.Errorf("resend_every past the resolve timeout: %v", err)
	}
	if _, err := Parse("a.yml", []byte("rules: [1, 2")); err == nil || !strings.Contains(err.Error(), "a.yml") {
		t.Errorf("malformed YAML: %v", err)
	}
}

// What a hostile or mistaken file tried: each refused, naming the line and
// the key, and no URL quoted (its query may hold a token).
func TestParseRefusesWhatWouldSilentlyDoHarm(t *testing.T) {
	for in, want := range map[string]string{
		"receivers: {alertmanager: {urls: [http://a:1], resend_every: 1ns}}": "under 1s",
		"rules: {source_unreachable: {silent_share: NaN}}":                   "want a share above 0",
		"rules: {service_down: {min_alive: {x: 2, x: 3}}}":                   "given twice",
		"external_url: http://a/\n---\nexternal_url: http://b/":              "a second YAML document",
		"receivers: {webhook: {url: 'htp://h/x?token=TOPSECRET'}}":           "want an absolute http or https URL",
		"receivers: {webhook: {url: 'http://127.0.0.1:99999/h'}}":            "port",
		"receivers: {webhook: {'http://h/?token=TOPSECRET': x}}":             "unknown key",
	} {
		_, err := Parse("a.yml", []byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want it to say %q", in, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "TOPSECRET") {
			t.Errorf("%q: the error quotes the token: %v", in, err)
		}
	}
	if _, err := Parse("big.yml", []byte(strings.Repeat("# padding\n", 200_000))); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("a 2 MB file: %v", err)
	}
	var many strings.Builder
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&many, "k%d: 1\n", i)
	}
	if _, err := Parse("many.yml", []byte(many.String())); err == nil || strings.Count(err.Error(), "\n") > 21 || !strings.Contains(err.Error(), "and 80 more errors") {
		t.Errorf("100 bad keys: %v", err)
	}
}

// A key in the file is data, as a value is: an error that names it
// escapes what a terminal would act on (ESC, BEL, C1, bidi overrides).
func TestParseErrorsEscapeKeys(t *testing.T) {
	_, err := Parse("alerts.yml", []byte("rules:\n  \"\\e]0;pwned\\a\\u202e\": {}\n  service_down:\n    min_alive: {\"\\x9b31m\": 0}\n"))
	if err == nil {
		t.Fatal("no error")
	}
	for _, bad := range []string{"\x1b", "\a", "\u202e", "\u009b"} {
		if strings.Contains(err.Error(), bad) {
			t.Errorf("the error holds %q raw:\n%q", bad, err.Error())
		}
	}
	if !strings.Contains(err.Error(), `\x1b]0;pwned\a\u202e`) {
		t.Errorf("the key is not shown escaped:\n%s", err)
	}
}
