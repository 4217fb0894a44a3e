// Package balance spreads requests over the alive instances of a service,
// as their heartbeats describe them: where each serves (instance_address)
// and how loaded it says it is (a numeric service field such as
// pending_requests). It is the client side of the seed's "use heartbeat
// data for service discovery", built on watch.Tracker.Alive only, so an
// instance that goes stale or stops leaves the choice at once.
package balance

import (
	"errors"
	"fmt"
	"sync"

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

// Picker picks instances of one service. It is safe for concurrent use.
type Picker struct {
	alive     func(service string) []watch.Instance
	service   string
	loadField string

	mu       sync.Mutex
	inflight map[string]int // requests picked and not Done, by instance id
	next     uint64         // rotates ties
}

// New returns a picker of the instances of service that tracker holds
// alive. The tracker must keep heartbeats (watch.WithHeartbeats), since
// the address and the load are read from them. loadField names a numeric
// service field; an instance that does not send it counts as unloaded.
func New(tracker *watch.Tracker, service, loadField string) (*Picker, error) {
	if tracker == nil {
		return nil, errors.New("balance: the tracker is nil")
	}
	if err := wire.ValidateServiceName(service); err != nil {
		return nil, fmt.Errorf("balance: %w", err)
	}
	return &Picker{alive: tracker.Alive, service: service, loadField: loadField, inflight: make(map[string]int)}, nil
}

// Pick returns the least loaded alive instance, leaving out the instance
// ids in exclude (those a request just failed on). Its load is the value
// of the load field in its last heartbeat plus the requests in flight to
// it from this picker, which corrects a report up to one interval old;
// ties are taken in turn. Call Done when the request ends.
func (p *Picker) Pick(exclude ...string) (Target, error) {
	instances := p.alive(p.service)
	p.mu.Lock()
	defer p.mu.Unlock()
	var best []Target
	for _, in := range instances {
		if in.Heartbeat == nil || in.Heartbeat.InstanceAddress == "" || contains(exclude, in.Instance) {
			continue
		}
		load := float64(p.inflight[in.Instance])
		if v, ok := in.Heartbeat.Field(p.loadField); ok {
			switch v.Kind {
			case wire.KindInt:
				load += float64(v.Int)
			case wire.KindFloat:
				load += v.Float
			}
		}
		t := Target{Instance: in.Instance, Address: in.Heartbeat.InstanceAddress, Load: load}
		switch {
		case len(best) == 0 || load < best[0].Load:
			best = append(best[:0], t)
		case load == best[0].Load:
			best = append(best, t)
		}
	}
	if len(best) == 0 {
		return Target{}, ErrNoInstance
	}
	t := best[p.next%uint64(len(best))]
	p.next++
	p.inflight[t.Instance]++
	return t, nil
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
