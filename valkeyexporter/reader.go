package valkeyexporter

import (
	"context"
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
// service's other readers), and gives each export exp.ExportTimeout(). opts
// may set another timeout or add producers; an interval among them is
// overridden.
func NewReader(exp *Exporter, opts ...sdkmetric.PeriodicReaderOption) *Reader {
	all := make([]sdkmetric.PeriodicReaderOption, 0, len(opts)+2)
	all = append(all, sdkmetric.WithTimeout(exp.ExportTimeout()))
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
