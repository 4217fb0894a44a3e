package monitor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/internal/heartbeat"
	"github.com/otel-heartbeat/heartbeat/internal/liveness"
)

// Latest is one instance's latest-state key.
type Latest struct {
	Key     string
	Message *heartbeat.Message
	// Age is how long ago the key was written, from its remaining TTL on
	// the server: no clock of the sender's or ours is trusted.
	Age time.Duration
	Err error
}

// State classifies the instance by its age.
func (l Latest) State() liveness.State {
	if l.Message.Status == heartbeat.StatusStopping {
		return liveness.Stopped
	}
	return liveness.Classify(l.Age, l.Message.Interval())
}

// scanBatch is how many keys one SCAN step and one GET/PTTL pipeline hold.
const scanBatch = 500

// ReadLatest reads every latest-state key under keyPrefix (of one service
// when service is set), on every primary of a cluster.
func ReadLatest(ctx context.Context, c redis.UniversalClient, keyPrefix, service string) ([]Latest, error) {
	match := keyPrefix + "*"
	if service != "" {
		match = keyPrefix + service + ":*"
	}
	if cc, ok := c.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		var all []Latest
		err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			got, err := readNode(ctx, node, keyPrefix, match)
			mu.Lock()
			all = append(all, got...)
			mu.Unlock()
			return err
		})
		return all, err
	}
	return readNode(ctx, c, keyPrefix, match)
}

func readNode(ctx context.Context, c redis.Cmdable, keyPrefix, match string) ([]Latest, error) {
	var out []Latest
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, match, scanBatch).Result()
		if err != nil {
			return out, fmt.Errorf("SCAN %s: %w", match, err)
		}
		if len(keys) > 0 {
			got, err := readKeys(ctx, c, keyPrefix, keys)
			out = append(out, got...)
			if err != nil {
				return out, err
			}
		}
		if next == 0 {
			return out, nil
		}
		cursor = next
	}
}

func readKeys(ctx context.Context, c redis.Cmdable, keyPrefix string, keys []string) ([]Latest, error) {
	p := c.Pipeline()
	gets := make([]*redis.StringCmd, len(keys))
	ttls := make([]*redis.DurationCmd, len(keys))
	for i, k := range keys {
		gets[i] = p.Get(ctx, k)
		ttls[i] = p.PTTL(ctx, k)
	}
	_, _ = p.Exec(ctx) // each command's error is read below
	out := make([]Latest, 0, len(keys))
	for i, k := range keys {
		raw, err := gets[i].Result()
		if errors.Is(err, redis.Nil) {
			continue // expired between SCAN and GET: not invented
		}
		if err != nil {
			if isConnErr(err) {
				return out, fmt.Errorf("GET %s: %w", k, err)
			}
			out = append(out, Latest{Key: k, Err: fmt.Errorf("GET %s: %w", k, err)})
			continue
		}
		msg, err := heartbeat.Unmarshal([]byte(raw))
		if err != nil {
			out = append(out, Latest{Key: k, Err: fmt.Errorf("latest-state key %s: %w", k, err)})
			continue
		}
		if want := heartbeat.Key(keyPrefix, msg.ServiceName, msg.InstanceID); want != k {
			out = append(out, Latest{Key: k, Err: fmt.Errorf("latest-state key %s holds the heartbeat of %s", k, strings.TrimPrefix(want, keyPrefix))})
			continue
		}
		l := Latest{Key: k, Message: msg}
		if ttl, err := ttls[i].Result(); err == nil && ttl > 0 {
			// The exporter sets the TTL to three intervals.
			if age := 3*msg.Interval() - ttl; age > 0 {
				l.Age = age
			}
		}
		out = append(out, l)
	}
	return out, nil
}

func isConnErr(err error) bool {
	var re redis.Error
	return !errors.As(err, &re)
}
