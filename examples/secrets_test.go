// Package examples holds the tests that run every command at once.
package examples

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/leaktest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/testbin"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

// secret is the password under test: distinctive, so that any output that
// holds it was printed from a credential and nowhere else.
const secret = "Zq7SeKrEt4u"

// command is one way of running one command for a short while.
type command struct {
	name string
	dir  string
	args []string
	// stopOn, when set, is output after which the command is sent SIGTERM
	// (services that run until told to stop); otherwise it exits by itself.
	stopOn string
}

var commands = []command{
	{name: "monitor", dir: "./monitor", args: []string{"--once", "--timeout", "2s"}},
	{name: "check", dir: "./check", args: []string{"--interval", "100ms", "--timeout", "2s", "basic"}},
	{name: "trackerfetcher", dir: "./trackerfetcher", stopOn: "heartbeats every"},
	{name: "otelservice", dir: "./otelservice", args: []string{"--duration", "300ms", "--export-interval", "100ms"}},
	{name: "loadgen", dir: "../internal/tools/loadgen", args: []string{"--instances", "20", "--services", "2", "--interval", "100ms", "--duration", "300ms"}},
	{name: "demo", dir: "./demo", args: []string{"--interval", "100ms", "--panel", "127.0.0.1:0"}},
	{name: "adminpanel", dir: "./adminpanel", args: []string{"--listen", "127.0.0.1:0"}, stopOn: "admin panel on"},
	{name: "discovery", dir: "./discovery", args: []string{"serve", "--service", "geo"}, stopOn: "serving geo"},
}

// form is one way of handing the command a password.
type form struct {
	name string
	env  func(addr, host, port string) []string
	args func(addr string) []string // extra arguments, for the monitor only
	// refused is what every command must say of a form the library
	// refuses; empty for forms that work.
	refused string
}

var forms = []form{
	{name: "URL userinfo", env: func(addr, _, _ string) []string {
		return []string{"OTEL_EXPORTER_VALKEY_ENDPOINT=redis://default:" + secret + "@" + addr}
	}},
	{name: "bare host userinfo", refused: "credentials are not accepted", env: func(addr, _, _ string) []string {
		return []string{"OTEL_EXPORTER_VALKEY_ENDPOINT=default:" + secret + "@" + addr}
	}},
	{name: "query string", refused: "query parameters", env: func(addr, _, _ string) []string {
		return []string{"OTEL_EXPORTER_VALKEY_ENDPOINT=redis://" + addr + "?password=" + secret}
	}},
	{name: "OTEL_EXPORTER_VALKEY_PASSWORD", env: func(addr, _, _ string) []string {
		return []string{"OTEL_EXPORTER_VALKEY_ENDPOINT=" + addr, "OTEL_EXPORTER_VALKEY_PASSWORD=" + secret}
	}},
	{name: "OTEL_EXPORTER_VALKEY_SENTINEL_PASSWORD", env: func(addr, _, _ string) []string {
		return []string{"OTEL_EXPORTER_VALKEY_ENDPOINT=" + addr, "OTEL_EXPORTER_VALKEY_SENTINEL_MASTER=mymaster",
			"OTEL_EXPORTER_VALKEY_SENTINEL_PASSWORD=" + secret}
	}},
	{name: "HEALTH_REDIS_PASSWORD", env: func(_, host, port string) []string {
		return []string{"HEALTH_REDIS_HOST=" + host, "HEALTH_REDIS_PORT=" + port, "HEALTH_REDIS_PASSWORD=" + secret}
	}},
	{name: "HEALTH_REDIS_HOST userinfo", refused: "credentials are not accepted", env: func(_, host, port string) []string {
		return []string{"HEALTH_REDIS_HOST=default:" + secret + "@" + host, "HEALTH_REDIS_PORT=" + port}
	}},
	{name: "--endpoint URL", args: func(addr string) []string {
		return []string{"--endpoint", "redis://default:" + secret + "@" + addr}
	}},
	{name: "--endpoint bare host userinfo", refused: "credentials are not accepted", args: func(addr string) []string {
		return []string{"--endpoint", "default:" + secret + "@" + addr}
	}},
}

// baseEnv is the test's environment without any variable the commands
// read for their connection, so that only the form under test speaks.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "OTEL_") || strings.HasPrefix(kv, "HEALTH_REDIS_") || strings.HasPrefix(kv, "HEARTBEAT_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HEARTBEAT_INTERVAL=0.1", "OTEL_SERVICE_NAME=secret_test", "NO_COLOR=1")
}

// Every command, with the password in every form it can be given, against
// a server that holds that password and against a port where nothing
// listens: the password appears in none of their output. Forms that are
// refused must be refused by every command, not only by the library.
func TestNoCommandPrintsThePassword(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", secret)
	closed, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	targets := []struct{ name, host, port string }{
		{"server", "127.0.0.1", strconv.Itoa(srv.Port())},
		{"nothing listening", "127.0.0.1", strconv.Itoa(closed)},
	}
	bins := map[string]string{}
	for _, c := range commands {
		bins[c.name] = testbin.Build(t, c.dir)
	}
	for _, c := range commands {
		for _, f := range forms {
			if f.args != nil && c.name != "monitor" {
				continue // only the monitor takes an endpoint flag
			}
			for _, tg := range targets {
				name := c.name + "/" + f.name + "/" + tg.name
				t.Run(name, func(t *testing.T) {
					addr := tg.host + ":" + tg.port
					env := baseEnv()
					args := c.args
					if f.env != nil {
						env = append(env, f.env(addr, tg.host, tg.port)...)
					}
					if f.args != nil {
						args = append(f.args(addr), args...)
					}
					out := runBriefly(t, bins[c.name], args, env, c.stopOn)
					t.Logf("output:\n%s", out)
					if strings.Contains(out, secret) {
						t.Errorf("the password appears in the output of %s:\n%s", c.name, out)
					}
					if f.refused != "" && !strings.Contains(out, f.refused) {
						t.Errorf("%s: want the form refused (%q), got:\n%s", c.name, f.refused, out)
					}
				})
			}
		}
	}
}

// runBriefly runs bin and returns its stdout and stderr together. A
// command that runs until told to stop gets SIGTERM once stopOn appears in
// its output (or it exits first); any command still running after 30 s is
// killed and fails the test.
func runBriefly(t *testing.T, bin string, args, env []string, stopOn string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	var (
		mu  sync.Mutex
		buf bytes.Buffer
	)
	stop := make(chan struct{})
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		signalled := false
		for sc.Scan() {
			mu.Lock()
			buf.Write(sc.Bytes())
			buf.WriteByte('\n')
			mu.Unlock()
			if stopOn != "" && !signalled && strings.Contains(sc.Text(), stopOn) {
				signalled = true
				close(stop)
			}
		}
		_, _ = io.Copy(io.Discard, r)
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-stop:
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
	case <-done:
	}
	<-read
	r.Close()
	if ctx.Err() != nil {
		t.Errorf("%s %v did not finish within 30 s", bin, args)
	}
	mu.Lock()
	defer mu.Unlock()
	return buf.String()
}
