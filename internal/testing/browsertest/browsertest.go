// Package browsertest starts a real headless Chromium for tests, so that a
// web page is tested as a browser runs it: its scripts, its DOM, its clicks.
//
// The binary is $CHROMIUM, else chromium on PATH (Debian's chromium; `make
// deps` installs it as root). When there is none the test is skipped with a
// message saying how to install one, except in CI (CI set to anything but
// "false" or "0"), where it fails: CI must never pass by skipping the page.
//
// Each browser has its own user-data directory in the test's temporary
// directory, no first run, no background networking, no component updates,
// and no sandbox only when the tests run as root (Chromium refuses to start
// as root with one). When the test ends the browser is closed and the
// fixture waits until its process and every child process are gone.
package browsertest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/binary"

	"github.com/chromedp/chromedp"

	"github.com/otel-heartbeat/heartbeat/internal/testing/logtail"
)

const (
	// startTimeout bounds how long the browser may take to start and open
	// its first tab.
	startTimeout = 30 * time.Second
	// stopTimeout bounds how long the browser may take to close and its
	// processes to end.
	stopTimeout = 10 * time.Second
)

// Binary returns the Chromium binary the tests will use, or an error that
// says how to install one.
func Binary() (string, error) { return binary.Chromium.Find() }

// InCI reports whether the tests run in CI, where a missing browser fails
// the test instead of skipping it.
func InCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}

// Browser is one headless Chromium owned by a test.
type Browser struct {
	// Ctx is the chromedp context of the browser's first tab: pass it to
	// chromedp.Run and chromedp.Do. It is cancelled when the test ends.
	Ctx context.Context

	t       testing.TB
	dataDir string
	pid     int
	log     *logtail.Tail
	cancel  func()
	console sync.WaitGroup
}

// Start starts a headless Chromium for t and returns it with its first tab
// open. When the test ends the browser is closed, and the test fails if any
// of its processes outlives it; if the test failed, the browser's console
// messages and its own output are logged.
func Start(t testing.TB) *Browser {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		missing(t, err)
		return nil
	}
	b := &Browser{t: t, dataDir: t.TempDir(), log: logtail.New(60)}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(b.dataDir),
		// Chromium complains at length when there is no D-Bus, as in
		// containers; those lines would push the useful ones out.
		chromedp.CombinedOutput(b.log.Writer("chromium", func(line string) bool { return !strings.Contains(line, ":ERROR:dbus/") })),
		// Nothing but the tests' own loopback servers: no component
		// updates, no field trials, no domain reliability reports, no
		// crash uploads, no GPU (headless renders in software anyway).
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("disable-field-trial-config", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("mute-audio", true),
		chromedp.WindowSize(1280, 800),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	b.Ctx = ctx
	b.cancel = func() {
		// Close the browser gracefully, then end the allocator, whose
		// cancel waits for the browser process and the goroutines that
		// read its output.
		closeCtx, cancelClose := context.WithTimeout(ctx, stopTimeout)
		_ = chromedp.Cancel(closeCtx)
		cancelClose()
		cancelCtx()
		cancelAlloc()
	}
	t.Cleanup(b.stop)

	// An empty run starts the browser and opens the first tab. It must get
	// ctx itself, not a child with a deadline: the first run's context is
	// the tab's lifetime.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err = <-started:
	case <-time.After(startTimeout):
		cancelCtx()
		<-started
		err = fmt.Errorf("not started in %v", startTimeout)
	}
	if err != nil {
		t.Fatalf("browsertest: start %s: %v\n%s", bin, err, b.log)
	}
	if p := chromedp.FromContext(ctx).Browser.Process(); p != nil {
		b.pid = p.Pid
	}
	b.console.Go(func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			line := m.String()
			if m.URL != "" {
				line += fmt.Sprintf(" (%s:%d)", m.URL, m.Line+1)
			}
			b.log.Add("console " + line)
		}
	})
	return b
}

// missing skips the test, or fails it in CI, when there is no browser.
func missing(t testing.TB, err error) {
	t.Helper()
	if InCI() {
		t.Fatalf("browsertest: %v (CI is set, so a missing browser fails the test)", err)
	}
	t.Skipf("browsertest: skipped: %v", err)
}

// PID returns the process id of the browser's main process.
func (b *Browser) PID() int { return b.pid }

// DataDir returns the browser's user-data directory. Chromium passes it to
// every child process, which is how the fixture finds them.
func (b *Browser) DataDir() string { return b.dataDir }

// Log returns the browser's console messages and its own output so far,
// the last lines first to go.
func (b *Browser) Log() string { return b.log.String() }

func (b *Browser) stop() {
	b.cancel()
	b.console.Wait()
	// chromedp waited for the main process; children (zygote, renderer,
	// network service) end when it does, a moment later. Wait for them,
	// and kill any that are still there at the deadline.
	if left := waitGone(b.dataDir, stopTimeout); len(left) > 0 {
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		b.t.Errorf("browsertest: chromium processes %v outlived the browser by %v; killed", left, stopTimeout)
	}
	if b.t.Failed() {
		b.t.Logf("chromium (pid %d), console and last output lines:\n%s", b.pid, b.log)
	}
}

// Processes returns the ids of the running processes that were started with
// dir as their Chromium user-data directory.
func Processes(dir string) []int {
	want := []byte("--user-data-dir=" + dir)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for arg := range bytes.SplitSeq(cmdline, []byte{0}) {
			if bytes.Equal(arg, want) {
				if !zombie(pid) {
					pids = append(pids, pid)
				}
				break
			}
		}
	}
	return pids
}

// zombie reports whether pid has exited and waits only for its parent to
// reap it: a zombie runs nothing and holds no files.
func zombie(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // gone
	}
	// The state follows the command name, which is in parentheses.
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// waitGone polls until no process uses dir, and returns those still there
// at the deadline.
func waitGone(dir string, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		left := Processes(dir)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond) // polling /proc: exits are not observable otherwise
	}
}

// Screenshot writes a PNG of the whole page of ctx, beyond the viewport, to
// path, creating its directory, and fails the test on error.
func Screenshot(t testing.TB, ctx context.Context, path string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("browsertest: screenshot: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
}
