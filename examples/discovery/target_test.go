package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/examples/discovery/balance"
)

// The work endpoint is joined to an advertised address as a path, never
// appended to a query or a fragment.
func TestTargetJoinsThePath(t *testing.T) {
	for addr, want := range map[string]string{
		"10.0.0.7:8080":            "http://10.0.0.7:8080/work",
		"http://10.0.0.7:8080":     "http://10.0.0.7:8080/work",
		"http://10.0.0.7:8080/":    "http://10.0.0.7:8080/work",
		"https://h.example/api/v1": "https://h.example/api/v1/work",
	} {
		if got, err := target(addr); err != nil || got != want {
			t.Errorf("%s: %s %v, want %s", addr, got, err, want)
		}
	}
}

// An instance's status line is its own text: the error quotes it, so no
// terminal control in it reaches the client's output.
func TestAHostileStatusLineIsQuoted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = bufio.NewReader(c).ReadString('\n')
		_, _ = io.WriteString(c, "HTTP/1.1 500 \x1b[2J\x1b[31mPWNED\u202e\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	}()
	err = get(context.Background(), &http.Client{Timeout: 5 * time.Second}, balance.Target{Instance: "evil", Address: ln.Addr().String()})
	if err == nil || strings.ContainsAny(err.Error(), "\x1b\u202e") {
		t.Errorf("error %q", err)
	}
}
