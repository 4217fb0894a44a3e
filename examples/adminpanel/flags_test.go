package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Every malformed flag is refused at start, naming it, before anything
// connects.
func TestMalformedFlagsAreRefused(t *testing.T) {
	for args, want := range map[string]string{
		"--default-interval -1s":    "--default-interval",
		"--default-interval 1ns":    "--default-interval",
		"--retention 1ns":           "--retention",
		"--lease 1000000h":          "--lease",
		"--windows 1h,1h":           "given twice",
		"--windows 1ns":             "--windows",
		"--min-alive a=2,a=5":       "a is given twice",
		"--min-alive a=0":           "--min-alive",
		"--bars 0":                  "--bars",
		"--alertmanager ftp://x":    "--alertmanager",
		"--webhook http://h/x":      "ADMINPANEL_WEBHOOK_SECRET",
		"--external-url not-a-url":  "--external-url",
		"--alerts /nonexistent.yml": "--alerts",
		"--forget-after 1s":         "--forget-after",
		"--forget-after 1000h":      "--forget-after",
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), strings.Fields(args), func(string) string { return "" }, &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q", args, code, errb.String(), want)
		}
	}
}
