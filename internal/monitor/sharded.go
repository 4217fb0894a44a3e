package monitor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/internal/heartbeat"
)

// errSlotMoved is why a sharded subscription is rebuilt when the server
// unsubscribes a channel whose slot went to another node.
var errSlotMoved = errors.New("a shard channel's slot moved to another node")

// shardPlan is which node each shard channel is subscribed on.
type shardPlan struct {
	channels []string            // sorted
	nodes    map[string][]string // node address -> its channels
	opts     subscriberOptions   // credentials and TLS, for every node
}

// plan reads the registry and the cluster's slot map. Sharded channels have
// no pattern subscription, so publishers in sharded mode add their service
// names to the registry set; go-redis's cluster SSubscribe listens on one
// shard only (go-redis issues 3133 and 3806), so the monitor subscribes on
// every owning node itself.
func (m *Monitor) plan(ctx context.Context) (shardPlan, error) {
	p := shardPlan{nodes: map[string][]string{}}
	var names []string
	if m.cfg.Service != "" {
		names = []string{m.cfg.Service}
	} else {
		var err error
		if names, err = m.cfg.Client.SMembers(ctx, heartbeat.DefaultRegistryKey).Result(); err != nil {
			return p, fmt.Errorf("SMEMBERS %s: %w", heartbeat.DefaultRegistryKey, err)
		}
	}
	for _, n := range names {
		if heartbeat.ValidateServiceName(n) == nil {
			p.channels = append(p.channels, m.cfg.ChannelPrefix+n)
		}
	}
	slices.Sort(p.channels)

	switch c := m.cfg.Client.(type) {
	case *redis.ClusterClient:
		o := c.Options()
		if o.CredentialsProvider != nil || o.CredentialsProviderContext != nil || o.StreamingCredentialsProvider != nil {
			return p, errors.New("sharded mode needs a cluster client with a plain user and password")
		}
		p.opts = subscriberOptions{username: o.Username, password: o.Password, tls: o.TLSConfig, dialTimeout: o.DialTimeout}
		if len(p.channels) == 0 {
			return p, nil
		}
		slots, err := c.ClusterSlots(ctx).Result()
		if err != nil {
			return p, fmt.Errorf("CLUSTER SLOTS: %w", err)
		}
		for _, ch := range p.channels {
			slot := KeySlot(ch)
			owner := ""
			for _, r := range slots {
				if slot >= r.Start && slot <= r.End && len(r.Nodes) > 0 {
					owner = r.Nodes[0].Addr
				}
			}
			if owner == "" {
				return p, fmt.Errorf("no node owns slot %d of %s", slot, ch)
			}
			p.nodes[owner] = append(p.nodes[owner], ch)
		}
	default:
		o, ok := leanOptions(m.cfg.Client)
		if !ok {
			return p, errors.New("sharded mode needs a single-node or cluster client")
		}
		p.opts = o
		if len(p.channels) > 0 {
			p.nodes[o.addr] = p.channels
		}
	}
	return p, nil
}

// receiveSharded keeps one SSUBSCRIBE connection on every node that owns a
// registered service's channel, and rebuilds them all when a slot moves, a
// connection fails, or the registry gains a service.
func (m *Monitor) receiveSharded(ctx context.Context, in chan<- received, ctl chan<- control) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		p, err := m.plan(ctx)
		var subs []*subscriber
		if err == nil {
			for addr, chans := range p.nodes {
				o := p.opts
				o.addr = addr
				var sub *subscriber
				if sub, err = dialSubscriber(ctx, o, "SSUBSCRIBE", chans...); err != nil {
					err = fmt.Errorf("node %s: %w", addr, err)
					break
				}
				subs = append(subs, sub)
			}
		}
		if err != nil {
			for _, s := range subs {
				_ = s.close()
			}
			if ctx.Err() != nil || !sendControl(ctx, ctl, control{err: err, at: time.Now()}) || !wait(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if !sendControl(ctx, ctl, control{subscribed: true, at: time.Now()}) {
			for _, s := range subs {
				_ = s.close()
			}
			return
		}

		failed := make(chan error, len(subs))
		var wg sync.WaitGroup
		for _, s := range subs {
			wg.Add(1)
			go func(s *subscriber) {
				defer wg.Done()
				ds := newDecodeState()
				for {
					kind, ch, payload, err := s.frame()
					var big *oversized
					switch {
					case errors.As(err, &big):
						m.deliver(in, received{at: time.Now(), channel: string(ch), err: big})
					case err != nil:
						failed <- err
						return
					case kind == "smessage":
						m.deliver(in, m.decode(ds, ch, payload, time.Now()))
					case kind == "sunsubscribe":
						failed <- fmt.Errorf("%w (%s)", errSlotMoved, ch)
						return
					}
				}
			}(s)
		}
		reason := m.watchRegistry(ctx, p.channels, failed)
		for _, s := range subs {
			_ = s.close()
		}
		wg.Wait()
		if ctx.Err() != nil {
			return
		}
		if reason != nil && !sendControl(ctx, ctl, control{err: reason, at: time.Now()}) {
			return
		}
	}
}

// watchRegistry returns when a subscription fails (with why), when the
// registry's channels differ from have (nil: a quiet rebuild), or when ctx
// is done.
func (m *Monitor) watchRegistry(ctx context.Context, have []string, failed <-chan error) error {
	t := time.NewTicker(m.cfg.RegistryRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-failed:
			if isClosed(err) && ctx.Err() != nil {
				return nil
			}
			return err
		case <-t.C:
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			p, err := m.plan(rctx)
			cancel()
			if err == nil && !slices.Equal(p.channels, have) {
				return nil
			}
		}
	}
}

func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }

// KeySlot is the cluster slot of a key or shard channel: CRC16 (XMODEM)
// of the key, or of its {hash tag}, modulo 16384.
func KeySlot(key string) int {
	if s := indexByte(key, '{'); s >= 0 {
		if e := indexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc % 16384)
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}
