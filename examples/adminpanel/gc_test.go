package main

import (
	"runtime/debug"
	"testing"
)

// The panel collects sooner than the runtime's default unless its
// environment sets GOGC, whatever to (GOGC=off included): the operator's
// word stands.
func TestThePanelCollectsSoonerUnlessToldOtherwise(t *testing.T) {
	was := debug.SetGCPercent(100)
	defer debug.SetGCPercent(was)
	collectSooner(func(string) (string, bool) { return "", false })
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Errorf("no GOGC: the panel collects at %d, want %d", got, gcPercent)
	}
	for _, v := range []string{"100", "200", "off", "", "garbage", "-1", "0"} {
		collectSooner(func(k string) (string, bool) { return v, k == "GOGC" })
		if got := debug.SetGCPercent(100); got != 100 {
			t.Errorf("GOGC=%q: the panel changed it to %d", v, got)
		}
	}
}
