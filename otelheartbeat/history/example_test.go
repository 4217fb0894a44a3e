package history_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/history"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
)

// A recorder holds the lease and writes under its fencing epoch; a write
// that changes nothing records nothing, and a replica whose epoch is older
// than the last one that wrote is refused.
func Example() {
	broker, _ := miniredis.Run() // stands in for Valkey
	defer broker.Close()
	c := redis.NewClient(&redis.Options{Addr: broker.Addr()})
	defer c.Close()
	ctx := context.Background()

	store, _ := history.NewStore(c, history.WithRetention(24*time.Hour))
	lease, _ := store.NewLease("replica-a", 10*time.Second)
	ok, _, err := lease.TryAcquire(ctx)
	fmt.Println("recording:", ok, err)

	at := time.Date(2026, 11, 27, 20, 27, 0, 0, time.UTC)
	n, err := store.Apply(ctx, lease.Epoch(), []history.Record{
		{Service: "geo", Instance: "a", To: watch.Alive, At: at},
		{Service: "geo", Instance: "a", To: watch.Alive, At: at.Add(time.Second)}, // no change: nothing recorded
		{Service: "geo", Instance: "a", To: watch.Dead, At: at.Add(time.Minute)},
	})
	fmt.Println("recorded:", n, err)
	_, err = store.Apply(ctx, lease.Epoch()-1, []history.Record{{Service: "geo", Instance: "a", To: watch.Alive, At: at.Add(2 * time.Minute)}})
	fmt.Println(err)

	entries, _, _ := store.EntriesAfter(ctx, "geo", "", 10)
	for _, e := range entries {
		fmt.Println(e.Instance, e.From, "->", e.To, e.At.Sub(at))
	}
	// Output:
	// recording: true <nil>
	// recorded: 2 <nil>
	// history: fenced: a newer epoch has written to geo
	// a unknown -> alive 0s
	// a alive -> dead 1m0s
}
