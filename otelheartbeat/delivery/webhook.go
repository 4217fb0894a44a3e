package delivery

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// The webhook's headers.
const (
	SignatureHeader = "X-Heartbeat-Signature" // sha256=<hex HMAC-SHA256 of the timestamp, '.', and the body>
	DeliveryHeader  = "X-Heartbeat-Delivery"  // the notification's id (DeliveryID), the same on every resend
	TimestampHeader = "X-Heartbeat-Timestamp" // Unix seconds of the attempt
)

// WebhookVersion is the body's "version".
const WebhookVersion = "1"

// WebhookPayload is the body the webhook posts; see the package doc.
type WebhookPayload struct {
	Version       string            `json:"version"`
	Delivery      string            `json:"delivery"`
	Status        string            `json:"status"` // firing or resolved
	Alertname     string            `json:"alertname"`
	Service       string            `json:"service"`
	Instance      *string           `json:"instance"` // null for a service-level alert
	State         string            `json:"state"`
	Since         *string           `json:"since"`
	StartsAt      *string           `json:"starts_at"`
	EndsAt        *string           `json:"ends_at"` // null while firing
	Summary       string            `json:"summary"`
	Description   string            `json:"description"`
	GeneratorURL  string            `json:"generator_url"`
	Labels        map[string]string `json:"labels"`
	Annotations   map[string]string `json:"annotations"`
	LastHeartbeat json.RawMessage   `json:"last_heartbeat"` // null when there is none
}

// DefaultTolerance is how far a notification's X-Heartbeat-Timestamp may
// be from the receiver's clock for Verify: a capture replayed later is
// refused.
const DefaultTolerance = 5 * time.Minute

// Verify's refusals.
var (
	ErrBadSignature   = errors.New("delivery: the signature does not match the timestamp and body under the secret")
	ErrStaleTimestamp = errors.New("delivery: the timestamp is outside the tolerance: a replay, or a clock far off")
)

// Sign returns the X-Heartbeat-Signature value of a notification sent at
// timestamp (its X-Heartbeat-Timestamp, Unix seconds): the hex
// HMAC-SHA256, under secret, of the timestamp, a '.', and the body.
func Sign(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a notification as received: its X-Heartbeat-Signature
// (in constant time) over its X-Heartbeat-Timestamp and its body, and the
// timestamp within tolerance of now. It returns nil, ErrBadSignature,
// ErrStaleTimestamp, or an error naming a timestamp that is not one.
func Verify(secret, body []byte, signature, timestamp string, now time.Time, tolerance time.Duration) error {
	if !hmac.Equal([]byte(signature), []byte(Sign(secret, timestamp, body))) {
		return ErrBadSignature
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("delivery: %s %q is not Unix seconds", TimestampHeader, wire.Truncate(timestamp, 32))
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w (%v from now)", ErrStaleTimestamp, d.Round(time.Second))
	}
	return nil
}

// delivery is one notification: its id and its body, fixed at Notify.
type delivery struct {
	id    string
	body  []byte
	alert Alert
}

type webhook struct {
	cfg    config
	url    string
	shown  string
	secret []byte
	queue  chan delivery

	head                                  atomic.Int64 // 1 while a notification is in flight
	sent, failed, dropped, broken, fenced atomic.Int64
	ep                                    episode
	flog                                  fenceLog
}

// NewWebhook returns a Receiver that posts each notification, signed with
// secret, to url, in order.
func NewWebhook(url string, secret []byte, opts ...Option) (Receiver, error) {
	if len(secret) == 0 {
		return nil, errors.New("delivery: the webhook needs a secret to sign with")
	}
	_, shown, err := checkURL(url)
	if err != nil {
		return nil, err
	}
	cfg := newConfig(opts)
	return &webhook{
		cfg: cfg, url: url, shown: shown, secret: bytes.Clone(secret),
		queue: make(chan delivery, cfg.queueSize), ep: episode{errorf: cfg.errorf}, flog: fenceLog{errorf: cfg.errorf},
	}, nil
}

func (w *webhook) Name() string { return "webhook" }

// Payload is a's body as the webhook posts it, under delivery id.
func Payload(a Alert, id string) WebhookPayload {
	ts := func(t time.Time) *string {
		if t.IsZero() {
			return nil
		}
		s := string(wire.AppendTimestamp(nil, t))
		return &s
	}
	p := WebhookPayload{
		Version: WebhookVersion, Delivery: id, Status: "firing",
		Alertname: a.Labels["alertname"], Service: a.Labels["service"],
		State: a.State, Since: ts(a.Since), StartsAt: ts(a.StartsAt), EndsAt: ts(a.EndsAt),
		Summary: a.Annotations["summary"], Description: a.Annotations["description"],
		GeneratorURL: a.GeneratorURL, Labels: a.Labels, Annotations: a.Annotations,
		LastHeartbeat: a.LastHeartbeat,
	}
	if !a.Firing() {
		p.Status = "resolved"
	}
	if in, ok := a.Labels["instance"]; ok {
		p.Instance = &in
	}
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	if len(p.LastHeartbeat) == 0 || !json.Valid(p.LastHeartbeat) {
		p.LastHeartbeat = json.RawMessage("null")
	}
	return p
}

// deliveryNamespace scopes the name-based UUIDs of DeliveryID.
var deliveryNamespace = uuid.MustParse("6efd4774-42ef-4925-b1a7-7bbf8e3d7317")

// DeliveryID is the id of a's notification: a UUID derived from the
// alert's identity (its fingerprint), its start and whether it fires or
// resolves. It is the same on every retry, from every replica, and after
// Valkey lost its data, so that a receiver that drops an id it has
// acknowledged drops every resend of that notification.
func DeliveryID(a Alert) string {
	status := "firing"
	if !a.Firing() {
		status = "resolved"
	}
	name := a.Fingerprint() + "|" + strconv.FormatInt(a.StartsAt.UnixNano(), 10) + "|" + status
	return uuid.NewSHA1(deliveryNamespace, []byte(name)).String()
}

// Notify queues a's notification; it never blocks, and counts a drop when
// the queue is full.
func (w *webhook) Notify(a Alert) {
	id := DeliveryID(a)
	body, err := json.Marshal(Payload(a, id))
	if err != nil { // not with these types; counted rather than lost silently
		w.dropped.Add(1)
		return
	}
	select {
	case w.queue <- delivery{id: id, body: body, alert: a}:
	default:
		w.dropped.Add(1)
	}
}

// Stats: Failed counts failed attempts and the notifications given up on
// a permanent failure.
func (w *webhook) Stats() Stats {
	return Stats{Sent: w.sent.Load(), Failed: w.failed.Load() + w.broken.Load(), Dropped: w.dropped.Load(),
		Queued: int64(len(w.queue)) + w.head.Load(), Fenced: w.fenced.Load()}
}

// Run delivers the queue in order, one notification at a time, retrying
// the head until it is acknowledged, given up as refused, or ctx is done.
// It starts no goroutine.
func (w *webhook) Run(ctx context.Context) {
	for {
		var d delivery
		select {
		case <-ctx.Done():
			return
		case d = <-w.queue:
		}
		w.head.Store(1)
		ok := w.deliver(ctx, d)
		w.head.Store(0)
		if !ok {
			return
		}
	}
}

// deliver retries d until it is acknowledged, refused or fenced (true),
// or ctx is done (false). The fence is asked before every attempt: a
// retry can outlast the lease it was made under.
func (w *webhook) deliver(ctx context.Context, d delivery) bool {
	for attempt := 0; ; attempt++ {
		if !allowed(ctx, w.cfg.fence, d.alert.Epoch, &w.fenced, &w.flog, "webhook "+w.shown) {
			return ctx.Err() == nil
		}
		retry, err := w.post(ctx, d)
		if ctx.Err() != nil {
			return false
		}
		if err == nil {
			w.sent.Add(1)
			w.ep.ok("delivery: webhook %s: delivering again", w.shown)
			if w.cfg.delivered != nil {
				w.cfg.delivered(d.alert)
			}
			return true
		}
		if !retry {
			w.broken.Add(1)
			w.ep.fail("delivery: webhook %s: %v; notification %s given up", w.shown, err, d.id)
			return true
		}
		w.failed.Add(1)
		w.ep.fail("delivery: webhook %s: %v; retrying", w.shown, err)
		if w.cfg.sleep(ctx, w.cfg.backoff.Delay(attempt)) != nil {
			return false
		}
	}
}

func (w *webhook) post(ctx context.Context, d delivery) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(d.body))
	if err != nil {
		return false, cause(err)
	}
	ts := strconv.FormatInt(w.cfg.now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, Sign(w.secret, ts, d.body))
	req.Header.Set(DeliveryHeader, d.id)
	req.Header.Set(TimestampHeader, ts)
	return do(w.cfg.client, req)
}
