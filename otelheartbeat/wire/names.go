package wire

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameLength bounds service names, instance ids and field names, in bytes.
const MaxNameLength = 128

// MaxFieldNameLength bounds service field names, in bytes.
const MaxFieldNameLength = 64

// ValidateServiceName reports why name cannot be a service name, or nil.
// A name is refused when it is empty, longer than MaxNameLength, not UTF-8,
// or holds whitespace, control characters, characters that display as
// nothing (zero-width, bidi overrides: the name would pass for another) or
// the glob characters * ? [ ] \,
// because any of those breaks consumers that PSUBSCRIBE heartbeat:service:*.
func ValidateServiceName(name string) error {
	return validateIdent("service name", name)
}

// ValidateInstanceID reports why id cannot be an instance id, or nil. The
// rules are those of ValidateServiceName plus no ':', so that a latest-state
// key splits unambiguously into service name and instance id.
func ValidateInstanceID(id string) error {
	if err := validateIdent("instance id", id); err != nil {
		return err
	}
	if strings.ContainsRune(id, ':') {
		return fmt.Errorf("instance id %q holds ':', which makes latest-state keys ambiguous", id)
	}
	return nil
}

func validateIdent(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s is empty", what)
	case len(s) > MaxNameLength:
		return fmt.Errorf("%s %q is %d bytes long, more than %d", what, truncate(s, 32), len(s), MaxNameLength)
	}
	// Every heartbeat's names are checked as they are decoded, and almost
	// all are plain printable ASCII: one look-up a byte, without a branch,
	// tells so (and so that they are UTF-8).
	var looks uint8
	for i := 0; i < len(s); i++ {
		looks |= lookAt[s[i]]
	}
	if looks == 0 {
		return nil
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s %q is not valid UTF-8", what, s)
	}
	return validateRunes(what, s)
}

// lookAt is 1 for a byte validateIdent does not take as it is: past
// ASCII, whitespace or control, or a glob character.
var lookAt = func() (t [256]uint8) {
	for c := range t {
		if c >= utf8.RuneSelf || c <= ' ' || c == 0x7f || c == '*' || c == '?' || c == '[' || c == ']' || c == '\\' {
			t[c] = 1
		}
	}
	return t
}()

// validateRunes is validateIdent's full check, for names that are not
// plain printable ASCII or that hold a character it refuses.
func validateRunes(what, s string) error {
	for _, r := range s {
		switch {
		case r == '*' || r == '?' || r == '[' || r == ']' || r == '\\':
			return fmt.Errorf("%s %q holds the glob character %q, which breaks pattern subscribers", what, s, r)
		case unicode.IsSpace(r):
			return fmt.Errorf("%s %q holds whitespace", what, s)
		case unicode.IsControl(r):
			return fmt.Errorf("%s %q holds a control character", what, s)
		case Invisible(r):
			// Zero-width characters, bidi overrides and the like display as
			// nothing, so the name would pass for another one.
			return fmt.Errorf("%s %q holds the invisible character %U", what, s, r)
		}
	}
	return nil
}

// Invisible reports whether r displays as nothing although Unicode may
// call it printable: format characters (zero-width, bidi overrides),
// variation selectors, the other default-ignorable code points (the
// combining grapheme joiner, Hangul fillers) and the blank braille pattern.
// A name holding one would pass for another name, so names refuse them and
// renderers escape them.
func Invisible(r rune) bool {
	return r == '\u2800' || unicode.In(r, unicode.Cf, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point)
}

// reserved are the keys a service field may not take.
var reserved = func() map[string]bool {
	m := make(map[string]bool, len(documented))
	for _, k := range documented {
		m[k] = true
	}
	return m
}()

// ValidateFieldName reports why name cannot be a service field, or nil. A
// field name starts with an ASCII letter, holds only ASCII letters, digits and
// underscores (the original design's snake_case keys, and valid in every consumer's
// language and as part of an OpenTelemetry instrument name), is at most
// MaxFieldNameLength bytes, and is not a documented key.
func ValidateFieldName(name string) error {
	if name == "" {
		return fmt.Errorf("field name is empty")
	}
	if len(name) > MaxFieldNameLength {
		return fmt.Errorf("field name %q is %d bytes long, more than %d", truncate(name, 32), len(name), MaxFieldNameLength)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if i == 0 && !letter {
			return fmt.Errorf("field name %q must start with an ASCII letter", name)
		}
		if !letter && !(c >= '0' && c <= '9') && c != '_' {
			return fmt.Errorf("field name %q may hold only ASCII letters, digits and '_'", name)
		}
	}
	if reserved[name] {
		return fmt.Errorf("field name %q clashes with a documented heartbeat field", name)
	}
	return nil
}

// Truncate cuts s to at most n bytes at a character boundary: bytes that
// are not UTF-8 are cut at n, since no character starts among them.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for back := 0; back < utf8.UTFMax && n-back > 0; back++ {
		if utf8.RuneStart(s[n-back]) {
			return s[:n-back]
		}
	}
	return s[:n]
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return Truncate(s, n) + "..."
}

// IsUnsetServiceName reports whether a Resource's service.name says no name
// was given: empty, or the SDK's "unknown_service" default (with or without
// the executable's name after a colon). Such a heartbeat could not be
// attributed by any admin panel.
func IsUnsetServiceName(name string) bool {
	return name == "" || strings.HasPrefix(name, "unknown_service")
}
