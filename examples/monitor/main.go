// Command monitor watches service heartbeats live: the Go counterpart of the
// original design's monitor_heartbeat_messages.py, and of its admin panel's liveness
// rule.
//
//	monitor                 print every heartbeat as the original design's monitor does,
//	                        and every liveness change as it happens
//	monitor --table         a live table of services and instances
//	monitor --json          one JSON object per line, for piping
//	monitor --once          print current state from the latest-state keys and
//	                        exit: 0 all alive, 1 any stale (or, with --service,
//	                        none alive), 2 could not see (Valkey unreachable, a
//	                        command refused, a key of another type, or every
//	                        key malformed), 3 usage error; with no key to
//	                        read it listens for one --default-interval
//	monitor --service NAME  only that service
//	monitor --sharded       shard channels (SSUBSCRIBE), for publishers in sharded mode
//	monitor --health-rule 'tracker_fetcher: last_successful_operation older than 5m'
//	                        say when an alive instance breaks a rule on its
//	                        heartbeat's fields (degraded), and when it keeps
//	                        to it again; repeatable
//
// It connects as the library does: OTEL_EXPORTER_VALKEY_ENDPOINT (or the
// original design's HEALTH_REDIS_HOST, HEALTH_REDIS_PORT, HEALTH_REDIS_PASSWORD),
// OTEL_EXPORTER_VALKEY_USERNAME, _PASSWORD, _CERTIFICATE, _CHANNEL_PREFIX and
// _KEY_PREFIX; default localhost:6379. Colours follow NO_COLOR and are off
// when output is not a terminal.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch/term"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// Exit codes of --once.
const (
	exitOK          = 0
	exitNotAlive    = 1
	exitUnreachable = 2
	exitUsage       = 3
)

type options struct {
	table, json, once bool
	sharded           bool
	service           string
	endpoint          string
	retention         time.Duration
	refresh           time.Duration
	timeout           time.Duration
	blindAfter        time.Duration
	maxInstances      int
	defaultInterval   time.Duration
	healthRules       []watch.HealthRule
}

func main() {
	// The monitor reports connection trouble itself; go-redis's own log
	// lines would only repeat it.
	watch.QuietGoRedis()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("monitor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.BoolVar(&o.table, "table", false, "show a live table of services and instances")
	fs.BoolVar(&o.json, "json", false, "write one JSON object per line")
	fs.BoolVar(&o.once, "once", false, "print current state from the latest-state keys and exit (0 alive, 1 not, 2 could not see)")
	fs.StringVar(&o.service, "service", "", "watch only this service")
	fs.BoolVar(&o.sharded, "sharded", false, "subscribe to shard channels (SSUBSCRIBE) of the services in the registry, as publishers in sharded mode send (default: OTEL_EXPORTER_VALKEY_SHARDED)")
	fs.StringVar(&o.endpoint, "endpoint", "", "Valkey endpoint URL or host:port (default: the library's variables)")
	fs.DurationVar(&o.retention, "retention", watch.DefaultRetention, "forget dead and stopped instances after this long")
	fs.DurationVar(&o.refresh, "refresh", time.Second, "redraw the table this often")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Second, "timeout of one Valkey command")
	fs.DurationVar(&o.blindAfter, "blind-after", watch.DefaultBlindAfter, "say the monitor is blind, and hold verdicts, when Valkey has not answered for this long")
	fs.DurationVar(&o.defaultInterval, "default-interval", wire.DefaultInterval, "the interval of a sender that does not say it (the original design's format), until its heartbeats' gaps show it; also how long --once listens when there is no latest-state key (default: HEARTBEAT_INTERVAL, else 60s)")
	fs.IntVar(&o.maxInstances, "max-instances", watch.DefaultMaxInstances, "track at most this many instances; past it, the one dead or stopped the longest is evicted, else the one heard from least recently")
	fs.Func("health-rule", "a health rule, repeatable: 'SERVICE: FIELD older than DURATION', 'SERVICE: FIELD > NUMBER [for DURATION]' (<, >=, <=), 'SERVICE: FIELD != VALUE'", func(v string) error {
		r, err := watch.ParseHealthRule(v)
		if err != nil {
			return err
		}
		o.healthRules = append(o.healthRules, r)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "monitor: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if v := os.Getenv(watch.EnvHeartbeatInterval); v != "" && !flagSet(fs, "default-interval") {
		d, err := watch.ParseInterval(v)
		if err != nil {
			fmt.Fprintf(stderr, "monitor: %v\n", err)
			return exitUsage
		}
		o.defaultInterval = d
	}
	if err := watch.CheckInterval(o.defaultInterval); err != nil {
		fmt.Fprintf(stderr, "monitor: --default-interval: %v\n", err)
		return exitUsage
	}
	if o.table && o.json {
		fmt.Fprintln(stderr, "monitor: --table and --json do not mix")
		return exitUsage
	}
	if o.once && len(o.healthRules) > 0 {
		// --once answers whether instances are alive, from one look: a
		// rule's for and a field's age need watching over time.
		fmt.Fprintln(stderr, "monitor: --health-rule does not apply to --once, which judges liveness only; watch without --once")
		return exitUsage
	}
	if o.refresh <= 0 || o.retention <= 0 || o.timeout <= 0 || o.blindAfter <= 0 || o.maxInstances <= 0 {
		fmt.Fprintln(stderr, "monitor: --refresh, --retention, --timeout, --blind-after and --max-instances must be positive")
		return exitUsage
	}
	if o.service != "" {
		if err := wire.ValidateServiceName(o.service); err != nil {
			fmt.Fprintf(stderr, "monitor: --service: %v\n", err)
			return exitUsage
		}
	}

	conn, err := watch.ConnectFromEnv(watch.WithEndpoint(o.endpoint, "--endpoint"), watch.WithCommandTimeout(o.timeout))
	if err != nil {
		fmt.Fprintf(stderr, "monitor: %v\n", err)
		return exitUsage
	}
	defer conn.Client.Close()
	if !flagSet(fs, "sharded") {
		o.sharded = conn.Sharded // OTEL_EXPORTER_VALKEY_SHARDED, as the publishers read it
	}
	style := term.Style{Color: term.Colour(stdout), Location: time.Local}

	if o.once {
		return once(o, conn, style, stdout, stderr)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	conn.Sharded = o.sharded
	opts := []watch.Option{watch.WithService(o.service), watch.WithRefresh(o.refresh), watch.WithProbe(0, o.blindAfter),
		watch.WithTracker(watch.WithRetention(o.retention), watch.WithMaxInstances(o.maxInstances), watch.WithDefaultInterval(o.defaultInterval),
			watch.WithHealthRules(o.healthRules...)),
		// Every renderer below writes what it shows of a heartbeat during
		// its call: the watcher decodes the next into the same message.
		watch.WithReusedMessages()}
	if o.json {
		opts = append(opts, watch.WithRawMessages())
	}
	if o.table {
		opts = append(opts, watch.WithoutHeartbeatEvents())
	}
	m, err := watch.New(conn, opts...)
	if err != nil {
		fmt.Fprintf(stderr, "monitor: %v\n", err)
		return exitUsage
	}
	if !o.json {
		what := m.Subscription()
		if o.sharded {
			what = "the shard channels of the services in " + wire.DefaultRegistryKey
		}
		fmt.Fprintf(stderr, "monitor: watching %s on %s\n", what, conn.Endpoint)
	}
	// One write per frame, not one per cell: the output is flushed when
	// nothing more is waiting to be shown.
	out := bufio.NewWriterSize(stdout, 64<<10)
	render := renderer(o, m, style, out)
	_ = m.Run(ctx, func(e watch.Event) {
		render(e)
		if e.Kind == watch.KindIdle || e.Kind == watch.KindRefresh {
			_ = out.Flush()
		}
	})
	_ = out.Flush()
	s := m.Stats()
	if !o.json {
		fmt.Fprintf(stderr, "monitor: received %d heartbeats, %d malformed, %d not shown, %d evicted, %d disconnects, blind %d times\n",
			s.Received, s.Malformed, s.Dropped, s.Evicted, s.Disconnects, s.Blind)
	}
	return exitOK
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// maxMalformedPerSecond bounds the malformed-message lines printed, so that
// a flood of garbage cannot flood the terminal.
const maxMalformedPerSecond = 5

func renderer(o options, m *watch.Monitor, style term.Style, w io.Writer) func(watch.Event) {
	var malformed, suppressed int
	var second time.Time
	limited := func(e watch.Event) bool {
		if e.Kind != watch.KindMalformed {
			return false
		}
		if s := e.At.Truncate(time.Second); !s.Equal(second) {
			second, malformed = s, 0
		}
		malformed++
		if malformed > maxMalformedPerSecond {
			suppressed++
			return true
		}
		return false
	}
	flushSuppressed := func(e watch.Event) {
		if suppressed > 0 && e.Kind == watch.KindRefresh {
			fmt.Fprintf(w, "... %d more malformed messages not shown (see the malformed count)\n", suppressed)
			suppressed = 0
		}
	}

	switch {
	case o.json:
		return func(e watch.Event) {
			if !limited(e) {
				_ = term.JSON(w, e)
			}
		}
	case o.table:
		tty := term.IsTerminal(w)
		var recent []string
		return func(e watch.Event) {
			switch e.Kind {
			case watch.KindHeartbeat:
				return
			case watch.KindRefresh:
				if tty {
					fmt.Fprint(w, "\x1b[H\x1b[2J")
				}
				style.Table(w, m.Tracker(), m.Stats(), e.At)
				for _, line := range recent {
					fmt.Fprint(w, line)
				}
				if !tty {
					fmt.Fprintln(w)
				}
				return
			}
			if limited(e) {
				return
			}
			var b stringWriter
			style.Event(&b, e)
			if len(b.b) == 0 {
				return
			}
			recent = append(recent, b.String())
			if len(recent) > 10 {
				recent = recent[len(recent)-10:]
			}
		}
	default:
		return func(e watch.Event) {
			flushSuppressed(e)
			if !limited(e) {
				style.Event(w, e)
			}
		}
	}
}

type stringWriter struct{ b []byte }

func (s *stringWriter) Write(p []byte) (int, error) { s.b = append(s.b, p...); return len(p), nil }
func (s *stringWriter) String() string              { return string(s.b) }

// once prints the latest-state keys and returns the exit code. It exits
// exitUnreachable, saying why on stderr, whenever it could not see: Valkey
// unreachable, a command refused (NOPERM on SCAN, STRLEN, PTTL or GETRANGE, a
// key of another type), or nothing but malformed keys. None of that is
// "all alive".
func once(o options, conn watch.Connection, style term.Style, stdout, stderr io.Writer) int {
	client, endpoint := conn.Client, conn.Endpoint
	ctx, cancel := context.WithTimeout(context.Background(), 2*o.timeout)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		fmt.Fprintf(stderr, "monitor: cannot reach Valkey at %s: %s\n", endpoint, term.Escape(err.Error()))
		return exitUnreachable
	}
	// A batch of keys at a time, keeping of each only its line: a fleet of
	// large heartbeats costs a batch, not all of them.
	type line struct {
		key string
		st  watch.State
		age time.Duration
		m   wire.Message // without its service fields
	}
	var lines []line
	code := exitOK
	alive, valid, refused, malformed := 0, 0, 0, 0
	readErr := watch.EachLatest(ctx, client, conn.KeyPrefix, o.service, func(batch []watch.Latest) {
		for _, l := range batch {
			if l.Err != nil {
				fmt.Fprintf(stderr, "monitor: %s\n", term.Escape(l.Err.Error()))
				var re redis.Error
				if errors.As(l.Err, &re) {
					refused++ // Valkey would not let us read it
				} else {
					malformed++
				}
				continue
			}
			m := *l.Message
			m.Fields = nil
			lines = append(lines, line{key: l.Key, st: l.State(), age: l.Age, m: m})
		}
	})
	sort.Slice(lines, func(i, j int) bool { return lines[i].key < lines[j].key })
	for _, l := range lines {
		valid++
		if l.st == watch.Alive {
			alive++
		} else if l.st != watch.Stopped {
			code = exitNotAlive
		}
		m := &l.m
		if o.json {
			_ = term.InstanceJSON(stdout, term.InstanceLine{Service: m.ServiceName, Instance: m.InstanceID, State: l.st,
				Age: l.age, Interval: m.Interval(), Source: watch.IntervalSent, Count: m.HeartbeatCount, From: "latest_state_key"})
			continue
		}
		fmt.Fprintf(stdout, "%-24s %-8s %s  age %-6v interval %v  heartbeats %d\n",
			term.Escape(m.ServiceName), term.Escape(term.ShortID(m.InstanceID)), style.StateLabel(l.st), l.age.Round(100*time.Millisecond), m.Interval(), m.HeartbeatCount)
	}
	switch {
	case readErr != nil:
		fmt.Fprintf(stderr, "monitor: cannot tell: reading latest-state keys from %s failed: %s\n", endpoint, term.Escape(readErr.Error()))
		return exitUnreachable
	case refused > 0:
		fmt.Fprintf(stderr, "monitor: cannot tell: Valkey at %s refused to read %d latest-state keys (above)\n", endpoint, refused)
		return exitUnreachable
	case valid == 0 && malformed > 0:
		fmt.Fprintf(stderr, "monitor: cannot tell: all %d latest-state keys at %s are malformed (above)\n", malformed, endpoint)
		return exitUnreachable
	case valid == 0:
		// Publishers in the original design's format write no latest-state keys.
		return listenOnce(o, conn, style, stdout, stderr)
	case o.service != "" && alive == 0:
		code = exitNotAlive
	}
	return code
}

// listenOnce decides from the channel when no latest-state key answers, as
// for publishers in the original design's format, which write none: it listens for up
// to one default interval from the moment it is subscribed, and stops
// early once the service asked about has been heard alive. Hearing
// nothing is an answer only when the monitor saw the whole window: it was
// subscribed, never blind nor disconnected, and its probes prove it read
// everything published until the window's end. Otherwise it could not
// see, and says why (exit 2); so too when all it heard was malformed.
func listenOnce(o options, conn watch.Connection, style term.Style, stdout, stderr io.Writer) int {
	what := "any service"
	if o.service != "" {
		what = o.service
	}
	fmt.Fprintf(stderr, "monitor: no latest-state key for %s; listening for heartbeats for up to %v (--default-interval)\n", term.Escape(what), o.defaultInterval)
	conn.Sharded = o.sharded
	m, err := watch.New(conn, watch.WithService(o.service), watch.WithoutLatestState(), watch.WithQueue(1000, 0),
		watch.WithRefresh(watch.DefaultProbe), watch.WithProbe(0, o.blindAfter),
		watch.WithTracker(watch.WithDefaultInterval(o.defaultInterval)))
	if err != nil {
		fmt.Fprintf(stderr, "monitor: %v\n", err)
		return exitUsage
	}
	l := &listening{o: o, m: m, style: style, stdout: stdout, stderr: stderr, heard: map[watch.Key]bool{}}
	// Subscribing counts against the window too, with room to prove the
	// window seen: a Valkey that never answers is not waited for longer.
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout+o.defaultInterval+o.blindAfter)
	defer cancel()
	_ = m.Run(ctx, func(e watch.Event) {
		if l.observe(e) {
			cancel()
		}
	})
	return l.verdict(conn.Endpoint)
}

// listening is what listenOnce has heard, and whether it could see.
type listening struct {
	o              options
	m              *watch.Monitor
	style          term.Style
	stdout, stderr io.Writer

	heard     map[watch.Key]bool
	alive     int
	malformed int
	end       time.Time // of the window, once subscribed
	seenAll   bool      // the probes proved the whole window read
	unseen    string    // why it could not see, when it could not
}

// maxMalformedShown bounds the malformed messages --once names.
const maxMalformedShown = 10

// observe takes one event and says whether listening is over.
func (l *listening) observe(e watch.Event) bool {
	switch e.Kind {
	case watch.KindLoaded:
		l.end = e.At.Add(l.o.defaultInterval)
	case watch.KindDisconnected:
		l.unseen = "the subscription failed: " + e.Err.Error()
		return true
	case watch.KindBlind:
		l.unseen = fmt.Sprintf("Valkey did not answer for %v while it listened", e.Downtime.Round(time.Millisecond))
		return !l.decided()
	case watch.KindMalformed:
		if l.malformed++; l.malformed <= maxMalformedShown {
			fmt.Fprintf(l.stderr, "monitor: malformed message on %s: %s\n", term.Escape(e.Channel), term.Escape(e.Err.Error()))
		}
	case watch.KindHeartbeat:
		l.heartbeat(e)
		return l.decided()
	case watch.KindRefresh:
		if l.end.IsZero() {
			return false
		}
		if !l.m.Seen().Before(l.end) {
			l.seenAll = true
			return true
		}
		if e.At.After(l.end.Add(l.o.blindAfter)) {
			l.unseen = fmt.Sprintf("Valkey had not answered for %v at the end of the window", e.At.Sub(l.m.Seen()).Round(time.Millisecond))
			return true
		}
	}
	return false
}

// decided: the service asked about was heard alive, which no later
// blindness changes.
func (l *listening) decided() bool { return l.o.service != "" && l.alive > 0 }

func (l *listening) heartbeat(e watch.Event) {
	k := watch.Key{Service: e.Message.ServiceName, Instance: e.Message.InstanceID}
	if l.heard[k] {
		return
	}
	l.heard[k] = true
	st := watch.Alive
	if e.Message.Status == wire.StatusStopping {
		st = watch.Stopped
	} else {
		l.alive++
	}
	in, _ := l.m.Tracker().Get(k)
	if l.o.json {
		_ = term.InstanceJSON(l.stdout, term.InstanceLine{Service: k.Service, Instance: k.Instance, State: st,
			Interval: in.Interval, Source: in.IntervalSource, Count: e.Message.HeartbeatCount, From: "channel"})
		return
	}
	fmt.Fprintf(l.stdout, "%-24s %-8s %s  heard now    interval %s  heartbeats %d\n",
		term.Escape(k.Service), term.Escape(term.ShortID(k.Instance)), l.style.StateLabel(st),
		term.IntervalText(in.Interval, in.IntervalSource), e.Message.HeartbeatCount)
}

// verdict returns the exit code, saying why on stderr when it could not
// tell.
func (l *listening) verdict(endpoint string) int {
	if l.malformed > maxMalformedShown {
		fmt.Fprintf(l.stderr, "monitor: ... and %d more malformed messages\n", l.malformed-maxMalformedShown)
	}
	cannot := func(why string) int {
		fmt.Fprintf(l.stderr, "monitor: cannot tell: %s at %s\n", why, endpoint)
		return exitUnreachable
	}
	switch {
	case l.decided():
		return exitOK
	case l.end.IsZero():
		return cannot(fmt.Sprintf("could not subscribe within %v", l.o.timeout))
	case l.unseen != "":
		return cannot(term.Escape(l.unseen) + fmt.Sprintf(" (heard %d instances)", len(l.heard)))
	case !l.seenAll:
		return cannot("the subscription's probes never covered the window")
	case len(l.heard) == 0 && l.malformed > 0:
		return cannot(fmt.Sprintf("all %d messages heard in %v were malformed (above)", l.malformed, l.o.defaultInterval))
	case l.o.service != "":
		fmt.Fprintf(textOut(l.o, l.stdout, l.stderr), "no instance of %s: no latest-state key, and no heartbeat within %v: none alive\n", term.Escape(l.o.service), l.o.defaultInterval)
		return exitNotAlive
	case len(l.heard) == 0:
		fmt.Fprintf(textOut(l.o, l.stdout, l.stderr), "no instances: no latest-state key and no heartbeat within %v\n", l.o.defaultInterval)
	}
	return exitOK
}

// textOut is where --once writes its summary: stdout, or stderr when
// stdout carries --json lines only.
func textOut(o options, stdout, stderr io.Writer) io.Writer {
	if o.json {
		return stderr
	}
	return stdout
}
