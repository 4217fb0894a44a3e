package rules

import (
	"testing"

	"github.com/otel-heartbeat/heartbeat/internal/testing/leaktest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/promtooltest"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

// TestRules: promtool finds the rules valid, and their unit tests pass: a
// dead instance fires, a stopped one never does, one dead instance beside
// an alive one is not a service down, a blind panel fires only its
// blindness.
func TestRules(t *testing.T) {
	promtooltest.CheckRules(t, "heartbeat.rules.yml")
	promtooltest.TestRules(t, "heartbeat.rules.test.yml")
}
