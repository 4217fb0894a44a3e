// Package testbin builds a command for a test that must run it as an
// operator would: as its own process.
package testbin

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// Build compiles the package in dir (relative to the test's package) into
// t's temporary directory and returns the binary's path.
func Build(t testing.TB, dir string) string {
	t.Helper()
	name := "cmd"
	if abs, err := filepath.Abs(dir); err == nil {
		name = filepath.Base(abs) // ".." and "." name the directory they stand for
	}
	bin := filepath.Join(t.TempDir(), name)
	if out, err := exec.Command("go", "build", "-o", bin, dir).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", dir, err, out)
	}
	return bin
}
