package otelheartbeat

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/otel-heartbeat/heartbeat/collectors"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
	"github.com/otel-heartbeat/heartbeat/valkeyexporter"
)

// Errors returned by Start.
var (
	ErrStarted = errors.New("otelheartbeat: publisher already started")
	ErrStopped = errors.New("otelheartbeat: publisher stopped; create a new one")
)

type state uint8

const (
	stateNew state = iota
	stateStarted
	stateStopped
)

// Publisher publishes one service instance's heartbeats. Its methods are
// safe for concurrent use.
type Publisher struct {
	name       string
	instanceID string
	interval   time.Duration
	cfg        config
	exporter   *valkeyexporter.Exporter
	reader     *valkeyexporter.Reader // standalone: from Start on
	res        *resource.Resource     // standalone only
	handle     func(error)

	mu       sync.Mutex
	state    state
	provider metric.MeterProvider
	owned    *sdkmetric.MeterProvider // standalone only
	process  *collectors.Process
	fields   *collectors.Fields
	added    []namedCollector // every field added, so that a Start that failed can be retried
}

type namedCollector struct {
	name string
	c    collectors.Collector
}

// NewPublisher returns a Publisher for serviceName. An empty serviceName
// means the Resource's (OTEL_SERVICE_NAME). A service name that is empty,
// longer than 128 bytes, or holds whitespace or the glob characters * ? [ ]
// is refused: it would break heartbeat:service:* subscribers. Nothing is
// published until Start; Valkey need not be reachable yet.
func NewPublisher(serviceName string, opts ...Option) (*Publisher, error) {
	var cfg config
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	if serviceName != "" {
		if err := wire.ValidateServiceName(serviceName); err != nil {
			return nil, fmt.Errorf("otelheartbeat: %w", err)
		}
	}
	p := &Publisher{name: serviceName, cfg: cfg, handle: cfg.handle}
	if p.handle == nil {
		p.handle = otel.Handle
	}

	if cfg.provider != nil || cfg.heartbeatReader != nil {
		if cfg.provider == nil || cfg.heartbeatReader == nil {
			return nil, errors.New("otelheartbeat: WithMeterProvider needs both the MeterProvider and the heartbeat reader")
		}
		if err := cfg.unusedWithProvider(); err != nil {
			return nil, err
		}
		p.reader = cfg.heartbeatReader
		p.exporter = p.reader.Exporter()
		p.interval = p.exporter.Interval()
		p.provider = cfg.provider
		// The reader puts the name on the wire: NewReader's, else the
		// provider Resource's service.name.
		if serviceName != "" {
			switch readerName := p.exporter.ServiceName(); {
			case readerName == "":
				return nil, fmt.Errorf("otelheartbeat: with WithMeterProvider the heartbeat reader names the service, and it names none: pass %q to NewReader (or leave the name here empty to take the MeterProvider's Resource service.name)", serviceName)
			case readerName != serviceName:
				return nil, fmt.Errorf("otelheartbeat: service name %q differs from the heartbeat reader's %q, which is what heartbeats carry: pass the same name to both, or an empty name here", serviceName, readerName)
			}
		}
		p.name = ""
		return p, nil
	}

	res, err := newResource(serviceName, cfg.resource)
	if err != nil {
		return nil, err
	}
	if serviceName == "" {
		v, _ := res.Set().Value("service.name")
		if name := v.AsString(); wire.IsUnsetServiceName(name) {
			return nil, errors.New("otelheartbeat: no service name: pass one to NewPublisher or set OTEL_SERVICE_NAME")
		} else if err := wire.ValidateServiceName(name); err != nil {
			return nil, fmt.Errorf("otelheartbeat: OTEL_SERVICE_NAME: %w", err)
		}
		p.name = v.AsString()
	}
	id, _ := res.Set().Value("service.instance.id")
	if err := wire.ValidateInstanceID(id.AsString()); err != nil {
		return nil, fmt.Errorf("otelheartbeat: service.instance.id (OTEL_RESOURCE_ATTRIBUTES): %w", err)
	}
	p.instanceID = id.AsString()
	p.res = res

	exp, err := valkeyexporter.New(p.exporterOptions()...)
	if err != nil {
		return nil, fmt.Errorf("otelheartbeat: %w", err)
	}
	// The reader is made in Start: a PeriodicReader starts ticking as soon
	// as it exists.
	p.exporter = exp
	p.interval = exp.Interval()
	return p, nil
}

// exporterOptions are the caller's exporter options with the Publisher's
// service name and interval, which win.
func (p *Publisher) exporterOptions() []valkeyexporter.Option {
	opts := append([]valkeyexporter.Option{}, p.cfg.exporterOpts...)
	opts = append(opts, valkeyexporter.WithServiceName(p.name))
	if p.cfg.interval != 0 {
		opts = append(opts, valkeyexporter.WithInterval(p.cfg.interval))
	}
	return opts
}

// newResource describes this instance: the SDK's service detectors (a UUID
// service.instance.id), then OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES,
// then the caller's resource, then the service name passed in code.
func newResource(serviceName string, extra *resource.Resource) (*resource.Resource, error) {
	res, err := resource.New(context.Background(),
		resource.WithService(),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, fmt.Errorf("otelheartbeat: resource from OTEL_SERVICE_NAME/OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	if extra != nil {
		if res, err = resource.Merge(res, extra); err != nil {
			return nil, fmt.Errorf("otelheartbeat: WithResource: %w", err)
		}
	}
	if serviceName != "" {
		res, err = resource.Merge(res, resource.NewSchemaless(attribute.String("service.name", serviceName)))
		if err != nil {
			return nil, fmt.Errorf("otelheartbeat: resource: %w", err)
		}
	}
	return res, nil
}

// NewReader returns the heartbeat reader for a service that already has a
// MeterProvider: add it with sdkmetric.WithReader, then pass both to
// NewPublisher with WithMeterProvider. serviceName, when not empty, is the
// heartbeats' service_name whatever the provider's Resource says. opts
// configure the exporter and override the environment.
func NewReader(serviceName string, opts ...valkeyexporter.Option) (*valkeyexporter.Reader, error) {
	if serviceName != "" {
		opts = append(append([]valkeyexporter.Option{}, opts...), valkeyexporter.WithServiceName(serviceName))
	}
	exp, err := valkeyexporter.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("otelheartbeat: %w", err)
	}
	return valkeyexporter.NewReader(exp), nil
}

// ServiceName returns the service name heartbeats carry. With
// WithMeterProvider it is the heartbeat reader's: the name passed to
// NewReader, else the MeterProvider Resource's service.name once Start has
// collected it; empty before that.
func (p *Publisher) ServiceName() string {
	if p.res == nil {
		return p.exporter.ServiceName()
	}
	return p.name
}

// InstanceID returns this instance's id; empty with WithMeterProvider, where
// the provider's Resource decides.
func (p *Publisher) InstanceID() string { return p.instanceID }

// Endpoint describes where heartbeats go, without credentials.
func (p *Publisher) Endpoint() string { return p.exporter.Endpoint() }

// Interval returns the time between heartbeats.
func (p *Publisher) Interval() time.Duration { return p.interval }

// Reader returns the heartbeat reader; nil before Start when the Publisher
// builds its own MeterProvider.
func (p *Publisher) Reader() *valkeyexporter.Reader {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reader
}

// AddDataCollector adds the service field name to every heartbeat, with the
// value c collects (build it with collectors.Int, Float, String or
// Timestamp). It may be called before or after Start. A name that is not a
// valid field name (ASCII letters, digits and underscores, starting with a
// letter, at most 64 bytes), that clashes with a documented heartbeat field,
// or that is already registered is refused with an error naming it.
func (p *Publisher) AddDataCollector(name string, c collectors.Collector) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var err error
	switch p.state {
	case stateStopped:
		return ErrStopped
	case stateStarted:
		if err = p.fields.Add(name, c); err == nil {
			p.added = append(p.added, namedCollector{name, c})
		}
	default:
		// Before Start, the same rules as collectors.Fields.Add, so that
		// the error does not depend on when the field was added.
		names := make([]string, len(p.added))
		for i, nc := range p.added {
			names[i] = nc.name
		}
		if err = collectors.CheckField(name, c, names); err == nil {
			p.added = append(p.added, namedCollector{name, c})
		}
	}
	if err != nil {
		return fmt.Errorf("otelheartbeat: %w", err)
	}
	return nil
}

// Start registers the heartbeat gauges and sends the first heartbeat at
// once; after that one goes out every interval. It returns once the first
// heartbeat has been sent or has failed, and before ctx is done; a Stop
// meanwhile need not wait for it. Valkey being unreachable (or refusing a
// command) does not fail Start: the failure goes to otel.Handle and
// heartbeats begin when Valkey is back. Wiring mistakes with
// WithMeterProvider do fail it, saying what to wire: the heartbeat reader
// on no provider or on another one than mp, or no service name anywhere.
// Start after Start returns ErrStarted; after Stop, ErrStopped.
func (p *Publisher) Start(ctx context.Context) error {
	reader, err := p.start()
	if err != nil {
		return err
	}
	// The first heartbeat is sent without p.mu held, so that a Stop meanwhile
	// returns by its own context: it shuts the reader down, which ends this
	// flush.
	err = reader.ForceFlush(ctx)
	if err == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != stateStarted {
		return nil // stopped meanwhile: the flush was cut short on purpose
	}
	if werr := wiringError(err); werr != nil {
		p.abortStart()
		p.state = stateNew
		return werr
	}
	p.handle(fmt.Errorf("otelheartbeat: first heartbeat of %s: %w (the service runs on; %s)", p.ServiceName(), err, retryHint(err)))
	return nil
}

// start registers the gauges and builds the reader; it returns the reader
// whose first heartbeat Start then forces.
func (p *Publisher) start() (*valkeyexporter.Reader, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.state {
	case stateStarted:
		return nil, ErrStarted
	case stateStopped:
		return nil, ErrStopped
	}
	if p.res != nil {
		p.reader = valkeyexporter.NewReader(p.exporter)
		opts := []sdkmetric.Option{sdkmetric.WithResource(p.res), sdkmetric.WithReader(p.reader)}
		for _, r := range p.cfg.readers {
			opts = append(opts, sdkmetric.WithReader(r))
		}
		p.owned = sdkmetric.NewMeterProvider(opts...)
		p.provider = p.owned
	}
	timeout := p.cfg.collectorTimeout
	if timeout <= 0 {
		timeout = collectors.TimeoutFor(p.interval)
	}
	copts := []collectors.Option{collectors.WithMeterProvider(p.provider), collectors.WithTimeout(timeout), collectors.WithErrorHandler(p.handle)}
	proc, err := collectors.NewProcess(copts...)
	if err != nil {
		p.abortStart()
		return nil, fmt.Errorf("otelheartbeat: %w", err)
	}
	p.process = proc
	p.fields = collectors.NewFields(copts...)
	for _, nc := range p.added {
		if err := p.fields.Add(nc.name, nc.c); err != nil {
			p.abortStart()
			return nil, fmt.Errorf("otelheartbeat: %w", err)
		}
	}
	p.state = stateStarted
	return p.reader, nil
}

// wiringError returns the error Start reports for a first heartbeat that
// failed because of how the Publisher was wired, not because of Valkey;
// nil for anything else. Only a MeterProvider passed with WithMeterProvider
// can be miswired.
func wiringError(err error) error {
	switch {
	case errors.Is(err, sdkmetric.ErrReaderNotRegistered):
		return fmt.Errorf("otelheartbeat: the heartbeat reader is on no MeterProvider: add it with sdkmetric.WithReader(hb) to the provider passed to WithMeterProvider: %w", err)
	case errors.Is(err, valkeyexporter.ErrNoHeartbeatInstruments):
		return fmt.Errorf("otelheartbeat: the heartbeat reader collects from another MeterProvider than the one passed to WithMeterProvider: add it with sdkmetric.WithReader(hb) to that provider: %w", err)
	case errors.Is(err, valkeyexporter.ErrNoServiceName), errors.Is(err, valkeyexporter.ErrBadIdentity):
		return fmt.Errorf("otelheartbeat: %w", err)
	case errors.Is(err, sdkmetric.ErrReaderShutdown), errors.Is(err, valkeyexporter.ErrShutdown):
		return fmt.Errorf("otelheartbeat: the heartbeat reader was already shut down (by an earlier Publisher's Stop, or with its MeterProvider): give each Publisher a reader of its own from NewReader: %w", err)
	}
	return nil
}

// retryHint says what happens after a failed heartbeat: Valkey is blamed
// only when it could not be reached; a reply (NOPERM, WRONGPASS, ...) is
// the server's verdict on this client.
func retryHint(err error) string {
	var reply redis.Error
	if errors.As(err, &reply) {
		return "the next heartbeat tries again"
	}
	return "heartbeats resume when Valkey is reachable"
}

// abortStart undoes a Start that failed half-way; p.mu is held.
func (p *Publisher) abortStart() {
	if p.process != nil {
		_ = p.process.Unregister()
		p.process = nil
	}
	if p.fields != nil {
		_ = p.fields.Unregister(context.Background())
		p.fields = nil
	}
	if p.owned != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = p.owned.Shutdown(ctx)
		p.owned = nil
		// A later Start builds a new reader over a new exporter.
		if exp, err := valkeyexporter.New(p.exporterOptions()...); err == nil {
			p.exporter = exp
		}
	}
}

// Stop sends the final heartbeat, with status "stopping", deletes the
// instance's latest-state key, and ends every goroutine the Publisher
// started. It returns before ctx is done, even when Valkey is unreachable
// (the final heartbeat is then lost, and the key expires on its own after
// three intervals). With its own MeterProvider, Stop also shuts down the
// readers passed with WithReader. Stop is idempotent; a Publisher that was
// never started just releases its connection.
func (p *Publisher) Stop(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.state {
	case stateStopped:
		return nil
	case stateNew:
		p.state = stateStopped
		if p.res != nil {
			// No reader yet; release the exporter's client.
			return p.exporter.Shutdown(ctx)
		}
		// Never started, or a Start that failed for its wiring: the
		// reader passed with WithMeterProvider is still this Publisher's
		// to stop, or it would go on collecting (and failing) every
		// interval. There is no heartbeat to end, so its final one is
		// not reported.
		if p.reader != nil {
			_ = p.reader.Shutdown(ctx)
		}
		return nil
	}
	p.state = stateStopped

	var errs []error
	// The final collection still observes every gauge, so the stopping
	// heartbeat is complete; unregister only after it.
	if p.owned != nil {
		errs = append(errs, p.owned.Shutdown(ctx))
	} else {
		errs = append(errs, p.reader.Shutdown(ctx))
	}
	errs = append(errs, p.fields.Unregister(ctx), p.process.Unregister())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("otelheartbeat: stop %s: %w", p.name, err)
	}
	return nil
}

// defaultName is the name a convenience constructor passes: OTEL_SERVICE_NAME
// when set, else def, as the original design's deployments name their services by
// environment. With WithMeterProvider it is empty: the heartbeat reader and
// the provider's Resource name the service there.
func defaultName(def string, opts []Option) string {
	var c config
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	if c.provider != nil || c.heartbeatReader != nil {
		return ""
	}
	if v := strings.TrimSpace(os.Getenv("OTEL_SERVICE_NAME")); v != "" {
		return v
	}
	return def
}
