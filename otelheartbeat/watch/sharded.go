package watch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
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
		if names, err = m.cfg.Client.SMembers(ctx, wire.DefaultRegistryKey).Result(); err != nil {
			return p, fmt.Errorf("SMEMBERS %s: %w", wire.DefaultRegistryKey, err)
		}
	}
	for _, n := range names {
		if wire.ValidateServiceName(n) == nil {
			p.channels = append(p.channels, m.cfg.Channel.Channel(n))
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

// shards is one sharded session's connections, by node address.
type shards struct {
	m      *Monitor
	ctx    context.Context
	out    *pipe
	opts   subscriberOptions
	conns  map[string]*shardConn
	have   map[string]bool // channels subscribed
	idle   *probe          // while there is no connection
	failed chan error
	wg     sync.WaitGroup
}

type shardConn struct {
	sub   *subscriber
	probe *probe
}

// shardSession keeps one SSUBSCRIBE connection on every node that owns a
// registered service's channel. A service new in the registry is added to
// the connection of its node (or a new one), so the others go on
// undisturbed; everything is rebuilt only when a connection fails or a
// slot moves (the error says which), and that is reported as a
// disconnection.
func (m *Monitor) shardSession(ctx context.Context, out *pipe, subscribed func() bool) error {
	p, err := m.plan(ctx)
	if err != nil {
		return err
	}
	sh := &shards{m: m, ctx: ctx, out: out, opts: p.opts, conns: map[string]*shardConn{},
		have: map[string]bool{}, failed: make(chan error, 1)}
	defer sh.close()
	if err := sh.add(p); err != nil {
		return err
	}
	if !subscribed() {
		return nil
	}
	// With nothing subscribed, reading the registry is the only way to see
	// Valkey answer: it is read at the probe's pace then, and what is seen
	// stands still while it does not answer. With connections, their
	// probes say it, and the registry is read for new services only.
	t := time.NewTicker(min(m.cfg.Probe, m.cfg.RegistryRefresh))
	defer t.Stop()
	read := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-sh.failed:
			return err
		case now := <-t.C:
			if sh.idle == nil && now.Sub(read) < m.cfg.RegistryRefresh {
				continue
			}
			read = now
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			p, err := m.plan(rctx)
			cancel()
			if err != nil {
				continue // the registry is read again at the next refresh
			}
			if err := sh.add(p); err != nil {
				return err
			}
			if sh.idle != nil {
				sh.idle.registryRead(now)
			}
		}
	}
}

// add subscribes the channels of p not subscribed yet: on the connection
// to their node when there is one, else on a new one.
func (sh *shards) add(p shardPlan) error {
	for addr, chans := range p.nodes {
		var fresh []string
		for _, ch := range chans {
			if !sh.have[ch] {
				fresh = append(fresh, ch)
			}
		}
		if len(fresh) == 0 {
			continue
		}
		if c, ok := sh.conns[addr]; ok {
			if err := c.sub.subscribe("SSUBSCRIBE", fresh...); err != nil {
				return fmt.Errorf("node %s: SSUBSCRIBE: %w", addr, err)
			}
		} else {
			o := sh.opts
			o.addr = addr
			from := time.Now()
			sub, err := dialSubscriber(sh.ctx, o, "SSUBSCRIBE", fresh...)
			if err != nil {
				return fmt.Errorf("node %s: %w", addr, err)
			}
			c := &shardConn{sub: sub, probe: sh.m.sight.newProbe(from, sub.ping)}
			sh.conns[addr] = c
			sh.wg.Add(1)
			go func() {
				defer sh.wg.Done()
				err := sh.m.read(sh.ctx, sub, c.probe, newDecodeState(), "smessage", sh.out)
				select {
				case sh.failed <- err:
				default: // one failure is enough to rebuild
				}
			}()
		}
		for _, ch := range fresh {
			sh.have[ch] = true
		}
	}
	switch {
	case len(sh.conns) == 0 && sh.idle == nil:
		sh.idle = sh.m.sight.nothingToWatch(time.Now())
	case len(sh.conns) > 0 && sh.idle != nil:
		sh.m.sight.drop(sh.idle)
		sh.idle = nil
	}
	return nil
}

// close ends every connection and waits for its reader.
func (sh *shards) close() {
	for _, c := range sh.conns {
		_ = c.sub.close()
	}
	sh.wg.Wait()
	for _, c := range sh.conns {
		sh.m.sight.drop(c.probe)
	}
	if sh.idle != nil {
		sh.m.sight.drop(sh.idle)
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
