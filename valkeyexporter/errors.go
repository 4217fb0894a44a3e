package valkeyexporter

import (
	"errors"
	"fmt"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// ErrShutdown is returned by Export and Shutdown after Shutdown. It matches
// sdkmetric.ErrExporterShutdown with errors.Is.
var ErrShutdown = fmt.Errorf("valkeyexporter: %w", sdkmetric.ErrExporterShutdown)

// ErrNoServiceName is returned by Export when the Resource has no
// service.name, or only the SDK's unknown_service default: a heartbeat that
// no admin panel can attribute is worth nothing. Set OTEL_SERVICE_NAME or
// the resource's service.name.
var ErrNoServiceName = errors.New("valkeyexporter: the resource has no service.name (set it on the MeterProvider's Resource or with OTEL_SERVICE_NAME, or pass a name to otelheartbeat.NewReader or WithServiceName)")

// ErrNoHeartbeatInstruments is returned by Export for a collection that
// holds no instrument of the heartbeat scope: the heartbeat gauges are
// registered on another MeterProvider than the one this exporter's reader
// was added to, or not at all. Such a heartbeat would say nothing but its
// count, so it is not sent.
var ErrNoHeartbeatInstruments = errors.New("valkeyexporter: the collection holds no heartbeat instruments: " +
	"register them (otelheartbeat.NewPublisher with WithMeterProvider) on the MeterProvider the heartbeat reader was added to with sdkmetric.WithReader")

// ErrBadIdentity is returned by Export when the Resource's service.name or
// service.instance.id cannot be used in a channel or key name.
var ErrBadIdentity = errors.New("valkeyexporter: the resource's identity cannot be published")
