package valkeyautoexport

import (
	"context"
	"fmt"
	"sync"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/otel-heartbeat/heartbeat/valkeyexporter"
)

// Name is the OTEL_METRICS_EXPORTER value that selects the heartbeat exporter.
const Name = "valkey"

var (
	once    sync.Once
	onceErr error
)

// Register adds the "valkey" metric reader to autoexport. It is safe to call
// more than once and from several goroutines; it returns an error, rather
// than autoexport's panic, when another package registered "valkey" first.
func Register() error {
	once.Do(func() {
		defer func() {
			if r := recover(); r != nil {
				onceErr = fmt.Errorf("valkeyautoexport: registering %q: %v", Name, r)
			}
		}()
		autoexport.RegisterMetricReader(Name, newReader)
	})
	return onceErr
}

func newReader(context.Context) (sdkmetric.Reader, error) {
	exp, err := valkeyexporter.New()
	if err != nil {
		return nil, err
	}
	return valkeyexporter.NewReader(exp), nil
}
