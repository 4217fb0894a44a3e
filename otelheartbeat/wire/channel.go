package wire

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ServicePlaceholder marks where a channel template puts the service name.
const ServicePlaceholder = "{service_name}"

// DefaultChannelTemplate is the channel of the original design's specification:
// heartbeat:service:{service_name}.
const DefaultChannelTemplate = DefaultChannelPrefix + ServicePlaceholder

// maxPrefix bounds a prefix, and the fixed part of a channel template, in
// bytes.
const maxPrefix = 128

// A ChannelTemplate names the channel of each service: fixed text around
// one ServicePlaceholder, such as the original design's other spelling
// "health:service:{service_name}:heartbeat". A publisher builds its
// channel with Channel; a consumer subscribes to Pattern and learns the
// service of a channel with Service. The zero ChannelTemplate is
// DefaultChannelTemplate.
type ChannelTemplate struct {
	prefix, suffix string
	set            bool
}

// ParseChannelTemplate parses a template that holds ServicePlaceholder
// exactly once, after some fixed text. Its fixed text must be at most 128
// bytes, and must hold no whitespace, control, invisible, glob ('*', '?',
// '[', ']', '\') or other brace characters: a pattern subscriber would
// match the wrong channels, or a template would look like another.
func ParseChannelTemplate(s string) (ChannelTemplate, error) {
	i := strings.Index(s, ServicePlaceholder)
	if i < 0 {
		return ChannelTemplate{}, fmt.Errorf("channel template %q does not hold %s", s, ServicePlaceholder)
	}
	t := ChannelTemplate{prefix: s[:i], suffix: s[i+len(ServicePlaceholder):], set: true}
	if strings.Contains(t.suffix, ServicePlaceholder) {
		return ChannelTemplate{}, fmt.Errorf("channel template %q holds %s more than once", s, ServicePlaceholder)
	}
	fixed := t.prefix + t.suffix
	switch {
	case fixed == "":
		return ChannelTemplate{}, fmt.Errorf("channel template %q is nothing but %s: its pattern would match every channel", s, ServicePlaceholder)
	case t.prefix == "":
		return ChannelTemplate{}, fmt.Errorf("channel template %q has no fixed text before %s: its pattern would match every channel that ends the same way", s, ServicePlaceholder)
	case len(fixed) > maxPrefix:
		return ChannelTemplate{}, fmt.Errorf("channel template %q has %d bytes around %s, more than %d", s, len(fixed), ServicePlaceholder, maxPrefix)
	}
	if r, bad := badPrefixRune(fixed, "{}"); bad {
		return ChannelTemplate{}, fmt.Errorf("channel template %q holds %q outside %s, which breaks pattern subscribers", s, r, ServicePlaceholder)
	}
	return t, nil
}

// PrefixTemplate is the template of a channel prefix: prefix followed by
// the service name, as OTEL_EXPORTER_VALKEY_CHANNEL_PREFIX spells it.
func PrefixTemplate(prefix string) (ChannelTemplate, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return ChannelTemplate{}, err
	}
	return ChannelTemplate{prefix: prefix, set: true}, nil
}

// ValidatePrefix reports whether prefix can start channel or key names
// that pattern subscribers and SCAN MATCH read correctly: not empty, at
// most 128 bytes, and no whitespace, control or glob characters.
func ValidatePrefix(prefix string) error {
	switch {
	case prefix == "":
		return fmt.Errorf("prefix is empty")
	case len(prefix) > maxPrefix:
		return fmt.Errorf("prefix is %d bytes long, more than %d", len(prefix), maxPrefix)
	}
	if r, bad := badPrefixRune(prefix, ""); bad {
		return fmt.Errorf("prefix %q holds %q, which breaks pattern subscribers", prefix, r)
	}
	return nil
}

func badPrefixRune(s, also string) (rune, bool) {
	i := strings.IndexFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || Invisible(r) || r == utf8.RuneError || strings.ContainsRune(`*?[]\`+also, r)
	})
	if i < 0 {
		return 0, false
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return r, true
}

func (t ChannelTemplate) parts() (prefix, suffix string) {
	if !t.set {
		return DefaultChannelPrefix, ""
	}
	return t.prefix, t.suffix
}

// Channel returns the channel of a service.
func (t ChannelTemplate) Channel(serviceName string) string {
	p, s := t.parts()
	return p + serviceName + s
}

// Pattern returns the PSUBSCRIBE pattern that matches the channel of
// every service.
func (t ChannelTemplate) Pattern() string {
	p, s := t.parts()
	return p + "*" + s
}

// Service returns the service whose channel this is, and false when the
// channel does not fit the template.
func (t ChannelTemplate) Service(channel string) (string, bool) {
	p, s := t.parts()
	if len(channel) <= len(p)+len(s) || !strings.HasPrefix(channel, p) || !strings.HasSuffix(channel, s) {
		return "", false
	}
	return channel[len(p) : len(channel)-len(s)], true
}

// String returns the template as it is written, placeholder included.
func (t ChannelTemplate) String() string {
	p, s := t.parts()
	return p + ServicePlaceholder + s
}
