package term

import (
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// Strings from the wire (service names, instance ids, field keys and
// values, channel and key names, and error text that quotes them) are data:
// a publisher must not be able to move an operator's cursor, clear the
// screen, set the window title or the clipboard (ESC, CSI and OSC
// sequences, C1 controls such as U+009B), or make one name look like another
// (zero-width characters, bidi overrides). Everything the renderers print
// from the wire goes through Escape; --json output through safeJSON.

// Escape returns s with every character a terminal would act on or not
// show written visibly: C0 controls and DEL as \t, \n, \r or \xNN; bytes
// that are not UTF-8 as \xNN; and every other rune that unicode.IsPrint
// refuses (C1 controls, format characters such as U+200B and U+202E, line
// and paragraph separators, spaces other than U+0020, private use and
// unassigned code points) or that prints as nothing (see shown) as \uNNNN
// or \UNNNNNNNN. Printable text,
// non-ASCII letters included, is kept. A string of printable ASCII, which
// is every name this library's publishers send, is returned as it is,
// without allocating. A backslash is not doubled: the escapes are for
// reading, not for parsing back.
func Escape(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return string(appendEscaped(make([]byte, 0, len(s)+16), s[:i], s[i:]))
		}
	}
	return s
}

// appendEscaped appends clean, which needs no escaping, then rest escaped.
func appendEscaped(b []byte, clean, rest string) []byte {
	b = append(b, clean...)
	for i := 0; i < len(rest); {
		c := rest[i]
		if c >= 0x20 && c < 0x7f {
			b = append(b, c)
			i++
			continue
		}
		if c < utf8.RuneSelf {
			switch c {
			case '\t':
				b = append(b, `\t`...)
			case '\n':
				b = append(b, `\n`...)
			case '\r':
				b = append(b, `\r`...)
			default:
				b = appendHexByte(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(rest[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = appendHexByte(b, c)
		case shown(r):
			b = append(b, rest[i:i+size]...)
		case r <= 0xffff:
			b = appendHex(append(b, `\u`...), uint32(r), 4)
		default:
			b = appendHex(append(b, `\U`...), uint32(r), 8)
		}
		i += size
	}
	return b
}

// shown reports whether a terminal shows r as itself: printable, and not
// one of the default-ignorable code points that unicode.IsPrint accepts
// though they print as nothing (variation selectors, the combining
// grapheme joiner, Hangul fillers, Khmer inherent vowels).
func shown(r rune) bool {
	return unicode.IsPrint(r) && !wire.Invisible(r)
}

func appendHexByte(b []byte, c byte) []byte {
	return appendHex(append(b, `\x`...), uint32(c), 2)
}

func appendHex(b []byte, v uint32, digits int) []byte {
	const hex = "0123456789abcdef"
	for shift := 4 * (digits - 1); shift >= 0; shift -= 4 {
		b = append(b, hex[v>>uint(shift)&0xf])
	}
	return b
}

// clip cuts s, already escaped, to at most n characters, ending it with an
// ellipsis when it was longer, so that no value from the wire can widen a
// table column or flood a line.
func clip(s string, n int) string {
	if len(s) <= n || utf8.RuneCountInString(s) <= n {
		return s
	}
	count := 0
	for i := range s {
		if count == n-1 {
			return s[:i] + "…"
		}
		count++
	}
	return s
}

// safeJSON returns valid JSON b with every rune that Escape would escape
// written as a JSON \u escape (a pair of them past U+FFFF), and every byte
// that is not UTF-8 as \ufffd, so that a --json line is valid UTF-8 and
// shows a terminal nothing it would act on. JSON allows non-ASCII bytes
// and DEL only inside strings, so the rewrite needs no parsing. Output of
// printable ASCII, the common case, is returned as it is.
func safeJSON(b []byte) []byte {
	i := 0
	for i < len(b) && b[i] < 0x7f {
		i++
	}
	if i == len(b) {
		return b
	}
	out := make([]byte, 0, len(b)+32)
	out = append(out, b[:i]...)
	for i < len(b) {
		c := b[i]
		if c < 0x7f {
			out = append(out, c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			out = append(out, `\ufffd`...)
		case r != 0x7f && shown(r):
			out = append(out, b[i:i+size]...)
		case r <= 0xffff:
			out = appendHex(append(out, `\u`...), uint32(r), 4)
		default:
			r -= 0x10000
			out = appendHex(append(out, `\u`...), uint32(0xd800+(r>>10)), 4)
			out = appendHex(append(out, `\u`...), uint32(0xdc00+(r&0x3ff)), 4)
		}
		i += size
	}
	return out
}

// formatNumber writes f with one decimal place, or in four significant
// digits with an exponent once it is too large for a column (a publisher
// may send 1e308, which is valid JSON).
func formatNumber(f float64) string {
	if f > -1e6 && f < 1e6 {
		return strconv.FormatFloat(f, 'f', 1, 64)
	}
	return strconv.FormatFloat(f, 'g', 4, 64)
}
