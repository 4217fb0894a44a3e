package delivery_test

import (
	"fmt"
	"strconv"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/delivery"
)

// A webhook receiver checks a notification as it read it: the signature
// over its timestamp and body, and the timestamp near its own clock. A
// capture replayed later, or under a fresh timestamp, is refused.
func ExampleVerify() {
	secret := []byte("the shared secret")
	body := []byte(`{"version":"1","status":"firing","alertname":"HeartbeatInstanceDead"}`)
	sent := time.Date(2026, 11, 27, 20, 27, 50, 0, time.UTC)
	ts := strconv.FormatInt(sent.Unix(), 10)
	signature := delivery.Sign(secret, ts, body) // the X-Heartbeat-Signature the panel sends

	fmt.Println(delivery.Verify(secret, body, signature, ts, sent.Add(time.Second), delivery.DefaultTolerance))
	later := sent.Add(time.Hour)
	fmt.Println(delivery.Verify(secret, body, signature, strconv.FormatInt(later.Unix(), 10), later, delivery.DefaultTolerance))
	fmt.Println(delivery.Verify(secret, body, signature, ts, later, delivery.DefaultTolerance))
	// Output:
	// <nil>
	// delivery: the signature does not match the timestamp and body under the secret
	// delivery: the timestamp is outside the tolerance: a replay, or a clock far off (1h0m0s from now)
}

// A notification's id follows from the alert: the same from any replica,
// on every retry and after any loss of state; another for its resolve.
func ExampleDeliveryID() {
	a := delivery.Alert{
		Labels:   map[string]string{"alertname": "HeartbeatInstanceDead", "service": "geo", "instance": "x"},
		StartsAt: time.Date(2026, 11, 27, 20, 27, 49, 947000000, time.UTC),
	}
	firing := delivery.DeliveryID(a)
	a.EndsAt = a.StartsAt.Add(time.Minute)
	fmt.Println(firing == delivery.DeliveryID(delivery.Alert{Labels: a.Labels, StartsAt: a.StartsAt}), firing == delivery.DeliveryID(a))
	// Output:
	// true false
}
