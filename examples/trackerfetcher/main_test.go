package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/testbin"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// The service as an operator runs it: built, configured by environment,
// stopped with SIGTERM.
func TestServiceHeartbeatsAndStopsGracefullyOnSIGTERM(t *testing.T) {
	srv := redistest.Start(t)
	bin := testbin.Build(t, ".")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ps := srv.PSubscribe(t, "heartbeat:service:*")

	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"HEARTBEAT_INTERVAL=0.5",
		"OTEL_SERVICE_NAME=tracker_fetcher_eu",
		"HEALTH_REDIS_HOST=127.0.0.1",
		"HEALTH_REDIS_PORT="+strconv.Itoa(srv.Port()),
		"OTEL_EXPORTER_VALKEY_ENDPOINT=",
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
	}()

	var last *wire.Message
	for i := 0; i < 3; i++ {
		msg, err := ps.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("%v; service log:\n%s", err, stderr.String())
		}
		m, err := wire.Unmarshal([]byte(msg.Payload))
		if err != nil {
			t.Fatal(err)
		}
		if m.ServiceName != "tracker_fetcher_eu" || m.HeartbeatCount != int64(i+1) || m.Status != "running" {
			t.Errorf("heartbeat %s", msg.Payload)
		}
		for _, k := range []string{"queue_size", "api_status"} {
			if _, ok := m.Field(k); !ok {
				t.Errorf("%s missing from %s", k, msg.Payload)
			}
		}
		last = m
	}
	if v, _ := last.Field("api_status"); v.Str != "authenticated" {
		t.Errorf("api_status %q", v.Str)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var final *wire.Message
	for final == nil || final.Status != "stopping" {
		msg, err := ps.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("no stopping heartbeat: %v; service log:\n%s", err, stderr.String())
		}
		final, _ = wire.Unmarshal([]byte(msg.Payload))
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit: %v; log:\n%s", err, stderr.String())
		}
	case <-ctx.Done():
		t.Fatal("the service did not exit after SIGTERM")
	}
	if !bytes.Contains(stderr.Bytes(), []byte("stopped")) {
		t.Errorf("log:\n%s", stderr.String())
	}
}

// SIGUSR1 hangs the work loop and not the heartbeat: heartbeats go on, on
// time, with last_successful_operation frozen; SIGUSR2 frees it. Each
// says a state, so a burst of either loses nothing.
func TestSIGUSR1HangsTheWorkNotTheHeartbeat(t *testing.T) {
	srv := redistest.Start(t)
	bin := testbin.Build(t, ".")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ps := srv.PSubscribe(t, "heartbeat:service:*")
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "HEARTBEAT_INTERVAL=0.3", "OTEL_EXPORTER_VALKEY_ENDPOINT="+srv.URL())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lastOp := func() string {
		t.Helper()
		msg, err := ps.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("%v; service log:\n%s", err, stderr.String())
		}
		m, err := wire.Unmarshal([]byte(msg.Payload))
		if err != nil {
			t.Fatal(err)
		}
		v, _ := m.Field("last_successful_operation")
		return v.Str
	}
	moving := func() bool {
		first := lastOp()
		for range 3 {
			if lastOp() != first {
				return true
			}
		}
		return false
	}
	lastOp() // it runs: the signal handler is in place
	if !moving() {
		t.Fatalf("last_successful_operation does not move at the start; log:\n%s", stderr.String())
	}
	for range 2 {
		if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
	}
	lastOp() // a fetch under way when the signal came may still end
	lastOp()
	if moving() {
		t.Fatalf("last_successful_operation moves with the work loop hung; log:\n%s", stderr.String())
	}
	for range 3 { // a burst: a state, not a toggle, so none is lost
		if err := cmd.Process.Signal(syscall.SIGUSR2); err != nil {
			t.Fatal(err)
		}
	}
	if !moving() {
		t.Fatalf("last_successful_operation does not move once freed; log:\n%s", stderr.String())
	}
}
