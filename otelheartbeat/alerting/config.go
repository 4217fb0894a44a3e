package alerting

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// Config is the alerting configuration: where alerts go and when they
// fire. A file spells it in YAML:
//
//	external_url: https://panel.example.com/     # the generatorURL of every alert
//	receivers:
//	  alertmanager:
//	    urls: [http://am-1:9093, http://am-2:9093]  # an HA pair: both receive every alert
//	    resend_every: 1m                             # below Alertmanager's resolve_timeout (5m)
//	  webhook:
//	    url: https://hooks.example.com/heartbeat
//	    secret_env: ADMINPANEL_WEBHOOK_SECRET        # the variable that holds the HMAC secret
//	rules:
//	  instance_dead: {for: 0s}                       # disabled: true turns a rule off
//	  service_down:
//	    for: 0s
//	    min_alive: {geofence_service: 2}             # default 1
//	  source_unreachable:
//	    silent_share: 0.5    # this share of the instances falling silent together...
//	    min_instances: 5     # ...and at least this many: the source, not the fleet
type Config struct {
	ExternalURL  string
	Alertmanager []string
	ResendEvery  time.Duration
	Webhook      string
	SecretEnv    string

	InstanceDead Rule
	ServiceDown  Rule
	MinAlive     map[string]int
	SilentShare  float64
	MinSilent    int
}

// Rule is one rule's switch and its for duration: the condition must hold
// that long before the alert fires.
type Rule struct {
	Disabled bool
	For      time.Duration
}

// Defaults of Config.
const (
	DefaultResendEvery = time.Minute
	DefaultSilentShare = 0.5
	DefaultMinSilent   = 5
	DefaultSecretEnv   = "ADMINPANEL_WEBHOOK_SECRET"
)

// Default returns the configuration without a file.
func Default() Config {
	return Config{ResendEvery: DefaultResendEvery, SecretEnv: DefaultSecretEnv, SilentShare: DefaultSilentShare,
		MinSilent: DefaultMinSilent, MinAlive: map[string]int{}}
}

// Load reads a configuration file. Every error names the file, the line
// and the key that is wrong.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	return Parse(path, b)
}

// maxConfig bounds a configuration file: a real one is a few hundred
// bytes.
const maxConfig = 1 << 20

// Parse reads a configuration from b; name names it in errors. At most 20
// errors are listed.
func Parse(name string, b []byte) (Config, error) {
	c := Default()
	if len(b) > maxConfig {
		return c, fmt.Errorf("%s: %d bytes, more than %d: not an alerting configuration", name, len(b), maxConfig)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc, more yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("%s: %v", name, err)
	}
	if err := dec.Decode(&more); err == nil {
		return c, fmt.Errorf("%s line %d: a second YAML document: the configuration is one", name, more.Line)
	}
	if len(doc.Content) == 0 {
		return c, nil // empty: the defaults
	}
	p := parser{name: name}
	p.mapping(doc.Content[0], "", map[string]func(*yaml.Node, string){
		"external_url": func(n *yaml.Node, key string) { c.ExternalURL = p.url(n, key) },
		"receivers": func(n *yaml.Node, key string) {
			p.mapping(n, key, map[string]func(*yaml.Node, string){
				"alertmanager": func(n *yaml.Node, key string) {
					p.mapping(n, key, map[string]func(*yaml.Node, string){
						"urls": func(n *yaml.Node, key string) {
							for i, u := range p.seq(n, key) {
								c.Alertmanager = append(c.Alertmanager, p.url(u, fmt.Sprintf("%s[%d]", key, i)))
							}
						},
						"resend_every": func(n *yaml.Node, key string) {
							if d := p.duration(n, key, true); d > 0 && d < time.Second {
								p.fail(n, key, "%v is under 1s: every active alert would be posted that often", d)
							} else {
								c.ResendEvery = d
							}
						},
					})
				},
				"webhook": func(n *yaml.Node, key string) {
					p.mapping(n, key, map[string]func(*yaml.Node, string){
						"url":        func(n *yaml.Node, key string) { c.Webhook = p.url(n, key) },
						"secret_env": func(n *yaml.Node, key string) { c.SecretEnv = p.envName(n, key) },
					})
				},
			})
		},
		"rules": func(n *yaml.Node, key string) {
			rule := func(r *Rule, extra map[string]func(*yaml.Node, string)) func(*yaml.Node, string) {
				return func(n *yaml.Node, key string) {
					fields := map[string]func(*yaml.Node, string){
						"disabled": func(n *yaml.Node, key string) { r.Disabled = p.boolean(n, key) },
						"for":      func(n *yaml.Node, key string) { r.For = p.duration(n, key, false) },
					}
					for k, f := range extra {
						fields[k] = f
					}
					p.mapping(n, key, fields)
				}
			}
			p.mapping(n, key, map[string]func(*yaml.Node, string){
				"instance_dead": rule(&c.InstanceDead, nil),
				"service_down": rule(&c.ServiceDown, map[string]func(*yaml.Node, string){
					"min_alive": func(n *yaml.Node, key string) {
						p.each(n, key, func(k, v *yaml.Node, key string) {
							if err := wire.ValidateServiceName(k.Value); err != nil {
								p.fail(k, key, "%v", err)
								return
							}
							if _, dup := c.MinAlive[k.Value]; dup {
								p.fail(k, key, "given twice")
								return
							}
							if n, ok := p.integer(v, key); ok && n >= 1 {
								c.MinAlive[k.Value] = n
							} else if ok {
								p.fail(v, key, "want at least 1, got %d", n)
							}
						})
					},
				}),
				"source_unreachable": func(n *yaml.Node, key string) {
					p.mapping(n, key, map[string]func(*yaml.Node, string){
						"silent_share": func(n *yaml.Node, key string) {
							v, err := strconv.ParseFloat(n.Value, 64)
							if n.Kind != yaml.ScalarNode || err != nil || !(v > 0 && v <= 1) { // NaN included
								p.fail(n, key, "want a share above 0 and at most 1, such as 0.5, got %s", show(n))
								return
							}
							c.SilentShare = v
						},
						"min_instances": func(n *yaml.Node, key string) {
							if v, ok := p.integer(n, key); ok && v >= 1 {
								c.MinSilent = v
							} else if ok {
								p.fail(n, key, "want at least 1, got %d", v)
							}
						},
					})
				},
			})
		},
	})
	if len(p.errs) > 20 {
		p.errs = append(p.errs[:20], fmt.Errorf("%s: and %d more errors", name, len(p.errs)-20))
	}
	if len(c.Alertmanager) > 0 && c.ResendEvery >= 5*time.Minute {
		p.errs = append(p.errs, fmt.Errorf("%s: receivers.alertmanager.resend_every: %v is not below Alertmanager's default resolve_timeout (5m): alerts would resolve themselves while firing", name, c.ResendEvery))
	}
	return c, errors.Join(p.errs...)
}

type parser struct {
	name string
	errs []error
}

func (p *parser) fail(n *yaml.Node, key, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s line %d: %s: %s", p.name, n.Line, showKey(key), fmt.Sprintf(format, args...)))
}

// showKey is a key path as an error shows it: as written when it is
// printable ASCII, else escaped (a key is the file's data, and an error
// reaches a terminal), and cut to 200 bytes.
func showKey(key string) string {
	key = wire.Truncate(key, 200)
	for i := 0; i < len(key); i++ {
		if key[i] < ' ' || key[i] > '~' {
			q := strconv.QuoteToASCII(key)
			return q[1 : len(q)-1]
		}
	}
	return key
}

func show(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return strconv.Quote(wire.Truncate(n.Value, 64))
	}
	return map[yaml.Kind]string{yaml.MappingNode: "a mapping", yaml.SequenceNode: "a list", yaml.AliasNode: "an alias"}[n.Kind]
}

func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// mapping applies fields to a mapping node; an unknown key is an error
// that names it and lists the known ones.
func (p *parser) mapping(n *yaml.Node, key string, fields map[string]func(*yaml.Node, string)) {
	if n.Kind != yaml.MappingNode {
		if n.Tag == "!!null" {
			return
		}
		p.fail(n, orTop(key), "want a mapping, got %s", show(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		full := join(key, k.Value)
		f, ok := fields[k.Value]
		switch {
		case !ok:
			known := make([]string, 0, len(fields))
			for name := range fields {
				known = append(known, name)
			}
			sort.Strings(known)
			p.fail(k, full, "unknown key (known here: %s)", strings.Join(known, ", "))
		case seen[k.Value]:
			p.fail(k, full, "given twice")
		default:
			seen[k.Value] = true
			f(v, full)
		}
	}
}

func orTop(key string) string {
	if key == "" {
		return "the document"
	}
	return key
}

func (p *parser) each(n *yaml.Node, key string, f func(k, v *yaml.Node, key string)) {
	if n.Kind != yaml.MappingNode {
		p.fail(n, key, "want a mapping, got %s", show(n))
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		f(n.Content[i], n.Content[i+1], join(key, n.Content[i].Value))
	}
}

func (p *parser) seq(n *yaml.Node, key string) []*yaml.Node {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		return []*yaml.Node{n} // one URL without brackets
	}
	if n.Kind != yaml.SequenceNode {
		p.fail(n, key, "want a list, got %s", show(n))
		return nil
	}
	return n.Content
}

func (p *parser) scalar(n *yaml.Node, key string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		p.fail(n, key, "want a value, got %s", show(n))
		return "", false
	}
	return n.Value, true
}

func (p *parser) url(n *yaml.Node, key string) string {
	s, ok := p.scalar(n, key)
	if !ok {
		return ""
	}
	if err := CheckURL(s); err != nil {
		p.fail(n, key, "%v", err)
		return ""
	}
	return s
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

func (p *parser) duration(n *yaml.Node, key string, positive bool) time.Duration {
	s, ok := p.scalar(n, key)
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || (positive && d == 0) {
		p.fail(n, key, "want a duration such as 30s or 1m, got %s", show(n))
		return 0
	}
	return d
}

func (p *parser) boolean(n *yaml.Node, key string) bool {
	s, ok := p.scalar(n, key)
	if !ok {
		return false
	}
	switch s {
	case "true":
		return true
	case "false":
		return false
	}
	p.fail(n, key, "want true or false, got %s", show(n))
	return false
}

func (p *parser) integer(n *yaml.Node, key string) (int, bool) {
	s, ok := p.scalar(n, key)
	if !ok {
		return 0, false
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		p.fail(n, key, "want a whole number, got %s", show(n))
		return 0, false
	}
	return v, true
}

func (p *parser) envName(n *yaml.Node, key string) string {
	s, ok := p.scalar(n, key)
	if !ok {
		return ""
	}
	for i, r := range s {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			p.fail(n, key, "want the name of a variable, such as ADMINPANEL_WEBHOOK_SECRET, got %s", show(n))
			return ""
		}
	}
	return s
}
