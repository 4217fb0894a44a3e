package prometheustest

import (
	"testing"

	"github.com/otel-heartbeat/heartbeat/internal/testing/leaktest"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

// A Prometheus that scrapes itself answers queries about it.
func TestItScrapesAndAnswers(t *testing.T) {
	p := Start(t, "global: {scrape_interval: 1s}\n")
	if got := p.Query(t, "vector(42)"); len(got) != 1 || got[0].Value != 42 {
		t.Errorf("vector(42): %+v", got)
	}
}
