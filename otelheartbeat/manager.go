package otelheartbeat

import (
	"time"

	"github.com/otel-heartbeat/heartbeat/collectors"
)

// The service fields the original design's services send.
const (
	FieldQueueSize               = "queue_size"
	FieldAPIStatus               = "api_status"
	FieldLastSuccessfulOperation = "last_successful_operation"
	FieldCacheSize               = "cache_size"
	FieldPendingRequests         = "pending_requests"
	FieldActiveGeofences         = "active_geofences"
	FieldPendingEvents           = "pending_events"
)

// Manager is a Publisher with the common service fields as methods, the Go
// form of the original design's ServiceHeartbeatManager. Each Add method may be called
// before or after Start, once per field.
type Manager struct {
	*Publisher
}

// NewManager returns a Manager for serviceName; see NewPublisher.
func NewManager(serviceName string, opts ...Option) (*Manager, error) {
	p, err := NewPublisher(serviceName, opts...)
	if err != nil {
		return nil, err
	}
	return &Manager{Publisher: p}, nil
}

func intCollector(f func() int) collectors.Collector {
	return collectors.Int(func() int64 { return int64(f()) })
}

// AddQueueSizeCollector adds queue_size, the current queue depth.
func (m *Manager) AddQueueSizeCollector(f func() int) error {
	return m.AddDataCollector(FieldQueueSize, intCollector(f))
}

// AddAPIStatusCollector adds api_status, the state of an upstream API
// (e.g. "authenticated").
func (m *Manager) AddAPIStatusCollector(f func() string) error {
	return m.AddDataCollector(FieldAPIStatus, collectors.String(f))
}

// AddLastSuccessfulOperationCollector adds last_successful_operation, the
// time of the last successful operation; a zero time ("never") leaves the
// field out.
func (m *Manager) AddLastSuccessfulOperationCollector(f func() time.Time) error {
	return m.AddDataCollector(FieldLastSuccessfulOperation, collectors.Timestamp(f))
}

// AddCacheSizeCollector adds cache_size, the number of cached entries.
func (m *Manager) AddCacheSizeCollector(f func() int) error {
	return m.AddDataCollector(FieldCacheSize, intCollector(f))
}

// AddPendingRequestsCollector adds pending_requests, the requests waiting
// to be served.
func (m *Manager) AddPendingRequestsCollector(f func() int) error {
	return m.AddDataCollector(FieldPendingRequests, intCollector(f))
}

// AddActiveGeofencesCollector adds active_geofences, the geofences being
// watched.
func (m *Manager) AddActiveGeofencesCollector(f func() int) error {
	return m.AddDataCollector(FieldActiveGeofences, intCollector(f))
}

// AddPendingEventsCollector adds pending_events, the geofence events waiting
// to be processed.
func (m *Manager) AddPendingEventsCollector(f func() int) error {
	return m.AddDataCollector(FieldPendingEvents, intCollector(f))
}
