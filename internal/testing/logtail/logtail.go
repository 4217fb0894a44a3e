// Package logtail keeps the last lines of a process's output, for a test
// fixture to show when its test fails.
package logtail

import (
	"bytes"
	"strings"
	"sync"
)

// Tail keeps the last Max lines added. It is safe for concurrent use.
type Tail struct {
	mu    sync.Mutex
	lines []string
	max   int
}

// New returns a tail of at most max lines.
func New(max int) *Tail { return &Tail{max: max} }

// Add keeps one line, dropping the oldest past the bound.
func (t *Tail) Add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == t.max {
		t.lines = append(t.lines[:0], t.lines[1:]...)
	}
	t.lines = append(t.lines, line)
}

// String returns the lines kept, oldest first.
func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// Writer returns an io.Writer that adds each complete line written to it,
// prefixed when prefix is not empty, and passes over lines keep refuses
// (keep nil: every non-empty line).
func (t *Tail) Writer(prefix string, keep func(line string) bool) *Writer {
	return &Writer{tail: t, prefix: prefix, keep: keep}
}

// Writer splits what is written to it into lines for a Tail.
type Writer struct {
	mu     sync.Mutex
	tail   *Tail
	prefix string
	keep   func(string) bool
	buf    []byte
}

func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(w.buf[:i]), "\r")
		w.buf = w.buf[i+1:]
		if line == "" || (w.keep != nil && !w.keep(line)) {
			continue
		}
		if w.prefix != "" {
			line = w.prefix + " " + line
		}
		w.tail.Add(line)
	}
	return len(p), nil
}

// Partial returns what was written after the last complete line.
func (w *Writer) Partial() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}
