package valkeyexporter

import (
	"context"
	"os"
	"sync"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// defaultExportTimeout is the SDK's default for OTEL_METRIC_EXPORT_TIMEOUT.
const defaultExportTimeout = 30 * time.Second

// Reader is the heartbeat's periodic reader: an sdkmetric.PeriodicReader
// that collects at the exporter's interval and whose Shutdown sends the
// final heartbeat with status "stopping". Add it to a MeterProvider with
// sdkmetric.WithReader. Its methods are safe for concurrent use.
type Reader struct {
	*sdkmetric.PeriodicReader
	exporter *Exporter
	once     sync.Once
}

var _ sdkmetric.Reader = (*Reader)(nil)

// NewReader returns a Reader over exp. It collects every exp.Interval(),
// whatever OTEL_METRIC_EXPORT_INTERVAL says (that variable is for the
// service's other readers). The export timeout is OTEL_METRIC_EXPORT_TIMEOUT
// when set, else the smaller of 30 s and the interval, so that a stalled
// Valkey cannot hold one export past the next heartbeat. opts may set
// another timeout or add producers; an interval among them is overridden.
func NewReader(exp *Exporter, opts ...sdkmetric.PeriodicReaderOption) *Reader {
	all := make([]sdkmetric.PeriodicReaderOption, 0, len(opts)+2)
	if os.Getenv("OTEL_METRIC_EXPORT_TIMEOUT") == "" {
		all = append(all, sdkmetric.WithTimeout(min(defaultExportTimeout, exp.Interval())))
	}
	all = append(all, opts...)
	all = append(all, sdkmetric.WithInterval(exp.Interval()))
	return &Reader{
		PeriodicReader: sdkmetric.NewPeriodicReader(exp, all...),
		exporter:       exp,
	}
}

// Exporter returns the reader's exporter.
func (r *Reader) Exporter() *Exporter { return r.exporter }

// Shutdown collects and exports the final heartbeat, with status
// "stopping" and the latest-state key deleted, then shuts the exporter down.
// It returns before ctx is done, even when Valkey is unreachable. Later
// calls return nil, so that a MeterProvider shutting down a reader that a
// Publisher already stopped does not report an error.
func (r *Reader) Shutdown(ctx context.Context) error {
	var err error
	r.once.Do(func() {
		r.exporter.markStopping()
		err = r.PeriodicReader.Shutdown(context.WithValue(ctx, finalExport{}, true))
	})
	return err
}

// finalExport marks the context of the collection Shutdown makes, so that
// the exporter can tell it from a periodic one that Shutdown cut short.
type finalExport struct{}
