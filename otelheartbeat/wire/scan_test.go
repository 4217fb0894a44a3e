package wire

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"strings"
	"testing"
)

// special8 finds every byte str must look at, wherever it is in the word,
// among any others, and its lowest flag is the first of them: it may flag
// a byte it need not past that one, never before it, and never a word of
// none.
func TestSpecial8FindsTheFirstByteToLookAt(t *testing.T) {
	look := func(c byte) bool { return c == '"' || c == '\\' || c < 0x20 || c >= 0x80 }
	check := func(b [8]byte) {
		first := 8
		for i, c := range b {
			if look(c) {
				first = i
				break
			}
		}
		got := special8(binary.LittleEndian.Uint64(b[:]))
		switch {
		case got == 0 && first < 8:
			t.Fatalf("%q: taken as plain", b)
		case got != 0 && first == 8:
			t.Fatalf("%q: looked at, all plain", b)
		case got != 0 && bits.TrailingZeros64(got)>>3 != first:
			t.Fatalf("%q: first looked at byte %d, want %d", b, bits.TrailingZeros64(got)>>3, first)
		}
	}
	for pos := range 8 {
		for c := range 256 {
			for _, fill := range []byte{'a', ' ', '~', 0x21, 0x5d} {
				b := [8]byte{}
				for i := range b {
					b[i] = fill
				}
				b[pos] = byte(c)
				check(b)
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200_000 {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], r.Uint64())
		check(b)
		for i := range b { // mostly plain, now and then not
			if r.IntN(16) != 0 {
				b[i] = byte(0x20 + r.IntN(0x60))
			}
		}
		check(b)
	}
}

// A string is read alike whatever the word its special bytes fall in.
func TestStringsAreReadAlikeAtEveryOffset(t *testing.T) {
	for n := range 40 {
		for at := range n {
			for _, special := range []string{`\"`, `\\`, `é`, "\x01", `\u00e9`} {
				body := strings.Repeat("x", at) + special + strings.Repeat("y", n-at)
				s := &scanner{data: []byte(`"` + body + `" `)}
				got, err := s.str()
				if special == "\x01" {
					if err == nil {
						t.Fatalf("%q: no error for a control character", body)
					}
					continue
				}
				want := map[string]string{`\"`: `"`, `\\`: `\`, `é`: `é`, `\u00e9`: `é`}[special]
				if err != nil || string(got) != strings.Repeat("x", at)+want+strings.Repeat("y", n-at) || s.pos != len(body)+2 {
					t.Fatalf("%q: %q, %v, at %d", body, got, err, s.pos)
				}
			}
		}
	}
}
