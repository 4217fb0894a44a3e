package panel

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
)

// metrics is the panel's view of liveness as OpenTelemetry metrics,
// served to Prometheus on /metrics. Instance series carry service.name and
// service.instance.id (service_name, service_instance_id in Prometheus),
// the attributes the services' own metrics carry, so that a query can
// join liveness with a service's own figures.
type metrics struct {
	provider   *sdkmetric.MeterProvider
	handler    http.Handler
	beatsSwept atomic.Int64
}

var states = []string{"alive", "stale", "dead", "stopped"}

func newMetrics(p *Panel) (*metrics, error) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		return nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(resource.Empty()))
	m := mp.Meter("github.com/otel-heartbeat/heartbeat/examples/adminpanel")
	state, err1 := m.Int64ObservableGauge("heartbeat.instance.state",
		metric.WithDescription("1 for the instance's current liveness state, 0 for the others"))
	age, err2 := m.Float64ObservableGauge("heartbeat.instance.age", metric.WithUnit("s"),
		metric.WithDescription("time since the instance's last heartbeat was received"))
	received, err3 := m.Int64ObservableCounter("heartbeat.instance.received",
		metric.WithDescription("heartbeats of the instance this panel received"))
	lost, err4 := m.Int64ObservableCounter("heartbeat.instance.lost",
		metric.WithDescription("heartbeats of the instance missing from its heartbeat_count sequence"))
	interval, err5 := m.Float64ObservableGauge("heartbeat.instance.interval", metric.WithUnit("s"),
		metric.WithDescription("the interval the instance is judged by"))
	services, err6 := m.Int64ObservableGauge("heartbeat.service.instances",
		metric.WithDescription("instances of the service by liveness state"))
	minAlive, err11 := m.Int64ObservableGauge("heartbeat.service.min_alive",
		metric.WithDescription("instances that must be up (alive or stale) for the service to be up: --min-alive, 1 unless set"))
	watching, err7 := m.Int64ObservableGauge("heartbeat.panel.watching",
		metric.WithDescription("1 while the panel is subscribed and its probes are answered"))
	recording, err8 := m.Int64ObservableGauge("heartbeat.panel.recording",
		metric.WithDescription("1 while this replica holds the recorder lease"))
	notes, err9 := m.Int64ObservableCounter("heartbeat.panel.notifications",
		metric.WithDescription("alert notifications by receiver and result: sent, failed (each attempt), dropped (a bound was reached), fenced (made under a lease this replica lost)"))
	queued, err10 := m.Int64ObservableGauge("heartbeat.panel.notifications.queued",
		metric.WithDescription("alert notifications waiting to be delivered, by receiver"))
	for _, err := range []error{err1, err2, err3, err4, err5, err6, err7, err8, err9, err10, err11} {
		if err != nil {
			_ = mp.Shutdown(context.Background())
			return nil, err
		}
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		now := time.Now()
		counts := map[string]map[string]int64{}
		for _, in := range p.tr.Snapshot() {
			id := []attribute.KeyValue{attribute.String("service.name", in.Service), attribute.String("service.instance.id", in.Instance)}
			cur := in.State.String()
			for _, s := range states {
				v := int64(0)
				if s == cur {
					v = 1
				}
				o.ObserveInt64(state, v, metric.WithAttributes(append(id[:2:2], attribute.String("state", s))...))
			}
			o.ObserveFloat64(age, in.Age(now).Seconds(), metric.WithAttributes(id...))
			o.ObserveFloat64(interval, in.Interval.Seconds(), metric.WithAttributes(id...))
			o.ObserveInt64(received, p.receivedCount(in.Key), metric.WithAttributes(id...))
			o.ObserveInt64(lost, in.Lost, metric.WithAttributes(id...))
			if counts[in.Service] == nil {
				counts[in.Service] = map[string]int64{}
			}
			counts[in.Service][cur]++
		}
		for svc, c := range counts {
			for _, s := range states {
				o.ObserveInt64(services, c[s], metric.WithAttributes(attribute.String("service.name", svc), attribute.String("state", s)))
			}
			o.ObserveInt64(minAlive, int64(p.minAlive(svc)), metric.WithAttributes(attribute.String("service.name", svc)))
		}
		b := func(v bool) int64 {
			if v {
				return 1
			}
			return 0
		}
		o.ObserveInt64(watching, b(p.Watching()))
		o.ObserveInt64(recording, b(p.rec.Leading()))
		for _, r := range p.cfg.Receivers {
			st := r.Stats()
			name := attribute.String("receiver", r.Name())
			o.ObserveInt64(notes, st.Sent, metric.WithAttributes(name, attribute.String("result", "sent")))
			o.ObserveInt64(notes, st.Failed, metric.WithAttributes(name, attribute.String("result", "failed")))
			o.ObserveInt64(notes, st.Dropped, metric.WithAttributes(name, attribute.String("result", "dropped")))
			o.ObserveInt64(notes, st.Fenced, metric.WithAttributes(name, attribute.String("result", "fenced")))
			o.ObserveInt64(queued, st.Queued, metric.WithAttributes(name))
		}
		return nil
	}, state, age, received, lost, interval, services, minAlive, watching, recording, notes, queued)
	if err != nil {
		_ = mp.Shutdown(context.Background())
		return nil, err
	}
	return &metrics{provider: mp, handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}, nil
}

func (m *metrics) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return m.provider.Shutdown(ctx)
}
