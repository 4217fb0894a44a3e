package main

import (
	"bytes"
	"strings"
	"testing"
)

// A benchmark that failed or was skipped leaves its row out; the table must
// then fail, naming what is missing, rather than print what it has.
func TestMissingBenchmarksFailTheTable(t *testing.T) {
	in := `BenchmarkEncode-2   	 1000	      1503 ns/op	       0 B/op	       0 allocs/op
BenchmarkEncodeJSONMap-2   	 1000	      8220 ns/op	    2000 B/op	      41 allocs/op
`
	var out bytes.Buffer
	err := run(strings.NewReader(in), &out)
	if err == nil {
		t.Fatalf("want an error for the missing rows, got the table:\n%s", out.String())
	}
	for _, name := range []string{"BenchmarkHeartbeatCycleInterleaved", "BenchmarkIdleFootprint", "BenchmarkIngest", "BenchmarkClusterPubSub", "BenchmarkTickNothingDue", "BenchmarkIDFlood", "BenchmarkPublisherCost"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
	if strings.Contains(err.Error(), "BenchmarkEncode,") || strings.Contains(err.Error(), "BenchmarkEncodeJSONMap") {
		t.Errorf("error %q names a benchmark that ran", err)
	}
}

// A fleet at the limit that reported no mean resident memory fails the
// table, naming it, rather than printing 0 KiB as met.
func TestAMissingMeanMemoryFailsTheTable(t *testing.T) {
	line := func(name, mean string) string {
		return name + "-2   \t       1\t277000000000 ns/op\t         8.0 panel-cpu-µs/heartbeat\t         2.7 drain-cpu-µs/heartbeat\t         1.05 panel-rss-KiB/instance" + mean + "\n"
	}
	err := run(strings.NewReader(line(limit100k, "")+line(limit100kOne, "\t 0.99 panel-mean-rss-KiB/instance")), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), limit100k+" panel-mean-rss-KiB/instance") {
		t.Errorf("error %v, want one naming %s's missing mean", err, limit100k)
	}
	if err != nil && strings.Contains(err.Error(), limit100kOne+" panel-mean-rss-KiB/instance") {
		t.Errorf("error %q names the mean %s reported", err, limit100kOne)
	}
}
