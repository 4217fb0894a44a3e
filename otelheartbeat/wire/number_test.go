package wire

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// checkNumber holds parseFloat and parseInt64 to strconv's answers for one
// JSON number: the same bits (a negative zero included), the same refusal.
func checkNumber(t *testing.T, raw string) {
	t.Helper()
	want, err := strconv.ParseFloat(raw, 64)
	got, ok := parseFloat([]byte(raw))
	if ok != (err == nil) || ok && math.Float64bits(got) != math.Float64bits(want) {
		t.Fatalf("parseFloat(%s) = %v, %v; strconv: %v (%#x), %v", raw, got, ok, want, math.Float64bits(want), err)
	}
	integer := true
	for _, c := range raw {
		if c == '.' || c == 'e' || c == 'E' {
			integer = false
		}
	}
	wantN, err := strconv.ParseInt(raw, 10, 64)
	gotN, ok := parseInt64([]byte(raw))
	if ok != (integer && err == nil) || ok && gotN != wantN {
		t.Fatalf("parseInt64(%s) = %d, %v; strconv: %d, %v", raw, gotN, ok, wantN, err)
	}
}

// The numbers a heartbeat carries (one decimal), and the edges of any
// shortcut: 15, 16 and more digits, 2^53 and 2^63 on either side, the
// exactly representable powers of ten and the first that is not, zeros,
// long fractions, exponents.
func TestNumbersAreReadAsStrconvReadsThem(t *testing.T) {
	for _, raw := range []string{
		"0", "-0", "0.0", "-0.0", "0.5", "-0.5", "1", "-1", "12.5", "156.3", "3600.1", "86399.9",
		"0.1", "0.2", "0.3", "1.7976931348623157", "123456789012345", "1234567890123456",
		"12345678901234567", "999999999999999", "9999999999999999", "99999999999999999",
		"999999999999999.9", "99999999999999.99", "0.000000000000001", "0.0000000000000000000001",
		"0.00000000000000000000001", "0.000000000000000000000001234", "9007199254740991",
		"9007199254740992", "9007199254740993", "-9007199254740993", "9223372036854775807",
		"-9223372036854775808", "9223372036854775808", "-9223372036854775809",
		"18446744073709551615", "18446744073709551616", "100000000000000000000000",
		"1e22", "1e23", "1E5", "1e-5", "1.5e+3", "-2.5E-3", "1e400", "-1e400", "1e-400",
		"4.9e-324", "2.2250738585072014e-308", "0.1000000000000000055511151231257827",
		"1.00000000000000011102230246251565404236316680908203125",
		"1.00000000000000011102230246251565404236316680908203126",
		"00", "0123", "1.", ".5", "-", "", "+1", "1e", "0x10", "1_000", "Inf", "NaN",
	} {
		checkNumber(t, raw)
	}
	// Every one-decimal value to a day and a little past, and random
	// shapes of every length.
	for i := range 1_000_000 {
		checkNumber(t, strconv.FormatFloat(float64(i)/10, 'f', 1, 64))
	}
	r := rand.New(rand.NewPCG(1, 2))
	digits := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('0' + r.IntN(10))
		}
		return string(b)
	}
	for range 200_000 {
		raw := digits(1 + r.IntN(20))
		if len(raw) > 1 && raw[0] == '0' {
			raw = "0"
		}
		if r.IntN(2) == 0 {
			raw += "." + digits(1+r.IntN(20))
		}
		if r.IntN(8) == 0 {
			raw += "e" + strconv.Itoa(r.IntN(60)-30)
		}
		if r.IntN(2) == 0 {
			raw = "-" + raw
		}
		checkNumber(t, raw)
	}
}

// FuzzNumbersAreReadAsStrconvReadsThem: any text the scanner takes for a
// number is read as strconv reads it.
func FuzzNumbersAreReadAsStrconvReadsThem(f *testing.F) {
	for _, s := range []string{"156.3", "-0", "9007199254740993", "1e23", "0.000000000000000000000001", "12345678901234567"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc := scanner{data: []byte(s)}
		raw, err := sc.number()
		if err != nil || sc.pos != len(s) {
			return
		}
		checkNumber(t, string(raw))
	})
}
