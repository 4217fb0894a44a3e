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
