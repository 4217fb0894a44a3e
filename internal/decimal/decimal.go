// Package decimal reads the short decimal integers hot paths meet (a
// heartbeat's counts, /proc's fields) without allocating and in one pass.
package decimal

// MaxDigits is the most digits Digits reads: any number of them fits an
// int64.
const MaxDigits = 18

// Digits reads b, one to MaxDigits decimal digits and nothing else, as a
// non-negative integer; false for anything else, which a caller leaves to
// strconv or refuses.
func Digits(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > MaxDigits {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}
