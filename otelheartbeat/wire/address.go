package wire

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"unicode"
)

// MaxAddressLength bounds an instance address in bytes.
const MaxAddressLength = 512

// ValidateAddress reports why s cannot be an instance address, or nil. An
// address is host:port (a name, an IPv4 address or a bracketed IPv6
// address, and a port from 1 to 65535) or an absolute URL with a scheme
// and a host, such as http://10.0.0.7:8080/api. It holds no whitespace,
// control or invisible characters, and never credentials: a heartbeat is
// read by every subscriber, so a URL with user information is refused
// rather than published.
func ValidateAddress(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("address is empty")
	case len(s) > MaxAddressLength:
		return fmt.Errorf("address is %d bytes long, more than %d", len(s), MaxAddressLength)
	}
	if i := strings.IndexFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || Invisible(r) || r == '\uFFFD'
	}); i >= 0 {
		return fmt.Errorf("address %q holds whitespace, control or invisible characters", truncate(s, 64))
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		switch {
		case err != nil && strings.Contains(s, "@"):
			// url.Error quotes the URL, and with it any password.
			return fmt.Errorf("address is not a URL")
		case err != nil:
			return fmt.Errorf("address is not a URL: %v", err)
		case u.User != nil:
			return fmt.Errorf("address holds credentials (user information before '@'); a heartbeat is read by every subscriber")
		case u.Scheme == "" || u.Host == "":
			return fmt.Errorf("address %q has no scheme or no host", truncate(s, 64))
		}
		return nil
	}
	if strings.Contains(s, "@") {
		return fmt.Errorf("address holds '@': credentials are never published, and a host:port has none")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("address %q is neither host:port nor a URL", truncate(s, 64))
	}
	if host == "" || strings.ContainsAny(host, "/?#") {
		return fmt.Errorf("address %q has no usable host", truncate(s, 64))
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("address %q: port %q is not a number from 1 to 65535", truncate(s, 64), truncate(port, 8))
	}
	return nil
}
