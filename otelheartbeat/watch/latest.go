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
// Each key is read in one round trip with its size and remaining TTL
// (STRLEN, PTTL and GETRANGE 0 wire.MaxMessageSize in one pipeline), so no
// more than a heartbeat's size of it is ever transferred, even when a
// writer swaps a larger value in meanwhile. One larger than
// wire.MaxMessageSize, one without a TTL, one whose TTL is longer than
// the three intervals the exporter sets, and one of another type are
// entries with an Err that names the key. No publisher of this library
// writes them, and none of them is read as alive. A monitor's ACL user
// needs +scan +strlen +pttl +getrange on the keys.
//
// ReadLatest holds every message at once, as decoded: for a large fleet,
// or one whose heartbeats are large, EachLatest keeps only a batch.
func ReadLatest(ctx context.Context, c redis.UniversalClient, keyPrefix, service string) ([]Latest, error) {
	var all []Latest
	err := EachLatest(ctx, c, keyPrefix, service, func(batch []Latest) { all = append(all, batch...) })
	return all, err
}

// readBatch is how many keys one round trip reads: at most this many
// heartbeats' size (64 KiB each) is held at once by EachLatest.
const readBatch = 100

// EachLatest reads the latest-state keys as ReadLatest does, and hands
// them to f a batch at a time (at most 100 keys), on the calling
// goroutine: what it holds is a batch, whatever the fleet's size. f must
// not keep the slice.
func EachLatest(ctx context.Context, c redis.UniversalClient, keyPrefix, service string, f func([]Latest)) error {
	match := keyPrefix + "*"
	if service != "" {
		match = keyPrefix + service + ":*"
	}
	r := reader{keyPrefix: keyPrefix, service: service, match: match}
	if cc, ok := c.(*redis.ClusterClient); ok {
		// The primaries one after another, on this goroutine: f is the
		// caller's, and runs where the caller does.
		var mu sync.Mutex
		var nodes []*redis.Client
		if err := cc.ForEachMaster(ctx, func(_ context.Context, node *redis.Client) error {
			mu.Lock()
			nodes = append(nodes, node)
			mu.Unlock()
			return nil
		}); err != nil {
			return err
		}
		var errs []error
		for _, node := range nodes {
			errs = append(errs, r.node(ctx, node, f))
		}
		return errors.Join(errs...)
	}
	return r.node(ctx, c, f)
}

type reader struct {
	keyPrefix, service, match string
}

func (r reader) node(ctx context.Context, c redis.Cmdable, f func([]Latest)) error {
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, r.match, scanBatch).Result()
		if err != nil {
			return fmt.Errorf("SCAN %s: %w", r.match, err)
		}
		var refused []Latest
		keys, refused = r.plausible(keys, nil)
		if len(refused) > 0 {
			f(refused)
		}
		keys = r.ofService(keys)
		for len(keys) > 0 {
			n := min(len(keys), readBatch)
			got, err := r.keys(ctx, c, keys[:n])
			if len(got) > 0 {
				f(got)
			}
			if err != nil {
				return err
			}
			keys = keys[n:]
		}
		if next == 0 {
			return nil
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
	// One round trip, and a read bounded by its own command: GETRANGE
	// returns at most one byte more than a heartbeat can hold, however
	// large the value is by the time it runs. STRLEN only says how large,
	// for the message: a writer swapping a huge value in between gets
	// nothing more transferred.
	p := c.Pipeline()
	sizes := make([]*redis.IntCmd, len(keys))
	ttls := make([]*redis.DurationCmd, len(keys))
	values := make([]*redis.StringCmd, len(keys))
	for i, k := range keys {
		sizes[i] = p.StrLen(ctx, k)
		ttls[i] = p.PTTL(ctx, k)
		values[i] = p.GetRange(ctx, k, 0, wire.MaxMessageSize)
	}
	_, _ = p.Exec(ctx) // each command's error is read below
	out := make([]Latest, 0, len(keys))
	for i, k := range keys {
		err := sizes[i].Err()
		if err == nil {
			err = ttls[i].Err()
		}
		if err == nil {
			err = values[i].Err()
		}
		if err != nil {
			if isConnErr(err) {
				return out, fmt.Errorf("STRLEN, PTTL and GETRANGE %s: %w", k, err)
			}
			out = append(out, Latest{Key: k, Err: fmt.Errorf("latest-state key %s: %w", k, err)})
			continue
		}
		raw, ttl := values[i].Val(), ttls[i].Val()
		switch {
		case ttl == -2: // expired since SCAN: not invented
			continue
		case ttl == -1:
			out = append(out, Latest{Key: k, Err: fmt.Errorf("latest-state key %s has no TTL: not a heartbeat a publisher wrote (its key expires after three intervals)", k)})
			continue
		case len(raw) > wire.MaxMessageSize:
			size := max(sizes[i].Val(), int64(len(raw)))
			out = append(out, Latest{Key: k, Err: fmt.Errorf("latest-state key %s holds %d bytes, more than the %d of a heartbeat: not read", k, size, wire.MaxMessageSize)})
			continue
		}
		if l, ok := r.latest(k, raw, ttl); ok {
			out = append(out, l)
		}
	}
	return out, nil
}

// latest checks one key's value, read with its remaining TTL; false when
// it is another service's, to be left out.
func (r reader) latest(k, raw string, ttl time.Duration) (Latest, bool) {
	msg, err := wire.Unmarshal([]byte(raw))
	if err != nil {
		return Latest{Key: k, Err: fmt.Errorf("latest-state key %s: %w", k, err)}, true
	}
	if want := wire.Key(r.keyPrefix, msg.ServiceName, msg.InstanceID); want != k {
		return Latest{Key: k, Err: fmt.Errorf("latest-state key %s holds the heartbeat of %s", k, strings.TrimPrefix(want, r.keyPrefix))}, true
	}
	if r.service != "" && msg.ServiceName != r.service {
		return Latest{}, false
	}
	// The exporter sets the TTL to three intervals; PTTL was read in the
	// same round trip as the value.
	limit := 3 * msg.Interval()
	if ttl > limit+time.Second {
		return Latest{Key: k, Err: fmt.Errorf("latest-state key %s has a TTL of %v, longer than three intervals (%v): not a heartbeat a publisher wrote", k, ttl.Round(time.Millisecond), limit)}, true
	}
	l := Latest{Key: k, Message: msg}
	if age := limit - ttl; age > 0 {
		l.Age = age
	}
	return l, true
}

func isConnErr(err error) bool {
	var re redis.Error
	return !errors.As(err, &re)
}
