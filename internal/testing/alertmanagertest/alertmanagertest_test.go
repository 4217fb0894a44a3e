package alertmanagertest

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/daemon"
)

// TestFiringThenResolved routes one alert to a webhook receiver and sees it
// notified firing, then resolved once it is posted again with an end in the
// past.
func TestFiringThenResolved(t *testing.T) {
	hook := NewWebhook(t)
	am := Start(t, fmt.Sprintf(`
route:
  receiver: hook
  group_by: [alertname, service]
  group_wait: 0s
  group_interval: 100ms
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %s
        send_resolved: true
`, hook.URL))

	alert := Alert{
		Labels: map[string]string{
			"alertname": "HeartbeatInstanceDead",
			"service":   "geofence_service",
			"instance":  "geofence-1",
		},
		Annotations:  map[string]string{"summary": "geofence-1 stopped sending heartbeats"},
		StartsAt:     time.Now().Add(-time.Minute),
		GeneratorURL: "http://127.0.0.1/graph?g0.expr=heartbeat_instance_state+%3D%3D+0",
	}
	am.Post(t, alert)

	firing := hook.Next(t, "firing", 10*time.Second)
	if firing.Receiver != "hook" || len(firing.Alerts) != 1 {
		t.Fatalf("firing notification: receiver %q, %d alerts", firing.Receiver, len(firing.Alerts))
	}
	got := firing.Alerts[0]
	if got.Labels["instance"] != "geofence-1" || got.Annotations["summary"] != alert.Annotations["summary"] ||
		got.GeneratorURL != alert.GeneratorURL || got.Status != "firing" {
		t.Errorf("firing alert %+v, posted %+v", got, alert)
	}
	if firing.GroupLabels["service"] != "geofence_service" {
		t.Errorf("group labels %v, want service geofence_service", firing.GroupLabels)
	}

	alert.EndsAt = time.Now().Add(-time.Second)
	am.Post(t, alert)
	resolved := hook.Next(t, "resolved", 10*time.Second)
	if len(resolved.Alerts) != 1 || resolved.Alerts[0].Status != "resolved" ||
		resolved.Alerts[0].Fingerprint != got.Fingerprint {
		t.Errorf("resolved notification %+v", resolved)
	}
}

// TestBadConfigFailsWithLog: a configuration Alertmanager rejects makes
// Start fail with Alertmanager's own reason.
func TestBadConfigFailsWithLog(t *testing.T) {
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := dir + "/alertmanager.yml"
	if err := writeFile(cfg, "route: {receiver: nowhere}\n"); err != nil {
		t.Fatal(err)
	}
	_, err = daemon.Try(t, spec(bin, cfg, dir))
	if err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Fatalf("start with an undefined receiver: %v", err)
	}
}

func TestMissingBinaryFailsWithInstallHint(t *testing.T) {
	t.Setenv("ALERTMANAGER", "")
	t.Setenv("PATH", t.TempDir())
	_, err := Binary()
	if err == nil {
		t.Fatal("found an Alertmanager on an empty PATH")
	}
	for _, want := range []string{"apt-get install --no-install-recommends prometheus-alertmanager", "ALERTMANAGER"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func writeFile(path, text string) error { return os.WriteFile(path, []byte(text), 0o644) }
