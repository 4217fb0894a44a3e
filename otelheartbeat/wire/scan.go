package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/otel-heartbeat/heartbeat/internal/decimal"
)

// scanner is a single-pass JSON reader for one heartbeat object. It accepts
// exactly what encoding/json accepts (a differential fuzz test holds it to
// that) but decodes the documented keys in place, without reflection and
// without allocating for keys, numbers or strings that need no copy.
type scanner struct {
	data []byte
	pos  int
	buf  []byte // unescaping scratch
}

// maxDepth bounds nesting inside unknown values, so that hostile input
// cannot exhaust the stack.
const maxDepth = 64

var errEnd = errors.New("unexpected end of input")

func (s *scanner) syntax(format string, args ...any) error {
	if s.pos >= len(s.data) {
		return errEnd
	}
	return fmt.Errorf(format+" at offset %d", append(args, s.pos)...)
}

func (s *scanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

// str reads a string token. The result aliases s.data when the string has
// no escapes and is valid UTF-8, else s.buf; copy it before the next call.
func (s *scanner) str() ([]byte, error) {
	if s.peek() != '"' {
		return nil, s.syntax("want a string")
	}
	s.pos++
	start := s.pos
	// Eight bytes at a time while none ends the string or needs a look:
	// most of a heartbeat's strings are plain ASCII. The first byte that
	// does is found in its word, not looked for a byte at a time.
	for s.pos+8 <= len(s.data) {
		look := special8(binary.LittleEndian.Uint64(s.data[s.pos:]))
		if look == 0 {
			s.pos += 8
			continue
		}
		s.pos += bits.TrailingZeros64(look) >> 3
		if s.data[s.pos] == '"' {
			raw := s.data[start:s.pos]
			s.pos++
			return raw, nil
		}
		break // looked at below
	}
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			raw := s.data[start:s.pos]
			s.pos++
			return raw, nil
		case c == '\\' || c >= utf8.RuneSelf:
			return s.strSlow(start)
		case c < 0x20:
			return nil, s.syntax("control character in string")
		}
		s.pos++
	}
	return nil, errEnd
}

// special8 flags, in its high bit, each of the eight bytes of w that is a
// quote, a backslash, a control character or past ASCII: bytes str does
// not take as they are; 0 when there is none. Each test is the classic
// "has a zero byte" one: a borrow may flag a byte past one that is
// flagged rightly, never one before, so the lowest flag is the first byte
// to look at.
func special8(w uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	zero := func(v uint64) uint64 { return (v - ones) & ^v & highs }
	return w&highs | // past ASCII
		(w-0x20*ones)&^w&highs | // under 0x20
		zero(w^'"'*ones) | zero(w^'\\'*ones)
}

// strSlow unescapes a string from start, replacing invalid UTF-8 and lone
// surrogates with U+FFFD as encoding/json does.
func (s *scanner) strSlow(start int) ([]byte, error) {
	b := append(s.buf[:0], s.data[start:s.pos]...)
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			s.buf = b
			return b, nil
		case c < 0x20:
			return nil, s.syntax("control character in string")
		case c == '\\':
			if s.pos+1 >= len(s.data) {
				return nil, errEnd
			}
			e := s.data[s.pos+1]
			s.pos += 2
			switch e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, ok := s.hex4()
				if !ok {
					return nil, s.syntax("invalid \\u escape")
				}
				if utf16.IsSurrogate(r) {
					r2 := utf8.RuneError
					if s.pos+1 < len(s.data) && s.data[s.pos] == '\\' && s.data[s.pos+1] == 'u' {
						save := s.pos
						s.pos += 2
						if low, ok := s.hex4(); ok {
							if dec := utf16.DecodeRune(r, low); dec != utf8.RuneError {
								r2 = dec
							} else {
								s.pos = save
							}
						} else {
							return nil, s.syntax("invalid \\u escape")
						}
					}
					r = r2
				}
				b = utf8.AppendRune(b, r)
			default:
				return nil, s.syntax("invalid escape")
			}
		case c < utf8.RuneSelf:
			b = append(b, c)
			s.pos++
		default:
			r, size := utf8.DecodeRune(s.data[s.pos:])
			if r == utf8.RuneError && size == 1 {
				b = utf8.AppendRune(b, utf8.RuneError)
			} else {
				b = append(b, s.data[s.pos:s.pos+size]...)
			}
			s.pos += size
		}
	}
	return nil, errEnd
}

func (s *scanner) hex4() (rune, bool) {
	if s.pos+4 > len(s.data) {
		return 0, false
	}
	var r rune
	for _, c := range s.data[s.pos : s.pos+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	s.pos += 4
	return r, true
}

// number reads a number token by the JSON grammar and returns its text.
func (s *scanner) number() ([]byte, error) {
	start := s.pos
	if s.peek() == '-' {
		s.pos++
	}
	switch c := s.peek(); {
	case c == '0':
		s.pos++
	case c >= '1' && c <= '9':
		for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
			s.pos++
		}
	default:
		return nil, s.syntax("invalid number")
	}
	if s.peek() == '.' {
		s.pos++
		if !s.digits() {
			return nil, s.syntax("invalid number")
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.pos++
		if c := s.peek(); c == '+' || c == '-' {
			s.pos++
		}
		if !s.digits() {
			return nil, s.syntax("invalid number")
		}
	}
	return s.data[start:s.pos], nil
}

func (s *scanner) digits() bool {
	start := s.pos
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		s.pos++
	}
	return s.pos > start
}

func (s *scanner) literal(word string) error {
	if len(s.data)-s.pos < len(word) {
		if string(s.data[s.pos:]) == word[:len(s.data)-s.pos] {
			return errEnd
		}
		return s.syntax("invalid literal")
	}
	if string(s.data[s.pos:s.pos+len(word)]) != word {
		return s.syntax("invalid literal")
	}
	s.pos += len(word)
	return nil
}

// skip reads any value and returns its raw extent.
func (s *scanner) skip(depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, s.syntax("nested more than %d deep", maxDepth)
	}
	start := s.pos
	switch c := s.peek(); {
	case c == '"':
		if _, err := s.str(); err != nil {
			return nil, err
		}
	case c == '-' || c >= '0' && c <= '9':
		if _, err := s.number(); err != nil {
			return nil, err
		}
	case c == 't':
		if err := s.literal("true"); err != nil {
			return nil, err
		}
	case c == 'f':
		if err := s.literal("false"); err != nil {
			return nil, err
		}
	case c == 'n':
		if err := s.literal("null"); err != nil {
			return nil, err
		}
	case c == '[':
		s.pos++
		if err := s.container(']', func() error {
			_, err := s.skip(depth + 1)
			return err
		}); err != nil {
			return nil, err
		}
	case c == '{':
		s.pos++
		if err := s.container('}', func() error {
			if _, err := s.key(); err != nil {
				return err
			}
			_, err := s.skip(depth + 1)
			return err
		}); err != nil {
			return nil, err
		}
	default:
		return nil, s.syntax("invalid character %q", c)
	}
	return s.data[start:s.pos], nil
}

// container reads the members of an object or array whose opening bracket
// was just read, calling member for each, through the closing bracket.
// Errors from member are returned as they are.
func (s *scanner) container(closing byte, member func() error) error {
	s.ws()
	if s.peek() == closing {
		s.pos++
		return nil
	}
	for {
		s.ws()
		if err := member(); err != nil {
			return err
		}
		s.ws()
		switch s.peek() {
		case ',':
			s.pos++
		case closing:
			s.pos++
			return nil
		default:
			return s.syntax("want ',' or %q", closing)
		}
	}
}

// key reads an object member's key and its colon, leaving the scanner at
// the value. The key is a view valid until the next string is read.
func (s *scanner) key() ([]byte, error) {
	raw, err := s.str()
	if err != nil {
		return nil, err
	}
	s.ws()
	if s.peek() != ':' {
		return nil, s.syntax("want ':' after a key")
	}
	s.pos++
	s.ws()
	return raw, nil
}

// parseInt64 reads an integer token exactly, as encoding/json does into
// an int64.
func parseInt64(raw []byte) (int64, bool) {
	if n, ok := shortInt(raw); ok {
		return n, true
	}
	for _, c := range raw {
		if c == '.' || c == 'e' || c == 'E' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	return n, err == nil
}

// shortInt reads an integer of at most 18 digits, which int64 always
// holds, in one pass; anything else is left to strconv.
func shortInt(raw []byte) (int64, bool) {
	if len(raw) > 0 && raw[0] == '-' {
		n, ok := decimal.Digits(raw[1:])
		return -n, ok
	}
	return decimal.Digits(raw)
}

// parseFloat reads a number token as strconv.ParseFloat does: the
// nearest float64.
func parseFloat(raw []byte) (float64, bool) {
	if f, ok := shortFloat(raw); ok {
		return f, true
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	return f, err == nil
}

// exactPow10 are the powers of ten a float64 holds exactly.
var exactPow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// shortFloat reads, in one pass, a number of at most 15 digits without an
// exponent: what heartbeats carry (uptime, memory and CPU with one
// decimal). Its digits are an integer below 2^53 and the power of ten it
// is divided by is exact, so that one division, rounded once, is the
// nearest float64 (the shortcut strconv takes too, after a general
// parse). Anything else is left to strconv.
func shortFloat(raw []byte) (float64, bool) {
	neg := len(raw) > 0 && raw[0] == '-'
	i := 0
	if neg {
		i = 1
	}
	var (
		m      uint64
		digits int
		frac   = -1 // digits after the point, once one is seen
	)
	for ; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c >= '0' && c <= '9':
			if digits++; digits > 15 {
				return 0, false
			}
			m = m*10 + uint64(c-'0')
			if frac >= 0 {
				frac++
			}
		case c == '.' && frac < 0 && digits > 0:
			frac = 0
		default:
			return 0, false
		}
	}
	if digits == 0 || frac == 0 {
		return 0, false
	}
	f := float64(m)
	if frac > 0 {
		f /= exactPow10[frac]
	}
	if neg {
		f = -f
	}
	return f, true
}
