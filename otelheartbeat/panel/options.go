package panel

import (
	"fmt"
	"io/fs"
	"maps"
	"os"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/alerting"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/delivery"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
)

// Option configures a Panel.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// config is what the options set; newConfig applies them, then the
// defaults.
type config struct {
	endpoint          string
	retention         time.Duration
	lease             time.Duration
	windows           []time.Duration
	minAlive          map[string]int
	bars              int
	replica           string
	auth              *Auth
	errorf            func(format string, args ...any)
	coalesce          time.Duration
	eventWriteTimeout time.Duration
	reconcileEvery    time.Duration
	forgetAfter       time.Duration
	alerting          []alerting.Option
	receivers         []receiverSpec
	page              fs.FS
	metricsLink       string
	seriesRetention   time.Duration // 0: series.DefaultSpan; less: not kept
	seen              func() time.Time
}

// receiverSpec is a receiver to build: the panel gives it its fence, and
// the webhook its note of deliveries.
type receiverSpec struct {
	build func(extra ...delivery.Option) (delivery.Receiver, error)
}

// DefaultWindows are the uptime windows of the fleet overview.
var DefaultWindows = []time.Duration{time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour}

func newConfig(opts []Option) config {
	c := config{minAlive: map[string]int{}}
	for _, o := range opts {
		o.apply(&c)
	}
	if c.lease <= 0 {
		c.lease = 10 * time.Second
	}
	if len(c.windows) == 0 {
		c.windows = DefaultWindows
	}
	if c.bars <= 0 {
		c.bars = 30
	}
	if c.coalesce <= 0 {
		c.coalesce = 500 * time.Millisecond
	}
	if c.eventWriteTimeout <= 0 {
		c.eventWriteTimeout = 10 * time.Second
	}
	if c.replica == "" {
		c.replica = defaultReplica()
	}
	if c.errorf == nil {
		c.errorf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, "panel: "+format+"\n", args...) }
	}
	return c
}

// DefaultForgetAfter is how long the panel's tracker lists a dead or
// stopped instance that no new instance replaced (see watch.Replaced): a
// day, so that a crash in the night is still listed when the operator
// looks for them the next morning. Its history stays for the retention.
const DefaultForgetAfter = 24 * time.Hour

// TrackerOptions are the options the panel needs of the host's tracker:
// it keeps heartbeats (the API shows their fields), and lists a dead or
// stopped instance that nothing replaced for DefaultForgetAfter; a later
// watch.WithRetention sets another time.
func TrackerOptions() []watch.TrackerOption {
	return []watch.TrackerOption{watch.WithHeartbeats(), watch.WithRetention(DefaultForgetAfter)}
}

// WithSeen gives the panel the watcher's watch.Monitor.Seen: the time up
// to which it has received every heartbeat. Health verdicts that turn
// with time alone (a field grown too old, a rule's for) are judged at it,
// so that they freeze while Valkey stalls, as liveness does. Default:
// judged at the current time.
func WithSeen(seen func() time.Time) Option { return optionFunc(func(c *config) { c.seen = seen }) }

// WithSeriesRetention sets how long the recorder keeps heartbeat values
// over time in Valkey (package series: 1h to 720h, a whole number of 5m);
// 0 is series.DefaultSpan (a day), and less than 0 keeps none: the
// service view has no charts. Default: a day.
func WithSeriesRetention(d time.Duration) Option {
	return optionFunc(func(c *config) { c.seriesRetention = d })
}

// WithMetricsLink sets the template of the link from each instance (and
// each incident's instances) to its own metrics in the operator's Grafana
// or Prometheus: {service_name} and {instance_id} are filled, each
// percent-encoded. New refuses a template CheckMetricsLink refuses.
// Default: none.
func WithMetricsLink(template string) Option {
	return optionFunc(func(c *config) { c.metricsLink = template })
}

// WithEndpoint names Valkey in messages, without credentials
// (watch.Connection.Endpoint). Default: none.
func WithEndpoint(name string) Option { return optionFunc(func(c *config) { c.endpoint = name }) }

// WithRetention sets how long history is kept in Valkey. Default 30 days.
func WithRetention(d time.Duration) Option { return optionFunc(func(c *config) { c.retention = d }) }

// WithLease sets the recorder lease's period: a standby takes over within
// it when the recorder dies. Default 10 s.
func WithLease(d time.Duration) Option { return optionFunc(func(c *config) { c.lease = d }) }

// WithWindows sets the uptime windows shown. Default DefaultWindows.
func WithWindows(w ...time.Duration) Option {
	w = append([]time.Duration(nil), w...)
	return optionFunc(func(c *config) { c.windows = w })
}

// WithMinAlive sets, per service, how many instances must be up for it to
// be up (default 1); the map is copied, and the alert rules use it too.
func WithMinAlive(m map[string]int) Option {
	m = maps.Clone(m)
	return optionFunc(func(c *config) { maps.Copy(c.minAlive, m) })
}

// WithBars sets how many intervals the heartbeat bars of an instance
// show. Default 30.
func WithBars(n int) Option { return optionFunc(func(c *config) { c.bars = n }) }

// WithReplica names this replica in the lease. Default: host name, pid
// and a random suffix.
func WithReplica(name string) Option { return optionFunc(func(c *config) { c.replica = name }) }

// WithAuth protects everything but /healthz and /readyz. Default: nothing
// is protected (the command listens on loopback unless told otherwise).
func WithAuth(a *Auth) Option { return optionFunc(func(c *config) { c.auth = a }) }

// WithErrorf reports failures, once per kind until they recover. Default:
// standard error.
func WithErrorf(f func(format string, args ...any)) Option {
	return optionFunc(func(c *config) { c.errorf = f })
}

// WithCoalesce sets how often live updates are sent. Default 500 ms.
func WithCoalesce(d time.Duration) Option { return optionFunc(func(c *config) { c.coalesce = d }) }

// WithEventWriteTimeout cuts an event stream whose reader does not take
// a write within it. Default 10 s.
func WithEventWriteTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.eventWriteTimeout = d })
}

// WithReconcile sets how often the recorder reconciles history with what
// it sees, and after how long an instance it no longer tracks is recorded
// as forgotten (history.WithReconcileEvery, history.WithForgetAfter).
func WithReconcile(every, forgetAfter time.Duration) Option {
	return optionFunc(func(c *config) { c.reconcileEvery, c.forgetAfter = every, forgetAfter })
}

// WithAlerting configures the alert rules (package alerting), evaluated
// by the replica that records. WithMinAlive's minimums apply to them too.
func WithAlerting(opts ...alerting.Option) Option {
	return optionFunc(func(c *config) { c.alerting = append(c.alerting, opts...) })
}

// WithAlertmanager delivers alerts to every Alertmanager in urls (an HA
// pair: each receives every alert), fenced by the recorder lease.
func WithAlertmanager(urls []string, opts ...delivery.Option) Option {
	urls = append([]string(nil), urls...)
	return optionFunc(func(c *config) {
		c.receivers = append(c.receivers, receiverSpec{build: func(extra ...delivery.Option) (delivery.Receiver, error) {
			return delivery.NewAlertmanager(urls, append(append([]delivery.Option(nil), opts...), extra...)...)
		}})
	})
}

// WithWebhook delivers alerts to a webhook, signed with secret, fenced by
// the recorder lease, its acknowledged notifications noted in Valkey so
// that a replica that takes over delivers what this one could not.
func WithWebhook(url string, secret []byte, opts ...delivery.Option) Option {
	secret = append([]byte(nil), secret...)
	return optionFunc(func(c *config) {
		c.receivers = append(c.receivers, receiverSpec{build: func(extra ...delivery.Option) (delivery.Receiver, error) {
			return delivery.NewWebhook(url, secret, append(append([]delivery.Option(nil), opts...), extra...)...)
		}})
	})
}

// WithPage serves a web page of the panel at the root, behind the same
// authentication and headers as the API. Its requests to the API are
// relative (api/v1/...), so the handler can be mounted under a prefix.
func WithPage(files fs.FS) Option { return optionFunc(func(c *config) { c.page = files }) }
