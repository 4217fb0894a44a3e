package wire

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"unicode"
)

// MaxAddressLength bounds an instance address in bytes.
const MaxAddressLength = 512

// ValidateAddress reports why s cannot be an instance address, or nil. An
// address is host:port or an absolute URL with a scheme and a host, such
// as http://10.0.0.7:8080/api. The host is a DNS name or an IP address
// (IPv6 in brackets), a port is a number from 1 to 65535. It holds no
// whitespace, control or invisible characters, and never credentials, a
// query or a fragment: a heartbeat is read by every subscriber, so an '@'
// is refused rather than published, and no error quotes an address that
// holds one.
func ValidateAddress(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("address is empty")
	case len(s) > MaxAddressLength:
		return fmt.Errorf("address is %d bytes long, more than %d", len(s), MaxAddressLength)
	case strings.Contains(s, "@"):
		return fmt.Errorf("address holds '@': credentials are never published, since every subscriber reads a heartbeat")
	}
	if strings.IndexFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || Invisible(r) || r == '\uFFFD'
	}) >= 0 {
		return fmt.Errorf("address %q holds whitespace, control or invisible characters", truncate(s, 64))
	}
	q := fmt.Sprintf("%q", truncate(s, 64))
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		switch {
		case err != nil:
			return fmt.Errorf("address is not a URL: %v", err)
		case u.Scheme == "" || u.Host == "" || u.Opaque != "":
			return fmt.Errorf("address %s has no scheme or no host", q)
		case u.RawQuery != "" || u.ForceQuery:
			return fmt.Errorf("address %s holds a query, which every subscriber would read", q)
		case u.Fragment != "" || strings.Contains(s, "#"):
			return fmt.Errorf("address %s holds a fragment", q)
		}
		if err := validHost(u.Hostname()); err != nil {
			return fmt.Errorf("address %s: %v", q, err)
		}
		if p := u.Port(); p != "" || strings.HasSuffix(u.Host, ":") {
			return validPort(q, p)
		}
		return nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("address %s is neither host:port nor a URL", q)
	}
	if err := validHost(host); err != nil {
		return fmt.Errorf("address %s: %v", q, err)
	}
	return validPort(q, port)
}

// validHost accepts an IP address or a DNS name (letters, digits, '-' and
// '_' in labels separated by dots).
func validHost(h string) error {
	if net.ParseIP(h) != nil {
		return nil
	}
	ok := h != "" && len(h) <= 253
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 {
			ok = false
			break
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				ok = false
			}
		}
	}
	if !ok {
		return fmt.Errorf("its host is not a host name or an IP address")
	}
	return nil
}

func validPort(q, p string) error {
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' || n > 65535 {
			n = -1
			break
		}
		n = n*10 + int(p[i]-'0')
	}
	if p == "" || n < 1 || n > 65535 {
		return fmt.Errorf("address %s: port is not a number from 1 to 65535", q)
	}
	return nil
}
