package otelheartbeat

import (
	"context"
	"errors"
	"time"
)

// Default service names of the original design's services. OTEL_SERVICE_NAME, when
// set, replaces them.
const (
	TrackerFetcherName = "tracker_fetcher"
	GeocodingName      = "geocoding_service"
	GeofenceName       = "geofence_service"
)

// TrackerFetcher is what the tracker fetcher service exposes to its
// heartbeat. Its methods are called from the heartbeat's goroutines and must
// be safe for concurrent use.
type TrackerFetcher interface {
	QueueSize() int
	LastSuccessfulOperation() time.Time // zero if none yet
	APIStatus() string                  // e.g. "authenticated"
}

// GeocodingService is what the geocoding service exposes to its heartbeat.
// Its methods must be safe for concurrent use.
type GeocodingService interface {
	CacheSize() int
	PendingRequests() int
}

// GeofenceService is what the geofence service exposes to its heartbeat.
// Its methods must be safe for concurrent use.
type GeofenceService interface {
	ActiveGeofences() int
	PendingEvents() int
}

// NewTrackerFetcherHeartbeat returns the tracker fetcher's heartbeat, with
// queue_size, last_successful_operation and api_status. The service name is
// OTEL_SERVICE_NAME, or tracker_fetcher.
func NewTrackerFetcherHeartbeat(svc TrackerFetcher, opts ...Option) (*Manager, error) {
	if svc == nil {
		return nil, errors.New("otelheartbeat: NewTrackerFetcherHeartbeat: service is nil")
	}
	m, err := NewManager(defaultName(TrackerFetcherName, opts), opts...)
	if err != nil {
		return nil, err
	}
	return m.with(
		m.AddQueueSizeCollector(svc.QueueSize),
		m.AddLastSuccessfulOperationCollector(svc.LastSuccessfulOperation),
		m.AddAPIStatusCollector(svc.APIStatus),
	)
}

// NewGeocodingHeartbeat returns the geocoding service's heartbeat, with
// cache_size and pending_requests. The service name is OTEL_SERVICE_NAME, or
// geocoding_service.
func NewGeocodingHeartbeat(svc GeocodingService, opts ...Option) (*Manager, error) {
	if svc == nil {
		return nil, errors.New("otelheartbeat: NewGeocodingHeartbeat: service is nil")
	}
	m, err := NewManager(defaultName(GeocodingName, opts), opts...)
	if err != nil {
		return nil, err
	}
	return m.with(
		m.AddCacheSizeCollector(svc.CacheSize),
		m.AddPendingRequestsCollector(svc.PendingRequests),
	)
}

// NewGeofenceHeartbeat returns the geofence service's heartbeat, with
// active_geofences and pending_events. The service name is
// OTEL_SERVICE_NAME, or geofence_service.
func NewGeofenceHeartbeat(svc GeofenceService, opts ...Option) (*Manager, error) {
	if svc == nil {
		return nil, errors.New("otelheartbeat: NewGeofenceHeartbeat: service is nil")
	}
	m, err := NewManager(defaultName(GeofenceName, opts), opts...)
	if err != nil {
		return nil, err
	}
	return m.with(
		m.AddActiveGeofencesCollector(svc.ActiveGeofences),
		m.AddPendingEventsCollector(svc.PendingEvents),
	)
}

// with returns m, or releases it and returns the errors.
func (m *Manager) with(errs ...error) (*Manager, error) {
	if err := errors.Join(errs...); err != nil {
		_ = m.Stop(context.Background())
		return nil, err
	}
	return m, nil
}
