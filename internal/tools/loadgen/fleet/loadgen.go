// Package fleet publishes heartbeats in the documented format for many
// simulated instances, for measuring monitors and servers at fleet scale.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// Config describes the simulated fleet.
type Config struct {
	Services    int                  // number of services
	Instances   int                  // instances in all, spread over the services
	Interval    time.Duration        // each instance's heartbeat interval
	Connections int                  // pipelines in parallel; default 4
	Batch       int                  // commands per pipeline round trip; default 500
	LatestState bool                 // also SET the latest-state keys
	Channel     wire.ChannelTemplate // the zero template is the default
	KeyPrefix   string
}

// Fleet holds the simulated instances.
type Fleet struct {
	cfg       Config
	instances []instance
}

type instance struct {
	service, id  string
	channel, key string
	count        int64
	started      time.Time
}

// New makes a fleet of instances with random UUIDs.
func New(cfg Config) (*Fleet, error) {
	if cfg.Services <= 0 || cfg.Instances <= 0 || cfg.Services > cfg.Instances {
		return nil, fmt.Errorf("loadgen: want 1 <= services (%d) <= instances (%d)", cfg.Services, cfg.Instances)
	}
	if cfg.Interval <= 0 {
		return nil, errors.New("loadgen: interval must be positive")
	}
	if cfg.Connections <= 0 {
		cfg.Connections = 4
	}
	// A connection without an instance of its own would have nothing to
	// publish, and its worker would spin.
	cfg.Connections = min(cfg.Connections, cfg.Instances)
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = wire.DefaultKeyPrefix
	}
	f := &Fleet{cfg: cfg, instances: make([]instance, cfg.Instances)}
	now := time.Now()
	for i := range f.instances {
		svc := fmt.Sprintf("service_%03d", i%cfg.Services)
		id := uuid.NewString()
		f.instances[i] = instance{
			service: svc, id: id,
			channel: cfg.Channel.Channel(svc),
			key:     wire.Key(cfg.KeyPrefix, svc, id),
			started: now.Add(-time.Duration(i%3600) * time.Second),
		}
	}
	return f, nil
}

// Services returns the channel of every service.
func (f *Fleet) Services() []string {
	seen := map[string]bool{}
	var out []string
	for _, in := range f.instances {
		if !seen[in.channel] {
			seen[in.channel] = true
			out = append(out, in.channel)
		}
	}
	return out
}

// Len returns the number of instances.
func (f *Fleet) Len() int { return len(f.instances) }

// Round publishes one heartbeat of every instance as fast as the
// connections allow and returns how many were sent.
func (f *Fleet) Round(ctx context.Context, c redis.UniversalClient) (int, error) {
	return f.send(ctx, c, 0)
}

// Run publishes at the configured interval, each instance once per
// interval, spread evenly, until ctx is done; it returns the heartbeats
// sent, and the first error. A batch that fails (a Valkey that stalls past
// the client's timeout, a restart) is skipped, as a fleet's publishers
// would skip a heartbeat, and publishing goes on: a worker that stopped at
// its first error would silence its share of the fleet for good.
func (f *Fleet) Run(ctx context.Context, c redis.UniversalClient) (int, error) {
	return f.send(ctx, c, f.cfg.Interval)
}

func (f *Fleet) send(ctx context.Context, c redis.UniversalClient, pace time.Duration) (int, error) {
	conns := f.cfg.Connections
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		sent  int
		first error
	)
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			n, err := f.worker(ctx, c, w, pace)
			mu.Lock()
			sent += n
			if err != nil && first == nil {
				first = err
			}
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	return sent, first
}

// worker publishes the instances i with i%conns == w.
func (f *Fleet) worker(ctx context.Context, c redis.UniversalClient, w int, pace time.Duration) (int, error) {
	conns, batch := f.cfg.Connections, f.cfg.Batch
	mine := (len(f.instances) - w + conns - 1) / conns
	var tick *time.Ticker
	if pace > 0 {
		// One batch per tick so that each instance beats once per interval.
		batches := max(1, (mine+batch-1)/batch)
		tick = time.NewTicker(max(pace/time.Duration(batches), time.Millisecond))
		defer tick.Stop()
	}
	var bufs [][]byte
	var firstErr error
	sent := 0
	for {
		for start := w; start < len(f.instances); start += conns * batch {
			if tick != nil {
				select {
				case <-tick.C:
				case <-ctx.Done():
					return sent, firstErr
				}
			} else if ctx.Err() != nil {
				return sent, ctx.Err()
			}
			p := c.Pipeline()
			bufs = bufs[:0]
			n := 0
			for i := start; i < len(f.instances) && n < batch; i += conns {
				in := &f.instances[i]
				b, err := f.next(i, nil)
				if err != nil {
					return sent, err
				}
				bufs = append(bufs, b)
				p.Publish(ctx, in.channel, b)
				if f.cfg.LatestState {
					p.Set(ctx, in.key, b, 3*f.cfg.Interval)
				}
				n++
			}
			if _, err := p.Exec(ctx); err != nil {
				if tick == nil {
					return sent, err
				}
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			sent += n
		}
		if tick == nil {
			return sent, nil
		}
	}
}

// Prepared is one encoded heartbeat, ready to publish.
type Prepared struct {
	Channel string
	Payload []byte
}

// Prepare encodes one heartbeat of every instance, for a publisher whose
// own cost must stay out of a measurement.
func (f *Fleet) Prepare() ([]Prepared, error) {
	out := make([]Prepared, len(f.instances))
	for i := range f.instances {
		b, err := f.next(i, make([]byte, 0, 400))
		if err != nil {
			return nil, err
		}
		out[i] = Prepared{Channel: f.instances[i].channel, Payload: b}
	}
	return out, nil
}

// PublishPrepared publishes msgs over the fleet's connections, pipelined.
func (f *Fleet) PublishPrepared(ctx context.Context, c redis.UniversalClient, msgs []Prepared) error {
	return f.publishPrepared(ctx, c, msgs, false)
}

// SPublishPrepared is PublishPrepared with SPUBLISH, for sharded pub/sub.
func (f *Fleet) SPublishPrepared(ctx context.Context, c redis.UniversalClient, msgs []Prepared) error {
	return f.publishPrepared(ctx, c, msgs, true)
}

func (f *Fleet) publishPrepared(ctx context.Context, c redis.UniversalClient, msgs []Prepared, sharded bool) error {
	conns, batch := f.cfg.Connections, f.cfg.Batch
	errs := make(chan error, conns)
	for w := 0; w < conns; w++ {
		go func(w int) {
			for start := w * batch; start < len(msgs); start += conns * batch {
				p := c.Pipeline()
				for _, m := range msgs[start:min(start+batch, len(msgs))] {
					if sharded {
						p.SPublish(ctx, m.Channel, m.Payload)
					} else {
						p.Publish(ctx, m.Channel, m.Payload)
					}
				}
				if _, err := p.Exec(ctx); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}(w)
	}
	var first error
	for w := 0; w < conns; w++ {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// next appends instance i's next heartbeat to dst.
func (f *Fleet) next(i int, dst []byte) ([]byte, error) {
	in := &f.instances[i]
	in.count++
	return wire.AppendJSON(dst, &wire.Message{
		ServiceName: in.service, InstanceID: in.id, Timestamp: time.Now(),
		UptimeSeconds: time.Since(in.started).Seconds(), HeartbeatCount: in.count,
		MemoryUsageMB: 156.3, CPUUsagePercent: 12.5, IntervalSeconds: f.cfg.Interval.Seconds(),
		Status: wire.StatusRunning,
		Has:    wire.HasUptime | wire.HasHeartbeatCount | wire.HasMemory | wire.HasCPU | wire.HasInterval,
		Fields: []wire.Field{{Key: "queue_size", Value: wire.Int(int64(i % 2000))}},
	})
}
