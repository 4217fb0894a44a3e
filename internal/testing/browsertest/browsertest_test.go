package browsertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.uber.org/goleak"
)

// TestPageScriptAndClick serves a page whose script is a separate file,
// reads its text, clicks its button and sees the script change the text,
// then checks that no browser process outlives the test.
func TestPageScriptAndClick(t *testing.T) {
	srv := httptest.NewServer(http.FileServer(http.Dir("testdata")))
	defer srv.Close() // Close twice is fine

	var pid int
	var dataDir string
	t.Run("browser", func(t *testing.T) {
		b := Start(t)
		pid, dataDir = b.PID(), b.DataDir()
		if pid == 0 {
			t.Fatal("no browser process id")
		}
		ctx, cancel := context.WithTimeout(b.Ctx, 30*time.Second)
		defer cancel()

		if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/index.html")); err != nil {
			t.Fatal(err)
		}
		before, err := chromedp.Run(ctx, chromedp.Text("#state"))
		if err != nil {
			t.Fatal(err)
		}
		if before != "waiting" {
			t.Fatalf("#state before the click = %q, want %q", before, "waiting")
		}
		// app.js marks the element when it changed it; waiting for the
		// mark also proves the script loaded.
		if err := chromedp.Do(ctx,
			chromedp.Click("#go"),
			chromedp.WaitReady(`#state[data-state="clicked"]`),
		); err != nil {
			t.Fatal(err)
		}
		after, err := chromedp.Run(ctx, chromedp.Text("#state"))
		if err != nil {
			t.Fatal(err)
		}
		if after != "clicked" {
			t.Fatalf("#state after the click = %q, want %q", after, "clicked")
		}

		// The console reaches the log shown when a test fails.
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(b.Log(), "state changed to clicked") {
			if time.Now().After(deadline) {
				t.Fatalf("console message not in the browser's log:\n%s", b.Log())
			}
			time.Sleep(20 * time.Millisecond) // the console arrives on the browser's own schedule
		}

		shot := filepath.Join(t.TempDir(), "page.png")
		Screenshot(t, ctx, shot)
		png, err := os.ReadFile(shot)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
			t.Fatalf("screenshot is not a PNG: % x", png[:min(len(png), 8)])
		}
	})
	if t.Failed() {
		return
	}
	if pid == 0 {
		t.Skip("the subtest skipped: no browser")
	}

	// The subtest's cleanup has run: the browser and its children are gone,
	// and so is every goroutine of chromedp, without the leak check's
	// grace period (goleak.Find retries only briefly).
	srv.Close()
	if err := goleak.Find(); err != nil {
		t.Errorf("goroutines still running when the browser's cleanup returned: %v", err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("browser process %d still exists after the test (kill 0: %v)", pid, err)
	}
	if left := Processes(dataDir); len(left) > 0 {
		t.Errorf("chromium processes %v still use %s after the test", left, dataDir)
	}
}

// TestMissingBrowser skips with an install hint outside CI and fails in CI.
func TestMissingBrowser(t *testing.T) {
	t.Setenv("CHROMIUM", "")
	t.Setenv("PATH", t.TempDir())
	for _, tc := range []struct {
		ci       string
		wantSkip bool
	}{
		{"", true},
		{"false", true},
		{"true", false},
		{"1", false},
	} {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			r := &recorder{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				Start(r)
			}()
			<-done
			if r.skipped != tc.wantSkip || r.failed == tc.wantSkip {
				t.Fatalf("skipped %v, failed %v; want skipped %v", r.skipped, r.failed, tc.wantSkip)
			}
			for _, want := range []string{"apt-get install", "chromium", "CHROMIUM"} {
				if !strings.Contains(r.msg, want) {
					t.Errorf("message %q does not say %q", r.msg, want)
				}
			}
		})
	}
}

// recorder is a testing.TB that records a skip or a failure instead of
// acting on it, and ends its goroutine as the real ones do.
type recorder struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (r *recorder) Helper() {}

func (r *recorder) Skipf(format string, args ...any) {
	r.skipped, r.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed, r.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}
