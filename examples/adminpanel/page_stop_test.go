package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/otel-heartbeat/heartbeat/internal/testing/browsertest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/poll"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/testbin"
)

// trailingMisses reads the panel's API and returns how many of the last
// intervals of each instance of svc had no heartbeat, after its last one.
func trailingMisses(t testing.TB, url, svc string) map[string]int {
	t.Helper()
	resp, err := http.Get(url + "/api/v1/services/" + svc)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var d struct {
		Instances []struct {
			Instance string `json:"instance"`
			Bars     []int  `json:"bars"`
		} `json:"instances"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&d) != nil {
		return nil
	}
	out := map[string]int{}
	for _, i := range d.Instances {
		n := 0
		for j := len(i.Bars) - 1; j >= 0 && i.Bars[j] == 0; j-- {
			n++
		}
		out[i.Instance] = n
	}
	return out
}

// barsOf describes, in the page, the heartbeat bars of the instance row
// whose state is state: the classes of the bars after its last received
// one, their colour and height, the symbol at the strip's end, and the
// colour and symbol of that state's badge.
func barsOf(state string) string {
	return fmt.Sprintf(`(() => {
		const tr = document.querySelector('#instances tbody tr[data-state=%q]');
		const bars = tr.querySelector('.bars');
		const spans = [...bars.children];
		let last = -1;
		spans.forEach((s, i) => { if (s.classList.contains('b1')) last = i; });
		const after = spans.slice(last + 1);
		const badge = tr.querySelector('.state');
		return JSON.stringify({
			classes: [...new Set(after.map((s) => s.className))],
			colour: after.length ? getComputedStyle(after[0]).backgroundColor : '',
			height: after.length ? after[0].getBoundingClientRect().height : 0,
			end: getComputedStyle(bars, '::after').content,
			label: bars.getAttribute('aria-label') || '',
			badgeColour: getComputedStyle(badge).color,
			badgeSymbol: getComputedStyle(badge, '::before').content,
		});
	})()`, state)
}

type barsLook struct {
	Classes     []string `json:"classes"`
	Colour      string   `json:"colour"`
	Height      float64  `json:"height"`
	End         string   `json:"end"`
	Label       string   `json:"label"`
	BadgeColour string   `json:"badgeColour"`
	BadgeSymbol string   `json:"badgeSymbol"`
}

// TestPageStoppedIsNotACrash runs three instances of a service, one that
// the test publishes for with several fields, and two real services; it
// crashes one (SIGKILL) and stops the other (SIGTERM). In the service
// view the crashed one's bars after its last heartbeat are misses, red,
// ending in the dead badge's symbol; the stopped one's are the stopped
// state's colour and symbol, and another shape: a graceful stop must not
// look like a crash, nor differ from it by colour alone. With
// -update-screenshot it writes the service view, the Alerts view and the
// service at phone width to testdata.
func TestPageStoppedIsNotACrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Valkey, the panel, two services and a browser")
	}
	srv := redistest.Start(t)
	const svc = "geocoding_service"
	disc := testbin.Build(t, "../discovery")
	crashed := startService(t, srv, disc, svc)
	stopped := startService(t, srv, disc, svc)
	// Two must be up: with one crashed the service is down, and the view
	// shows its incident. The panel reads both from their latest state
	// when it starts, so the service is up from its first moment.
	url := startPanel(t, srv, "--min-alive", svc+"=2")
	waitReady(t, url)
	publishRich(t, srv, svc, []string{"ffe1c0de-1876-4632-94c0-4edc58d253a8"}, 0) // after the services' in the view
	waitPanel(t, url, 3)

	b := browsertest.Start(t)
	ctx, cancel := context.WithTimeout(b.Ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800), chromedp.Navigate(url+"/#/services/"+svc)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "three alive rows, the services' with three heartbeats in their bars", `document.querySelectorAll('#instances tbody tr[data-state="alive"]').length === 3 && `+
		`[...document.querySelectorAll('#instances tbody tr')].filter((tr) => tr.querySelectorAll('.bars .b1').length >= 3).length === 2`, 20*time.Second)

	if err := stopped.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the stopped row", `document.querySelector('#instances tbody tr[data-state="stopped"]')`, 20*time.Second)
	if err := crashed.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the dead row", `document.querySelector('#instances tbody tr[data-state="dead"]')`, 20*time.Second)
	if err := stopped.Wait(10 * time.Second); err != nil {
		t.Logf("the stopped service's exit: %v", err)
	}
	// Both have missed two intervals or more by the panel's count; the
	// page, loaded again, shows them so.
	poll.Until(t, 20*time.Second, "two intervals without heartbeats for both", func() bool {
		n := trailingMisses(t, url, svc)
		two := 0
		for _, v := range n {
			if v >= 2 {
				two++
			}
		}
		return two == 2
	})
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the dead and stopped rows", `document.querySelector('#app').dataset.view === "service" && document.querySelector('#app').dataset.rendered === "3" && `+
		`document.querySelector('#instances tbody tr[data-state="dead"]') && document.querySelector('#instances tbody tr[data-state="stopped"]')`, 20*time.Second)

	var dead, stop barsLook
	for _, x := range []struct {
		state string
		into  *barsLook
	}{{"dead", &dead}, {"stopped", &stop}} {
		if err := json.Unmarshal([]byte(eval[string](t, ctx, barsOf(x.state))), x.into); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: bars after the last heartbeat %v, %s, %.0f px tall; the strip ends in %s; %q",
			x.state, x.into.Classes, x.into.Colour, x.into.Height, x.into.End, x.into.Label)
	}
	if dead.Colour != dead.BadgeColour {
		t.Errorf("the crashed instance's missed bars are %s, want the dead badge's %s", dead.Colour, dead.BadgeColour)
	}
	if stop.Colour == dead.Colour {
		t.Errorf("the stopped instance's bars are %s like the crashed one's: a graceful stop looks like a crash", stop.Colour)
	}
	if stop.Colour != stop.BadgeColour {
		t.Errorf("the stopped instance's bars are %s, want the stopped badge's %s", stop.Colour, stop.BadgeColour)
	}
	if stop.Height == dead.Height {
		t.Errorf("the stopped and crashed bars are both %.0f px tall: they differ by colour alone", stop.Height)
	}
	for _, x := range []struct {
		name string
		look barsLook
	}{{"dead", dead}, {"stopped", stop}} {
		if sym := cssString(x.look.End); sym == "" || sym == "none" || !strings.Contains(cssString(x.look.BadgeSymbol), sym) {
			t.Errorf("the %s instance's bars end in %s, want its badge's symbol (%s)", x.name, x.look.End, x.look.BadgeSymbol)
		}
	}
	if !strings.Contains(stop.Label, "stop") {
		t.Errorf("the stopped instance's bars are described as %q, which does not say it stopped", stop.Label)
	}

	if *updateScreenshot {
		browsertest.Screenshot(t, ctx, filepath.Join("testdata", "adminpanel-service.png"))
	}

	// The Alerts view, opened at once: the alerts follow the death by up
	// to a second, and this page, loaded since, saw no transition. It must
	// list the crash's alerts when they fire, and none for the stop.
	stoppedID := eval[string](t, ctx, `document.querySelector('#instances tbody tr[data-state="stopped"]').dataset.instance`)
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`location.hash = "#/alerts"`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the crash's alerts", `document.querySelector('#app').dataset.view === "alerts" && `+
		`document.querySelectorAll('#alerts-active tr[data-alert="HeartbeatInstanceDead"]').length === 1 && `+
		`document.querySelectorAll('#alerts-active tr[data-alert="HeartbeatServiceDown"]').length === 1`, 20*time.Second)
	if n := eval[int](t, ctx, fmt.Sprintf(`document.querySelectorAll('#alerts-view [title=%q]').length`, stoppedID)); n != 0 {
		t.Errorf("the graceful stop is named in %d alerts", n)
	}
	if *updateScreenshot {
		browsertest.Screenshot(t, ctx, filepath.Join("testdata", "adminpanel-alerts.png"))
		// A phone: the same service, its instances as cards, as the
		// screen shows them from the list's heading.
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(1), chromedp.EmulateMobile),
			chromedp.Evaluate[chromedp.Void](fmt.Sprintf("location.hash = %q", "#/services/"+svc))); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, "the service at phone width", `window.innerWidth === 390 && document.querySelector('#app').dataset.view === "service" && document.querySelector('#app').dataset.rendered === "3"`, 20*time.Second)
		if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, document.getElementById('instances-title').getBoundingClientRect().top + window.scrollY - 8)`)); err != nil {
			t.Fatal(err)
		}
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", "adminpanel-phone.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// cssString is the text of a computed CSS content value: "■" is ■.
func cssString(s string) string { return strings.TrimSpace(strings.Trim(s, `"`)) }
