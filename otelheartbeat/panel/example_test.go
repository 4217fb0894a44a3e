package panel_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/panel"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// The panel mounted under a prefix on the host's own mux, over the host's
// tracker: here the tracker is fed by hand; a host feeds it with a
// watch.Monitor whose Run callback is the panel's Observe.
func Example() {
	broker, _ := miniredis.Run() // stands in for Valkey
	defer broker.Close()
	c := redis.NewClient(&redis.Options{Addr: broker.Addr()})
	defer c.Close()

	tracker := watch.NewTracker(panel.TrackerOptions()...)
	p, err := panel.New(tracker, c, panel.WithMinAlive(map[string]int{"geofence_service": 2}))
	if err != nil {
		fmt.Println(err)
		return
	}
	mux := http.NewServeMux()
	mux.Handle("/heartbeats/", http.StripPrefix("/heartbeats", p.Handler()))
	web := httptest.NewServer(mux)
	defer web.Close()

	p.Observe(watch.Event{Kind: watch.KindLoaded, At: time.Now()}) // the host's watcher has read the keys
	for _, id := range []string{"geo-1", "geo-2"} {
		m := &wire.Message{ServiceName: "geofence_service", InstanceID: id, Timestamp: time.Now(), IntervalSeconds: 60, Has: wire.HasInterval}
		tracker.Observe(m)
		p.Observe(watch.Event{Kind: watch.KindHeartbeat, At: time.Now(), Message: m})
	}

	resp, err := http.Get(web.URL + "/heartbeats/api/v1/services")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var fleet panel.FleetJSON
	_ = json.NewDecoder(resp.Body).Decode(&fleet)
	for _, s := range fleet.Services {
		fmt.Printf("%s: %s, %d of %d alive, %d needed\n", s.Name, s.State, s.Counts.Alive, s.Counts.Total(), s.MinAlive)
	}
	// Output:
	// geofence_service: up, 2 of 2 alive, 2 needed
}
