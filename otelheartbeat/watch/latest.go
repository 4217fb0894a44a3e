package watch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// Latest is one instance's latest-state key.
type Latest struct {
	Key     string
	Message *wire.Message
	// Age is how long ago the key was written, from its remaining TTL on
	// the server: no clock of the sender's or ours is trusted.
	Age time.Duration
	Err error
}

// State classifies the instance by its age.
func (l Latest) State() State {
	if l.Message.Status == wire.StatusStopping {
		return Stopped
	}
	return Classify(l.Age, l.Message.Interval())
}

// scanBatch is how many keys one SCAN step and one pipeline hold.
const scanBatch = 500

// ReadLatest reads every latest-state key under keyPrefix (of one service
// when service is set: exactly that service, not payments:worker for
// payments), on every primary of a cluster.
//
// A key's size and remaining TTL are asked first (STRLEN and PTTL in one
// pipeline), and only a key that can be a heartbeat is read: one larger
// than wire.MaxMessageSize, one without a TTL, one whose TTL is longer
// than the three intervals the exporter sets, and one of another type are
// entries with an Err that names the key. No publisher of this library
// writes them, and none of them is read as alive.
func ReadLatest(ctx context.Context, c redis.UniversalClient, keyPrefix, service string) ([]Latest, error) {
	match := keyPrefix + "*"
	if service != "" {
		match = keyPrefix + service + ":*"
	}
	r := reader{keyPrefix: keyPrefix, service: service, match: match}
	if cc, ok := c.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		var all []Latest
		err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			got, err := r.node(ctx, node)
			mu.Lock()
			all = append(all, got...)
			mu.Unlock()
			return err
		})
		return all, err
	}
	return r.node(ctx, c)
}

type reader struct {
	keyPrefix, service, match string
}

func (r reader) node(ctx context.Context, c redis.Cmdable) ([]Latest, error) {
	var out []Latest
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, r.match, scanBatch).Result()
		if err != nil {
			return out, fmt.Errorf("SCAN %s: %w", r.match, err)
		}
		keys, out = r.plausible(keys, out)
		keys = r.ofService(keys)
		if len(keys) > 0 {
			got, err := r.keys(ctx, c, keys)
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

// plausible keeps the keys whose names a heartbeat's key can have, and
// reports the others by a short prefix of their names, unread: nothing is
// asked about them, and no renderer gets a name of megabytes.
func (r reader) plausible(keys []string, out []Latest) ([]string, []Latest) {
	limit := len(r.keyPrefix) + 2*wire.MaxNameLength + 1
	kept := keys[:0]
	for _, k := range keys {
		if len(k) <= limit {
			kept = append(kept, k)
			continue
		}
		short := wire.Truncate(k, 64) + "..."
		out = append(out, Latest{Key: short, Err: fmt.Errorf("latest-state key %s has a name of %d bytes, longer than any heartbeat's key (%d): not read", short, len(k), limit)})
	}
	return kept, out
}

// ofService drops, when one service is asked for, the keys of services
// whose names only begin with it: an instance id holds no ':', so the key
// of payments:worker's instance has one after "payments:".
func (r reader) ofService(keys []string) []string {
	if r.service == "" {
		return keys
	}
	kept := keys[:0]
	for _, k := range keys {
		if n := len(r.match) - 1; len(k) >= n && !strings.Contains(k[n:], ":") {
			kept = append(kept, k)
		}
	}
	return kept
}

func (r reader) keys(ctx context.Context, c redis.Cmdable, keys []string) ([]Latest, error) {
	p := c.Pipeline()
	sizes := make([]*redis.IntCmd, len(keys))
	ttls := make([]*redis.DurationCmd, len(keys))
	for i, k := range keys {
		sizes[i] = p.StrLen(ctx, k)
		ttls[i] = p.PTTL(ctx, k)
	}
	_, _ = p.Exec(ctx) // each command's error is read below
	out := make([]Latest, 0, len(keys))
	var read []int // indexes of the keys worth a GET
	for i, k := range keys {
		size, err := sizes[i].Result()
		if err == nil {
			err = ttls[i].Err()
		}
		if err != nil {
			if isConnErr(err) {
				return out, fmt.Errorf("STRLEN and PTTL %s: %w", k, err)
			}
			out = append(out, Latest{Key: k, Err: fmt.Errorf("latest-state key %s: %w", k, err)})
			continue
		}
		switch ttl := ttls[i].Val(); {
		case ttl == -2: // expired since SCAN: not invented
		case ttl == -1:
			out = append(out, Latest{Key: k, Err: fmt.Errorf("latest-state key %s has no TTL: not a heartbeat a publisher wrote (its key expires after three intervals)", k)})
		case size > wire.MaxMessageSize:
			out = append(out, Latest{Key: k, Err: fmt.Errorf("latest-state key %s holds %d bytes, more than the %d of a heartbeat: not read", k, size, wire.MaxMessageSize)})
		default:
			read = append(read, i)
		}
	}
	if len(read) == 0 {
		return out, nil
	}
	p = c.Pipeline()
	gets := make([]*redis.StringCmd, len(read))
	for j, i := range read {
		gets[j] = p.Get(ctx, keys[i])
	}
	_, _ = p.Exec(ctx)
	for j, i := range read {
		k := keys[i]
		raw, err := gets[j].Result()
		if errors.Is(err, redis.Nil) {
			continue // expired between PTTL and GET
		}
		if err != nil {
			if isConnErr(err) {
				return out, fmt.Errorf("GET %s: %w", k, err)
			}
			out = append(out, Latest{Key: k, Err: fmt.Errorf("latest-state key %s: %w", k, err)})
			continue
		}
		msg, err := wire.Unmarshal([]byte(raw))
		if err != nil {
			out = append(out, Latest{Key: k, Err: fmt.Errorf("latest-state key %s: %w", k, err)})
			continue
		}
		if want := wire.Key(r.keyPrefix, msg.ServiceName, msg.InstanceID); want != k {
			out = append(out, Latest{Key: k, Err: fmt.Errorf("latest-state key %s holds the heartbeat of %s", k, strings.TrimPrefix(want, r.keyPrefix))})
			continue
		}
		if r.service != "" && msg.ServiceName != r.service {
			continue
		}
		// The exporter sets the TTL to three intervals; PTTL was read just
		// before the GET, so the age is at most that round trip old.
		ttl, limit := ttls[i].Val(), 3*msg.Interval()
		if ttl > limit+time.Second {
			out = append(out, Latest{Key: k, Err: fmt.Errorf("latest-state key %s has a TTL of %v, longer than three intervals (%v): not a heartbeat a publisher wrote", k, ttl.Round(time.Millisecond), limit)})
			continue
		}
		l := Latest{Key: k, Message: msg}
		if age := limit - ttl; age > 0 {
			l.Age = age
		}
		out = append(out, l)
	}
	return out, nil
}

func isConnErr(err error) bool {
	var re redis.Error
	return !errors.As(err, &re)
}
