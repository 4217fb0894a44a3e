package wire

import (
	"strings"
	"testing"
)

func TestParseChannelTemplate(t *testing.T) {
	for _, tc := range []struct {
		in, pattern, channel string
	}{
		{"heartbeat:service:{service_name}", "heartbeat:service:*", "heartbeat:service:svc"},
		{"health:service:{service_name}:heartbeat", "health:service:*:heartbeat", "health:service:svc:heartbeat"},
	} {
		tpl, err := ParseChannelTemplate(tc.in)
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		if tpl.Pattern() != tc.pattern || tpl.Channel("svc") != tc.channel || tpl.String() != tc.in {
			t.Errorf("%q: pattern %q channel %q string %q", tc.in, tpl.Pattern(), tpl.Channel("svc"), tpl.String())
		}
		if got, ok := tpl.Service(tc.channel); !ok || got != "svc" {
			t.Errorf("%q: Service(%q) = %q, %v", tc.in, tc.channel, got, ok)
		}
	}
	for in, want := range map[string]string{
		"heartbeat:service:":                          "does not hold {service_name}",
		"hb:{service_name}:{service_name}":            "more than once",
		"{service_name}":                              "every channel",
		"hb:*:{service_name}":                         `holds '*'`,
		"hb {service_name}":                           `holds ' '`,
		"hb:{service}:{service_name}":                 `holds '{'`,
		"hb:{service_name}:\x07":                      `holds '\a'`,
		strings.Repeat("x", 129) + ServicePlaceholder: "more than 128",
		"x\u202e:{service_name}:hb":                   `holds '\u202e'`,
		"hb:{service_name}:\u200bhb":                  `holds '\u200b'`,
		"{service_name}:heartbeat":                    "no fixed text before",
	} {
		_, err := ParseChannelTemplate(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to say %q", in, err, want)
		}
	}
}

// Service refuses a channel that does not fit, or that has nothing where
// the name goes.
func TestChannelTemplateService(t *testing.T) {
	tpl, err := ParseChannelTemplate("health:service:{service_name}:heartbeat")
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range []string{"health:service::heartbeat", "health:service:x", "x:heartbeat", "heartbeat:service:x", ""} {
		if s, ok := tpl.Service(ch); ok {
			t.Errorf("Service(%q) = %q, true", ch, s)
		}
	}
	var zero ChannelTemplate
	if s, ok := zero.Service("heartbeat:service:a:b"); !ok || s != "a:b" {
		t.Errorf("zero template: %q %v", s, ok)
	}
	if p, err := PrefixTemplate("hb:"); err != nil || p.String() != "hb:{service_name}" {
		t.Errorf("PrefixTemplate: %v %v", p, err)
	}
	if _, err := PrefixTemplate("hb:*"); err == nil {
		t.Error("PrefixTemplate accepted a glob")
	}
}

func TestValidateAddress(t *testing.T) {
	for _, ok := range []string{"10.0.0.7:8080", "geocoding-1.svc.cluster.local:443", "[2001:db8::1]:9000",
		"http://10.0.0.7:8080", "https://api.example.com/v1", "grpc://h:50051"} {
		if err := ValidateAddress(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for in, want := range map[string]string{
		"":                                       "empty",
		"10.0.0.7":                               "neither host:port nor a URL",
		"h:0":                                    "port",
		"h:http":                                 "port",
		":8080":                                  "not a host name",
		"http://user:secret@h:80":                "credentials",
		"http:///path":                           "no scheme or no host",
		"h :80":                                  "whitespace",
		"h\u200b:80":                             "invisible",
		"http://h:1/" + strings.Repeat("a", 600): "more than 512",
		"http:user:secret@h.com/://":             "credentials",
		"user:secret@h:80/x?r=http://y":          "credentials",
		"a:b:secret@h://":                        "credentials",
		"[10.0.0.7:9090]:8080":                   "not a host name or an IP address",
		"[foo:bar]:80":                           "not a host name or an IP address",
		"<script>:80":                            "not a host name or an IP address",
		"h:+80":                                  "port",
		"http://h:0":                             "port",
		"http://h:99999/x":                       "port",
		"http://h:8080/?token=abc":               "query",
		"http://h:8080/#frag":                    "fragment",
	} {
		err := ValidateAddress(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want it to say %q", in, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%q: the error quotes the password: %v", in, err)
		}
	}
}

// Truncate cuts at a character boundary, and bytes that are not UTF-8 at
// the length asked: no character starts among them to cut at.
func TestTruncateCutsAtACharacterOrAtTheLength(t *testing.T) {
	for _, tt := range []struct {
		s    string
		n    int
		want string
	}{
		{"héllo", 10, "héllo"},
		{"héllo", 2, "h"}, // inside é
		{"héllo", 3, "hé"},
		{"a€b", 3, "a"}, // inside €
		{strings.Repeat("\x80", 10), 5, strings.Repeat("\x80", 5)},
		{"a" + strings.Repeat("\x80", 10), 5, "a\x80\x80\x80\x80"},
		{"€€", 0, ""},
	} {
		if got := Truncate(tt.s, tt.n); got != tt.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
	}
}
