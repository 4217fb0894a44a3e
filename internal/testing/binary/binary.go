// Package binary finds the real programs the tests start: one lookup for
// redis-server, Chromium, Alertmanager, Prometheus, promtool, strace and
// Python, so that each says the same thing when it is missing.
package binary

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Program is a program the tests need.
type Program struct {
	Env     string   // a variable that may name its path, such as REDIS_SERVER
	Names   []string // the names to look for on PATH, the preferred first
	Package string   // the Debian package that installs it
}

// Find returns the path of p: the variable's value when set, else the
// first of its names on PATH, else an error that says how to install it.
func (p Program) Find() (string, error) {
	if v := os.Getenv(p.Env); v != "" {
		return v, nil
	}
	for _, name := range p.Names {
		if path, err := exec.LookPath(name); err == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("no %s on PATH: install it (Debian: apt-get install --no-install-recommends %s, or run `make deps`, which does) or set %s to its path",
		strings.Join(p.Names, " or "), p.Package, p.Env)
}

// The programs the tests start.
var (
	RedisServer  = Program{Env: "REDIS_SERVER", Names: []string{"valkey-server", "redis-server"}, Package: "redis-server"}
	Chromium     = Program{Env: "CHROMIUM", Names: []string{"chromium"}, Package: "chromium"}
	Alertmanager = Program{Env: "ALERTMANAGER", Names: []string{"prometheus-alertmanager", "alertmanager"}, Package: "prometheus-alertmanager"}
	Promtool     = Program{Env: "PROMTOOL", Names: []string{"promtool"}, Package: "prometheus"}
	Prometheus   = Program{Env: "PROMETHEUS", Names: []string{"prometheus"}, Package: "prometheus"}
	Strace       = Program{Env: "STRACE", Names: []string{"strace"}, Package: "strace"}
	// Python3 is Debian's interpreter, which python3-redis and
	// python3-psutil install into, before any other python3 on PATH.
	Python3 = Program{Env: "PYTHON3", Names: []string{"/usr/bin/python3", "python3"}, Package: "python3-redis python3-psutil"}
)
