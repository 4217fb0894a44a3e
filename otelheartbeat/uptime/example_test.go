package uptime_test

import (
	"fmt"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/history"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/uptime"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
)

// An hour of a service's history: its one instance dies at 10 min, nobody
// watches from 20 to 25 min, a new instance replaces it at 30 min and is
// stopped gracefully by a deploy at 50 min, the dead one long forgotten.
// The span nobody watched is unknown and the deploy is planned: neither is
// downtime, and the incident runs from the death to the replacement.
func Example() {
	t0 := time.Date(2025, 1, 16, 8, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	entries := []history.Entry{
		{Instance: "a", From: watch.Unknown, To: watch.Alive, At: at(-5)},
		{Instance: "a", From: watch.Alive, To: watch.Dead, At: at(10)},
		{Instance: "a", From: watch.Dead, Event: history.Forgotten, At: at(29)},
		{Instance: "b", From: watch.Unknown, To: watch.Alive, At: at(30)},
		{Instance: "b", From: watch.Alive, To: watch.Stopped, At: at(50)},
	}
	gaps := []history.Gap{{From: at(20), To: at(25)}}
	r := uptime.Compute("geofence_service", entries, gaps, uptime.Window{From: at(0), To: at(60)}, 1)
	u, _ := r.Uptime()
	fmt.Printf("up %v, down %v, planned %v, unknown %v: uptime %.3f\n", r.Up, r.Down, r.Planned, r.Unknown, u)
	for _, in := range r.Incidents {
		fmt.Printf("incident %v to %v, %v of it unknown, instances %v\n", in.Start.Sub(t0), in.End.Sub(t0), in.Unknown, in.Instances)
	}
	fmt.Println("restarts:", r.Restarts)
	// Output:
	// up 30m0s, down 15m0s, planned 10m0s, unknown 5m0s: uptime 0.667
	// incident 10m0s to 30m0s, 5m0s of it unknown, instances [a]
	// restarts: 1
}
