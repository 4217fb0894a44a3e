package panel

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// The metrics link leads from an instance on the page to the same
// instance's own metrics in the operator's Grafana or Prometheus: the
// heartbeat gauges reach the service's backend under the same
// service.name and service.instance.id, and so do its request metrics.

// Placeholders of a metrics link template.
const (
	LinkServiceName = "{service_name}"
	LinkInstanceID  = "{instance_id}"
)

var placeholder = regexp.MustCompile(`\{[a-z_]+\}`)

// CheckMetricsLink checks a metrics link template: an absolute http or
// https URL once its placeholders are filled, without credentials (the
// link is shown to every viewer of the page), naming no placeholder but
// {service_name} and {instance_id}. Its errors never quote the template:
// its query may hold a token.
func CheckMetricsLink(tpl string) error {
	for _, p := range placeholder.FindAllString(tpl, -1) {
		if p != LinkServiceName && p != LinkInstanceID {
			return fmt.Errorf("%s is not a placeholder: want %s or %s", p, LinkServiceName, LinkInstanceID)
		}
	}
	u, err := url.Parse(fillLink(tpl, "service", "instance"))
	switch {
	case err != nil || !u.IsAbs() || u.Host == "":
		return errors.New("want an absolute http or https URL once its placeholders are filled")
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("scheme %q: want http or https", u.Scheme)
	case u.User != nil:
		return errors.New("holds credentials: every viewer of the page would see them")
	case !strings.Contains(tpl, LinkServiceName) && !strings.Contains(tpl, LinkInstanceID):
		return fmt.Errorf("names neither %s nor %s: every instance would link to the same page", LinkServiceName, LinkInstanceID)
	}
	// The scheme, host and port are the operator's: a name from the wire
	// may fill the path, the query or the fragment, never choose where
	// the link goes.
	marked, err := url.Parse(strings.NewReplacer(LinkServiceName, "zzplaceholderzz", LinkInstanceID, "zzplaceholderzz").Replace(tpl))
	if err != nil || strings.Contains(strings.ToLower(marked.Scheme+"://"+marked.Host), "zzplaceholderzz") {
		return errors.New("a placeholder is in the scheme, host or port: put it in the path or the query, so that no name from a heartbeat chooses where the link goes")
	}
	return nil
}

// fillLink fills a template with a service name and an instance id from
// the wire, each percent-encoded whole (every byte but letters, digits and
// -._~), so that no id can end the path, start a query or fragment, or add
// a parameter. A name that is "." or ".." gets no link: as a path segment
// a browser would climb it, however it is encoded (%2E%2E is ".." too).
func fillLink(tpl, service, instance string) string {
	for _, v := range []string{service, instance} {
		if v == "." || v == ".." {
			return ""
		}
	}
	return strings.NewReplacer(LinkServiceName, escapeComponent(service), LinkInstanceID, escapeComponent(instance)).Replace(tpl)
}

func escapeComponent(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// metricsLink is the instance's link, or "" without a template.
func (p *Panel) metricsLink(service, instance string) string {
	if p.cfg.metricsLink == "" {
		return ""
	}
	return fillLink(p.cfg.metricsLink, service, instance)
}
