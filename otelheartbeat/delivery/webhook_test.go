package delivery

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
)

// run starts r.Run and returns a stop that cancels it and fails the test
// unless Run returns within a second.
func run(t *testing.T, r Receiver) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(time.Second):
				t.Errorf("%s: Run still running a second after its context was cancelled", r.Name())
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// reports collects what a receiver reports.
type reports struct {
	mu   sync.Mutex
	msgs []string
	c    chan string // each message too, when not nil
}

func (r *reports) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
	if r.c != nil {
		r.c <- r.msgs[len(r.msgs)-1]
	}
}

func (r *reports) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

func instanceAlert(name, instance string) Alert {
	return Alert{
		Labels:        map[string]string{"alertname": name, "service": "geofence_service", "instance": instance, "severity": "page"},
		Annotations:   map[string]string{"summary": "geofence_service instance " + instance + " is dead", "description": "no heartbeat for 3 intervals"},
		StartsAt:      time.Date(2026, 11, 27, 20, 27, 49, 947000000, time.UTC),
		State:         "dead",
		Since:         time.Date(2026, 11, 27, 20, 27, 49, 947000000, time.UTC),
		GeneratorURL:  "http://127.0.0.1:8080/api/v1/services/geofence_service",
		LastHeartbeat: json.RawMessage(`{"instance_id":"` + instance + `","heartbeat_count":41}`),
	}
}

// TestWebhookSignatureVerifies: the receiver, knowing only the secret,
// verifies every body it gets, and the body carries the documented fields.
func TestWebhookSignatureVerifies(t *testing.T) {
	secret := []byte("a shared secret of the receiver")
	got := make(chan WebhookPayload, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		// The receiver's own check, as docs/alerts.md shows it: the timestamp,
		// a dot and the body, under the secret.
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(r.Header.Get("X-Heartbeat-Timestamp") + "."))
		m.Write(body)
		want := "sha256=" + hex.EncodeToString(m.Sum(nil))
		if !hmac.Equal([]byte(r.Header.Get("X-Heartbeat-Signature")), []byte(want)) {
			t.Errorf("signature %q, want %q", r.Header.Get("X-Heartbeat-Signature"), want)
		}
		if ts, err := strconv.ParseInt(r.Header.Get("X-Heartbeat-Timestamp"), 10, 64); err != nil || time.Since(time.Unix(ts, 0)).Abs() > time.Minute {
			t.Errorf("X-Heartbeat-Timestamp %q", r.Header.Get("X-Heartbeat-Timestamp"))
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(body, &raw); err != nil {
			t.Errorf("body: %v", err)
		}
		for _, k := range []string{"version", "status", "alertname", "service", "instance", "state", "since", "starts_at", "ends_at", "summary", "generator_url", "labels", "last_heartbeat"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("body has no %q: %s", k, body)
			}
		}
		var p WebhookPayload
		_ = json.Unmarshal(body, &p)
		if p.Delivery == "" || p.Delivery != r.Header.Get("X-Heartbeat-Delivery") {
			t.Errorf("delivery %q in the body, %q in the header", p.Delivery, r.Header.Get("X-Heartbeat-Delivery"))
		}
		got <- p
	}))
	defer srv.Close()

	r, err := NewWebhook(srv.URL+"/hook", secret)
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)
	a := instanceAlert("HeartbeatInstanceDead", "geofence-1")
	r.Notify(a)
	a.EndsAt = a.StartsAt.Add(90 * time.Second)
	r.Notify(a)
	service := Alert{Labels: map[string]string{"alertname": "HeartbeatServiceDown", "service": "geofence_service"}, State: "down"}
	r.Notify(service)

	firing, resolved, down := recv(t, got), recv(t, got), recv(t, got)
	if firing.Status != "firing" || firing.EndsAt != nil || *firing.Instance != "geofence-1" || firing.State != "dead" ||
		*firing.StartsAt != "2026-11-27T20:27:49.947000+00:00" || firing.Summary != a.Annotations["summary"] ||
		string(firing.LastHeartbeat) != string(a.LastHeartbeat) || firing.Labels["severity"] != "page" {
		t.Errorf("firing notification %+v", firing)
	}
	if resolved.Status != "resolved" || resolved.EndsAt == nil || *resolved.EndsAt != "2026-11-27T20:29:19.947000+00:00" {
		t.Errorf("resolved notification %+v", resolved)
	}
	if firing.Delivery == resolved.Delivery {
		t.Errorf("two notifications share the delivery id %s", firing.Delivery)
	}
	if down.Instance != nil || string(down.LastHeartbeat) != "null" || down.Alertname != "HeartbeatServiceDown" {
		t.Errorf("service-level notification %+v", down)
	}
	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	if Verify(secret, []byte(`{}`), Sign(secret, ts, []byte(`{}`)), ts, now, DefaultTolerance) != nil ||
		Verify([]byte("other"), []byte(`{}`), Sign(secret, ts, []byte(`{}`)), ts, now, DefaultTolerance) == nil {
		t.Error("Verify disagrees with Sign")
	}
}

// A captured notification replayed later does not verify: the signature
// covers the timestamp with the body, so a later timestamp breaks it,
// and the timestamp it was signed with is refused once out of tolerance.
func TestAReplayedNotificationDoesNotVerify(t *testing.T) {
	secret := []byte("the receiver's secret")
	type captured struct {
		body          []byte
		signature, ts string
	}
	got := make(chan captured, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- captured{body, r.Header.Get(SignatureHeader), r.Header.Get(TimestampHeader)}
	}))
	defer srv.Close()
	r, err := NewWebhook(srv.URL, secret)
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)
	r.Notify(instanceAlert("HeartbeatInstanceDead", "geofence-1"))
	c := recv(t, got)
	sent, err := strconv.ParseInt(c.ts, 10, 64)
	if err != nil {
		t.Fatalf("timestamp %q", c.ts)
	}
	at := time.Unix(sent, 0)
	if err := Verify(secret, c.body, c.signature, c.ts, at, DefaultTolerance); err != nil {
		t.Fatalf("the notification as sent: %v", err)
	}
	later := at.Add(time.Hour)
	if err := Verify(secret, c.body, c.signature, strconv.FormatInt(later.Unix(), 10), later, DefaultTolerance); !errors.Is(err, ErrBadSignature) {
		t.Errorf("replayed with a fresh timestamp: %v, want %v", err, ErrBadSignature)
	}
	if err := Verify(secret, c.body, c.signature, c.ts, later, DefaultTolerance); !errors.Is(err, ErrStaleTimestamp) {
		t.Errorf("replayed as it was, an hour later: %v, want %v", err, ErrStaleTimestamp)
	}
	if err := Verify(secret, c.body, c.signature, "soon", at, DefaultTolerance); err == nil {
		t.Error("a timestamp that is not a number verified")
	}
}

func recv[T any](t *testing.T, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("nothing arrived within 10s")
		var zero T
		return zero
	}
}

// TestWebhookRetriesDeliverEachOnceInOrder: a receiver that answers 503
// for a while, then 200, then 503 again for a while: every notification is
// acknowledged exactly once, counting raw arrivals, and the notifications
// of each alert are acknowledged in the order they were made. Each
// outage is reported once, and each recovery once, without the secret
// or the URL's credentials.
func TestWebhookRetriesDeliverEachOnceInOrder(t *testing.T) {
	secret := []byte("s3cret-of-the-hook")
	type ack struct{ id, key, status string }
	acked := make(chan ack, 100)
	var mu sync.Mutex
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		n := requests
		mu.Unlock()
		if n <= 6 || (n >= 12 && n <= 14) { // two outages, the second mid-stream
			http.Error(w, "not now", http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		if err := Verify(secret, body, r.Header.Get(SignatureHeader), r.Header.Get(TimestampHeader), time.Now(), DefaultTolerance); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			t.Errorf("a retry's signature does not verify: %v", err)
			return
		}
		var p WebhookPayload
		_ = json.Unmarshal(body, &p)
		acked <- ack{id: r.Header.Get(DeliveryHeader), key: p.Alertname + "/" + *p.Instance, status: p.Status}
	}))
	defer srv.Close()

	var slept struct {
		sync.Mutex
		d []time.Duration
	}
	rep := &reports{}
	url := strings.Replace(srv.URL, "http://", "http://hookuser:hookpass@", 1) + "/hook?token=querysecret"
	r, err := NewWebhook(url, secret,
		WithBackoff(Backoff{Base: 500 * time.Millisecond, Cap: 4 * time.Second}),
		WithErrorf(rep.Errorf),
		WithSleep(func(ctx context.Context, d time.Duration) error {
			slept.Lock()
			slept.d = append(slept.d, d)
			slept.Unlock()
			return ctx.Err()
		}))
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)

	var want []ack
	for round := range 3 {
		for _, in := range []string{"geofence-1", "geofence-2", "geofence-3"} {
			a := instanceAlert("HeartbeatInstanceDead", in)
			status := "firing"
			switch round {
			case 1:
				a.EndsAt = a.StartsAt.Add(time.Minute)
				status = "resolved"
			case 2: // firing again: another start, another alert
				a.StartsAt = a.StartsAt.Add(2 * time.Minute)
			}
			r.Notify(a)
			want = append(want, ack{key: "HeartbeatInstanceDead/" + in, status: status})
		}
	}
	seen := map[string]int{}
	byKey := map[string][]string{}
	for range want {
		a := recv(t, acked)
		seen[a.id]++
		byKey[a.key] = append(byKey[a.key], a.status)
	}
	select {
	case a := <-acked:
		t.Errorf("an extra acknowledged arrival %+v", a)
	case <-time.After(100 * time.Millisecond): // a duplicate would follow its original at once
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("delivery %s acknowledged %d times", id, n)
		}
	}
	if len(seen) != len(want) {
		t.Errorf("%d distinct deliveries acknowledged, want %d", len(seen), len(want))
	}
	for key, statuses := range byKey {
		if got := strings.Join(statuses, ","); got != "firing,resolved,firing" {
			t.Errorf("%s arrived %s, want firing,resolved,firing", key, got)
		}
	}
	// The last acknowledgement is counted once its response is read; 9
	// attempts failed: 6 in the first outage, 3 in the second.
	waitStats(t, r, "every notification sent, none dropped", func(s Stats) bool {
		return s.Sent == int64(len(want)) && s.Failed == 9 && s.Dropped == 0 && s.Queued == 0
	})
	slept.Lock()
	for i, d := range slept.d {
		if d > 4*time.Second || d < 250*time.Millisecond {
			t.Errorf("retry %d waited %v: outside [base/2, cap]", i, d)
		}
	}
	if len(slept.d) < 6 || slept.d[5] < 2*time.Second {
		t.Errorf("back-off %v: not growing to the cap", slept.d)
	}
	slept.Unlock()
	msgs := rep.all()
	if len(msgs) != 4 || !strings.Contains(msgs[0], "503") || !strings.Contains(msgs[1], "again") ||
		!strings.Contains(msgs[2], "503") || !strings.Contains(msgs[3], "again") {
		t.Errorf("reported %q, want each outage once and each recovery once", msgs)
	}
	for _, m := range msgs {
		for _, secret := range []string{"hookpass", "hookuser", "querysecret", string(secret)} {
			if strings.Contains(m, secret) {
				t.Errorf("report %q prints %q", m, secret)
			}
		}
	}
}

// TestWebhookReceiverNeverUp: while the receiver answers nothing, the
// queue stays within its bound, what does not fit is counted as dropped,
// Notify never blocks, and Run returns at once when cancelled.
func TestWebhookReceiverNeverUp(t *testing.T) {
	retrying, hanging := make(chan struct{}, 1), make(chan struct{}, 1)
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"503", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) }},
		// Reading the body first: the server notices a closed connection
		// only once it has.
		{"hangs", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			hanging <- struct{}{}
			<-r.Context().Done()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			opts := []Option{WithQueueSize(5)}
			if tc.name == "503" {
				opts = append(opts, WithSleep(func(ctx context.Context, d time.Duration) error {
					select {
					case retrying <- struct{}{}:
					default:
					}
					<-ctx.Done()
					return ctx.Err()
				}))
			}
			r, err := NewWebhook(srv.URL, []byte("k"), opts...)
			if err != nil {
				t.Fatal(err)
			}
			stop := run(t, r)
			r.Notify(instanceAlert("HeartbeatInstanceDead", "head"))
			if tc.name == "503" {
				recv(t, retrying) // the head is taken and being retried
			} else {
				recv(t, hanging) // the head is taken and its request hangs
			}
			start := time.Now()
			for i := range 100 {
				r.Notify(instanceAlert("HeartbeatInstanceDead", fmt.Sprint("geofence-", i)))
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("100 Notify calls took %v", d)
			}
			s := r.Stats()
			if s.Queued != 6 || s.Dropped != 95 || s.Sent != 0 {
				t.Errorf("stats %+v, want 6 queued (5 and the head), 95 dropped", s)
			}
			start = time.Now()
			stop()
			if d := time.Since(start); d > 500*time.Millisecond {
				t.Errorf("Run took %v to return", d)
			}
		})
	}
}

func TestWebhookNeedsASecretAndPrintsNoCredentials(t *testing.T) {
	if _, err := NewWebhook("http://127.0.0.1:1/hook", nil); err == nil {
		t.Error("a webhook without a secret was accepted")
	}
	for _, u := range []string{"ftp://u:pw-in-url@127.0.0.1/hook", "http://u:pw-in-url@/hook", "http://u:pw-in-url@127.0.0.1/%zz"} {
		_, err := NewWebhook(u, []byte("k"))
		if err == nil {
			t.Errorf("%s accepted", u)
		} else if strings.Contains(err.Error(), "pw-in-url") {
			t.Errorf("error %q prints the password", err)
		}
	}
}

func TestBackoffDoublesWithJitterUpToItsCap(t *testing.T) {
	b := Backoff{Base: 500 * time.Millisecond, Cap: 30 * time.Second}
	for attempt, want := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second} {
		for range 50 {
			if d := b.Delay(attempt); d < want/2 || d > want {
				t.Fatalf("attempt %d: %v, want within [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
	if d := b.Delay(1000); d > b.Cap {
		t.Errorf("attempt 1000: %v", d)
	}
}

func TestFingerprintIsStableAndFromTheLabels(t *testing.T) {
	a := Alert{Labels: map[string]string{"alertname": "X", "service": "s", "instance": "i"}}
	b := Alert{Labels: map[string]string{"instance": "i", "service": "s", "alertname": "X"}, EndsAt: time.Now()}
	c := Alert{Labels: map[string]string{"alertname": "X", "service": "s"}}
	d := Alert{Labels: map[string]string{"alertname": "X", "service": "s", "instance": ""}}
	if a.Fingerprint() != b.Fingerprint() || a.Fingerprint() == c.Fingerprint() || c.Fingerprint() == d.Fingerprint() {
		t.Errorf("fingerprints %s %s %s %s", a.Fingerprint(), b.Fingerprint(), c.Fingerprint(), d.Fingerprint())
	}
	if !a.Firing() || b.Firing() {
		t.Error("Firing")
	}
}

// A redirect is not followed: a 302 would turn the POST into a GET without
// its body, counted sent, and a 307 would carry the signed body to the
// host it names. The notification is not counted sent.
func TestWebhookFollowsNoRedirect(t *testing.T) {
	stolen := make(chan string, 4)
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { stolen <- r.Method }))
	defer elsewhere.Close()
	for _, code := range []int{http.StatusFound, http.StatusTemporaryRedirect} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.URL+"/stolen", code)
		}))
		// The first failure is reported: that is when to look.
		failed := make(chan string, 1)
		r, err := NewWebhook(srv.URL+"/hook", []byte("secret"), WithErrorf(func(f string, a ...any) {
			select {
			case failed <- fmt.Sprintf(f, a...):
			default:
			}
		}))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); r.Run(ctx) }()
		r.Notify(instanceAlert("HeartbeatInstanceDead", "geofence-1"))
		select {
		case <-failed:
		case <-time.After(5 * time.Second):
			t.Errorf("%d: no failure reported within 5s", code)
		}
		cancel()
		<-done
		srv.Close()
		if st := r.Stats(); st.Sent != 0 || st.Failed == 0 {
			t.Errorf("%d: stats %+v, want failed and not sent", code, st)
		}
	}
	select {
	case m := <-stolen:
		t.Errorf("the redirect was followed (%s)", m)
	default:
	}
}

// A receiver that answers 200 and then trickles its body does not hold
// the queue: the status acknowledges.
func TestWebhookAcknowledgesOnTheStatus(t *testing.T) {
	release := make(chan struct{})
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select { // a body that never ends, until the test is done
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	delivered := make(chan Alert, 3)
	r, err := NewWebhook(srv.URL+"/hook", []byte("secret"), WithTimeout(30*time.Second),
		WithDelivered(func(a Alert) { delivered <- a }))
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)
	for i := 0; i < 3; i++ {
		r.Notify(instanceAlert("HeartbeatInstanceDead", fmt.Sprint(i)))
	}
	for i := 0; i < 3; i++ {
		select {
		case <-delivered:
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of 3 acknowledged within 5s: the trickling bodies held the queue", i)
		}
	}
	if st := r.Stats(); st.Sent != 3 || n.Load() != 3 {
		t.Errorf("stats %+v after %d requests: the trickling bodies held the queue", st, n.Load())
	}
}

// A notification's id follows from the alert's identity, its start and
// its status: the same from any replica and after any loss of state,
// different for another alert, another start, or its resolve.
func TestDeliveryIDFollowsFromTheAlert(t *testing.T) {
	start := time.Date(2026, 11, 27, 20, 27, 49, 947000000, time.UTC)
	a := Alert{Labels: map[string]string{"alertname": "HeartbeatInstanceDead", "service": "geo", "instance": "x"}, StartsAt: start}
	same := Alert{Labels: map[string]string{"instance": "x", "service": "geo", "alertname": "HeartbeatInstanceDead"}, StartsAt: start,
		Annotations: map[string]string{"summary": "other words"}}
	if DeliveryID(a) != DeliveryID(same) {
		t.Error("the same alert, told differently, has another id")
	}
	later := a
	later.StartsAt = start.Add(time.Millisecond)
	resolved := a
	resolved.EndsAt = start.Add(time.Minute)
	other := Alert{Labels: map[string]string{"alertname": "HeartbeatInstanceDead", "service": "geo", "instance": "y"}, StartsAt: start}
	seen := map[string]bool{}
	for _, x := range []Alert{a, later, resolved, other} {
		id := DeliveryID(x)
		if seen[id] {
			t.Errorf("id %s given twice", id)
		}
		seen[id] = true
		if _, err := uuid.Parse(id); err != nil {
			t.Errorf("id %q is not a UUID: %v", id, err)
		}
	}
}

// TestAFencedNotificationIsGivenUp: a notification whose epoch the fence
// refuses is neither posted nor reported delivered, and those behind it
// go on.
func TestAFencedNotificationIsGivenUp(t *testing.T) {
	got := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p WebhookPayload
		_ = json.NewDecoder(r.Body).Decode(&p)
		got <- *p.Instance
	}))
	defer srv.Close()
	delivered := make(chan Alert, 10)
	r, err := NewWebhook(srv.URL, []byte("s"),
		WithFence(FenceFunc(func(_ context.Context, epoch int64) error {
			if epoch != 2 {
				return fmt.Errorf("epoch %d was taken over", epoch)
			}
			return nil
		})),
		WithDelivered(func(a Alert) { delivered <- a }))
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)
	stale, fresh := instanceAlert("HeartbeatInstanceDead", "stale"), instanceAlert("HeartbeatInstanceDead", "fresh")
	stale.Epoch, fresh.Epoch = 1, 2
	r.Notify(stale)
	r.Notify(fresh)
	if in := recv(t, got); in != "fresh" {
		t.Errorf("posted %q first, want only fresh", in)
	}
	if a := recv(t, delivered); a.Labels["instance"] != "fresh" {
		t.Errorf("reported delivered: %v", a.Labels)
	}
	if st := r.Stats(); st.Fenced != 1 || st.Sent != 1 {
		t.Errorf("stats %+v, want one sent and one fenced", st)
	}
}
