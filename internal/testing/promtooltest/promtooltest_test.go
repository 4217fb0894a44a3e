package promtooltest

import (
	"strings"
	"testing"
)

func TestHeartbeatRules(t *testing.T) {
	CheckRules(t, "testdata/heartbeat.rules.yml")
	TestRules(t, "testdata/heartbeat.test.yml")
}

// TestFailingUnitTestShowsOutput: a unit test whose expectation is wrong
// fails, and the error carries promtool's account of it.
func TestFailingUnitTestShowsOutput(t *testing.T) {
	out, err := Run("test", "rules", "testdata/wrong.test.yml")
	if err == nil {
		t.Fatalf("a wrong expectation passed:\n%s", out)
	}
	if !strings.Contains(out, "HeartbeatInstanceDead") {
		t.Errorf("output does not name the alert:\n%s", out)
	}
}

func TestMissingBinaryFailsWithInstallHint(t *testing.T) {
	t.Setenv("PROMTOOL", "")
	t.Setenv("PATH", t.TempDir())
	_, err := Run("--version")
	if err == nil {
		t.Fatal("found a promtool on an empty PATH")
	}
	for _, want := range []string{"apt-get install --no-install-recommends prometheus", "PROMTOOL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
