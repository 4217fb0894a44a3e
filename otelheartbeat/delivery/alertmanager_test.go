package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/internal/testing/alertmanagertest"
)

// amConfig routes every alert to hook at once, and resolved ones too.
func amConfig(hook *alertmanagertest.Webhook) string {
	return fmt.Sprintf(`
route:
  receiver: hook
  group_by: [alertname, service, instance]
  group_wait: 0s
  group_interval: 100ms
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %s
        send_resolved: true
`, hook.URL)
}

func checkFiring(t *testing.T, n alertmanagertest.Notification, a Alert) {
	t.Helper()
	if len(n.Alerts) != 1 {
		t.Fatalf("%d alerts in the notification, want 1", len(n.Alerts))
	}
	got := n.Alerts[0]
	if got.Status != "firing" || got.Labels["instance"] != a.Labels["instance"] || got.Labels["severity"] != "page" ||
		got.Annotations["summary"] != a.Annotations["summary"] || got.GeneratorURL != a.GeneratorURL ||
		!got.StartsAt.Equal(a.StartsAt) {
		t.Errorf("notified %+v, sent %+v", got, a)
	}
}

// TestAlertmanagerFiringThenResolved: through a real Alertmanager, a
// firing alert is notified firing, and resolving it notifies it resolved.
func TestAlertmanagerFiringThenResolved(t *testing.T) {
	hook := alertmanagertest.NewWebhook(t)
	am := alertmanagertest.Start(t, amConfig(hook))
	r, err := NewAlertmanager([]string{am.URL})
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)
	a := instanceAlert("HeartbeatInstanceDead", "geofence-1")
	a.StartsAt = time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	r.Notify(a)
	checkFiring(t, hook.Next(t, "firing", 10*time.Second), a)

	a.EndsAt = time.Now()
	r.Notify(a)
	res := hook.Next(t, "resolved", 10*time.Second)
	if len(res.Alerts) != 1 || res.Alerts[0].Status != "resolved" || res.Alerts[0].Labels["instance"] != "geofence-1" {
		t.Errorf("resolved notification %+v", res)
	}
	waitStats(t, r, "2 sent", func(s Stats) bool { return s.Sent == 2 && s.Failed == 0 && s.Dropped == 0 && s.Queued == 0 })
}

// waitStats waits until r's stats are as want says. Alertmanager may
// notify before its answer to the POST reaches the worker, and nothing
// outside the receiver says when it has: it polls.
func waitStats(t *testing.T, r Receiver, want string, ok func(Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s := r.Stats(); !ok(s); s = r.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want %s", s, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestAlertmanagerHAPairBothDeliver: each Alertmanager of a pair gets the
// alert, and each notifies it.
func TestAlertmanagerHAPairBothDeliver(t *testing.T) {
	hook1, hook2 := alertmanagertest.NewWebhook(t), alertmanagertest.NewWebhook(t)
	am1, am2 := alertmanagertest.Start(t, amConfig(hook1)), alertmanagertest.Start(t, amConfig(hook2))
	r, err := NewAlertmanager([]string{am1.URL, am2.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)
	a := instanceAlert("HeartbeatInstanceDead", "geofence-1")
	r.Notify(a)
	checkFiring(t, hook1.Next(t, "firing", 10*time.Second), a)
	checkFiring(t, hook2.Next(t, "firing", 10*time.Second), a)
}

// TestOneAlertmanagerDownDoesNotDelayTheOther: with one Alertmanager of
// the pair hanging (no answer until the request's 10 s timeout), the other
// notifies as soon as it would alone; the hung one is reported once,
// and Run still returns at once when cancelled.
func TestOneAlertmanagerDownDoesNotDelayTheOther(t *testing.T) {
	hanging := make(chan struct{}, 1)
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // the server notices a closed connection only once read
		hanging <- struct{}{}
		<-r.Context().Done()
	}))
	defer hung.Close()
	hook := alertmanagertest.NewWebhook(t)
	am := alertmanagertest.Start(t, amConfig(hook))
	r, err := NewAlertmanager([]string{hung.URL, am.URL})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, r)
	a := instanceAlert("HeartbeatInstanceDead", "geofence-1")
	start := time.Now()
	r.Notify(a)
	checkFiring(t, hook.Next(t, "firing", 3*time.Second), a)
	t.Logf("notified %v after Notify, the other Alertmanager hanging", time.Since(start).Round(time.Millisecond))
	recv(t, hanging)
	waitStats(t, r, "1 sent and 1 in flight to the hung one", func(s Stats) bool {
		return s.Sent == 1 && s.Queued == 1 && s.Failed == 0
	})
	start = time.Now()
	stop()
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("Run took %v to return with a request hanging", d)
	}
}

// fakeAM records what is posted to /api/v2/alerts, answering status.
type fakeAM struct {
	*httptest.Server
	posts chan []postable
}

func newFakeAM(t *testing.T, status func(n int) int) *fakeAM {
	f := &fakeAM{posts: make(chan []postable, 100)}
	n := 0
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n++ // one worker per URL: requests to it never overlap
		if r.URL.Path != "/api/v2/alerts" || r.Method != http.MethodPost {
			t.Errorf("%s %s", r.Method, r.URL.Path)
		}
		if code := status(n); code != http.StatusOK {
			http.Error(w, "unavailable", code)
			return
		}
		var batch []postable
		if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
			t.Errorf("body: %v", err)
		}
		f.posts <- batch
	}))
	t.Cleanup(f.Close)
	return f
}

// TestActiveAlertsAreResentWithTheirStartUntilResolved: an active alert is
// posted again every ResendEvery with its first startsAt, even when the
// rule engine notifies it again; resolved, it is posted with its end and
// then never again, while the other active alert goes on being re-sent.
func TestActiveAlertsAreResentWithTheirStartUntilResolved(t *testing.T) {
	f := newFakeAM(t, func(int) int { return http.StatusOK })
	r, err := NewAlertmanager([]string{f.URL}, WithResendEvery(30*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)
	a, b := instanceAlert("HeartbeatInstanceDead", "a"), instanceAlert("HeartbeatInstanceDead", "b")
	a.StartsAt = time.Time{} // the receiver stamps it
	r.Notify(a)
	r.Notify(b)
	byInstance := func(batch []postable) map[string]postable {
		m := map[string]postable{}
		for _, p := range batch {
			m[p.Labels["instance"]] = p
		}
		return m
	}
	var start time.Time
	for resends := 0; resends < 3; {
		got := byInstance(recv(t, f.posts))
		if p, ok := got["a"]; ok {
			if !p.EndsAt.IsZero() || p.StartsAt.IsZero() {
				t.Fatalf("active alert posted as %+v", p)
			}
			if start.IsZero() {
				start = p.StartsAt
			} else if !p.StartsAt.Equal(start) {
				t.Fatalf("re-sent with startsAt %v, first %v", p.StartsAt, start)
			}
			resends++
		}
	}
	again := a
	again.StartsAt = start.Add(time.Minute)
	r.Notify(again)
	resolved := a
	resolved.EndsAt = start.Add(2 * time.Minute)
	r.Notify(resolved)
	for {
		p, ok := byInstance(recv(t, f.posts))["a"]
		if !ok {
			continue
		}
		if !p.StartsAt.Equal(start) {
			t.Errorf("posted with startsAt %v, first %v", p.StartsAt, start)
		}
		if !p.EndsAt.IsZero() {
			if !p.EndsAt.Equal(resolved.EndsAt) {
				t.Errorf("resolved with endsAt %v, want %v", p.EndsAt, resolved.EndsAt)
			}
			break
		}
	}
	for range 4 { // b's re-sends are the clock
		got := byInstance(recv(t, f.posts))
		if p, ok := got["a"]; ok {
			t.Fatalf("a resolved alert was posted again: %+v", p)
		}
	}
}

// TestAlertmanagerBoundsAndFailures: beyond the queue and the active
// bound alerts are dropped and counted; a failing Alertmanager is retried
// with back-off until it takes the alert, reported once and its recovery
// once, never printing the URL's credentials.
func TestAlertmanagerBoundsAndFailures(t *testing.T) {
	f := newFakeAM(t, func(n int) int {
		if n <= 5 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	rep := &reports{c: make(chan string, 10)}
	var (
		mu    sync.Mutex
		slept []time.Duration
	)
	url := strings.Replace(f.URL, "http://", "http://amuser:ampass@", 1)
	r, err := NewAlertmanager([]string{url},
		WithQueueSize(3), WithMaxActive(2), WithResendEvery(4*time.Minute), WithErrorf(rep.Errorf),
		WithSleep(func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			defer mu.Unlock()
			slept = append(slept, d)
			return ctx.Err()
		}))
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"a", "b", "c", "d", "e"} {
		r.Notify(instanceAlert("HeartbeatInstanceDead", in))
	}
	if s := r.Stats(); s.Dropped != 2 || s.Queued != 3 {
		t.Fatalf("before Run: stats %+v, want 3 queued, 2 dropped", s)
	}
	run(t, r)
	got := map[string]bool{}
	for len(got) < 2 {
		for _, p := range recv(t, f.posts) {
			got[p.Labels["instance"]] = true
		}
	}
	recv(t, rep.c) // the failure
	recv(t, rep.c) // the recovery, reported once the alerts are counted
	if !got["a"] || !got["b"] || len(got) != 2 {
		t.Errorf("posted %v, want a and b (c is beyond MaxActive)", got)
	}
	// a and b may go in one POST or two.
	waitStats(t, r, "3 dropped, 2 sent", func(s Stats) bool { return s.Dropped == 3 && s.Sent == 2 && s.Failed > 0 })
	mu.Lock()
	if len(slept) != 5 {
		t.Errorf("%d back-offs for 5 failures", len(slept))
	}
	mu.Unlock()
	msgs := rep.all()
	if len(msgs) != 2 || !strings.Contains(msgs[0], "503") || !strings.Contains(msgs[1], "again") {
		t.Errorf("reported %q, want the failure once and the recovery once", msgs)
	}
	for _, m := range msgs {
		if strings.Contains(m, "ampass") || strings.Contains(m, "amuser") {
			t.Errorf("report %q prints the URL's credentials", m)
		}
	}
}

func TestNewAlertmanagerRefuses(t *testing.T) {
	for _, tc := range []struct {
		urls []string
		opts []Option
	}{
		{nil, nil},
		{[]string{"http://127.0.0.1:9093", "http://127.0.0.1:9093/"}, nil},
		{[]string{"127.0.0.1:9093"}, nil},
		{[]string{"http://127.0.0.1:9093"}, []Option{WithResendEvery(5 * time.Minute)}},
	} {
		if _, err := NewAlertmanager(tc.urls, tc.opts...); err == nil {
			t.Errorf("%v accepted", tc.urls)
		}
	}
}

// TestAFencedEpochIsNeitherPostedNorResent: once the fence refuses an
// epoch, its alerts are dropped from the batch and from the re-sends, and
// counted; an alert of the epoch that holds the lease goes on.
func TestAFencedEpochIsNeitherPostedNorResent(t *testing.T) {
	f := newFakeAM(t, func(int) int { return http.StatusOK })
	var current atomic.Int64
	current.Store(1)
	fence := FenceFunc(func(_ context.Context, epoch int64) error {
		if epoch != current.Load() {
			return fmt.Errorf("epoch %d is not %d", epoch, current.Load())
		}
		return nil
	})
	rep := &reports{}
	r, err := NewAlertmanager([]string{f.URL}, WithResendEvery(30*time.Millisecond), WithFence(fence), WithErrorf(rep.Errorf))
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)
	old := instanceAlert("HeartbeatInstanceDead", "a")
	old.Epoch = 1
	r.Notify(old)
	for {
		if _, ok := byInstanceOf(recv(t, f.posts))["a"]; ok {
			break
		}
	}
	current.Store(2) // another replica took the lease over
	stale := instanceAlert("HeartbeatInstanceDead", "queued")
	stale.Epoch = 1
	r.Notify(stale)
	fresh := instanceAlert("HeartbeatInstanceDead", "b")
	fresh.Epoch = 2
	r.Notify(fresh)
	for resends := 0; resends < 4; {
		got := byInstanceOf(recv(t, f.posts))
		if _, ok := got["b"]; ok {
			resends++
		}
		for in := range got {
			if in != "b" {
				t.Fatalf("%s, made under the lost epoch, was posted", in)
			}
		}
	}
	if st := r.Stats(); st.Fenced < 2 {
		t.Errorf("fenced %d, want the queued alert and the re-sent one", st.Fenced)
	}
	if got := strings.Join(rep.all(), "\n"); strings.Count(got, "not sent") != 1 {
		t.Errorf("reports, want the fencing said once:\n%s", got)
	}
}

func byInstanceOf(batch []postable) map[string]postable {
	m := map[string]postable{}
	for _, p := range batch {
		m[p.Labels["instance"]] = p
	}
	return m
}
