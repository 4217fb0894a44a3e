package main

import (
	"slices"
	"testing"

	"github.com/otel-heartbeat/heartbeat/internal/testing/proctest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/testbin"
)

// rig is what the end-to-end tests run a fleet on: a redis-server, the
// panel and the example service built, and their environment, at a 1 s
// heartbeat interval.
type rig struct {
	srv              *redistest.Server
	panelBin, svcBin string
	environ          []string
}

func newRig(t *testing.T, extraEnv ...string) rig {
	t.Helper()
	srv := redistest.Start(t)
	return rig{
		srv:      srv,
		panelBin: testbin.Build(t, "."),
		svcBin:   testbin.Build(t, "../discovery"),
		environ:  proctest.Env(append([]string{"OTEL_EXPORTER_VALKEY_ENDPOINT=" + srv.URL(), "HEARTBEAT_INTERVAL=1"}, extraEnv...)...),
	}
}

// withID is the environment of a service instance named id. Each call
// has its own copy: appending to the shared one would let a later call
// overwrite what an earlier one returned.
func (r rig) withID(id string) []string {
	return append(slices.Clip(r.environ), "OTEL_RESOURCE_ATTRIBUTES=service.instance.id="+id)
}
