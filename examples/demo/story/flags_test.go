package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Asking for help is not a mistake: the flags are shown and the demo
// exits 0, before it starts anything. A wrong flag is still exit 2.
func TestHelpExitsZero(t *testing.T) {
	for _, arg := range []string{"--help", "-h"} {
		var out, errb bytes.Buffer
		if code := runDemo(context.Background(), []string{arg}, &out, &errb, false); code != 0 {
			t.Errorf("%s: exit %d; want 0\n%s", arg, code, errb.String())
		}
		for _, want := range []string{"-interval", "-forever", "-panel"} {
			if !strings.Contains(errb.String(), want) {
				t.Errorf("%s: the help lacks %s:\n%s", arg, want, errb.String())
			}
		}
		if out.Len() != 0 {
			t.Errorf("%s: the demo started: %s", arg, out.String())
		}
	}
	for _, args := range [][]string{{"--no-such-flag"}, {"--interval", "1ns"}} {
		var out, errb bytes.Buffer
		if code := runDemo(context.Background(), args, &out, &errb, false); code != 2 {
			t.Errorf("%q: exit %d; want 2\n%s", args, code, errb.String())
		}
	}
}
