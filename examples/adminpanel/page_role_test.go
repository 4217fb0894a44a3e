package main

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/otel-heartbeat/heartbeat/internal/testing/browsertest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/poll"
	"github.com/otel-heartbeat/heartbeat/internal/testing/proctest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/testbin"
)

// TestPageSaysItIsTheStandby opens the page of each of two replicas: the
// standby's says plainly that it is the standby, the recorder's does not,
// and the standby's says it no more once it has taken over.
func TestPageSaysItIsTheStandby(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Valkey, two panels and a browser")
	}
	srv := redistest.Start(t)
	bin := testbin.Build(t, ".")
	environ := proctest.Env("OTEL_EXPORTER_VALKEY_ENDPOINT=" + srv.URL())
	a := startReplica(t, bin, environ, "a")
	b := startReplica(t, bin, environ, "b")
	poll.Until(t, 10*time.Second, "a recorder", func() bool { return recording(t, a) || recording(t, b) })
	recorder, standby := a, b
	if recording(t, b) {
		recorder, standby = b, a
	}

	br := browsertest.Start(t)
	ctx, cancel := context.WithTimeout(br.Ctx, 60*time.Second)
	defer cancel()
	const shown = `!document.querySelector('#role').hidden && document.querySelector('#role').textContent.includes('standby')`
	if err := chromedp.Do(ctx, chromedp.Navigate(recorder.url+"/")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the recorder's page", `document.querySelector('#app').dataset.view === "fleet"`, 10*time.Second)
	if eval[bool](t, ctx, shown) {
		t.Error("the recorder's page says it is the standby")
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(standby.url+"/")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the standby's page saying so", shown, 10*time.Second)

	send(t, recorder.p, syscall.SIGKILL) // SIGKILL: the standby takes over within its lease
	waitFor(t, ctx, "the page of the replica that took over no longer saying standby", "!("+shown+")", 15*time.Second)
}
