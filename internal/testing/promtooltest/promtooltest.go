// Package promtooltest runs a real promtool on Prometheus rule files, so
// that alerting rules are checked and unit-tested by the Prometheus that
// will evaluate them.
//
// The binary is $PROMTOOL, else promtool on PATH (Debian's prometheus
// package; `make deps` installs it as root). When there is none the test
// fails with a message saying how to install one: rules are never skipped.
package promtooltest

import (
	"context"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/binary"
)

// timeout bounds one promtool run.
const timeout = 60 * time.Second

// Binary returns the promtool binary the tests will use, or an error that
// says how to install one.
func Binary() (string, error) { return binary.Promtool.Find() }

// CheckRules runs `promtool check rules` on rule files and fails the test,
// with promtool's output, unless they are valid.
func CheckRules(t testing.TB, files ...string) {
	t.Helper()
	if out, err := Run(append([]string{"check", "rules"}, files...)...); err != nil {
		t.Fatalf("promtooltest: %v\n%s", err, out)
	}
}

// TestRules runs `promtool test rules` on unit-test files (whose rule_files
// are relative to each test file) and fails the test, with promtool's
// output, unless every test passes.
func TestRules(t testing.TB, files ...string) {
	t.Helper()
	if out, err := Run(append([]string{"test", "rules"}, files...)...); err != nil {
		t.Fatalf("promtooltest: %v\n%s", err, out)
	}
}

// Run runs promtool with args and returns its combined output; the error
// says which command failed and how.
func Run(args ...string) (string, error) {
	bin, err := Binary()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %v: %w", bin, args, err)
	}
	return string(out), nil
}
