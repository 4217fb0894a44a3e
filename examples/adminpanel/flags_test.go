package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Every malformed flag is refused at start, naming it, before anything
// connects.
func TestMalformedFlagsAreRefused(t *testing.T) {
	for args, want := range map[string]string{
		"--default-interval -1s":           "--default-interval",
		"--default-interval 1ns":           "--default-interval",
		"--retention 1ns":                  "--retention",
		"--lease 1000000h":                 "--lease",
		"--windows 1h,1h":                  "given twice",
		"--windows 1ns":                    "--windows",
		"--min-alive a=2,a=5":              "a is given twice",
		"--min-alive a=0":                  "--min-alive",
		"--bars 0":                         "--bars",
		"--alertmanager ftp://x":           "--alertmanager",
		"--webhook http://h/x":             "ADMINPANEL_WEBHOOK_SECRET",
		"--external-url not-a-url":         "--external-url",
		"--alerts /nonexistent.yml":        "--alerts",
		"--forget-after 1s":                "--forget-after",
		"--forget-after 1000h":             "--forget-after",
		"--retention 1h --forget-after 2h": "--forget-after",
		"--series-retention 30m":           "--series-retention 30m0s: want 1h to 720h",
		"--series-retention 1000h":         "--series-retention",
		"--series-retention 61m":           "a whole number of 5m",
		"--external-url https://ops:SECRETPW@panel.example.com/":   "--external-url: it holds credentials",
		"--external-url https://panel.example.com/?token=SECRETPW": "--external-url: it has a query",
		"--external-url https://panel.example.com/#SECRETPW":       "--external-url: it has a query or a fragment",
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), strings.Fields(args), func(string) string { return "" }, &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q", args, code, errb.String(), want)
		}
		if strings.Contains(errb.String(), "SECRETPW") {
			t.Errorf("%s: the error quotes what may be a secret: %q", args, errb.String())
		}
	}
}

// A malformed health rule or metrics link is refused at start, naming the
// flag and what is wrong, and a link is never quoted.
func TestMalformedHealthRulesAndLinksAreRefused(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--health-rule", "queue_size > 1000"}, "--health-rule: \"queue_size > 1000\" has no 'SERVICE:'"},
		{[]string{"--health-rule", "fetcher: queue_size > lots"}, "--health-rule: \"fetcher: queue_size > lots\": \"lots\" is not a number"},
		{[]string{"--health-rule", "fetcher: last_op older than 5 minutes"}, "--health-rule:"},
		{[]string{"--health-rule", "fetcher: queue_size > 1 for 1m", "--health-rule", "fetcher: api_status == ok"}, `"==" is not an operator`},
		{[]string{"--metrics-link", "https://grafana.example.com/d/x?var-instance={instance}&token=SECRETPW"}, "--metrics-link: {instance} is not a placeholder"},
		{[]string{"--metrics-link", "grafana.example.com/d/x?var-instance={instance_id}&token=SECRETPW"}, "--metrics-link: want an absolute http or https URL"},
		{[]string{"--metrics-link", "javascript:alert(1)//{instance_id}"}, "--metrics-link: want an absolute http or https URL"},
		{[]string{"--metrics-link", "https://admin:SECRETPW@grafana.example.com/{instance_id}"}, "--metrics-link: holds credentials"},
		{[]string{"--metrics-link", "https://grafana.example.com/d/x?token=SECRETPW"}, "--metrics-link: names neither"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), tt.args, func(string) string { return "" }, &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tt.args, code, errb.String(), tt.want)
		}
		if strings.Contains(errb.String(), "SECRETPW") {
			t.Errorf("%q: the error quotes what may be a secret: %q", tt.args, errb.String())
		}
	}
	// The file's rules are read as strictly, naming the file and line.
	file := filepath.Join(t.TempDir(), "alerts.yml")
	if err := os.WriteFile(file, []byte("health_rules:\n  - fetcher: queue_size >> 5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"--alerts", file}, func(string) string { return "" }, &out, &errb); code != 2 ||
		!strings.Contains(errb.String(), "alerts.yml line 2: health_rules[0]") {
		t.Errorf("a bad rule in the file: exit %d, %q", code, errb.String())
	}
}

// A shorter --retention alone is a working panel: the defaults that would
// reach past it (the uptime windows, --forget-after) are cut to it.
func TestAShortRetentionCutsTheDefaults(t *testing.T) {
	s, err := parseSettings([]string{"--retention", "2h"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.forgetAfter != 2*time.Hour || fmt.Sprint(s.windows) != "[1h0m0s 2h0m0s]" {
		t.Errorf("--retention 2h: forget after %v, windows %v; want 2h and [1h 2h]", s.forgetAfter, s.windows)
	}
}

// The panel's URL for alerts' generatorURL, from --listen: a host or an
// address that others can use as it is, with the port the panel got; a
// wildcard names no host to link to.
func TestExternalURLFromListen(t *testing.T) {
	for _, c := range []struct{ listen, bound, want string }{
		{"127.0.0.1:8080", "127.0.0.1:8080", "http://127.0.0.1:8080/"},
		{"127.0.0.1:0", "127.0.0.1:41234", "http://127.0.0.1:41234/"},
		{"localhost:8080", "127.0.0.1:8080", "http://localhost:8080/"},
		{"panel.internal:80", "10.0.0.7:80", "http://panel.internal:80/"},
		{"10.0.0.7:9000", "10.0.0.7:9000", "http://10.0.0.7:9000/"},
		{"[::1]:8080", "[::1]:8080", "http://[::1]:8080/"},
		{"[fe80::1%eth0]:8080", "[fe80::1%eth0]:8080", "http://[fe80::1%25eth0]:8080/"},
		{":8080", "[::]:8080", ""},
		{"0.0.0.0:8080", "0.0.0.0:8080", ""},
		{"[::]:8080", "[::]:8080", ""},
		{"[::0]:8080", "[::]:8080", ""},
		{"nonsense", "127.0.0.1:8080", ""},
	} {
		got, ok := externalURLFrom(c.listen, c.bound)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("externalURLFrom(%q, %q) = %q, %v; want %q", c.listen, c.bound, got, ok, c.want)
		}
	}
}

// Without --external-url (or the alerts file's external_url), alerts link
// to the address --listen names when it names one, and the panel says so
// once at start, on stderr; when it names none (a wildcard), it says that
// alerts carry no link.
func TestTheAlertLinkIsSaidAtStart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "alerts.yml")
	if err := os.WriteFile(file, []byte("external_url: https://from-file.example.com/\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // start, say what it says at start, stop
	for _, c := range []struct {
		args string
		want *regexp.Regexp // nil: nothing said of the link
	}{
		{"--listen 127.0.0.1:0", regexp.MustCompile(`^adminpanel: alerts link to (http://127\.0\.0\.1:(\d+)/) \(from --listen; set --external-url for a link that works from elsewhere\)$`)},
		{"--listen :0", regexp.MustCompile(`^adminpanel: alerts carry no link \(generatorURL\): --listen :0 names no host to link to; set --external-url$`)},
		{"--listen 0.0.0.0:0", regexp.MustCompile(`^adminpanel: alerts carry no link \(generatorURL\): --listen 0.0.0.0:0 names no host to link to; set --external-url$`)},
		{"--listen 127.0.0.1:0 --external-url https://panel.example.com/", regexp.MustCompile(`^adminpanel: alerts link to https://panel\.example\.com/$`)},
		{"--listen 127.0.0.1:0 --alerts " + file, regexp.MustCompile(`^adminpanel: alerts link to https://from-file\.example\.com/$`)},
	} {
		var out, errb bytes.Buffer
		getenv := func(k string) string {
			if k == "OTEL_EXPORTER_VALKEY_ENDPOINT" {
				return "redis://127.0.0.1:1" // never reached: the panel stops at once
			}
			return ""
		}
		if code := run(ctx, strings.Fields(c.args), getenv, &out, &errb); code != 0 {
			t.Errorf("%s: exit %d\n%s", c.args, code, errb.String())
			continue
		}
		var said []string
		for _, l := range strings.Split(errb.String(), "\n") {
			if strings.Contains(l, "link") {
				said = append(said, l)
			}
		}
		if c.want == nil {
			if len(said) != 0 {
				t.Errorf("%s: said %q; the link was given", c.args, said)
			}
			continue
		}
		if len(said) != 1 || !c.want.MatchString(said[0]) {
			t.Errorf("%s: said %q; want once %s", c.args, said, c.want)
			continue
		}
		if m := c.want.FindStringSubmatch(said[0]); len(m) > 1 && !strings.Contains(out.String(), "admin panel on "+m[1]) {
			t.Errorf("%s: the link %s is not where the panel serves: %s", c.args, m[1], out.String())
		}
	}
}
