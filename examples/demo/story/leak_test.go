package main

import (
	"os"
	"testing"

	"github.com/otel-heartbeat/heartbeat/internal/testing/leaktest"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
)

// TestMain runs the tests, or, when the demo being tested in this process
// starts its services (this binary, with the role in the environment), a
// service.
func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runService(role))
	}
	watch.QuietGoRedis()
	leaktest.VerifyTestMain(m)
}
