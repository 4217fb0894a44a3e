package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/otel-heartbeat/heartbeat/collectors"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch/term"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
	"github.com/otel-heartbeat/heartbeat/valkeyexporter"
)

func (c *checker) publisherOptions() []otelheartbeat.Option {
	return []otelheartbeat.Option{otelheartbeat.WithInterval(c.interval)}
}

// lifecycle starts p, checks its first two heartbeats and its stop, and
// calls fields on the first heartbeat for the mode's own checks.
func (c *checker) lifecycle(mode string, p *otelheartbeat.Publisher, fields func(*wire.Message)) {
	w, ok := c.watch(mode, p.ServiceName())
	if !ok {
		return
	}
	defer w.close()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	started := time.Now()
	if err := p.Start(ctx); err != nil {
		c.fail(mode, "Start: %v", err)
		return
	}
	defer p.Stop(context.Background())

	raw, at, err := w.next(c.timeout)
	if err != nil {
		c.fail(mode, "first heartbeat: %v%s", err, c.reportedReason("PUBLISH"))
		return
	}
	if d := at.Sub(started); d < c.interval {
		c.pass(mode, "first heartbeat %v after Start, not one interval later", d.Round(time.Millisecond))
	} else {
		c.fail(mode, "first heartbeat %v after Start; want it at once", d.Round(time.Millisecond))
	}
	m := c.checkMessage(mode, raw, p.ServiceName(), 1, wire.StatusRunning)
	if m == nil {
		return
	}
	c.checkLatest(mode, m, raw)
	if fields != nil {
		fields(m)
	}

	raw, at2, err := w.next(c.interval + c.timeout)
	if err == nil {
		var m2 *wire.Message
		if m2, err = wire.Unmarshal([]byte(raw)); err == nil && m2.HeartbeatCount != 2 {
			err = fmt.Errorf("heartbeat_count %d, want 2", m2.HeartbeatCount)
		}
	}
	if err == nil {
		if gap := at2.Sub(at); gap > c.interval*3/2 {
			err = fmt.Errorf("came %v after the first; the interval is %v", gap.Round(time.Millisecond), c.interval)
		}
	}
	c.check(mode, "second heartbeat one interval later", err)

	stopCtx, cancelStop := context.WithTimeout(context.Background(), c.timeout)
	defer cancelStop()
	if err := p.Stop(stopCtx); err != nil {
		c.fail(mode, "Stop: %v", err)
		return
	}
	raw, _, err = w.next(c.timeout)
	if err == nil {
		var final *wire.Message
		if final, err = wire.Unmarshal([]byte(raw)); err == nil && final.Status != wire.StatusStopping {
			err = fmt.Errorf("status %q, want stopping", final.Status)
		}
	}
	c.check(mode, "final heartbeat says stopping", err)
	c.checkGone(mode, m)
}

func (c *checker) basic() {
	const mode = "basic"
	p, err := otelheartbeat.NewPublisher(c.prefix+"_basic", c.publisherOptions()...)
	if !c.check(mode, "NewPublisher", err) {
		return
	}
	_ = p.AddDataCollector("custom_metric", collectors.Int(func() int64 { return 42 }))
	c.lifecycle(mode, p, func(m *wire.Message) {
		c.fieldIs(mode, m, "custom_metric", "42")
	})
}

func (c *checker) fieldIs(mode string, m *wire.Message, key, want string) {
	v, ok := m.Field(key)
	var err error
	switch {
	case !ok:
		err = errors.New("missing")
	case term.FormatValue(v) != want:
		err = fmt.Errorf("%s, want %s", term.FormatValue(v), want)
	}
	c.check(mode, fmt.Sprintf("%s = %s", key, want), err)
}

var checkTime = time.Date(2025, 1, 16, 8, 29, 45, 123456000, time.UTC)

func (c *checker) manager() {
	const mode = "manager"
	m, err := otelheartbeat.NewManager(c.prefix+"_manager", c.publisherOptions()...)
	if !c.check(mode, "NewManager", err) {
		return
	}
	err = errors.Join(
		m.AddQueueSizeCollector(func() int { return 1380 }),
		m.AddAPIStatusCollector(func() string { return "authenticated" }),
		m.AddLastSuccessfulOperationCollector(func() time.Time { return checkTime }),
		m.AddCacheSizeCollector(func() int { return 512 }),
		m.AddPendingRequestsCollector(func() int { return 3 }),
		m.AddActiveGeofencesCollector(func() int { return 12 }),
		m.AddPendingEventsCollector(func() int { return 0 }),
	)
	if !c.check(mode, "seven common collectors registered", err) {
		return
	}
	c.lifecycle(mode, m.Publisher, func(hb *wire.Message) {
		for _, f := range []struct{ key, want string }{
			{"queue_size", "1380"}, {"api_status", "authenticated"},
			{"last_successful_operation", "2025-01-16T08:29:45.123456+00:00"},
			{"cache_size", "512"}, {"pending_requests", "3"},
			{"active_geofences", "12"}, {"pending_events", "0"},
		} {
			c.fieldIs(mode, hb, f.key, f.want)
		}
	})
}

type fakeTracker struct{}

func (fakeTracker) QueueSize() int                     { return 1380 }
func (fakeTracker) LastSuccessfulOperation() time.Time { return checkTime }
func (fakeTracker) APIStatus() string                  { return "authenticated" }

func (c *checker) tracker() {
	const mode = "tracker"
	m, err := otelheartbeat.NewManager(c.prefix+"_tracker", c.publisherOptions()...)
	if !c.check(mode, "NewManager", err) {
		return
	}
	// What NewTrackerFetcherHeartbeat registers, under the check's name so
	// that the real tracker_fetcher's channel is left alone.
	var svc otelheartbeat.TrackerFetcher = fakeTracker{}
	err = errors.Join(
		m.AddQueueSizeCollector(svc.QueueSize),
		m.AddLastSuccessfulOperationCollector(svc.LastSuccessfulOperation),
		m.AddAPIStatusCollector(svc.APIStatus),
	)
	if !c.check(mode, "tracker fetcher collectors registered", err) {
		return
	}
	c.lifecycle(mode, m.Publisher, func(hb *wire.Message) {
		c.fieldIs(mode, hb, "queue_size", "1380")
		c.fieldIs(mode, hb, "api_status", "authenticated")
		c.fieldIs(mode, hb, "last_successful_operation", "2025-01-16T08:29:45.123456+00:00")
	})
}

// unseenError is a check the monitor could not judge: it was blind or
// disconnected while it waited.
type unseenError struct{ why string }

func (e *unseenError) Error() string { return "cannot tell: " + e.why }

// monitor runs the monitor's engine against a crashed and a stopped
// instance and checks the liveness it reports, by its own timing.
func (c *checker) monitor() {
	const mode = "monitor"
	service := c.prefix + "_monitor"
	mon, err := watch.New(watch.Connection{Client: c.client, Channel: c.channel, KeyPrefix: c.keyPrefix}, watch.WithService(service))
	if !c.check(mode, "monitor engine", err) {
		return
	}
	events := make(chan watch.Event, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = mon.Run(ctx, func(e watch.Event) {
			select {
			case events <- e:
			default:
			}
		})
	}()
	stopped := false
	stopMonitor := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	defer stopMonitor()
	wait := func(what string, timeout time.Duration, match func(watch.Event) bool) (watch.Event, error) {
		deadline := time.After(timeout)
		for {
			select {
			case e := <-events:
				switch {
				case e.Kind == watch.KindDisconnected:
					return e, &unseenError{fmt.Sprintf("%s: the monitor's subscription failed: %v", what, e.Err)}
				case e.Kind == watch.KindBlind:
					return e, &unseenError{fmt.Sprintf("%s: Valkey did not answer the monitor for %v", what, e.Downtime.Round(time.Millisecond))}
				case match(e):
					return e, nil
				}
			case <-deadline:
				return watch.Event{}, fmt.Errorf("%s: nothing within %v", what, timeout)
			}
		}
	}
	// judged records a check's result, or that it could not be judged:
	// then false, and the mode goes no further.
	judged := func(what string, err error) bool {
		var u *unseenError
		if errors.As(err, &u) {
			c.cannotTell(mode, "%s: %s", what, u.why)
			return false
		}
		c.check(mode, what, err)
		return true
	}
	if _, err := wait("subscribe", c.timeout, func(e watch.Event) bool { return e.Kind == watch.KindLoaded }); err != nil {
		judged("PSUBSCRIBE and latest-state keys read", err)
		return
	}
	c.pass(mode, "PSUBSCRIBE and latest-state keys read")

	// A crash: one heartbeat, then silence, with no final heartbeat.
	exp, err := valkeyexporter.New(valkeyexporter.WithServiceName(service), valkeyexporter.WithInterval(c.interval))
	if !c.check(mode, "exporter", err) {
		return
	}
	defer exp.Shutdown(context.Background())
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithResource(resource.Default()))
	defer mp.Shutdown(context.Background())
	proc, err := collectors.NewProcess(collectors.WithMeterProvider(mp))
	if !c.check(mode, "process collector", err) {
		return
	}
	defer proc.Unregister()
	var rm metricdata.ResourceMetrics
	_ = reader.Collect(ctx, &rm)
	ectx, ecancel := context.WithTimeout(ctx, c.timeout)
	err = exp.Export(ectx, &rm)
	ecancel()
	if !c.check(mode, "one heartbeat from an instance about to crash", err) {
		return
	}
	hb, err := wait("heartbeat", c.timeout, func(e watch.Event) bool { return e.Kind == watch.KindHeartbeat })
	if err != nil {
		judged("monitor received it", err)
		return
	}
	c.pass(mode, "monitor received it")
	crashed := watch.Key{Service: service, Instance: hb.Message.InstanceID}
	tolerance := c.interval/2 + 200*time.Millisecond
	for _, step := range []struct {
		to    watch.State
		after time.Duration
	}{{watch.Stale, c.interval * 3 / 2}, {watch.Dead, 3 * c.interval}} {
		_, err := wait(step.to.String(), 3*c.interval+c.timeout, func(e watch.Event) bool {
			return e.Kind == watch.KindTransition && e.Transition.Key == crashed && e.Transition.To == step.to
		})
		if err == nil {
			if d := time.Since(hb.At); d < step.after-tolerance || d > step.after+tolerance {
				err = fmt.Errorf("reported %v after the last heartbeat, want %v ± %v", d.Round(time.Millisecond), step.after, tolerance)
			}
		}
		if !judged(fmt.Sprintf("crashed instance reported %s after %v", step.to, step.after), err) {
			return
		}
	}
	// Delete what a crashed instance leaves behind.
	_ = c.client.Del(context.Background(), wire.Key(c.keyPrefix, service, crashed.Instance)).Err()

	// A graceful stop.
	p, err := otelheartbeat.NewPublisher(service, c.publisherOptions()...)
	if !c.check(mode, "NewPublisher", err) {
		return
	}
	if err := p.Start(ctx); err != nil {
		c.fail(mode, "Start: %v", err)
		return
	}
	graceful := watch.Key{Service: service, Instance: p.InstanceID()}
	_, err = wait("alive", c.timeout, func(e watch.Event) bool {
		return e.Kind == watch.KindTransition && e.Transition.Key == graceful && e.Transition.To == watch.Alive
	})
	if !judged("started instance reported alive", err) {
		_ = p.Stop(context.Background())
		return
	}
	sctx, scancel := context.WithTimeout(ctx, c.timeout)
	err = p.Stop(sctx)
	scancel()
	if !c.check(mode, "Stop", err) {
		return
	}
	e, err := wait("stopped", c.timeout, func(e watch.Event) bool {
		return e.Kind == watch.KindTransition && e.Transition.Key == graceful
	})
	if err == nil && e.Transition.To != watch.Stopped {
		err = fmt.Errorf("reported %v", e.Transition.To)
	}
	judged("gracefully stopped instance reported stopped, not dead", err)
	stopMonitor()
	if s := mon.Stats(); s.Malformed > 0 {
		c.fail(mode, "%d malformed messages on %s", s.Malformed, strings.TrimSuffix(mon.Subscription(), "*"))
	}
}
