// Package report sends failures to the OpenTelemetry error handler once per
// episode rather than once per heartbeat: a collector that fails on every
// beat, or a Valkey that refuses one command for hours, yields one line when
// it starts failing and nothing more until it has recovered and failed again.
package report

import (
	"sync"

	"go.opentelemetry.io/otel"
)

// maxKeys bounds the memory a Reporter can hold if keys are unbounded.
const maxKeys = 1024

// Reporter tracks which failures are ongoing. The zero value reports to
// otel.Handle. It is safe for concurrent use.
type Reporter struct {
	// Handle receives each reported error; otel.Handle when nil.
	Handle func(error)

	mu     sync.Mutex
	active map[string]struct{}
}

// Fail reports err unless the failure named key is already ongoing.
func (r *Reporter) Fail(key string, err error) {
	r.mu.Lock()
	if r.active == nil {
		r.active = make(map[string]struct{})
	}
	_, ongoing := r.active[key]
	if !ongoing && len(r.active) < maxKeys {
		r.active[key] = struct{}{}
	}
	r.mu.Unlock()
	if ongoing {
		return
	}
	r.handle(err)
}

func (r *Reporter) handle(err error) {
	if r.Handle != nil {
		r.Handle(err)
		return
	}
	otel.Handle(err)
}

// Resolve ends the failure named key, as OK does, and reports said if it
// was ongoing: for a failure whose end must be said, so that the last
// line about it is not the failure.
func (r *Reporter) Resolve(key string, said error) {
	r.mu.Lock()
	_, ongoing := r.active[key]
	delete(r.active, key)
	r.mu.Unlock()
	if ongoing {
		r.handle(said)
	}
}

// OK ends the failure named key, so that the next one is reported again.
func (r *Reporter) OK(key string) {
	r.mu.Lock()
	delete(r.active, key)
	r.mu.Unlock()
}

// Failing reports whether the failure named key is ongoing.
func (r *Reporter) Failing(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.active[key]
	return ok
}
