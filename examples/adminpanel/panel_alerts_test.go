package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/panel"

	"github.com/otel-heartbeat/heartbeat/internal/testing/poll"
	"github.com/otel-heartbeat/heartbeat/internal/testing/prometheustest"

	"github.com/otel-heartbeat/heartbeat/internal/testing/alertmanagertest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/proctest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/redistest"
	"github.com/otel-heartbeat/heartbeat/internal/testing/testbin"
	"github.com/otel-heartbeat/heartbeat/internal/tools/loadgen/fleet"
)

// received is one notification a test receiver got: from Alertmanager's
// webhook or from the panel's own.
type received struct {
	at        time.Time
	status    string // firing, resolved
	alertname string
	service   string
	instance  string
	delivery  string // the webhook's delivery id
	startsAt  string
}

func (r received) String() string {
	return strings.TrimSpace(fmt.Sprintf("%s %s %s %s", r.status, r.alertname, r.service, r.instance))
}

// inbox is an HTTP receiver that keeps every notification.
type inbox struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	got     []received
	bad     int
	failing atomic.Bool // answer 500 to everything
}

func (in *inbox) add(r received) {
	in.mu.Lock()
	in.got = append(in.got, r)
	in.mu.Unlock()
}

func (in *inbox) all() []received {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]received(nil), in.got...)
}

// wait polls until a notification matching want (its String) arrived,
// and returns it.
func (in *inbox) wait(want string, timeout time.Duration) received {
	in.t.Helper()
	var found received
	poll.Until(in.t, timeout, "notification "+want, func() bool {
		for _, r := range in.all() {
			if r.String() == want {
				found = r
				return true
			}
		}
		return false
	})
	return found
}

// alertmanagerInbox receives Alertmanager's webhook notifications.
func alertmanagerInbox(t *testing.T) *inbox {
	in := &inbox{t: t}
	in.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n alertmanagertest.Notification
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			t.Errorf("Alertmanager's notification: %v", err)
			return
		}
		for _, a := range n.Alerts {
			in.add(received{at: time.Now(), status: a.Status, alertname: a.Labels["alertname"], service: a.Labels["service"], instance: a.Labels["instance"]})
		}
	}))
	t.Cleanup(in.srv.Close)
	return in
}

// webhookInbox receives the panel's own webhook, checking each signature.
func webhookInbox(t *testing.T, secret string) *inbox {
	in := &inbox{t: t}
	in.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if in.failing.Load() {
			http.Error(w, "down for a while", http.StatusInternalServerError)
			return
		}
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(r.Header.Get("X-Heartbeat-Timestamp") + "."))
		mac.Write(body)
		if r.Header.Get("X-Heartbeat-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			in.mu.Lock()
			in.bad++
			in.mu.Unlock()
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var n struct {
			Status, Alertname, Service, Instance, Delivery string
			StartsAt                                       string `json:"starts_at"`
		}
		if err := json.Unmarshal(body, &n); err != nil {
			t.Errorf("webhook body %s: %v", body, err)
			return
		}
		if r.Header.Get("X-Heartbeat-Delivery") != n.Delivery {
			t.Errorf("delivery header %q, body %q", r.Header.Get("X-Heartbeat-Delivery"), n.Delivery)
		}
		in.add(received{at: time.Now(), status: n.Status, alertname: n.Alertname, service: n.Service, instance: n.Instance,
			delivery: n.Delivery, startsAt: n.StartsAt})
	}))
	t.Cleanup(in.srv.Close)
	return in
}

func amConfig(webhook string) string {
	return fmt.Sprintf(`route:
  receiver: test
  group_by: ['...']
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
- name: test
  webhook_configs:
  - url: %s
    send_resolved: true
`, webhook)
}

func panelWith(t *testing.T, bin string, environ []string, args ...string) replica {
	t.Helper()
	p := proctest.Start(t, bin, environ, append([]string{"--listen", "127.0.0.1:0", "--lease", "2s"}, args...)...)
	line := p.Expect("admin panel on ", 10*time.Second).Text
	r := replica{p: p, url: strings.TrimSuffix(strings.Fields(strings.TrimPrefix(line, "admin panel on "))[0], "/")}
	poll.Until(t, 10*time.Second, "the panel recording", func() bool { return recording(t, r) })
	return r
}

func aliveIn(t *testing.T, r replica, service string) bool {
	var d panel.ServiceDetailJSON
	return getJSON(t, r.url+"/api/v1/services/"+service, &d) == 200 && d.Counts.Alive > 0
}

// End to end through a real Alertmanager: a crash fires within the dead
// threshold and Alertmanager's group_wait, the instance beating again
// resolves it, and a graceful stop fires nothing.
func TestAlertsReachAlertmanager(t *testing.T) {
	r := newRig(t)
	panelBin, svcBin, environ := r.panelBin, r.svcBin, r.environ
	in := alertmanagerInbox(t)
	am := alertmanagertest.Start(t, amConfig(in.srv.URL))

	crash := proctest.Start(t, svcBin, r.withID("crash-1"), "serve", "--service", "geofence_service")
	crash.Expect("serving", 10*time.Second)
	graceful := proctest.Start(t, svcBin, r.withID("deploy-1"), "serve", "--service", "geocoding_service", "--drain", "0s")
	graceful.Expect("serving", 10*time.Second)
	p := panelWith(t, panelBin, environ, "--alertmanager", am.URL, "--external-url", "http://panel.example:8080/")
	poll.Until(t, 10*time.Second, "both services alive", func() bool {
		return aliveIn(t, p, "geofence_service") && aliveIn(t, p, "geocoding_service")
	})

	killed := time.Now()
	if err := crash.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Dead after 3 intervals of silence, the rules run every second,
	// group_wait is 0: 3 + 1 s, and 2 s of margin on a shared machine.
	got := in.wait("firing HeartbeatInstanceDead geofence_service crash-1", 10*time.Second)
	took := got.at.Sub(killed)
	t.Logf("SIGKILL: the firing alert reached Alertmanager's receiver %v after the kill", took.Round(time.Millisecond))
	if took > 6*time.Second {
		t.Errorf("the alert took %v, more than dead (3 s) + evaluation (1 s) + 2 s", took)
	}
	in.wait("firing HeartbeatServiceDown geofence_service", 5*time.Second)

	back := proctest.Start(t, svcBin, r.withID("crash-1"), "serve", "--service", "geofence_service")
	back.Expect("serving", 10*time.Second)
	in.wait("resolved HeartbeatInstanceDead geofence_service crash-1", 15*time.Second)
	in.wait("resolved HeartbeatServiceDown geofence_service", 15*time.Second)

	stopped := time.Now()
	if err := graceful.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := graceful.Wait(10 * time.Second); err != nil {
		t.Errorf("graceful stop: %v", err)
	}
	// Absence takes time to show: past the dead threshold and an
	// evaluation, the panel says stopped, and nothing fired.
	poll.Until(t, 10*time.Second, "the stopped service past the dead threshold", func() bool {
		var d panel.ServiceDetailJSON
		getJSON(t, p.url+"/api/v1/services/geocoding_service", &d)
		return d.State == "stopped" && time.Since(stopped) > 5*time.Second
	})
	for _, r := range in.all() {
		if r.service == "geocoding_service" {
			t.Errorf("a graceful stop fired: %v", r)
		}
	}
	var alerts struct{ Active, Recent []panel.AlertJSON }
	getJSON(t, p.url+"/api/v1/alerts", &alerts)
	if len(alerts.Active) != 0 || len(alerts.Recent) != 4 {
		t.Errorf("the panel shows %d active and %d recent alerts, want 0 and 4", len(alerts.Active), len(alerts.Recent))
	}
	if !strings.HasPrefix(alerts.Recent[len(alerts.Recent)-1].GeneratorURL, "http://panel.example:8080/#/services/") {
		t.Errorf("generator URL %q", alerts.Recent[len(alerts.Recent)-1].GeneratorURL)
	}
}

// Valkey stopped for three intervals under 20 live services: one alert
// says the source is unreachable, no instance or service alert fires, and
// after Valkey resumes it resolves without a storm.
func TestAStalledValkeyIsOneAlert(t *testing.T) {
	srv := redistest.Start(t)
	in := webhookInbox(t, "s3cret-for-the-test")
	panelBin := testbin.Build(t, ".")
	fl, err := fleet.New(fleet.Config{Services: 20, Instances: 20, Interval: time.Second, LatestState: true})
	if err != nil {
		t.Fatal(err)
	}
	c := srv.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	running := make(chan struct{})
	go func() { defer close(running); _, _ = fl.Run(ctx, c) }()
	defer func() { cancel(); <-running }()
	environ := proctest.Env("OTEL_EXPORTER_VALKEY_ENDPOINT="+srv.URL(), "ADMINPANEL_WEBHOOK_SECRET=s3cret-for-the-test")
	// The lease outlasts the 3 s it takes to see the stall: the replica
	// still holds it on its own clock when it says the source is down.
	p := panelWith(t, panelBin, environ, "--webhook", in.srv.URL, "--lease", "10s")
	poll.Until(t, 15*time.Second, "20 services alive", func() bool {
		var f panel.FleetJSON
		getJSON(t, p.url+"/api/v1/services", &f)
		n := 0
		for _, s := range f.Services {
			n += s.Counts.Alive
		}
		return n == 20
	})

	srv.Pause()
	paused := time.Now()
	in.wait("firing HeartbeatSourceUnreachable", 10*time.Second)
	<-time.After(3*time.Second - time.Since(paused)) // Valkey stays stopped for three intervals
	srv.Resume()
	resolved := in.wait("resolved HeartbeatSourceUnreachable", 15*time.Second)
	// Past the hold (one interval of fresh heartbeats) and more: nothing else.
	poll.Until(t, 10*time.Second, "the hold to pass", func() bool { return time.Since(resolved.at) > 4*time.Second })
	if got := in.all(); len(got) != 2 {
		t.Errorf("notifications %v, want the source alert firing and resolved, nothing else", got)
	}
	if in.bad != 0 {
		t.Errorf("%d notifications failed the signature check", in.bad)
	}
}

// Two replicas: each transition is notified under one delivery id, also
// when the replica that records is killed in the middle of an incident,
// and only a notification the kill caught unnoted comes twice.
func TestTwoReplicasNotifyEachTransitionOnce(t *testing.T) {
	r := newRig(t, "ADMINPANEL_WEBHOOK_SECRET=another-s3cret")
	panelBin, svcBin, environ := r.panelBin, r.svcBin, r.environ
	in := webhookInbox(t, "another-s3cret")
	withID := r.withID("crash-1")
	svc := proctest.Start(t, svcBin, withID, "serve", "--service", "geofence_service")
	svc.Expect("serving", 10*time.Second)
	a := panelWith(t, panelBin, environ, "--webhook", in.srv.URL, "--replica", "a")
	b := proctest.Start(t, panelBin, environ, "--listen", "127.0.0.1:0", "--lease", "2s", "--webhook", in.srv.URL, "--replica", "b")
	bLine := b.Expect("admin panel on ", 10*time.Second).Text
	standby := replica{p: b, url: strings.TrimSuffix(strings.Fields(strings.TrimPrefix(bLine, "admin panel on "))[0], "/")}
	poll.Until(t, 10*time.Second, "the service alive", func() bool { return aliveIn(t, a, "geofence_service") })

	if err := svc.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	in.wait("firing HeartbeatInstanceDead geofence_service crash-1", 10*time.Second)
	in.wait("firing HeartbeatServiceDown geofence_service", 5*time.Second)
	// The recorder dies in the middle of the incident, perhaps between the
	// receiver's answer to its last notification and noting it in Valkey:
	// that one notification may come again, under the same delivery id.
	if err := a.p.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	atKill := in.all()
	poll.Until(t, 10*time.Second, "the standby recording", func() bool { return recording(t, standby) })
	back := proctest.Start(t, svcBin, withID, "serve", "--service", "geofence_service")
	back.Expect("serving", 10*time.Second)
	in.wait("resolved HeartbeatInstanceDead geofence_service crash-1", 20*time.Second)
	last := in.wait("resolved HeartbeatServiceDown geofence_service", 5*time.Second)
	// A duplicate would come at the next evaluations: wait for two.
	poll.Until(t, 10*time.Second, "two evaluations past the resolves", func() bool { return time.Since(last.at) > 2*time.Second })
	inFlight := atKill[len(atKill)-1]
	counts, ids := map[string]int{}, map[string]map[string]bool{}
	for _, r := range in.all() {
		counts[r.String()]++
		if ids[r.String()] == nil {
			ids[r.String()] = map[string]bool{}
		}
		ids[r.String()][r.delivery] = true
	}
	for k, n := range counts {
		if len(ids[k]) != 1 {
			t.Errorf("%q notified under %d delivery ids, want one: fired again, not delivered again", k, len(ids[k]))
		}
		if n != 1 && (k != inFlight.String() || n != 2) {
			t.Errorf("%q notified %d times (the notification in flight at the kill: %q)", k, n, inFlight)
		}
	}
	if len(counts) != 4 {
		t.Errorf("notifications %v, want two alerts firing and resolving", counts)
	}
}

// The replica that records dies while its webhook notifications wait in
// its queue (the receiver is down): the replica that takes over delivers
// them, so the receiver hears the firing before the resolve.
func TestQueuedNotificationsSurviveTheRecordersDeath(t *testing.T) {
	r := newRig(t, "ADMINPANEL_WEBHOOK_SECRET=third-s3cret")
	panelBin, svcBin, environ := r.panelBin, r.svcBin, r.environ
	in := webhookInbox(t, "third-s3cret")
	in.failing.Store(true)
	withID := r.withID("crash-1")
	svc := proctest.Start(t, svcBin, withID, "serve", "--service", "geofence_service")
	svc.Expect("serving", 10*time.Second)
	a := panelWith(t, panelBin, environ, "--webhook", in.srv.URL, "--replica", "a")
	b := proctest.Start(t, panelBin, environ, "--listen", "127.0.0.1:0", "--lease", "2s", "--webhook", in.srv.URL, "--replica", "b")
	standby := replica{p: b, url: strings.TrimSuffix(strings.Fields(strings.TrimPrefix(b.Expect("admin panel on ", 10*time.Second).Text, "admin panel on "))[0], "/")}
	poll.Until(t, 10*time.Second, "the service alive", func() bool { return aliveIn(t, a, "geofence_service") })

	if err := svc.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "the alerts firing, undelivered", func() bool {
		var alerts struct{ Active []panel.AlertJSON }
		getJSON(t, a.url+"/api/v1/alerts", &alerts)
		return len(alerts.Active) == 2
	})
	if err := a.p.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	in.failing.Store(false)
	poll.Until(t, 10*time.Second, "the standby recording", func() bool { return recording(t, standby) })
	in.wait("firing HeartbeatInstanceDead geofence_service crash-1", 15*time.Second)
	in.wait("firing HeartbeatServiceDown geofence_service", 5*time.Second)
	back := proctest.Start(t, svcBin, withID, "serve", "--service", "geofence_service")
	back.Expect("serving", 10*time.Second)
	last := in.wait("resolved HeartbeatServiceDown geofence_service", 20*time.Second)
	in.wait("resolved HeartbeatInstanceDead geofence_service crash-1", 5*time.Second)
	poll.Until(t, 10*time.Second, "two evaluations past the resolves", func() bool { return time.Since(last.at) > 2*time.Second })
	counts, ids := map[string]int{}, map[string]map[string]bool{}
	for _, r := range in.all() {
		counts[r.String()]++
		if ids[r.String()] == nil {
			ids[r.String()] = map[string]bool{}
		}
		ids[r.String()][r.delivery] = true
	}
	if len(counts) != 4 {
		t.Errorf("notifications %v, want two alerts firing and resolving", counts)
	}
	for k, n := range counts {
		if len(ids[k]) != 1 {
			t.Errorf("%q notified under %d delivery ids, want one: fired again, not delivered again", k, len(ids[k]))
		}
		// A firing the dead replica was sending as the inbox came back
		// may reach it after the kill, and again from the standby, under
		// the same delivery id: at least once, as documented. Nothing is
		// sent a third time, and no resolve twice.
		if n != 1 && !(strings.HasPrefix(k, "firing") && n == 2) {
			t.Errorf("%q notified %d times", k, n)
		}
	}
}

// Valkey killed and started empty after a webhook acknowledged an alert:
// the replica that was evaluating keeps what it had delivered, or a
// standby that takes over at that moment knows it, having followed the
// alerts in Valkey; either way the alert is not delivered again, and any
// notification sent again carries the same delivery id, so that a
// receiver could drop it.
func TestAValkeyThatLostItsDataDeliversNothingTwice(t *testing.T) {
	for _, standby := range []bool{false, true} {
		t.Run(map[bool]string{false: "the recorder goes on", true: "the standby takes over"}[standby], func(t *testing.T) {
			lostData(t, standby)
		})
	}
}

func lostData(t *testing.T, standby bool) {
	r := newRig(t, "ADMINPANEL_WEBHOOK_SECRET=fourth-s3cret")
	srv, panelBin, svcBin, environ := r.srv, r.panelBin, r.svcBin, r.environ
	in := webhookInbox(t, "fourth-s3cret")
	withID := r.withID("crash-1")
	svc := proctest.Start(t, svcBin, withID, "serve", "--service", "geofence_service")
	svc.Expect("serving", 10*time.Second)
	p := panelWith(t, panelBin, environ, "--webhook", in.srv.URL, "--replica", "a")
	recorder := p
	if standby {
		b := proctest.Start(t, panelBin, environ, "--listen", "127.0.0.1:0", "--lease", "2s", "--webhook", in.srv.URL, "--replica", "b")
		recorder = replica{p: b, url: strings.TrimSuffix(strings.Fields(strings.TrimPrefix(b.Expect("admin panel on ", 10*time.Second).Text, "admin panel on "))[0], "/")}
	}
	poll.Until(t, 10*time.Second, "the service alive", func() bool { return aliveIn(t, p, "geofence_service") })
	send(t, svc, syscall.SIGKILL)
	in.wait("firing HeartbeatInstanceDead geofence_service crash-1", 10*time.Second)
	in.wait("firing HeartbeatServiceDown geofence_service", 5*time.Second)
	if standby {
		<-time.After(6 * time.Second) // the standby follows the alerts every 5 s
		send(t, p.p, syscall.SIGKILL)
	}

	srv.Restart() // killed, and started without its data
	poll.Until(t, 15*time.Second, "a replica recording again", func() bool { return recording(t, recorder) })
	poll.Until(t, 10*time.Second, "the alerts written back", func() bool {
		var alerts struct{ Active []panel.AlertJSON }
		return getJSON(t, recorder.url+"/api/v1/alerts", &alerts) == 200 && len(alerts.Active) == 2
	})
	restarted := time.Now()
	poll.Until(t, 10*time.Second, "three evaluations past the takeover", func() bool { return time.Since(restarted) > 3*time.Second })
	ids := map[string]map[string]bool{} // notification -> delivery ids
	for _, r := range in.all() {
		k := r.String() + " " + r.startsAt
		if ids[k] == nil {
			ids[k] = map[string]bool{}
		}
		ids[k][r.delivery] = true
	}
	for k, v := range ids {
		if len(v) != 1 {
			t.Errorf("%q arrived under %d delivery ids", k, len(v))
		}
	}
	if got := in.all(); len(got) != 2 {
		t.Errorf("notifications %v, want the two firings once", got)
	}
}

// The recorder paused past its lease (a GC pause, a VM freeze) while an
// alert fires: the standby takes over and resolves it when the instance
// is back. The old recorder, resumed, sends nothing more: what it had
// queued and the alerts it re-sends are fenced by its lease's epoch at
// the moment of sending, and so are its writes of alerts in Valkey, so
// Alertmanager holds no alert afterwards and the log records each fire
// and resolve once. Resumed while Valkey does not answer, it goes by its
// lease's own clock, which has run out: it sends nothing either.
func TestAReplicaPausedPastItsLeaseSendsNothing(t *testing.T) {
	for _, stalled := range []bool{false, true} {
		t.Run(map[bool]string{false: "Valkey answers", true: "Valkey stalled at the resume"}[stalled], func(t *testing.T) {
			pausedPastTheLease(t, stalled)
		})
	}
}

func pausedPastTheLease(t *testing.T, stalled bool) {
	r := newRig(t)
	srv, panelBin, svcBin, environ := r.srv, r.panelBin, r.svcBin, r.environ
	in := alertmanagerInbox(t)
	am := alertmanagertest.Start(t, amConfig(in.srv.URL))
	alerts := filepath.Join(t.TempDir(), "alerts.yml")
	if err := os.WriteFile(alerts, []byte("receivers:\n  alertmanager: {urls: ["+am.URL+"], resend_every: 1s}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withID := r.withID("crash-1")
	svc := proctest.Start(t, svcBin, withID, "serve", "--service", "geofence_service")
	svc.Expect("serving", 10*time.Second)
	a := panelWith(t, panelBin, environ, "--alerts", alerts, "--replica", "a")
	b := proctest.Start(t, panelBin, environ, "--listen", "127.0.0.1:0", "--lease", "2s", "--alerts", alerts, "--replica", "b")
	standby := replica{p: b, url: strings.TrimSuffix(strings.Fields(strings.TrimPrefix(b.Expect("admin panel on ", 10*time.Second).Text, "admin panel on "))[0], "/")}
	poll.Until(t, 10*time.Second, "the service alive", func() bool { return aliveIn(t, a, "geofence_service") })

	if err := svc.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	in.wait("firing HeartbeatInstanceDead geofence_service crash-1", 10*time.Second)
	send(t, a.p, syscall.SIGSTOP)
	paused := time.Now()
	poll.Until(t, 10*time.Second, "the standby recording", func() bool { return recording(t, standby) })
	<-time.After(4*time.Second - time.Since(paused)) // paused for 4 s, twice the lease
	if !stalled {
		send(t, a.p, syscall.SIGCONT)
	}
	back := proctest.Start(t, svcBin, withID, "serve", "--service", "geofence_service")
	back.Expect("serving", 10*time.Second)
	poll.Until(t, 20*time.Second, "the new recorder resolving both alerts", func() bool {
		var got struct{ Active, Recent []panel.AlertJSON }
		getJSON(t, standby.url+"/api/v1/alerts", &got)
		return len(got.Active) == 0 && len(got.Recent) == 4
	})
	resolved := time.Now()
	if stalled {
		srv.Pause()
		send(t, a.p, syscall.SIGCONT)
		<-time.After(6 * time.Second) // Valkey stays stopped for 6 s: the old recorder cannot ask it
		srv.Resume()
	}
	// The old recorder re-sent its alerts every second: five more seconds
	// would show them again.
	poll.Until(t, 20*time.Second, "five resends past the resolve", func() bool { return time.Since(resolved) > 5*time.Second })
	for _, al := range am.Active(t) {
		if al.Labels["alertname"] != "HeartbeatSourceUnreachable" {
			t.Errorf("Alertmanager holds %v active after the resolve", al.Labels)
		}
	}
	last := map[string]received{}
	for _, r := range in.all() {
		last[r.alertname] = r
	}
	for name, r := range last {
		if r.status != "resolved" && name != "HeartbeatSourceUnreachable" {
			t.Errorf("%s: the last notification is %q at %v, after the new recorder resolved it at %v", name, r.status, r.at, resolved)
		}
	}
	var got struct{ Active, Recent []panel.AlertJSON }
	getJSON(t, standby.url+"/api/v1/alerts", &got)
	kept := map[string]int{}
	for _, al := range got.Recent {
		kept[al.Name+" "+al.Status]++
	}
	for _, k := range []string{"HeartbeatInstanceDead firing", "HeartbeatInstanceDead resolved", "HeartbeatServiceDown firing", "HeartbeatServiceDown resolved"} {
		if kept[k] != 1 {
			t.Errorf("the alerts' log holds %q %d times, want once: %v", k, kept[k], kept)
		}
	}
	for _, r := range []replica{a, standby} {
		var got struct{ Active []panel.AlertJSON }
		getJSON(t, r.url+"/api/v1/alerts", &got)
		for _, al := range got.Active {
			if al.Name != "HeartbeatSourceUnreachable" {
				t.Errorf("%s lists %s active", r.url, al.Name)
			}
		}
	}
}

func send(t *testing.T, p *proctest.Process, sig syscall.Signal) {
	t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// A crashed service restarted under a new instance id (as every
// Kubernetes pod restart is): the new instance replaces the crashed one,
// whose alert resolves in Alertmanager saying by whom, the service view
// lists the new instance alone, and history counts one restart. Without
// the replacement the crashed id stayed dead, and paged, for a day.
func TestARestartUnderANewIDResolvesTheCrash(t *testing.T) {
	r := newRig(t)
	panelBin, svcBin, environ := r.panelBin, r.svcBin, r.environ
	in := alertmanagerInbox(t)
	am := alertmanagertest.Start(t, amConfig(in.srv.URL))

	crash := proctest.Start(t, svcBin, r.withID("pod-a"), "serve", "--service", "geofence_service")
	crash.Expect("serving", 10*time.Second)
	p := panelWith(t, panelBin, environ, "--alertmanager", am.URL)
	poll.Until(t, 10*time.Second, "the service alive", func() bool { return aliveIn(t, p, "geofence_service") })
	send(t, crash, syscall.SIGKILL)
	in.wait("firing HeartbeatInstanceDead geofence_service pod-a", 10*time.Second)
	in.wait("firing HeartbeatServiceDown geofence_service", 5*time.Second)

	restarted := proctest.Start(t, svcBin, r.withID("pod-b"), "serve", "--service", "geofence_service")
	restarted.Expect("serving", 10*time.Second)
	in.wait("resolved HeartbeatInstanceDead geofence_service pod-a", 10*time.Second)
	in.wait("resolved HeartbeatServiceDown geofence_service", 10*time.Second)

	var d panel.ServiceDetailJSON
	poll.Until(t, 15*time.Second, "the restart in the service's history", func() bool {
		getJSON(t, p.url+"/api/v1/services/geofence_service", &d)
		return d.Restarts["1h"] == 1
	})
	var ids []string
	for _, i := range d.Instances {
		ids = append(ids, i.Instance+" "+i.State)
	}
	if fmt.Sprint(ids) != "[pod-b alive]" || d.State != "up" {
		t.Errorf("the service %s with instances %v, want up with pod-b alone", d.State, ids)
	}
	var alerts struct{ Active, Recent []panel.AlertJSON }
	getJSON(t, p.url+"/api/v1/alerts", &alerts)
	said := false
	for _, a := range alerts.Recent {
		if a.Name == "HeartbeatInstanceDead" && a.Status == "resolved" && strings.Contains(a.Summary, "replaced by pod-b") {
			said = true
		}
	}
	if len(alerts.Active) != 0 || !said {
		t.Errorf("alerts %+v: want none active, and the resolve to say pod-a was replaced by pod-b", alerts)
	}
	for _, r := range in.all() {
		if r.status == "firing" && r.instance == "pod-b" {
			t.Errorf("the restarted instance fired: %v", r)
		}
	}
}

// The panel and Prometheus (the shipped rules over the panel's metrics)
// alert into one Alertmanager: their alerts carry the same labels, so a
// crash is one alert in Alertmanager and one notification per alert name,
// however many paths report it. (Before, Prometheus added service_name
// and service_instance_id: one crash, four notifications.)
func TestOneCrashIsOnePageFromBothPaths(t *testing.T) {
	r := newRig(t)
	panelBin, svcBin, environ := r.panelBin, r.svcBin, r.environ
	in := alertmanagerInbox(t)
	am := alertmanagertest.Start(t, amConfig(in.srv.URL))
	rules, err := filepath.Abs("rules/heartbeat.rules.yml")
	if err != nil {
		t.Fatal(err)
	}

	crash := proctest.Start(t, svcBin, r.withID("crash-1"), "serve", "--service", "geofence_service")
	crash.Expect("serving", 10*time.Second)
	p := panelWith(t, panelBin, environ, "--alertmanager", am.URL)
	prom := prometheustest.Start(t, fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: adminpanel
    static_configs: [{targets: [%q]}]
alerting:
  alertmanagers: [{static_configs: [{targets: [%q]}]}]
`, rules, strings.TrimPrefix(p.url, "http://"), strings.TrimPrefix(am.URL, "http://")))
	poll.Until(t, 15*time.Second, "Prometheus scraping the panel", func() bool {
		return len(prom.Query(t, `heartbeat_instance_state{service_name="geofence_service", state="alive"} == 1`)) == 1
	})

	send(t, crash, syscall.SIGKILL)
	poll.Until(t, 20*time.Second, "both paths firing", func() bool {
		var alerts struct{ Active []panel.AlertJSON }
		getJSON(t, p.url+"/api/v1/alerts", &alerts)
		firing := 0
		for _, a := range prom.Alerts(t) {
			if a.State == "firing" {
				firing++
			}
		}
		return len(alerts.Active) == 2 && firing == 2
	})
	// Both paths have posted; what Alertmanager holds and what it sent.
	// Past its group_interval (1 s), a second alert would have notified.
	poll.Until(t, 10*time.Second, "the firings through Alertmanager, and a group interval past them", func() bool {
		got := in.all()
		return len(got) >= 2 && time.Since(got[len(got)-1].at) > 2*time.Second
	})
	held := map[string]int{}
	for _, a := range am.Active(t) {
		held[a.Labels["alertname"]]++
		if len(a.Labels) != map[string]int{"HeartbeatInstanceDead": 4, "HeartbeatServiceDown": 3}[a.Labels["alertname"]] {
			t.Errorf("alert labels %v: want the panel's alertname, service, instance and severity only", a.Labels)
		}
	}
	if held["HeartbeatInstanceDead"] != 1 || held["HeartbeatServiceDown"] != 1 {
		t.Errorf("Alertmanager holds %v, want one alert of each name", held)
	}
	count := map[string]int{}
	for _, r := range in.all() {
		count[r.String()]++
	}
	for _, want := range []string{"firing HeartbeatInstanceDead geofence_service crash-1", "firing HeartbeatServiceDown geofence_service"} {
		if count[want] != 1 {
			t.Errorf("%q notified %d times, want once: all %v", want, count[want], count)
		}
	}
}
