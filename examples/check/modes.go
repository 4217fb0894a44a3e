package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/google/uuid"
	"github.com/otel-heartbeat/heartbeat/collectors"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch/term"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
	"github.com/otel-heartbeat/heartbeat/valkeyexporter"
	"github.com/redis/go-redis/v9"
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
	defer c.own(p.ServiceName()+"/"+p.InstanceID(), c.stopper(p))()

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

// monitorMode is the mode whose checks liveness and crashing record.
const monitorMode = "monitor"

// monitor runs the monitor's engine against a crashed and a stopped
// instance and checks the liveness it reports, by its own timing.
func (c *checker) monitor() {
	const mode = monitorMode
	service := c.prefix + "_monitor"
	mon, err := watch.New(watch.Connection{Client: c.client, Channel: c.channel, KeyPrefix: c.keyPrefix}, watch.WithService(service))
	if !c.check(mode, "monitor engine", err) {
		return
	}
	l, ctx := c.follow(mon, service)
	defer l.stop()
	if _, err := l.wait("subscribe", c.timeout, func(e watch.Event) bool { return e.Kind == watch.KindLoaded }); err != nil {
		l.judged("PSUBSCRIBE and latest-state keys read", err)
		return
	}
	c.pass(mode, "PSUBSCRIBE and latest-state keys read")

	// A crash: one heartbeat, then silence, with no final heartbeat. The
	// instance is shut down only as the mode ends, so that nothing it does
	// on shutdown reaches Valkey while the monitor's verdicts are checked.
	inst, ok := c.newCrashing(service)
	if !ok {
		return
	}
	defer inst.close()
	// The crash is a check's: once judged, or if the check goes no
	// further, the crashed instance ends with a stopping heartbeat, so
	// that no watcher is left with an instance that looks crashed.
	ended := c.own(inst.service+"/"+inst.id, func() error { return c.endCrashed(inst) })
	defer ended()
	if !l.crash(ctx, inst) {
		return
	}
	ended()
	if !l.gracefulStop(ctx) {
		return
	}
	// The counts are final only once the engine has returned.
	l.stop()
	if s := mon.Stats(); s.Malformed > 0 {
		c.fail(mode, "%d malformed messages on %s", s.Malformed, strings.TrimSuffix(mon.Subscription(), "*"))
	}
}

// liveness is the monitor mode's hold on the monitor's engine: the engine
// runs on a goroutine of its own, and each check waits in turn for the
// events it reported.
type liveness struct {
	c       *checker
	service string
	events  chan watch.Event
	cancel  context.CancelFunc
	done    chan struct{} // closed when the engine has returned
	stopped bool
}

// follow runs mon until stop. It returns the engine's context, with which
// the mode's own Valkey calls end too.
func (c *checker) follow(mon *watch.Monitor, service string) (*liveness, context.Context) {
	ctx, cancel := context.WithCancel(context.Background())
	l := &liveness{c: c, service: service, events: make(chan watch.Event, 1000), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		_ = mon.Run(ctx, l.observe)
	}()
	return l, ctx
}

// observe keeps an event for the checks, or drops it when they are far
// behind: the engine must never wait for a check, or its timing would be
// the check's.
func (l *liveness) observe(e watch.Event) {
	select {
	case l.events <- e:
	default:
	}
}

// stop ends the engine. The mode stops it before reading its counts, and
// again as it returns, whichever way it ends.
func (l *liveness) stop() {
	if !l.stopped {
		l.stopped = true
		l.cancel()
		<-l.done
	}
}

// wait returns the first event that matches. Its error is an unseenError
// when the engine could not see Valkey meanwhile: then the silence it
// waited on says nothing about the library.
func (l *liveness) wait(what string, timeout time.Duration, match func(watch.Event) bool) (watch.Event, error) {
	deadline := time.After(timeout)
	for {
		select {
		case e := <-l.events:
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
func (l *liveness) judged(what string, err error) bool {
	var u *unseenError
	if errors.As(err, &u) {
		l.c.cannotTell(monitorMode, "%s: %s", what, u.why)
		return false
	}
	l.c.check(monitorMode, what, err)
	return true
}

// becomes matches the transition of key to state.
func becomes(key watch.Key, to watch.State) func(watch.Event) bool {
	return func(e watch.Event) bool {
		return e.Kind == watch.KindTransition && e.Transition.Key == key && e.Transition.To == to
	}
}

// crash has inst send its one heartbeat, checks that the monitor received
// it and then judged the silence, and deletes what the crashed instance
// left behind. False when the mode should go no further.
func (l *liveness) crash(ctx context.Context, inst *crashing) bool {
	c := l.c
	if !c.check(monitorMode, "one heartbeat from an instance about to crash", inst.beat(ctx, c.timeout)) {
		return false
	}
	hb, err := l.wait("heartbeat", c.timeout, func(e watch.Event) bool { return e.Kind == watch.KindHeartbeat })
	if err != nil {
		l.judged("monitor received it", err)
		return false
	}
	c.pass(monitorMode, "monitor received it")
	crashed := watch.Key{Service: l.service, Instance: hb.Message.InstanceID}
	if !l.silenceJudged(crashed, hb.At) {
		return false
	}
	return true
}

// silenceJudged checks that the monitor reported the crashed instance
// stale, then dead, each within half an interval of when the silence since
// its last heartbeat called for it.
func (l *liveness) silenceJudged(crashed watch.Key, last time.Time) bool {
	c := l.c
	tolerance := c.interval/2 + 200*time.Millisecond
	for _, step := range []struct {
		to    watch.State
		after time.Duration
	}{{watch.Stale, c.interval * 3 / 2}, {watch.Dead, 3 * c.interval}} {
		_, err := l.wait(step.to.String(), 3*c.interval+c.timeout, becomes(crashed, step.to))
		if err == nil {
			if d := time.Since(last); d < step.after-tolerance || d > step.after+tolerance {
				err = fmt.Errorf("reported %v after the last heartbeat, want %v ± %v", d.Round(time.Millisecond), step.after, tolerance)
			}
		}
		if !l.judged(fmt.Sprintf("crashed instance reported %s after %v", step.to, step.after), err) {
			return false
		}
	}
	return true
}

// gracefulStop starts a publisher, stops it, and checks that the monitor
// reported it alive, then stopped rather than dead: its final heartbeat
// tells the two apart. False when the mode should go no further.
func (l *liveness) gracefulStop(ctx context.Context) bool {
	c := l.c
	p, err := otelheartbeat.NewPublisher(l.service, c.publisherOptions()...)
	if !c.check(monitorMode, "NewPublisher", err) {
		return false
	}
	if err := p.Start(ctx); err != nil {
		c.fail(monitorMode, "Start: %v", err)
		return false
	}
	defer c.own(p.ServiceName()+"/"+p.InstanceID(), c.stopper(p))()
	graceful := watch.Key{Service: l.service, Instance: p.InstanceID()}
	_, err = l.wait("alive", c.timeout, becomes(graceful, watch.Alive))
	if !l.judged("started instance reported alive", err) {
		_ = p.Stop(context.Background())
		return false
	}
	sctx, scancel := context.WithTimeout(ctx, c.timeout)
	err = p.Stop(sctx)
	scancel()
	if !c.check(monitorMode, "Stop", err) {
		return false
	}
	e, err := l.wait("stopped", c.timeout, func(e watch.Event) bool {
		return e.Kind == watch.KindTransition && e.Transition.Key == graceful
	})
	if err == nil && e.Transition.To != watch.Stopped {
		err = fmt.Errorf("reported %v", e.Transition.To)
	}
	l.judged("gracefully stopped instance reported stopped, not dead", err)
	return true
}

// stopper stops p gracefully, within the check's timeout.
func (c *checker) stopper(p *otelheartbeat.Publisher) func() error {
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		defer cancel()
		return p.Stop(ctx)
	}
}

// endCrashed ends the crashed instance as a graceful stop would: its final
// heartbeat, saying stopping, and its latest-state key deleted.
func (c *checker) endCrashed(inst *crashing) error {
	m := &wire.Message{ServiceName: inst.service, InstanceID: inst.id, Timestamp: time.Now(), Status: wire.StatusStopping,
		UptimeSeconds: inst.proc.Uptime().Seconds(), HeartbeatCount: 2, IntervalSeconds: c.interval.Seconds(),
		Has: wire.HasUptime | wire.HasHeartbeatCount | wire.HasInterval}
	b, err := wire.Marshal(m)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	channel := c.channel.Channel(inst.service)
	if _, err = c.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Publish(ctx, channel, b)
		p.Del(ctx, wire.Key(c.keyPrefix, inst.service, inst.id))
		return nil
	}); err != nil {
		return fmt.Errorf("PUBLISH %s: %w", channel, err)
	}
	return nil
}

// crashing is an instance that sends one heartbeat through the exporter,
// then falls silent as a crashed one does.
type crashing struct {
	service, id string
	started     time.Time
	exp         *valkeyexporter.Exporter
	reader      *sdkmetric.ManualReader
	mp          *sdkmetric.MeterProvider
	proc        *collectors.Process
}

// newCrashing builds the instance, checking each part; on a failure it
// releases what it built.
func (c *checker) newCrashing(service string) (*crashing, bool) {
	exp, err := valkeyexporter.New(valkeyexporter.WithServiceName(service), valkeyexporter.WithInterval(c.interval))
	if !c.check(monitorMode, "exporter", err) {
		return nil, false
	}
	id := uuid.NewString()
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.instance.id", id)))
	if !c.check(monitorMode, "resource", err) {
		_ = exp.Shutdown(context.Background())
		return nil, false
	}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithResource(res))
	proc, err := collectors.NewProcess(collectors.WithMeterProvider(mp))
	if !c.check(monitorMode, "process collector", err) {
		_ = mp.Shutdown(context.Background())
		_ = exp.Shutdown(context.Background())
		return nil, false
	}
	return &crashing{service: service, id: id, started: time.Now(), exp: exp, reader: reader, mp: mp, proc: proc}, true
}

// beat sends the instance's one heartbeat.
func (i *crashing) beat(ctx context.Context, timeout time.Duration) error {
	var rm metricdata.ResourceMetrics
	_ = i.reader.Collect(ctx, &rm)
	ectx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return i.exp.Export(ectx, &rm)
}

// close shuts the instance down, once the mode is over.
func (i *crashing) close() {
	_ = i.proc.Unregister()
	_ = i.mp.Shutdown(context.Background())
	_ = i.exp.Shutdown(context.Background())
}
