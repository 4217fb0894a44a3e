package examples

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/otel-heartbeat/heartbeat"

// internalImports returns the packages of this module's internal/ tree that
// a Go source file imports.
func internalImports(name string, src any) ([]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.ImportsOnly)
	if err != nil {
		return nil, err
	}
	var found []string
	for _, imp := range f.Imports {
		p, err := strconv.Unquote(imp.Path.Value)
		if err != nil {
			return nil, err
		}
		if p == module+"/internal" || strings.HasPrefix(p, module+"/internal/") {
			found = append(found, p)
		}
	}
	return found, nil
}

// A team copies an example into its own module and builds it: that fails
// with "use of internal package not allowed" if the example imports one.
// Tests may use the test support in internal/; programs may not.
func TestExamplesImportNoInternalPackage(t *testing.T) {
	files := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		files++
		found, err := internalImports(path, nil)
		if err != nil {
			return err
		}
		for _, p := range found {
			t.Errorf("examples/%s imports %s: a copy of it outside this module would not build", filepath.ToSlash(path), p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 5 {
		t.Fatalf("only %d Go files under examples/: is the test running in the right directory?", files)
	}
}

// The check itself sees an internal import, aliased or not, and lets the
// public packages through.
func TestInternalImportsAreFound(t *testing.T) {
	src := `package main

import (
	"fmt"

	vc "github.com/otel-heartbeat/heartbeat/internal/valkeyconf"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/internalish"
)
`
	found, err := internalImports("main.go", src)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0] != module+"/internal/valkeyconf" {
		t.Errorf("found %q; want only internal/valkeyconf", found)
	}
}
