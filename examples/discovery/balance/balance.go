// Package balance spreads requests over the alive instances of a service,
// as their heartbeats describe them: where each serves (instance_address)
// and how loaded it says it is (a numeric service field such as
// pending_requests). It is the client side of the original design's "use heartbeat
// data for service discovery", built on watch.Tracker.Alive only, so an
// instance that goes stale or stops leaves the choice at once.
package balance

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// ErrNoInstance is returned by Pick when no alive instance of the service
// advertises an address (or every one was excluded).
var ErrNoInstance = errors.New("balance: no alive instance with an address")

// Target is one pick: an instance and where to send its request.
type Target struct {
	Instance string
	Address  string
	// Load is what the pick was made on: the instance's reported load
	// plus the requests this picker had in flight to it.
	Load float64
}

// DefaultCooldown is how long an instance a request failed on is set
// aside, unless it is the only one left.
const DefaultCooldown = 5 * time.Second

// Picker picks instances of one service. It is safe for concurrent use.
type Picker struct {
	alive     func(service string) []watch.Instance
	service   string
	loadField string
	cooldown  time.Duration
	now       func() time.Time

	mu       sync.Mutex
	inflight map[string]int       // requests picked and not Done, by instance id
	failed   map[string]time.Time // set aside until, by instance id
	next     uint64               // rotates ties
}

// New returns a picker of the instances of service that tracker holds
// alive. The tracker must keep heartbeats (watch.WithHeartbeats), since
// the address and the load are read from them. loadField names a numeric
// service field, or cpu_usage_percent or memory_usage_mb; an instance that
// does not send it counts as unloaded.
func New(tracker *watch.Tracker, service, loadField string) (*Picker, error) {
	if tracker == nil {
		return nil, errors.New("balance: the tracker is nil")
	}
	if err := wire.ValidateServiceName(service); err != nil {
		return nil, fmt.Errorf("balance: %w", err)
	}
	if loadField != wire.KeyCPUUsagePercent && loadField != wire.KeyMemoryUsageMB {
		if err := wire.ValidateFieldName(loadField); err != nil {
			return nil, fmt.Errorf("balance: load field: %w", err)
		}
	}
	return &Picker{alive: tracker.Alive, service: service, loadField: loadField, cooldown: DefaultCooldown, now: time.Now,
		inflight: make(map[string]int), failed: make(map[string]time.Time)}, nil
}

// load reads an instance's reported load. A negative, infinite or NaN
// figure counts as unloaded: a heartbeat must not be able to claim less
// than nothing and draw every request.
func (p *Picker) load(m *wire.Message) float64 {
	var v float64
	switch p.loadField {
	case wire.KeyCPUUsagePercent:
		if m.Has&wire.HasCPU != 0 {
			v = m.CPUUsagePercent
		}
	case wire.KeyMemoryUsageMB:
		if m.Has&wire.HasMemory != 0 {
			v = m.MemoryUsageMB
		}
	default:
		if f, ok := m.Field(p.loadField); ok {
			switch f.Kind {
			case wire.KindInt:
				v = float64(f.Int)
			case wire.KindFloat:
				v = f.Float
			}
		}
	}
	if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// Pick returns the least loaded alive instance, leaving out the instance
// ids in exclude (those this request already failed on) and, while any
// other is left, those set aside by Fail. Its load is the value of the
// load field in its last heartbeat plus the requests in flight to it from
// this picker, which corrects a report up to one interval old; ties are
// taken in turn. Call Done when the request ends.
func (p *Picker) Pick(exclude ...string) (Target, error) {
	instances := p.alive(p.service)
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	t, ok := p.pick(instances, exclude, now, true)
	if !ok {
		// Every candidate was set aside: try them rather than nothing.
		t, ok = p.pick(instances, exclude, now, false)
	}
	if !ok {
		return Target{}, ErrNoInstance
	}
	p.inflight[t.Instance]++
	return t, nil
}

func (p *Picker) pick(instances []watch.Instance, exclude []string, now time.Time, skipFailed bool) (Target, bool) {
	var best []Target
	for _, in := range instances {
		hb := in.Heartbeat()
		if hb == nil || hb.InstanceAddress == "" || contains(exclude, in.Instance) {
			continue
		}
		if until, ok := p.failed[in.Instance]; ok {
			if !now.Before(until) {
				delete(p.failed, in.Instance)
			} else if skipFailed {
				continue
			}
		}
		load := float64(p.inflight[in.Instance]) + p.load(hb)
		t := Target{Instance: in.Instance, Address: hb.InstanceAddress, Load: load}
		switch {
		case len(best) == 0 || load < best[0].Load:
			best = append(best[:0], t)
		case load == best[0].Load:
			best = append(best, t)
		}
	}
	if len(best) == 0 {
		return Target{}, false
	}
	t := best[p.next%uint64(len(best))]
	p.next++
	return t, true
}

// Fail sets an instance aside for the cooldown (DefaultCooldown) after a
// request failed on it: one that accepts connections and never answers,
// or advertises a closed port, must not take the first try of every
// request until the watcher judges it. At most as many are remembered as
// the service has instances.
func (p *Picker) Fail(t Target) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.failed) >= 10_000 {
		now := p.now()
		for id, until := range p.failed {
			if !now.Before(until) {
				delete(p.failed, id)
			}
		}
		if len(p.failed) >= 10_000 {
			return
		}
	}
	p.failed[t.Instance] = p.now().Add(p.cooldown)
}

// Done ends a request picked by Pick.
func (p *Picker) Done(t Target) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := p.inflight[t.Instance]; n <= 1 {
		delete(p.inflight, t.Instance)
	} else {
		p.inflight[t.Instance] = n - 1
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
