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
var ErrNoServiceName = errors.New("valkeyexporter: the resource has no service.name (set OTEL_SERVICE_NAME)")
