// Command discovery shows heartbeats used for service discovery, both
// sides of it:
//
//	discovery serve --service NAME   an HTTP service that advertises where it
//	                                 serves (instance_address) and how many
//	                                 requests it has in hand (pending_requests)
//	                                 in its heartbeats
//	discovery call --service NAME    a client that spreads requests over the
//	                                 alive instances of NAME, the least loaded
//	                                 first, and stops sending to an instance
//	                                 as soon as it goes stale or stops
//
// Both connect as the library does (OTEL_EXPORTER_VALKEY_ENDPOINT and the
// other OTEL_EXPORTER_VALKEY_* variables, or the original design's HEALTH_REDIS_*), and
// serve heartbeats every HEARTBEAT_INTERVAL seconds (default 60).
//
// On SIGINT or SIGTERM, serve sends its stopping heartbeat first, so that
// clients stop picking it at once, keeps answering for --drain (requests
// picked before the clients heard), then shuts its server down. A client
// that finds an instance unreachable (a crash it has not yet judged)
// retries the request on another one.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/otel-heartbeat/heartbeat/examples/discovery/balance"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

const usage = `usage:
  discovery serve --service NAME [--listen 127.0.0.1:0] [--advertise URL] [--work 20ms] [--drain 1s]
  discovery call  --service NAME [--every 20ms] [--concurrency 4] [--requests 0] [--load-field pending_requests] [--json]
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "call":
		return call(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "discovery: unknown mode %q\n%s", args[0], usage)
	return 2
}

// serve runs one instance of an HTTP service whose heartbeats say where it
// serves and how many requests it is working on.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	service := fs.String("service", "", "the service name (required)")
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	advertise := fs.String("advertise", "", "address to advertise (default: the listening address, as http://host:port)")
	work := fs.Duration("work", 20*time.Millisecond, "how long each request takes")
	drain := fs.Duration("drain", time.Second, "how long to keep answering after the stopping heartbeat")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *service == "" || *work < 0 || *drain < 0 {
		fmt.Fprintln(stderr, "discovery serve: --service is required; --work and --drain must not be negative")
		return 2
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "discovery serve: %v\n", err)
		return 1
	}
	addr := *advertise
	if addr == "" {
		addr = advertised(ln.Addr().(*net.TCPAddr))
	}

	var pending atomic.Int64
	hb, err := otelheartbeat.NewManager(*service, otelheartbeat.WithInstanceAddress(addr))
	if err == nil {
		err = hb.AddPendingRequestsCollector(func() int { return int(pending.Load()) })
	}
	if err != nil {
		_ = ln.Close()
		fmt.Fprintf(stderr, "discovery serve: %v\n", err)
		return 2
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /work", func(w http.ResponseWriter, r *http.Request) {
		pending.Add(1)
		defer pending.Add(-1)
		t := time.NewTimer(*work)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"instance": hb.InstanceID()})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	if err := hb.Start(ctx); err != nil {
		fmt.Fprintf(stderr, "discovery serve: %v (serving without heartbeats)\n", err)
	}
	fmt.Fprintf(stdout, "serving %s (%s) at %s\n", *service, hb.InstanceID(), addr)

	select {
	case <-ctx.Done():
	case err := <-served:
		fmt.Fprintf(stderr, "discovery serve: %v\n", err)
		stopHeartbeat(hb, stderr)
		return 1
	}
	// The stopping heartbeat first: clients stop picking this instance at
	// once, and requests they picked before they heard it still get an
	// answer during the drain.
	stopHeartbeat(hb, stderr)
	drained := time.NewTimer(*drain)
	<-drained.C
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		fmt.Fprintf(stderr, "discovery serve: shutdown: %v\n", err)
		return 1
	}
	<-served
	fmt.Fprintf(stdout, "stopped %s (%s)\n", *service, hb.InstanceID())
	return 0
}

func stopHeartbeat(hb *otelheartbeat.Manager, stderr io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hb.Stop(ctx); err != nil {
		fmt.Fprintf(stderr, "discovery serve: %v\n", err)
	}
}

// advertised is the address clients reach a listener at: its own, or the
// host's name when it listens on every interface.
func advertised(a *net.TCPAddr) string {
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return "http://" + net.JoinHostPort(host, fmt.Sprint(a.Port))
}

// record is one line of call's output.
type record struct {
	Type     string   `json:"type"` // request, joined, left
	At       string   `json:"at"`
	Instance string   `json:"instance,omitempty"`
	Address  string   `json:"address,omitempty"`
	PickedAt string   `json:"picked_at,omitempty"`
	Load     float64  `json:"load"`
	OK       bool     `json:"ok"`
	Attempts int      `json:"attempts,omitempty"`
	FailedOn []string `json:"failed_on,omitempty"` // instances tried first, in vain
	State    string   `json:"state,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// callSettings are call's flags.
type callSettings struct {
	service     string
	every       time.Duration
	concurrency int
	requests    int // 0: until SIGINT
	loadField   string
	asJSON      bool
	attempts    int
}

// parseCall reads call's flags; false when they are wrong, which it has
// then reported.
func parseCall(args []string, stderr io.Writer) (callSettings, bool) {
	var s callSettings
	fs := flag.NewFlagSet("call", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&s.service, "service", "", "the service to call (required)")
	fs.DurationVar(&s.every, "every", 20*time.Millisecond, "start a request this often")
	fs.IntVar(&s.concurrency, "concurrency", 4, "requests in flight at most")
	fs.IntVar(&s.requests, "requests", 0, "stop after this many requests (0: until SIGINT)")
	fs.StringVar(&s.loadField, "load-field", "pending_requests", "the numeric service field that says how loaded an instance is")
	fs.BoolVar(&s.asJSON, "json", false, "one JSON object per line")
	fs.IntVar(&s.attempts, "attempts", 3, "instances to try for one request")
	if err := fs.Parse(args); err != nil {
		return s, false
	}
	if s.every <= 0 || s.concurrency <= 0 || s.requests < 0 || s.attempts <= 0 {
		fmt.Fprintln(stderr, "discovery call: --every, --concurrency and --attempts must be positive, --requests not negative")
		return s, false
	}
	return s, true
}

// call sends requests to the alive instances of a service.
func call(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	s, ok := parseCall(args, stderr)
	if !ok {
		return 2
	}
	conn, err := watch.ConnectFromEnv()
	if err != nil {
		fmt.Fprintf(stderr, "discovery call: %v\n", err)
		return 2
	}
	defer conn.Client.Close()
	c, err := newCaller(conn, s, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "discovery call: %v\n", err)
		return 2
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watched := make(chan error, 1)
	go func() { watched <- c.mon.Run(ctx, c.observe) }()
	select {
	case <-c.loaded:
	case err := <-watched:
		if errors.Is(err, context.Canceled) {
			return 0
		}
		fmt.Fprintf(stderr, "discovery call: %v\n", err)
		return 1
	}
	failed := c.sendAll(ctx)
	cancel()
	if err := <-watched; err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "discovery call: %v\n", err)
		return 1
	}
	if failed > 0 {
		fmt.Fprintf(stderr, "discovery call: %d requests failed on every instance tried\n", failed)
		return 1
	}
	return 0
}

// caller is call's client side: the monitor that follows the service's
// instances, the picker that chooses among them, and where it writes what
// happened.
type caller struct {
	callSettings
	mon    *watch.Monitor
	picker *balance.Picker
	out    *output
	stderr io.Writer
	loaded chan struct{} // closed once the monitor has read the latest-state keys
}

// newCaller wires the monitor to the picker; nothing runs until call
// starts the monitor.
func newCaller(conn watch.Connection, s callSettings, stdout, stderr io.Writer) (*caller, error) {
	mon, err := watch.New(conn, watch.WithService(s.service), watch.WithoutHeartbeatEvents(), watch.WithTracker(watch.WithHeartbeats()))
	if err != nil {
		return nil, err
	}
	picker, err := balance.New(mon.Tracker(), s.service, s.loadField)
	if err != nil {
		return nil, err
	}
	return &caller{
		callSettings: s, mon: mon, picker: picker,
		out: &output{w: stdout, json: s.asJSON}, stderr: stderr,
		loaded: make(chan struct{}),
	}, nil
}

// observe writes the instances that join and leave the alive ones, and
// says when the monitor cannot see Valkey: the picker's choices are then
// frozen.
func (c *caller) observe(e watch.Event) {
	switch e.Kind {
	case watch.KindLoaded:
		// The instances in the latest-state keys are known: the
		// first requests can go out.
		select {
		case <-c.loaded:
		default:
			close(c.loaded)
		}
	case watch.KindTransition:
		t := e.Transition
		switch {
		case t.To == watch.Alive:
			c.out.write(record{Type: "joined", At: stamp(time.Now()), Instance: t.Instance, State: t.To.String()})
		case t.From == watch.Alive:
			c.out.write(record{Type: "left", At: stamp(time.Now()), Instance: t.Instance, State: t.To.String()})
		}
	case watch.KindBlind, watch.KindDisconnected:
		fmt.Fprintf(c.stderr, "discovery call: %s\n", describe(e))
	}
}

// sendAll starts a request every tick, at most concurrency at once, until
// it has started the requests asked for or ctx ends; it returns how many
// failed on every instance tried.
func (c *caller) sendAll(ctx context.Context) int {
	client := &http.Client{Timeout: 5 * time.Second}
	tick := time.NewTicker(c.every)
	defer tick.Stop()
	slots := make(chan struct{}, c.concurrency)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for sent := 0; c.requests == 0 || sent < c.requests; sent++ {
		if !nextSlot(ctx, tick.C, slots) {
			break
		}
		wg.Go(func() {
			defer func() { <-slots }()
			if !c.request(ctx, client) {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	return int(failed.Load())
}

// nextSlot waits for the next tick, then for a request in flight to end
// when as many as allowed are; false when ctx ends first.
func nextSlot(ctx context.Context, tick <-chan time.Time, slots chan<- struct{}) bool {
	select {
	case <-ctx.Done():
	case <-tick:
	}
	if ctx.Err() != nil {
		return false
	}
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
	}
	return ctx.Err() == nil
}

// request sends one request and writes its record; false when it failed
// on every instance tried. A request cut short by SIGINT is neither failed
// nor done, so it writes nothing.
func (c *caller) request(ctx context.Context, client *http.Client) bool {
	r := send(ctx, client, c.picker, c.attempts)
	if !r.OK && ctx.Err() != nil {
		return true
	}
	c.out.write(r)
	return r.OK
}

// send makes one request, on another instance when one fails.
func send(ctx context.Context, client *http.Client, picker *balance.Picker, attempts int) record {
	var tried []string
	r := record{Type: "request"}
	for len(tried) < attempts {
		t, err := picker.Pick(tried...)
		if err != nil {
			if r.Error == "" { // else keep why the last instance failed
				r.Error = err.Error()
			}
			break
		}
		r.PickedAt, r.Instance, r.Address, r.Load = stamp(time.Now()), t.Instance, t.Address, t.Load
		err = get(ctx, client, t)
		picker.Done(t)
		tried = append(tried, t.Instance)
		if err == nil {
			r.OK, r.Error = true, ""
			break
		}
		if ctx.Err() == nil {
			picker.Fail(t)
		}
		r.Error = err.Error()
		r.FailedOn = append(r.FailedOn, t.Instance)
	}
	r.Attempts, r.At = len(tried), stamp(time.Now())
	return r
}

// target is the URL of the work endpoint at an advertised address:
// host:port, or a URL whose path the endpoint is under.
func target(addr string) (string, error) {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", err
	}
	return u.JoinPath("work").String(), nil
}

func get(ctx context.Context, client *http.Client, t balance.Target) error {
	u, err := target(t.Address)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct{ Instance string }
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %q", t.Instance, resp.Status) // the status line is the server's text
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&body); err != nil {
		return fmt.Errorf("%s: %w", t.Instance, err)
	}
	if body.Instance != t.Instance {
		// Another instance took over the address the heartbeat named.
		return fmt.Errorf("%s answered for %q", t.Address, body.Instance)
	}
	return nil
}

func stamp(t time.Time) string { return string(wire.AppendTimestamp(nil, t)) }

func describe(e watch.Event) string {
	if e.Kind == watch.KindBlind {
		return fmt.Sprintf("no answer from Valkey for %v: choices frozen at the last verdicts", e.Downtime.Round(time.Millisecond))
	}
	return fmt.Sprintf("disconnected: %v", e.Err)
}

// output writes records from several goroutines, one line each.
type output struct {
	mu   sync.Mutex
	w    io.Writer
	json bool
}

func (o *output) write(r record) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.json {
		b, _ := json.Marshal(r)
		_, _ = o.w.Write(append(b, '\n'))
		return
	}
	switch r.Type {
	case "request":
		if r.OK {
			fmt.Fprintf(o.w, "%s %s at %s (load %g, %d attempts)\n", r.At, r.Instance, r.Address, r.Load, r.Attempts)
		} else {
			fmt.Fprintf(o.w, "%s failed after %d attempts: %s\n", r.At, r.Attempts, r.Error)
		}
	default:
		fmt.Fprintf(o.w, "%s %s %s (%s)\n", r.At, r.Instance, r.Type, r.State)
	}
}
