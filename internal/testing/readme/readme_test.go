// Package readme checks that the README and the pages of docs/ say what is
// true: their commands run, the variables, ACL rules and tests they name
// exist, their links resolve, and package documentation agrees with them.
package readme

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/otel-heartbeat/heartbeat/internal/testing/acl"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/internal/valkeyconf"
)

const root = "../../.."

func readme(t *testing.T) string { return read(t, "README.md") }

// doc is one page of docs/.
func doc(t *testing.T, name string) string { return read(t, filepath.Join("docs", name)) }

func read(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// pages is the README and every page of docs/, by path from the root.
func pages(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{"README.md": readme(t)}
	names, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no docs pages: %v", err)
	}
	for _, n := range names {
		rel, _ := filepath.Rel(root, n)
		out[filepath.ToSlash(rel)] = read(t, rel)
	}
	return out
}

// section is the text of a "## title" section of a page, up to the next.
func section(t *testing.T, page, text, title string) string {
	t.Helper()
	start := strings.Index(text, "\n## "+title+"\n")
	if start < 0 {
		t.Fatalf("%s has no section %q", page, title)
	}
	s := text[start+1:]
	if end := strings.Index(s[1:], "\n## "); end >= 0 {
		s = s[:end+1]
	}
	return s
}

// cleanEnv is the environment without any heartbeat configuration.
func cleanEnv(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OTEL_") && !strings.HasPrefix(kv, "HEALTH_REDIS_") && !strings.HasPrefix(kv, "HEARTBEAT_") {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

func TestTheTwoCommandsComeFirst(t *testing.T) {
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(readme(t), -1)
	if len(blocks) == 0 {
		t.Fatal("no sh block")
	}
	var cmds []string
	for _, l := range strings.Split(blocks[0][1], "\n") {
		if c, _, _ := strings.Cut(l, "#"); strings.TrimSpace(c) != "" {
			cmds = append(cmds, strings.TrimSpace(c))
		}
	}
	if len(cmds) != 2 || cmds[0] != "go run ./examples/demo" || cmds[1] != "make test" {
		t.Errorf("first commands %q", cmds)
	}
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil || !regexp.MustCompile(`(?m)^test:`).Match(mk) {
		t.Errorf("Makefile has no test target: %v", err)
	}
	ci, err := os.ReadFile(filepath.Join(root, ".ci", "run"))
	if err != nil || !strings.Contains(string(ci), "make test") {
		t.Errorf(".ci/run does not run make test: %v", err)
	}
}

// The main job, exactly as the README writes it.
func TestGoRunDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "./examples/demo")
	cmd.Dir = root
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go run ./examples/demo: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "✔ the crash was told from the graceful stop") {
		t.Errorf("output:\n%s", out)
	}
}

func TestToolCommands(t *testing.T) {
	srv := redistest.Start(t)
	env := cleanEnv(valkeyconf.EnvEndpoint + "=" + srv.URL())
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = root
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("run", "./examples/check", "basic"); err != nil || !strings.Contains(out, "0 failed") {
		t.Errorf("go run ./examples/check basic: %v\n%s", err, out)
	}
	// With no latest-state key, --once listens for one default interval.
	if out, err := run("run", "./examples/monitor", "--once", "--default-interval", "1s"); err != nil || !strings.Contains(out, "no instances") {
		t.Errorf("go run ./examples/monitor --once: %v\n%s", err, out)
	}
}

func TestACLRulesAreTheProvenOnes(t *testing.T) {
	text := doc(t, "configuration.md")
	for _, u := range []struct{ name, rule string }{
		{"heartbeat", acl.Publisher},
		{"monitor", acl.Monitor},
		{"heartbeat-NAME", acl.PublisherFor(acl.Name)},
		{"heartbeat-NAME", acl.ShardedPublisherFor(acl.Name)},
		{"monitor-sharded", acl.ShardedMonitor},
	} {
		want := "ACL SETUSER " + u.name + " on >PASSWORD " + acl.CLI(u.rule)
		if !strings.Contains(text, want) {
			t.Errorf("docs/configuration.md lacks %q", want)
		}
	}
}

// variables are every variable the library reads.
var variables = []string{
	valkeyconf.EnvEndpoint, valkeyconf.EnvUsername, valkeyconf.EnvPassword, valkeyconf.EnvCertificate,
	valkeyconf.EnvClientCertificate, valkeyconf.EnvClientKey, valkeyconf.EnvChannel, valkeyconf.EnvChannelPrefix, valkeyconf.EnvKeyPrefix,
	valkeyconf.EnvLatestState, valkeyconf.EnvHeartbeatInterval, valkeyconf.EnvHealthHost, valkeyconf.EnvHealthPort,
	valkeyconf.EnvHealthPassword, valkeyconf.EnvCluster, valkeyconf.EnvSharded, valkeyconf.EnvSentinelMaster, valkeyconf.EnvSentinelPassword,
	"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_METRIC_EXPORT_TIMEOUT",
}

func TestEveryVariableIsDocumented(t *testing.T) {
	table := doc(t, "configuration.md")
	exporter := read(t, "valkeyexporter/doc.go") // what go doc shows a service's author
	for _, v := range variables {
		if !strings.Contains(table, "`"+v+"`") {
			t.Errorf("docs/configuration.md does not document %s", v)
		}
		if strings.HasPrefix(v, "OTEL_EXPORTER_VALKEY_") || strings.HasPrefix(v, "HEALTH_REDIS_") || v == valkeyconf.EnvHeartbeatInterval {
			if !strings.Contains(exporter, v) {
				t.Errorf("valkeyexporter's package documentation does not list %s", v)
			}
		}
	}
	for page, text := range pages(t) {
		for _, dir := range regexp.MustCompile(`\./examples/(\w+)`).FindAllStringSubmatch(text, -1) {
			if _, err := os.Stat(filepath.Join(root, "examples", dir[1], "main.go")); err != nil {
				t.Errorf("%s names ./examples/%s: %v", page, dir[1], err)
			}
		}
	}
}

// The README is the front page: what the library is, the two commands, a
// service's first lines, the message, watching it, and where to read on.
// The manual is docs/.
func TestTheREADMEIsShort(t *testing.T) {
	const most = 200
	if n := strings.Count(readme(t), "\n"); n > most {
		t.Errorf("README.md has %d lines; at most %d, the rest belongs in docs/", n, most)
	}
	text := readme(t)
	for page := range pages(t) {
		if page != "README.md" && !strings.Contains(text, "]("+page+")") {
			t.Errorf("README.md does not link %s", page)
		}
	}
}

// Every relative link of the README and docs/ names a file that exists,
// and a #fragment names a heading of that file, as GitHub spells its
// anchors.
func TestLinksResolve(t *testing.T) {
	all := pages(t)
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for page, text := range all {
		for _, m := range link.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, frag, _ := strings.Cut(target, "#")
			rel := page
			if file != "" {
				rel = filepath.ToSlash(filepath.Join(filepath.Dir(page), file))
				if _, err := os.Stat(filepath.Join(root, rel)); err != nil {
					t.Errorf("%s links %s: %v", page, target, err)
					continue
				}
			}
			if frag == "" {
				continue
			}
			body, ok := all[rel]
			if !ok {
				t.Errorf("%s links %s: a fragment of a file that is not a page", page, target)
				continue
			}
			if !anchors(body)[frag] {
				t.Errorf("%s links %s: %s has no heading with that anchor", page, target, rel)
			}
		}
	}
}

// anchors are the GitHub anchors of a page's headings: lower case, spaces
// to hyphens, punctuation other than hyphens and underscores dropped.
func anchors(text string) map[string]bool {
	out := map[string]bool{}
	inCode := false
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(l, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(l, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(h) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		out[b.String()] = true
	}
	return out
}

// The wire format's key order, as the package documentation of the
// packages that write and read it states it, includes every additive key.
func TestPackageDocsStateTheKeyOrder(t *testing.T) {
	for _, f := range []string{"otelheartbeat/wire/doc.go", "valkeyexporter/doc.go"} {
		text := strings.Join(strings.Fields(read(t, f)), " ")
		text = strings.ReplaceAll(text, "// ", "")
		for _, key := range []string{"interval_seconds", "status", "instance_address"} {
			if !strings.Contains(text, key) {
				t.Errorf("%s does not say where %s goes", f, key)
			}
		}
	}
}

// Every test the docs name exists: the reliability table's, and those
// that prove a figure or a rule on any other page.
func TestNamedTestsExist(t *testing.T) {
	test := regexp.MustCompile("`((?:Test|Fuzz|Benchmark)[A-Z]\\w*)`")
	if n := len(test.FindAllStringSubmatch(doc(t, "reliability.md"), -1)); n < 20 {
		t.Fatalf("docs/reliability.md names only %d tests", n)
	}
	type named struct{ page, name string }
	var names []named
	for page, text := range pages(t) {
		for _, m := range test.FindAllStringSubmatch(text, -1) {
			names = append(names, named{page, m[1]})
		}
	}
	var sources strings.Builder
	_ = filepath.Walk(root, func(path string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(path, "_test.go") {
			b, _ := os.ReadFile(path)
			sources.Write(b)
		}
		return nil
	})
	for _, n := range names {
		if !strings.Contains(sources.String(), "func "+n.name+"(") {
			t.Errorf("%s names %s, which does not exist", n.page, n.name)
		}
	}
}

// The Layout table names every directory that holds Go code, so that a
// reader can find each package from the docs.
func TestLayoutListsEveryDirectory(t *testing.T) {
	section := section(t, "docs/design.md", doc(t, "design.md"), "Layout")
	dirs := map[string]bool{}
	_ = filepath.Walk(root, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.IsDir() && (info.Name() == ".git" || info.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !info.IsDir() && strings.HasSuffix(path, ".go") {
			rel, _ := filepath.Rel(root, filepath.Dir(path))
			if rel != "." {
				dirs[filepath.ToSlash(rel)] = true
			}
		}
		return nil
	})
	if len(dirs) < 20 {
		t.Fatalf("only %d directories with Go code found", len(dirs))
	}
	for d := range dirs {
		if !strings.Contains(section, "`"+d+"/`") {
			t.Errorf("the Layout table does not list %s/", d)
		}
	}
}
