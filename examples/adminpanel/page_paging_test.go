package main

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/otel-heartbeat/heartbeat/internal/testing/browsertest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
)

// The page reads a service's instances a page at a time in the server's
// order, by code point: an instance that starts within the pages read is
// shown at once, also when its id and the next page's first differ only
// above U+FFFF (JavaScript's own order would put it past them and never
// show it); a change of the service's state reads every page read again,
// not only the first; a row that leaves the state chosen goes at once.
func TestPagePagesInTheServersOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Valkey, the panel and a browser")
	}
	srv := redistest.Start(t)
	const svc = "paged_service"
	// Down until 503 are up: the last instance that starts below makes it
	// up.
	url := startPanel(t, srv, "--min-alive", svc+"=503")
	waitReady(t, url)
	rdb := srv.Client(t)
	beat := func(id, status string) {
		t.Helper()
		b, _ := json.Marshal(map[string]any{"service_name": svc, "instance_id": id, "heartbeat_count": 1, "interval_seconds": 60, "status": status,
			"timestamp": time.Now().UTC().Format("2006-01-02T15:04:05.000000+00:00")})
		if err := rdb.Publish(context.Background(), "heartbeat:service:"+svc, b).Err(); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for i := range 499 {
		ids = append(ids, fmt.Sprintf("a%03d", i))
	}
	ids = append(ids, "😀a", "😀b")
	for _, id := range ids {
		beat(id, "running")
	}
	waitPanel(t, url, len(ids))

	b := browsertest.Start(t)
	ctx, cancel := context.WithTimeout(b.Ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url+"/#/services/"+svc)); err != nil {
		t.Fatal(err)
	}
	rows := `[...document.querySelectorAll('#instances tbody tr')].map((tr) => tr.dataset.instance)`
	waitFor(t, ctx, "the first page", `document.querySelector('#app').dataset.view === "service" && document.querySelectorAll('#instances tbody tr').length === 500`, 20*time.Second)
	if got := eval[[]string](t, ctx, rows+`.slice(-2)`); fmt.Sprint(got) != "[a498 😀a]" {
		t.Errorf("the first page ends %v", got)
	}
	// Ｚnew comes before 😀a, the last id read, by code point (by UTF-16
	// units after it): it falls within the pages read, shown live.
	beat("\uff3anew", "running")
	waitFor(t, ctx, "the instance within the pages", `document.querySelectorAll('#instances tbody tr').length === 501`, 10*time.Second)
	if got := eval[[]string](t, ctx, rows+`.slice(-3)`); fmt.Sprint(got) != "[a498 Ｚnew 😀a]" {
		t.Errorf("after Ｚnew started, the rows end %v", got)
	}
	if err := chromedp.Do(ctx, chromedp.Click("#more-rows")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "every row", `document.querySelectorAll('#instances tbody tr').length === 502 && document.querySelector('#more-rows').hidden`, 10*time.Second)
	// The service goes up (503 up): the view reads its pages again, every
	// one, as it had read them all.
	beat("\uff3athree", "running")
	waitFor(t, ctx, "the service up and every row again", `document.querySelector('#service-state').textContent === "up" && document.querySelectorAll('#instances tbody tr').length === 503`, 15*time.Second)
	if got := eval[[]string](t, ctx, rows+`.slice(-4)`); fmt.Sprint(got) != "[Ｚnew Ｚthree 😀a 😀b]" {
		t.Errorf("the rows end %v", got)
	}
	// A row that leaves the state chosen goes at once.
	if err := chromedp.Do(ctx, chromedp.SetValue("#state-filter", "alive"), chromedp.Evaluate[chromedp.Void](
		`document.querySelector('#state-filter').dispatchEvent(new Event('change'))`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the alive rows", `document.querySelectorAll('#instances tbody tr').length === 500`, 10*time.Second)
	beat("a000", "stopping")
	waitFor(t, ctx, "the stopped row gone", `!document.querySelector('#instances tbody tr[data-instance="a000"]')`, 3*time.Second)
}
