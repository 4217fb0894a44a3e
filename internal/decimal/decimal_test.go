package decimal

import (
	"strconv"
	"strings"
	"testing"
)

// Digits reads what strconv reads, for one to eighteen digits, and
// refuses anything else.
func TestDigitsReadsWhatStrconvReads(t *testing.T) {
	for _, s := range []string{"0", "7", "00", "0123", "1380", "999999999999999999", "123456789012345678"} {
		want, _ := strconv.ParseInt(s, 10, 64)
		if got, ok := Digits([]byte(s)); !ok || got != want {
			t.Errorf("Digits(%q) = %d, %v; want %d", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "-1", "+1", "1.5", "1e3", " 1", "1 ", "0x10", strings.Repeat("9", 19)} {
		if got, ok := Digits([]byte(s)); ok {
			t.Errorf("Digits(%q) = %d, taken", s, got)
		}
	}
}
