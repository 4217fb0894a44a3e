package notify

import (
	"testing"

	"github.com/otel-heartbeat/heartbeat/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }
