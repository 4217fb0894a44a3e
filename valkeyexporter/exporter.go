package valkeyexporter

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/otel-heartbeat/heartbeat/internal/convention"
	"github.com/otel-heartbeat/heartbeat/internal/report"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// ScopeName is the instrumentation scope whose instruments make up a
// heartbeat, "github.com/otel-heartbeat/heartbeat/otelheartbeat" (the
// package that registers them); metrics of every other scope are ignored.
// It is the one public name of the scope.
const ScopeName = convention.ScopeName

const (
	keyServiceName = attribute.Key("service.name")
	keyInstanceID  = attribute.Key("service.instance.id")
	keyURLFull     = attribute.Key("url.full")
	keyServerAddr  = attribute.Key("server.address")
	keyServerPort  = attribute.Key("server.port")
)

// Exporter publishes heartbeats to Valkey. It implements
// sdkmetric.Exporter; all its methods are safe for concurrent use.
type Exporter struct {
	s          settings
	ownsClient bool     // built by New, closed by Shutdown
	cutters    *cutters // the connections of the client built by New
	fallbackID string
	reporter   report.Reporter

	// sem serializes exports and Shutdown's clean-up; a channel so that
	// waiting for it honours a context.
	sem chan struct{}

	// Guarded by sem.
	count      int64
	buf        []byte
	msg        wire.Message
	cpu        cpuSample
	writtenKey string
	badValues  map[string]bool // values left out, by instrument or field
	pipe       redis.Pipeliner // reused: exports are serialized
	names      names           // channel and key of the last identity

	stopping     atomic.Bool
	isShutdown   atomic.Bool
	lastName     atomic.Pointer[string] // service_name of the last heartbeat built
	shutdownOnce sync.Once
}

// names caches the channel and key of one identity, which rarely changes.
type names struct {
	service, instance string
	channel, key      string
}

func (e *Exporter) namesFor(service, instance string) *names {
	n := &e.names
	if n.service != service || n.instance != instance {
		*n = names{
			service: service, instance: instance,
			channel: e.s.channel.Channel(service),
			key:     wire.Key(e.s.keyPrefix, service, instance),
		}
	}
	return n
}

type cpuSample struct {
	seconds float64
	at      time.Time
	ok      bool
}

var _ sdkmetric.Exporter = (*Exporter)(nil)

// New returns an exporter configured by opts, then the environment (see the
// package documentation). It does not connect: the first Export does, so a
// service starts even when Valkey is down. A malformed option or variable
// is an error that names it.
func New(opts ...Option) (*Exporter, error) {
	s, err := newSettings(opts)
	if err != nil {
		return nil, fmt.Errorf("valkeyexporter: %w", err)
	}
	ownsClient := s.client == nil
	var cut *cutters
	if ownsClient {
		cut = newCutters()
		cut.wrap(s.clientOptions)
		s.client = redis.NewUniversalClient(s.clientOptions)
	}
	e := &Exporter{
		ownsClient: ownsClient,
		cutters:    cut,
		s:          s,
		fallbackID: uuid.NewString(),
		sem:        make(chan struct{}, 1),
		buf:        make([]byte, 0, 512),
	}
	e.reporter.Handle = s.handle
	return e, nil
}

// Interval returns the heartbeat interval the exporter was configured with.
func (e *Exporter) Interval() time.Duration { return e.s.interval }

// ExportTimeout returns how long one export may take: OTEL_METRIC_EXPORT_TIMEOUT
// (milliseconds) when set, else the smaller of 30 s and the interval.
func (e *Exporter) ExportTimeout() time.Duration { return e.s.exportTimeout }

// ServiceName returns the service_name heartbeats carry: the one set with
// WithServiceName, else the Resource's service.name as the last export saw
// it; empty when neither is known yet.
func (e *Exporter) ServiceName() string {
	if e.s.serviceName != "" {
		return e.s.serviceName
	}
	if n := e.lastName.Load(); n != nil {
		return *n
	}
	return ""
}

// Endpoint describes where the exporter publishes, without credentials.
func (e *Exporter) Endpoint() string { return e.s.endpoint }

// markStopping makes every following export the final heartbeat of a
// graceful stop: status "stopping", and the latest-state key is deleted
// instead of written. Reader.Shutdown calls it before the final collection.
func (e *Exporter) markStopping() { e.stopping.Store(true) }

// Temporality returns cumulative for every instrument kind: CPU usage is
// computed from the cumulative process.cpu.time between exports.
func (e *Exporter) Temporality(sdkmetric.InstrumentKind) metricdata.Temporality {
	return metricdata.CumulativeTemporality
}

// Aggregation returns the default aggregation for kind.
func (e *Exporter) Aggregation(kind sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return sdkmetric.DefaultAggregationSelector(kind)
}

// Export serializes the heartbeat scope of rm into one heartbeat and
// publishes it. It returns before ctx is done; rm is not used after it
// returns. A failed publish returns an error naming the command and the
// endpoint, and the next Export tries again.
func (e *Exporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	err := e.export(ctx, rm)
	if err != nil && e.stopping.Load() && ctx.Value(finalExport{}) == nil && errors.Is(ctx.Err(), context.Canceled) {
		// A periodic heartbeat that a graceful stop cut short: the final
		// heartbeat follows, and the SDK would report this one as a failure.
		return nil
	}
	return err
}

func (e *Exporter) export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if e.isShutdown.Load() {
		return ErrShutdown
	}
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	release := func() { <-e.sem }
	if e.isShutdown.Load() {
		release()
		return ErrShutdown
	}

	stopping := e.stopping.Load()
	if err := e.build(rm, stopping); err != nil {
		release()
		return err
	}
	var err error
	e.buf, err = wire.AppendJSON(e.buf[:0], &e.msg)
	if err != nil {
		release()
		// build leaves out every value the encoder refuses, so this is a bug.
		return fmt.Errorf("valkeyexporter: encode heartbeat: %w", err)
	}
	// go-redis bounds a command by deadlines, not by cancellation: against
	// a stalled server, a cancelled export would wait for the client's read
	// timeout, and so would a Stop waiting for it. With the client New
	// built, the send runs here and the end of ctx cuts the connections it
	// is using (see cutters). A caller's client cannot be cut: the send
	// runs on its own, holding the exporter so that no second one starts,
	// and Export returns by ctx; a send left behind ends at the client's
	// timeout.
	if e.cutters != nil {
		defer release()
		cut, end := e.cutters.begin()
		stop := context.AfterFunc(ctx, cut)
		err := e.send(ctx, stopping)
		end()
		if !stop() && err != nil {
			return fmt.Errorf("valkeyexporter: heartbeat to %s: %w", e.s.endpoint, ctx.Err())
		}
		return err
	}
	done := make(chan error, 1)
	go func() {
		defer release()
		done <- e.send(ctx, stopping)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("valkeyexporter: heartbeat to %s: %w", e.s.endpoint, ctx.Err())
	}
}

// build fills e.msg from rm.
func (e *Exporter) build(rm *metricdata.ResourceMetrics, stopping bool) error {
	m := &e.msg
	*m = wire.Message{Fields: m.Fields[:0]}

	if e.s.serviceName != "" {
		m.ServiceName = e.s.serviceName
	} else {
		name, _ := rm.Resource.Set().Value(keyServiceName)
		m.ServiceName = name.AsString()
	}
	if wire.IsUnsetServiceName(m.ServiceName) {
		return ErrNoServiceName
	}
	if err := wire.ValidateServiceName(m.ServiceName); err != nil {
		return fmt.Errorf("%w: service.name: %w", ErrBadIdentity, err)
	}
	if m.ServiceName != e.ServiceName() {
		name := m.ServiceName
		e.lastName.Store(&name)
	}
	m.InstanceID = e.fallbackID
	if id, ok := rm.Resource.Set().Value(keyInstanceID); ok && id.AsString() != "" {
		if err := wire.ValidateInstanceID(id.AsString()); err != nil {
			return fmt.Errorf("%w: service.instance.id: %w", ErrBadIdentity, err)
		}
		m.InstanceID = id.AsString()
	}

	m.InstanceAddress = e.address(rm.Resource.Set())

	var (
		cpuSeconds float64
		cpuAt      time.Time
		haveCPU    bool
		haveScope  bool
	)
	for i := range rm.ScopeMetrics {
		sm := &rm.ScopeMetrics[i]
		if sm.Scope.Name != ScopeName {
			continue
		}
		haveScope = true
		for j := range sm.Metrics {
			md := &sm.Metrics[j]
			switch md.Name {
			case convention.Uptime:
				if v, at, ok := e.number(md); ok && v >= 0 {
					m.UptimeSeconds, m.Has = v, m.Has|wire.HasUptime
					m.Timestamp = at
				}
			case convention.MemoryUsage:
				if v, at, ok := e.number(md); ok && v >= 0 {
					m.MemoryUsageMB, m.Has = round1(v/(1<<20)), m.Has|wire.HasMemory
					if m.Timestamp.IsZero() {
						m.Timestamp = at
					}
				}
			case convention.CPUTime:
				cpuSeconds, cpuAt, haveCPU = e.sum(md)
			default:
				e.field(md)
			}
		}
	}
	if !haveScope {
		return ErrNoHeartbeatInstruments
	}
	if m.Timestamp.IsZero() {
		m.Timestamp = e.s.now()
	}
	if haveCPU {
		m.CPUUsagePercent, haveCPU = e.cpuPercent(cpuSeconds, cpuAt)
		if haveCPU {
			m.Has |= wire.HasCPU
		}
	}

	e.count++
	m.HeartbeatCount = e.count
	m.IntervalSeconds = e.s.interval.Seconds()
	m.Has |= wire.HasHeartbeatCount | wire.HasInterval
	m.Status = wire.StatusRunning
	if stopping {
		m.Status = wire.StatusStopping
	}

	slices.SortStableFunc(m.Fields, func(a, b wire.Field) int { return strings.Compare(a.Key, b.Key) })
	m.Fields = slices.CompactFunc(m.Fields, func(a, b wire.Field) bool { return a.Key == b.Key })
	// Fields past the limit (collectors.MaxFields), in key order, are left
	// out and reported once: gauges registered by hand are not counted.
	if len(m.Fields) > wire.MaxFields {
		e.reporter.Fail("too-many-fields", fmt.Errorf("valkeyexporter: %d service fields, more than %d; leaving out those after %q",
			len(m.Fields), wire.MaxFields, m.Fields[wire.MaxFields-1].Key))
		m.Fields = m.Fields[:wire.MaxFields]
	}
	return nil
}

// cpuPercent turns cumulative CPU seconds into the percentage of one core
// used since the previous export, or since the process started for the
// first one.
func (e *Exporter) cpuPercent(seconds float64, at time.Time) (float64, bool) {
	prev := e.cpu
	e.cpu = cpuSample{seconds: seconds, at: at, ok: true}
	var pct float64
	switch {
	case prev.ok && at.After(prev.at) && seconds >= prev.seconds:
		pct = (seconds - prev.seconds) / at.Sub(prev.at).Seconds() * 100
	case e.msg.Has&wire.HasUptime != 0 && e.msg.UptimeSeconds > 0:
		pct = seconds / e.msg.UptimeSeconds * 100
	default:
		return 0, false
	}
	if !finite(pct) || pct < 0 {
		return 0, false
	}
	return round1(pct), true
}

// address returns the instance address: WithInstanceAddress, else the
// resource's url.full, else its server.address with server.port. A
// malformed one is left out and reported, never a reason to withhold the
// heartbeat.
func (e *Exporter) address(res *attribute.Set) string {
	if e.s.address != "" {
		return e.s.address
	}
	var addr, from string
	if v, ok := res.Value(keyURLFull); ok && v.AsString() != "" {
		addr, from = v.AsString(), "url.full"
	} else if v, ok := res.Value(keyServerAddr); ok && v.AsString() != "" {
		addr, from = v.AsString(), "server.address"
		if p, ok := res.Value(keyServerPort); ok {
			addr, from = net.JoinHostPort(addr, p.Emit()), "server.address and server.port"
		}
	}
	if addr == "" {
		return ""
	}
	if err := wire.ValidateAddress(addr); err != nil {
		e.reporter.Fail("address", fmt.Errorf("valkeyexporter: the resource's %s: %w; %s left out", from, err, wire.KeyInstanceAddress))
		return ""
	}
	e.reporter.OK("address")
	return addr
}

// field adds the service field md carries, if it is one.
func (e *Exporter) field(md *metricdata.Metrics) {
	key, kind, ok := convention.ParseName(md.Name)
	if !ok {
		return
	}
	if err := wire.ValidateFieldName(key); err != nil {
		e.reporter.Fail("name:"+md.Name, fmt.Errorf("valkeyexporter: instrument %q: %w", md.Name, err))
		return
	}
	var v wire.Value
	switch kind {
	case convention.FieldNumber:
		switch data := md.Data.(type) {
		case metricdata.Gauge[int64]:
			if len(data.DataPoints) == 0 {
				return
			}
			v = wire.Int(data.DataPoints[0].Value)
		case metricdata.Gauge[float64]:
			if len(data.DataPoints) == 0 {
				return
			}
			f := data.DataPoints[0].Value
			if !finite(f) {
				e.badValue(key, fmt.Errorf("valkeyexporter: field %s: %v is not a finite number; left out", key, f))
				return
			}
			v = wire.Float(f)
		default:
			if f, _, ok := e.number(md); ok {
				v = wire.Float(f)
			} else {
				return
			}
		}
	case convention.FieldString:
		s, ok := stringValue(md)
		if !ok {
			return
		}
		v = wire.String(s)
	case convention.FieldTimestamp:
		sec, _, ok := e.number(md)
		if !ok || sec <= 0 || sec > 1e11 {
			return
		}
		whole, frac := math.Modf(sec)
		t := time.Unix(int64(whole), int64(math.Round(frac*1e6))*1e3)
		v = wire.Time(t)
	}
	e.goodValue(key)
	e.msg.Fields = append(e.msg.Fields, wire.Field{Key: key, Value: v})
}

// number returns the value of md's first data point, as a float64, for
// gauges and sums of either number type.
func (e *Exporter) number(md *metricdata.Metrics) (float64, time.Time, bool) {
	var (
		v  float64
		at time.Time
		ok bool
	)
	switch data := md.Data.(type) {
	case metricdata.Gauge[float64]:
		v, at, ok = first(data.DataPoints)
	case metricdata.Gauge[int64]:
		v, at, ok = first(data.DataPoints)
	case metricdata.Sum[float64]:
		v, at, ok = first(data.DataPoints)
	case metricdata.Sum[int64]:
		v, at, ok = first(data.DataPoints)
	}
	if !ok {
		return 0, at, false
	}
	if !finite(v) {
		e.badValue(md.Name, fmt.Errorf("valkeyexporter: %s: %v is not a finite number; left out", md.Name, v))
		return 0, at, false
	}
	e.goodValue(md.Name)
	return v, at, true
}

// first returns the value and time of the first data point.
func first[N int64 | float64](dps []metricdata.DataPoint[N]) (float64, time.Time, bool) {
	if len(dps) == 0 {
		return 0, time.Time{}, false
	}
	return float64(dps[0].Value), dps[0].Time, true
}

// sum adds up every data point of a cumulative CPU time (one per cpu.mode).
func (e *Exporter) sum(md *metricdata.Metrics) (float64, time.Time, bool) {
	var (
		total float64
		at    time.Time
		n     int
	)
	switch data := md.Data.(type) {
	case metricdata.Sum[float64]:
		for _, dp := range data.DataPoints {
			total += dp.Value
			at = dp.Time
			n++
		}
	case metricdata.Sum[int64]:
		for _, dp := range data.DataPoints {
			total += float64(dp.Value)
			at = dp.Time
			n++
		}
	}
	if n == 0 || !finite(total) || total < 0 {
		return 0, at, false
	}
	return total, at, true
}

// stringValue returns the heartbeat.value attribute of the data point that
// says 1 (the current state).
func stringValue(md *metricdata.Metrics) (string, bool) {
	data, ok := md.Data.(metricdata.Gauge[int64])
	if !ok {
		return "", false
	}
	for _, dp := range data.DataPoints {
		if dp.Value == 0 {
			continue
		}
		if v, ok := dp.Attributes.Value(convention.ValueKey); ok && v.Type() == attribute.STRING {
			return truncate(v.AsString(), wire.MaxStringLength), true
		}
	}
	return "", false
}

// send publishes e.buf and writes (or, when stopping, deletes) the
// latest-state key in one pipelined round trip.
func (e *Exporter) send(ctx context.Context, stopping bool) error {
	n := e.namesFor(e.msg.ServiceName, e.msg.InstanceID)
	channel, key := n.channel, n.key
	if e.pipe == nil {
		e.pipe = e.s.client.Pipeline()
	}
	p := e.pipe
	var state, registry redis.Cmder
	var pub *redis.IntCmd
	if e.s.sharded {
		pub = p.SPublish(ctx, channel, e.buf)
		registry = p.SAdd(ctx, wire.DefaultRegistryKey, e.msg.ServiceName)
	} else {
		pub = p.Publish(ctx, channel, e.buf)
	}
	if e.s.latestState {
		if stopping {
			state = p.Del(ctx, key)
		} else {
			state = p.Set(ctx, key, e.buf, 3*e.s.interval)
		}
	}
	_, perr := p.Exec(ctx)
	pubErr := pub.Err()
	if pubErr == nil && perr != nil && (state == nil || state.Err() == nil) && (registry == nil || registry.Err() == nil) {
		// The connection failed before any command ran (e.g. its
		// handshake was refused); go-redis reports that only here.
		pubErr = perr
	}
	if pubErr != nil {
		e.reloadTopology(pubErr)
		return fmt.Errorf("valkeyexporter: %s %s to %s: %w", strings.ToUpper(pub.Name()), channel, e.s.endpoint, pubErr)
	}
	if registry != nil {
		if err := registry.Err(); err != nil {
			e.reporter.Fail("registry", fmt.Errorf("valkeyexporter: SADD %s to %s: %w (monitors in sharded mode will not learn this service)",
				wire.DefaultRegistryKey, e.s.endpoint, err))
		} else {
			e.reporter.OK("registry")
		}
	}
	if state == nil {
		return nil
	}
	if err := state.Err(); err != nil {
		e.reloadTopology(err)
		// The heartbeat reached subscribers; only late joiners miss it.
		e.reporter.Fail("latest-state", fmt.Errorf("valkeyexporter: %s %s to %s: %w (heartbeats are still published)",
			strings.ToUpper(state.Name()), key, e.s.endpoint, err))
		return nil
	}
	e.reporter.OK("latest-state")
	if stopping {
		e.writtenKey = ""
	} else {
		e.writtenKey = key
	}
	return nil
}

// reloadTopology makes a cluster client re-read the slot map after a
// connection error: go-redis otherwise keeps sending to a primary that
// died until a MOVED reply or its 60 s reload interval, and every heartbeat
// of that shard would be lost until then. The reload runs in the
// background; the next heartbeat goes to the promoted replica.
func (e *Exporter) reloadTopology(err error) {
	cc, ok := e.s.client.(*redis.ClusterClient)
	if !ok {
		return
	}
	var re redis.Error
	if errors.As(err, &re) && !strings.HasPrefix(re.Error(), "CLUSTERDOWN") && !strings.HasPrefix(re.Error(), "MOVED") {
		return // a reply from a live server, such as NOPERM
	}
	cc.ReloadState(context.Background())
}

// badValue reports a value that was left out, once per episode.
func (e *Exporter) badValue(name string, err error) {
	if e.badValues == nil {
		e.badValues = make(map[string]bool)
	}
	if !e.badValues[name] && len(e.badValues) < 1024 {
		e.badValues[name] = true
		e.reporter.Fail("value:"+name, err)
	}
}

// goodValue ends a bad-value episode; the common case costs a map lookup.
func (e *Exporter) goodValue(name string) {
	if e.badValues[name] {
		delete(e.badValues, name)
		e.reporter.OK("value:" + name)
	}
}

// ForceFlush returns nil: the exporter holds no data between exports.
func (e *Exporter) ForceFlush(ctx context.Context) error {
	return ctx.Err()
}

// Shutdown deletes the latest-state key if an export wrote it and no
// stopping heartbeat removed it, and closes the client the exporter built
// (never one passed with WithClient). It returns before ctx is done; later
// calls return ErrShutdown, and so do later Exports.
func (e *Exporter) Shutdown(ctx context.Context) error {
	err := ErrShutdown
	e.shutdownOnce.Do(func() {
		err = nil
		e.isShutdown.Store(true)
		select {
		case e.sem <- struct{}{}:
			if key := e.writtenKey; key != "" {
				if derr := e.s.client.Del(ctx, key).Err(); derr != nil {
					err = fmt.Errorf("valkeyexporter: DEL %s to %s: %w", key, e.s.endpoint, derr)
				} else {
					e.writtenKey = ""
				}
			}
			<-e.sem
		case <-ctx.Done():
			// An export is stuck; closing the client below ends it.
			err = ctx.Err()
		}
		if e.ownsClient {
			if cerr := e.s.client.Close(); cerr != nil && !errors.Is(cerr, redis.ErrClosed) {
				err = errors.Join(err, cerr)
			}
			// A send left behind fails as soon as its connection is closed:
			// wait for it, so that nothing of the exporter outlives Shutdown.
			t := time.NewTimer(time.Second)
			select {
			case e.sem <- struct{}{}:
				<-e.sem
			case <-t.C:
			}
			t.Stop()
		}
	})
	return err
}

func finite(f float64) bool { return wire.Finite(f) }

func round1(f float64) float64 { return math.Round(f*10) / 10 }

func truncate(s string, n int) string { return wire.Truncate(s, n) }
