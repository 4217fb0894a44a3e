// Command demo tells the heartbeat story in under a minute, with nothing
// installed but Go:
//
//	go run ./examples/demo
//
// It starts an embedded Valkey-compatible broker (miniredis), three services
// built on the library - tracker_fetcher, geocoding_service and
// geofence_service, each a process of its own with the service data the original design
// lists - the monitor and the admin panel (a web page of the fleet, its
// history and uptime). All three are alive; geofence_service crashes
// (SIGKILL, so no final heartbeat) and the monitor reports it stale, then
// dead, by its own timing; geocoding_service stops gracefully and is
// reported stopped, not dead; then the demo prints a summary. In a
// terminal the admin panel then stays up, with the broker and the service
// that survived, until Ctrl-C; elsewhere (CI, a pipe) the demo ends there.
// The tracker fetcher also serves its heartbeat gauges to Prometheus,
// beside the Valkey heartbeat.
//
// With OTEL_EXPORTER_VALKEY_ENDPOINT or HEALTH_REDIS_HOST set it uses that
// Valkey instead of the embedded broker.
//
//	--interval 1s   heartbeat interval (the story takes about ten of them)
//	--forever       skip the crash and the stop; run until interrupted
//	--panel ADDR    where the admin panel serves (default 127.0.0.1:8080,
//	                another free port if taken; empty: no panel)
//	--stay          after the story, keep the admin panel up until Ctrl-C
//	                (default: when stdout is a terminal; --stay=false ends)
//
// This package is the launcher: it imports the standard library alone, so
// that `go run` compiles it in seconds even on a fresh machine, says what
// the first run costs, then compiles the demo itself (package story, which
// imports the library, the broker and the admin panel: about a minute the
// first time on two cores, then cached) and runs it with the same
// arguments. Ctrl-C and SIGTERM reach the demo, and its exit status is
// the launcher's. Killed outright (SIGKILL), the launcher still takes the
// demo and its services with it on Linux (they get SIGTERM and stop
// gracefully), and the next run removes what it compiled.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
)

// firstRun is what the first run costs, measured with an empty build
// cache (GOCACHE=$(mktemp -d) go run ./examples/demo) on two cores.
const firstRun = "compiling the demo (first run: about 70 s on 2 cores, then cached)…\n"

func main() { os.Exit(launch(os.Args[1:])) }

// launch compiles the demo into a directory of its own, runs it with args,
// and removes it; it returns the demo's exit status.
func launch(args []string) int {
	// Signals are the demo's to act on: while it compiles, Ctrl-C ends the
	// compiler (it has the terminal's signal too) and then the launcher.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	os.Stderr.WriteString(firstRun)
	removeOrphans()
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", tmpPrefix, os.Getpid()))
	if err != nil {
		return fail(err.Error())
	}
	defer os.RemoveAll(dir)
	build, bin, err := buildCommand(dir)
	if err != nil {
		return fail(err.Error())
	}
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	switch code, stopped, err := run(build, sigs); {
	case err != nil:
		return fail(err.Error())
	case stopped:
		return fail("stopped while compiling")
	case code != 0:
		return fail("the demo did not compile")
	}

	demo := exec.Command(bin, args...)
	demo.Stdin, demo.Stdout, demo.Stderr = os.Stdin, os.Stdout, os.Stderr
	endWithUs(demo)
	code, _, err := run(demo, sigs)
	if err != nil {
		return fail(err.Error())
	}
	return code
}

// run runs cmd, passing it the signals the launcher receives, and returns
// its exit status, and whether it was sent one.
func run(cmd *exec.Cmd, sigs <-chan os.Signal) (code int, signalled bool, err error) {
	if err := cmd.Start(); err != nil {
		return 0, false, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			signalled = true
			_ = cmd.Process.Signal(s)
		case err := <-done:
			if cmd.ProcessState == nil {
				return 0, signalled, err
			}
			code := cmd.ProcessState.ExitCode()
			if code < 0 {
				code = 1 // ended by a signal
			}
			return code, signalled, nil
		}
	}
}

// buildCommand is the go command that compiles the demo (this package's
// story) into dir, and the binary's path: from the source at hand, or
// the released version this launcher was run as (go run ...@version).
func buildCommand(dir string) (*exec.Cmd, string, error) {
	bi, ok := debug.ReadBuildInfo()
	if !ok || bi.Path == "" || bi.Path == "command-line-arguments" {
		return nil, "", errors.New("cannot tell where the demo's source is: run it as go run ./examples/demo")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		goCmd = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	pkg := bi.Path + "/story"
	bin := filepath.Join(dir, "story")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	if released(bi) {
		cmd := exec.Command(goCmd, "install", pkg+"@"+bi.Main.Version)
		cmd.Env = append(os.Environ(), "GOBIN="+dir)
		return cmd, bin, nil
	}
	return exec.Command(goCmd, "build", "-o", bin, pkg), bin, nil
}

// released reports whether the launcher was built from a released version
// of the module (go run pkg@version) rather than from source at hand.
func released(bi *debug.BuildInfo) bool {
	v := bi.Main.Version
	if v == "" || v == "(devel)" || strings.Contains(v, "+dirty") {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs" {
			return false // stamped from a checkout
		}
	}
	return true
}

// tmpPrefix names the directories the launcher compiles into, followed
// by its pid.
const tmpPrefix = "heartbeat-demo-"

// removeOrphans removes what launchers killed before they could clean up
// left in the temporary directory: the directories of pids that are gone.
func removeOrphans() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tmpPrefix+"*-*"))
	for _, d := range dirs {
		pid, _, ok := strings.Cut(strings.TrimPrefix(filepath.Base(d), tmpPrefix), "-")
		if n, err := strconv.Atoi(pid); ok && err == nil && n > 0 && n != os.Getpid() && !alive(n) {
			_ = os.RemoveAll(d)
		}
	}
}

func fail(msg string) int {
	os.Stderr.WriteString("demo: " + msg + "\n")
	return 1
}
