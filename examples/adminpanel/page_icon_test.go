package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/otel-heartbeat/heartbeat/internal/testing/browsertest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/proctest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/testbin"
)

// TestPageServesItsIcon asks a panel that wants a token for /favicon.ico
// and the icons the page links: they are refused without the token, as
// the page's other files are, and served with it, as images of the right
// type under the same Content-Security-Policy; and the browser, sending
// the token, shows each.
func TestPageServesItsIcon(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Valkey, the panel and a browser")
	}
	srv := redistest.Start(t)
	const token = "a-token-of-sixteen-or-more"
	p := proctest.Start(t, testbin.Build(t, "."), proctest.Env("OTEL_EXPORTER_VALKEY_ENDPOINT="+srv.URL(), "ADMINPANEL_TOKEN="+token),
		"--listen", "127.0.0.1:0")
	line := p.Expect("admin panel on http://", 30*time.Second).Text
	url := strings.TrimSuffix(strings.Fields(strings.TrimPrefix(line, "admin panel on "))[0], "/")

	get := func(path string, auth bool) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url+path, nil)
		if auth {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	css, _ := get("/app.css", true)
	for _, path := range []string{"/favicon.ico", "/app.css"} {
		if resp, _ := get(path, false); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without the token: %s, want 401 as for every page file", path, resp.Status)
		}
	}
	resp, body := get("/favicon.ico", true)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/favicon.ico: %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "image/x-icon" && ct != "image/vnd.microsoft.icon" {
		t.Errorf("/favicon.ico is served as %q, want an icon's type", ct)
	}
	if !bytes.HasPrefix(body, []byte{0, 0, 1, 0}) {
		t.Errorf("/favicon.ico does not start as an ICO file does: % x", body[:min(len(body), 8)])
	}
	for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options"} {
		if got, want := resp.Header.Get(h), css.Header.Get(h); got != want || got == "" {
			t.Errorf("/favicon.ico's %s is %q, the page's files' %q", h, got, want)
		}
	}

	b := browsertest.Start(t)
	ctx, cancel := context.WithTimeout(b.Ctx, 30*time.Second)
	defer cancel()
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"Authorization": "Bearer " + token}}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(url+"/")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the page", `document.querySelector('#app').dataset.view === "fleet"`, 10*time.Second)
	icons := eval[[]string](t, ctx, `[...document.querySelectorAll('link[rel~="icon"]')].map((l) => l.href)`)
	if !slices.ContainsFunc(icons, func(h string) bool { return strings.HasSuffix(h, "/favicon.ico") }) {
		t.Errorf("the page links the icons %q, want /favicon.ico among them", icons)
	}
	for _, href := range icons {
		resp, _ := get(strings.TrimPrefix(href, url), true)
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "image/") {
			t.Errorf("%s: %s, %q", href, resp.Status, ct)
		}
		// As the browser draws it, under the page's CSP.
		w := eval[int](t, ctx, `new Promise((done) => { const i = new Image(); i.onload = () => done(i.naturalWidth); i.onerror = () => done(-1); i.src = `+fmt.Sprintf("%q", href)+`; })`,
			chromedp.EvalAwaitPromise)
		if w <= 0 {
			t.Errorf("the browser does not draw %s", href)
		}
	}
}
