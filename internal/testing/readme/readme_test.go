// Package readme checks that the README's commands work as written.
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

	"github.com/otel-heartbeat/heartbeat/internal/testing/acl"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/internal/valkeyconf"
)

const root = "../../.."

func readme(t *testing.T) string {
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
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
	text := readme(t)
	for _, u := range []struct{ name, rule string }{
		{"heartbeat", acl.Publisher},
		{"monitor", acl.Monitor},
		{"heartbeat-NAME", acl.PublisherFor(acl.Name)},
		{"heartbeat-NAME", acl.ShardedPublisherFor(acl.Name)},
		{"monitor-sharded", acl.ShardedMonitor},
	} {
		want := "ACL SETUSER " + u.name + " on >PASSWORD " + acl.CLI(u.rule)
		if !strings.Contains(text, want) {
			t.Errorf("README lacks %q", want)
		}
	}
}

func TestEveryVariableIsDocumented(t *testing.T) {
	text := readme(t)
	for _, v := range []string{
		valkeyconf.EnvEndpoint, valkeyconf.EnvUsername, valkeyconf.EnvPassword, valkeyconf.EnvCertificate,
		valkeyconf.EnvClientCertificate, valkeyconf.EnvClientKey, valkeyconf.EnvChannel, valkeyconf.EnvChannelPrefix, valkeyconf.EnvKeyPrefix,
		valkeyconf.EnvLatestState, valkeyconf.EnvHeartbeatInterval, valkeyconf.EnvHealthHost, valkeyconf.EnvHealthPort,
		valkeyconf.EnvHealthPassword, valkeyconf.EnvCluster, valkeyconf.EnvSharded, valkeyconf.EnvSentinelMaster, valkeyconf.EnvSentinelPassword, "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_METRIC_EXPORT_TIMEOUT",
	} {
		if !strings.Contains(text, "`"+v+"`") {
			t.Errorf("README does not document %s", v)
		}
	}
	for _, dir := range regexp.MustCompile(`\./examples/(\w+)`).FindAllStringSubmatch(text, -1) {
		if _, err := os.Stat(filepath.Join(root, "examples", dir[1], "main.go")); err != nil {
			t.Errorf("README names ./examples/%s: %v", dir[1], err)
		}
	}
}

// Every test the Reliability table names exists.
func TestReliabilityTableNamesRealTests(t *testing.T) {
	text := readme(t)
	start := strings.Index(text, "## Reliability")
	end := strings.Index(text[start+1:], "\n## ")
	if start < 0 || end < 0 {
		t.Fatal("no Reliability section")
	}
	section := text[start : start+1+end]
	names := regexp.MustCompile("`((?:Test|Fuzz)\\w+)`").FindAllStringSubmatch(section, -1)
	if len(names) < 20 {
		t.Fatalf("only %d tests named", len(names))
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
		if !strings.Contains(sources.String(), "func "+n[1]+"(") {
			t.Errorf("the Reliability table names %s, which does not exist", n[1])
		}
	}
}

// The Layout table names every directory that holds Go code, so that a
// reader can find each package from the README.
func TestLayoutListsEveryDirectory(t *testing.T) {
	text := readme(t)
	start := strings.Index(text, "## Layout")
	if start < 0 {
		t.Fatal("no Layout section")
	}
	section := text[start:]
	if end := strings.Index(section[1:], "\n## "); end >= 0 {
		section = section[:end+1]
	}
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
