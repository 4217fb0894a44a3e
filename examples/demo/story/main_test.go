package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/internal/testing/proctest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/testbin"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// The demo as a newcomer runs it: on the embedded broker, to the end, with
// the broker's address and the Prometheus endpoint usable while it runs.
func TestDemoTellsTheWholeStory(t *testing.T) {
	bin := testbin.Build(t, ".")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--interval", "400ms", "--panel", "127.0.0.1:0")
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OTEL_") && !strings.HasPrefix(kv, "HEALTH_REDIS_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	var all strings.Builder
	sc := bufio.NewScanner(stdout)
	heartbeats := map[string]*wire.Message{}
	var sub *redis.PubSub
	subDone := make(chan struct{})
	var scraped string
	brokerRe := regexp.MustCompile(`listening on (127\.0\.0\.1:\d+)`)
	metricsRe := regexp.MustCompile(`Prometheus serves .*(http://127\.0\.0\.1:\d+/metrics)`)
	panelRe := regexp.MustCompile(`admin panel: (http://127\.0\.0\.1:\d+/) `)
	panelSaw := make(chan string, 1)
	var pids []int
	for sc.Scan() {
		line := sc.Text()
		all.WriteString(line + "\n")
		if m := pidsRe.FindStringSubmatch(line); m != nil {
			for _, p := range m[1:] {
				n, _ := strconv.Atoi(p)
				pids = append(pids, n)
			}
		}
		if m := brokerRe.FindStringSubmatch(line); m != nil && sub == nil {
			// What `redis-cli -p PORT psubscribe 'heartbeat:service:*'` does.
			c := redis.NewClient(&redis.Options{Addr: m[1]})
			defer c.Close()
			sub = c.PSubscribe(ctx, "heartbeat:service:*")
			go func(ch <-chan *redis.Message) {
				defer close(subDone)
				for msg := range ch {
					if hb, err := wire.Unmarshal([]byte(msg.Payload)); err == nil {
						if _, ok := heartbeats[hb.ServiceName]; !ok {
							heartbeats[hb.ServiceName] = hb
						}
					} else {
						t.Errorf("undecodable message on %s: %v", msg.Channel, err)
					}
				}
			}(sub.Channel())
		}
		if m := panelRe.FindStringSubmatch(line); m != nil {
			// The admin panel serves while the story runs: it sees the
			// three services as they start.
			go func(url string) {
				deadline := time.Now().Add(30 * time.Second)
				for time.Now().Before(deadline) {
					var fleet struct{ Services []struct{ Name string } }
					if resp, err := http.Get(url + "api/v1/services"); err == nil {
						_ = json.NewDecoder(resp.Body).Decode(&fleet)
						resp.Body.Close()
					}
					if len(fleet.Services) == 3 {
						panelSaw <- "3 services"
						return
					}
					time.Sleep(100 * time.Millisecond) // another process's state: poll
				}
				panelSaw <- "the admin panel never listed the three services"
			}(m[1])
		}
		if m := metricsRe.FindStringSubmatch(line); m != nil && scraped == "" {
			resp, err := http.Get(m[1])
			if err != nil {
				t.Errorf("scrape %s: %v", m[1], err)
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			scraped = string(b)
		}
	}
	// Its stdout is a pipe, not a terminal: it ends by itself, and leaves
	// no service running.
	if err := cmd.Wait(); err != nil {
		t.Fatalf("demo exited with %v\n%s", err, all.String())
	}
	if len(pids) != 3 {
		t.Errorf("the demo named no service pids:\n%s", all.String())
	}
	proctest.Gone(t, "after the demo ended, service", pids)
	if strings.Contains(all.String(), "stays up") {
		t.Errorf("out of a terminal, the demo said it stays up:\n%s", all.String())
	}
	if sub == nil {
		t.Fatalf("the demo printed no broker address:\n%s", all.String())
	}
	_ = sub.Close()
	<-subDone
	select {
	case got := <-panelSaw:
		if got != "3 services" {
			t.Error(got)
		}
	case <-time.After(30 * time.Second):
		t.Error("the demo printed no admin panel URL")
	}
	out := all.String()
	for _, want := range []string{
		"🟢 tracker_fetcher", "🟢 geocoding_service", "🟢 geofence_service",
		"geofence_service (", "is stale: no heartbeat for",
		"is dead: no heartbeat for",
		"⏹️  geocoding_service (",
		"geofence_service   alive -> stale -> dead",
		"geocoding_service  alive -> stopped",
		"✔ the crash was told from the graceful stop",
		"Uptime: ", "Service Data:", "queue_size: ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if regexp.MustCompile(`geocoding_service \([0-9a-f]+\) is (stale|dead)`).MatchString(out) {
		t.Errorf("the graceful stop was reported stale or dead:\n%s", out)
	}

	// The subscriber saw the documented JSON from all three services.
	fields := map[string][]string{
		"tracker_fetcher":   {"queue_size", "last_successful_operation", "api_status"},
		"geocoding_service": {"cache_size", "pending_requests"},
		"geofence_service":  {"active_geofences", "pending_events"},
	}
	for svc, keys := range fields {
		hb := heartbeats[svc]
		if hb == nil {
			t.Errorf("no heartbeat of %s reached the subscriber", svc)
			continue
		}
		if hb.Has&wire.HasMemory == 0 || hb.Has&wire.HasUptime == 0 || hb.Has&wire.HasCPU == 0 {
			t.Errorf("%s: documented fields missing: %+v", svc, hb)
		}
		for _, k := range keys {
			if _, ok := hb.Field(k); !ok {
				t.Errorf("%s: %s missing", svc, k)
			}
		}
	}
	for _, want := range []string{"heartbeat_queue_size ", `heartbeat_api_status_info{heartbeat_value="authenticated"} 1`, "process_uptime_seconds ", "process_cpu_time_seconds_total"} {
		if !strings.Contains(scraped, want) {
			t.Errorf("Prometheus endpoint lacks %q:\n%s", want, scraped)
		}
	}
}

func TestDemoUsesTheValkeyInTheEnvironment(t *testing.T) {
	srv := redistest.Start(t)
	bin := testbin.Build(t, ".")
	cmd := exec.Command(bin, "--interval", "300ms")
	cmd.Env = append(os.Environ(), "OTEL_EXPORTER_VALKEY_ENDPOINT="+srv.URL(), "HEALTH_REDIS_HOST=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "using the Valkey at redis://"+srv.Addr()) || !strings.Contains(string(out), "✔") {
		t.Errorf("output:\n%s", out)
	}
}
