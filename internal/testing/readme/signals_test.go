package readme

import (
	"regexp"
	"strings"
	"testing"
)

// paragraphs are a page's paragraphs: runs of lines between blank lines,
// a fenced code block being one paragraph of its own.
func paragraphs(text string) []string {
	var out []string
	var cur []string
	inCode := false
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.Join(cur, "\n"))
			cur = nil
		}
	}
	for _, l := range strings.Split(text, "\n") {
		fence := strings.HasPrefix(l, "```")
		switch {
		case fence && !inCode:
			flush()
			inCode = true
			cur = append(cur, l)
		case fence && inCode:
			cur = append(cur, l)
			flush()
			inCode = false
		case inCode:
			cur = append(cur, l)
		case strings.TrimSpace(l) == "":
			flush()
		default:
			cur = append(cur, l)
		}
	}
	flush()
	return out
}

// A signal sent to `go run` reaches go run, not the program it started:
// SIGTERM or SIGKILL ends go run and leaves the program running (only
// Ctrl-C in a terminal reaches both). So wherever a page starts a program
// with go run and speaks of signalling one, it says to build it first. A
// step is a paragraph, with the code block that follows it if one does.
func TestSignalledProgramsAreBuiltFirst(t *testing.T) {
	signal := regexp.MustCompile(`\bSIG(TERM|KILL|INT|STOP|HUP)\b|\bkill\b`)
	for page, text := range pages(t) {
		ps := paragraphs(text)
		for i, p := range ps {
			if i+1 < len(ps) && strings.HasPrefix(ps[i+1], "```") && !strings.HasPrefix(p, "```") {
				p += "\n" + ps[i+1]
			}
			if strings.Contains(p, "go run") && signal.MatchString(p) && !strings.Contains(p, "go build -o") {
				t.Errorf("%s: a program started with go run is signalled, without building it first:\n%s", page, p)
			}
		}
	}
}

func TestParagraphs(t *testing.T) {
	got := paragraphs("a\nb\n\n```sh\nx\n\ny\n```\nc\n\n\nd")
	want := []string{"a\nb", "```sh\nx\n\ny\n```", "c", "d"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("paragraphs: %q; want %q", got, want)
	}
}
