package main

import (
	"testing"

	"github.com/otel-heartbeat/heartbeat/internal/testing/leaktest"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }
