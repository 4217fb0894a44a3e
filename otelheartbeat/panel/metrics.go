package panel

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
)

// metrics is the panel's view of liveness as OpenTelemetry metrics,
// served to Prometheus on /metrics. Instance series carry service.name and
// service.instance.id (service_name, service_instance_id in Prometheus),
// the attributes the services' own metrics carry, so that a query can
// join liveness with a service's own figures.
type metrics struct {
	provider *sdkmetric.MeterProvider
	handler  http.Handler
}

// instruments are the panel's metrics, observed in one callback.
type instruments struct {
	state, degraded, received, lost, services, minAlive, watching, recording, notes, queued metric.Int64Observable
	age, interval                                                                           metric.Float64Observable
}

// newInstruments registers every instrument on m; the error joins those
// of every one that failed.
func newInstruments(m metric.Meter) (instruments, error) {
	var errs []error
	gauge := func(name, desc string) metric.Int64Observable {
		g, err := m.Int64ObservableGauge(name, metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	counter := func(name, desc string) metric.Int64Observable {
		c, err := m.Int64ObservableCounter(name, metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	seconds := func(name, desc string) metric.Float64Observable {
		g, err := m.Float64ObservableGauge(name, metric.WithUnit("s"), metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	in := instruments{
		state:     gauge("heartbeat.instance.state", "1 for the instance's current liveness state, 0 for the others"),
		degraded:  gauge("heartbeat.instance.degraded", "1 while the instance is up and breaks a health rule (--health-rule), 0 while it keeps to them; absent without rules for its service"),
		age:       seconds("heartbeat.instance.age", "time since the instance's last heartbeat was received"),
		received:  counter("heartbeat.instance.received", "heartbeats of the instance this panel received"),
		lost:      counter("heartbeat.instance.lost", "heartbeats of the instance missing from its heartbeat_count sequence"),
		interval:  seconds("heartbeat.instance.interval", "the interval the instance is judged by"),
		services:  gauge("heartbeat.service.instances", "instances of the service by liveness state"),
		minAlive:  gauge("heartbeat.service.min_alive", "instances that must be up (alive or stale) for the service to be up: --min-alive, 1 unless set"),
		watching:  gauge("heartbeat.panel.watching", "1 while the panel is subscribed and its probes are answered"),
		recording: gauge("heartbeat.panel.recording", "1 while this replica holds the recorder lease"),
		notes: counter("heartbeat.panel.notifications",
			"alert notifications by receiver and result: sent, failed (each attempt), dropped (a bound was reached), fenced (made under a lease this replica lost)"),
		queued: gauge("heartbeat.panel.notifications.queued", "alert notifications waiting to be delivered, by receiver"),
	}
	return in, errors.Join(errs...)
}

func (in instruments) all() []metric.Observable {
	return []metric.Observable{in.state, in.degraded, in.age, in.received, in.lost, in.interval, in.services, in.minAlive,
		in.watching, in.recording, in.notes, in.queued}
}

func newMetrics(p *Panel) (*metrics, error) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		return nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(resource.Empty()))
	meter := mp.Meter("github.com/otel-heartbeat/heartbeat/otelheartbeat/panel")
	in, err := newInstruments(meter)
	if err == nil {
		_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
			in.observe(p, o)
			return nil
		}, in.all()...)
	}
	if err != nil {
		_ = mp.Shutdown(context.Background())
		return nil, err
	}
	return &metrics{provider: mp, handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}, nil
}

// observe reports the panel's state now.
func (in instruments) observe(p *Panel, o metric.Observer) {
	now := time.Now()
	counts := map[string]*watch.Counts{}
	for _, inst := range p.tr.Snapshot() {
		id := []attribute.KeyValue{attribute.String("service.name", inst.Service), attribute.String("service.instance.id", inst.Instance)}
		for st := watch.Alive; st <= watch.Stopped; st++ {
			o.ObserveInt64(in.state, one(st == inst.State), metric.WithAttributes(append(id[:2:2], attribute.String("state", st.String()))...))
		}
		if inst.Health != nil {
			o.ObserveInt64(in.degraded, one(inst.Degraded(p.judged(now))), metric.WithAttributes(id...))
		}
		o.ObserveFloat64(in.age, inst.Age(now).Seconds(), metric.WithAttributes(id...))
		o.ObserveFloat64(in.interval, inst.Interval.Seconds(), metric.WithAttributes(id...))
		o.ObserveInt64(in.received, p.receivedCount(inst.Key), metric.WithAttributes(id...))
		o.ObserveInt64(in.lost, inst.Lost, metric.WithAttributes(id...))
		if counts[inst.Service] == nil {
			counts[inst.Service] = &watch.Counts{}
		}
		counts[inst.Service].Add(inst.State, 1)
	}
	for svc, c := range counts {
		name := attribute.String("service.name", svc)
		for st, n := range map[watch.State]int{watch.Alive: c.Alive, watch.Stale: c.Stale, watch.Dead: c.Dead, watch.Stopped: c.Stopped} {
			o.ObserveInt64(in.services, int64(n), metric.WithAttributes(name, attribute.String("state", st.String())))
		}
		o.ObserveInt64(in.minAlive, int64(p.minAlive(svc)), metric.WithAttributes(name))
	}
	o.ObserveInt64(in.watching, one(p.Watching()))
	o.ObserveInt64(in.recording, one(p.rec.Leading()))
	for _, r := range p.receivers {
		st := r.Stats()
		name := attribute.String("receiver", r.Name())
		for result, n := range map[string]int64{"sent": st.Sent, "failed": st.Failed, "dropped": st.Dropped, "fenced": st.Fenced} {
			o.ObserveInt64(in.notes, n, metric.WithAttributes(name, attribute.String("result", result)))
		}
		o.ObserveInt64(in.queued, st.Queued, metric.WithAttributes(name))
	}
}

func one(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func (m *metrics) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return m.provider.Shutdown(ctx)
}
