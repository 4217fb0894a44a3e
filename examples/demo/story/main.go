// Command story is the heartbeat demo itself, which examples/demo (the
// launcher that `go run ./examples/demo` compiles in seconds) compiles
// and runs with its arguments; go doc ./examples/demo tells the story and
// its flags. It also runs directly, as go run ./examples/demo/story.
//
// It starts an embedded Valkey-compatible broker (miniredis), three
// services, each this same binary run again with the service's name in
// HEARTBEAT_DEMO_SERVICE, the monitor and the admin panel; it crashes one
// service and stops another gracefully, and checks that the monitor told
// the two apart. In a terminal (--stay) the admin panel then stays up
// until Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/examples/adminpanel/web"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/panel"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch/term"
)

// roleEnv makes the demo binary run one of the services.
const roleEnv = "HEARTBEAT_DEMO_SERVICE"

var services = []string{"tracker_fetcher", "geocoding_service", "geofence_service"}

func main() {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runService(role))
	}
	watch.QuietGoRedis()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runDemo(ctx, os.Args[1:], os.Stdout, os.Stderr, isTerminal(os.Stdout))
	stop()
	os.Exit(code)
}

// isTerminal reports whether f is a terminal, which the demo stays up for
// after the story: a character device, but not /dev/null.
func isTerminal(f *os.File) bool {
	if !term.IsTerminal(f) {
		return false
	}
	fi, err := f.Stat()
	null, nerr := os.Stat(os.DevNull)
	return err != nil || nerr != nil || !os.SameFile(fi, null)
}

// out serializes the demo's printing between the monitor and the script.
type out struct {
	mu sync.Mutex
	w  io.Writer
}

func (o *out) printf(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.w, format, args...)
}

func (o *out) do(f func(io.Writer)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	f(o.w)
}

// runDemo starts what the story needs, each undone in reverse order however
// the story ends, then tells the story until ctx is done; it returns the
// exit status. interactive is --stay's default: whether stdout is a
// terminal, where someone may open the admin panel after the story.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer, interactive bool) int {
	s, err := parseSettings(args, stderr, interactive)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2
	}
	o := &out{w: stdout}

	// The broker.
	endpoint, client, closeBroker, err := broker(o)
	if err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return 1
	}
	defer closeBroker()
	defer client.Close()

	// The admin panel, beside the monitor.
	var panelURL string
	if s.panelAddr != "" {
		url, stopPanel, err := startPanel(client, endpoint, s.interval, s.panelAddr, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "demo: admin panel: %v\n", err)
			return 1
		}
		defer stopPanel()
		panelURL = url
		o.printf("🖥️  admin panel: %s (live page; API at %sapi/v1/services; metrics at %smetrics)\n", url, url, url)
	}

	// The monitor, on this process's goroutine of its own.
	n, err := startNarrator(client, s.interval, o, term.Style{Color: term.Colour(stdout), Location: time.Local})
	if err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return 1
	}
	defer n.stop()

	// The services.
	metricsAddr, err := freeAddr()
	if err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return 1
	}
	ids := instanceIDs()
	f := fleet{}
	defer f.kill()
	if err := f.start(ids, endpoint, s.interval, metricsAddr, stderr); err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return 1
	}
	o.printf("started %s, %s and %s (pids %d, %d, %d); heartbeat every %v\n\n",
		services[0], services[1], services[2], f[services[0]].Process.Pid, f[services[1]].Process.Pid, f[services[2]].Process.Pid, s.interval)

	sc := &script{o: o, narrator: n, fleet: f, story: newStory(ids), interval: s.interval, metricsAddr: metricsAddr}
	if s.forever {
		return sc.runForever(ctx)
	}
	code := sc.run(ctx)
	if s.stay && panelURL != "" && ctx.Err() == nil {
		sc.stay(ctx, panelURL)
	}
	sc.fleet.stopAll(sc.interval)
	return code
}

// settings are the demo's flags.
type settings struct {
	interval  time.Duration
	forever   bool
	stay      bool
	panelAddr string
}

// parseSettings reads the flags; an error when they are wrong, which it has
// then reported, or flag.ErrHelp when help was asked for and shown.
func parseSettings(args []string, stderr io.Writer, interactive bool) (settings, error) {
	var s settings
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./examples/demo [flags]\n\nThe heartbeat story on an embedded broker: three services, a crash, a graceful stop,\nthe monitor and the admin panel.\n\n")
		fs.PrintDefaults()
	}
	fs.DurationVar(&s.interval, "interval", time.Second, "heartbeat interval")
	fs.BoolVar(&s.forever, "forever", false, "skip the crash and the stop; run until interrupted")
	fs.StringVar(&s.panelAddr, "panel", "127.0.0.1:8080", "where the admin panel serves (another free port if taken; empty: no panel)")
	fs.BoolVar(&s.stay, "stay", interactive, "after the story, keep the admin panel, the broker and the surviving service up until Ctrl-C\n(default: whether stdout is a terminal)")
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	if err := watch.CheckInterval(s.interval); err != nil {
		fmt.Fprintf(stderr, "demo: --interval: %v\n", err)
		return s, err
	}
	return s, nil
}

// instanceIDs gives each service the instance ID it will run as, so that
// the story can tell its instances from any other the broker carries.
func instanceIDs() map[string]string {
	ids := map[string]string{}
	for _, s := range services {
		ids[s] = uuid.NewString()
	}
	return ids
}

// narrator runs the monitor and prints what it sees, in the original design's
// format. It hands the transitions to the script, which follows the story
// in them, and prints the fleet's table when the script asks, at the
// monitor's next refresh, so that the table is what the monitor knows.
type narrator struct {
	mon         *watch.Monitor
	o           *out
	style       term.Style
	seen        map[string]bool // instances whose first heartbeat was printed
	transitions chan watch.Transition
	tables      chan chan struct{}
	cancel      context.CancelFunc
	done        chan struct{} // closed when the monitor has returned
}

// startNarrator runs the monitor on a goroutine of its own, until stop.
func startNarrator(client redis.UniversalClient, interval time.Duration, o *out, style term.Style) (*narrator, error) {
	mon, err := watch.New(watch.Connection{Client: client}, watch.WithRefresh(interval/2))
	if err != nil {
		return nil, err
	}
	n := &narrator{
		mon: mon, o: o, style: style, seen: map[string]bool{},
		transitions: make(chan watch.Transition, 100),
		tables:      make(chan chan struct{}, 1),
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan struct{})
	go func() {
		defer close(n.done)
		_ = mon.Run(ctx, n.observe)
	}()
	return n, nil
}

func (n *narrator) stop() {
	n.cancel()
	<-n.done
}

// observe prints each event as the monitor reports it. It never blocks on
// the script, which may be busy acting on the fleet: a transition beyond
// the buffer is printed but not followed, rather than holding the monitor.
func (n *narrator) observe(e watch.Event) {
	switch e.Kind {
	case watch.KindHeartbeat:
		// The first heartbeat of each instance, in the original design's format.
		if !n.seen[e.Message.InstanceID] {
			n.seen[e.Message.InstanceID] = true
			n.o.do(func(w io.Writer) { n.style.Heartbeat(w, e.Message, e.At) })
		}
	case watch.KindTransition:
		n.o.do(func(w io.Writer) { n.style.Transition(w, e.Transition) })
		select {
		case n.transitions <- e.Transition:
		default:
		}
	case watch.KindRefresh:
		select {
		case done := <-n.tables:
			n.o.do(func(w io.Writer) {
				fmt.Fprintln(w)
				n.style.Table(w, n.mon.Tracker(), n.mon.Stats(), e.At)
				fmt.Fprintln(w)
			})
			close(done)
		default:
		}
	case watch.KindLoaded, watch.KindIdle:
	default:
		n.o.do(func(w io.Writer) { n.style.Event(w, e) })
	}
}

// table prints the fleet's table at the monitor's next refresh, and waits
// for it a while, so that the table comes before the story's next line.
func (n *narrator) table() {
	done := make(chan struct{})
	n.tables <- done
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// fleet is the services' processes, by service. A service leaves it when
// its process has ended, so that the demo's end stops only what still
// runs.
type fleet map[string]*exec.Cmd

// start runs every service as a child process.
func (f fleet) start(ids map[string]string, endpoint string, interval time.Duration, metricsAddr string, stderr io.Writer) error {
	for _, s := range services {
		cmd, err := spawn(s, ids[s], endpoint, interval, metricsAddr, stderr)
		if err != nil {
			return fmt.Errorf("start %s: %w", s, err)
		}
		f[s] = cmd
	}
	return nil
}

// crash kills a service with SIGKILL, so that it sends no final heartbeat.
func (f fleet) crash(service string) {
	_ = f[service].Process.Kill()
	_ = f[service].Wait()
	delete(f, service)
}

// reap waits for a service that was told to stop.
func (f fleet) reap(service string) {
	_ = f[service].Wait()
	delete(f, service)
}

// kill ends whatever still runs when the demo ends early, so that no
// service outlives it.
func (f fleet) kill() {
	for _, p := range f {
		_ = p.Process.Kill()
		_ = p.Wait()
	}
}

// stopAll stops every service gracefully, and kills one that takes too
// long to end.
func (f fleet) stopAll(interval time.Duration) {
	for _, p := range f {
		_ = p.Process.Signal(syscall.SIGTERM)
	}
	for name, p := range f {
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10*time.Second + 3*interval):
			_ = p.Process.Kill()
			<-done
		}
		delete(f, name)
	}
}

// script is the story the demo tells: it acts on the fleet, then waits
// for the monitor to report what it did.
type script struct {
	o           *out
	narrator    *narrator
	fleet       fleet
	story       *story
	interval    time.Duration
	metricsAddr string
}

// run tells the whole story, and returns the exit status: 0 when the
// monitor saw it as told. The service that survived it still runs.
func (sc *script) run(ctx context.Context) int {
	if !sc.awaitAlive(ctx) || !sc.crash(ctx) || !sc.gracefulStop(ctx) {
		return 1
	}
	sc.report()
	if !sc.story.summary(sc.o) {
		return 1
	}
	return 0
}

// stay leaves the admin panel up after the story, over the broker and the
// service that survived it, until interrupted.
func (sc *script) stay(ctx context.Context, panelURL string) {
	sc.o.printf("\n🖥️  the admin panel stays up at %s; Ctrl-C to stop\n", panelURL)
	<-ctx.Done()
	sc.o.printf("\nstopping: the services, the monitor, the admin panel and the broker\n")
}

// runForever waits for the services to start, then leaves them running
// until interrupted.
func (sc *script) runForever(ctx context.Context) int {
	if !sc.awaitAlive(ctx) {
		return 1
	}
	sc.o.printf("running until interrupted (Ctrl-C); kill -9 a pid above to watch a crash being detected\n")
	<-ctx.Done()
	sc.fleet.stopAll(sc.interval)
	return 0
}

// wait records the monitor's transitions until done holds; false when it
// does not within timeout, or the demo is interrupted.
func (sc *script) wait(ctx context.Context, what string, timeout time.Duration, done func() bool) bool {
	deadline := time.After(timeout)
	for !done() {
		select {
		case t := <-sc.narrator.transitions:
			sc.story.record(t)
		case <-deadline:
			sc.o.printf("demo: %s did not happen within %v\n", what, timeout)
			return false
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// awaitAlive waits for the monitor to see all three services alive: the
// story's acts mean nothing before.
func (sc *script) awaitAlive(ctx context.Context) bool {
	if !sc.wait(ctx, "all three alive", 10*sc.interval+10*time.Second, sc.story.allAlive) {
		return false
	}
	sc.o.printf("\n📈 Prometheus serves tracker_fetcher's heartbeat gauges too: http://%s/metrics\n", sc.metricsAddr)
	sc.narrator.table()
	return true
}

// crash kills geofence_service, and waits for the monitor to find it
// stale, then dead, from the silence alone.
func (sc *script) crash(ctx context.Context) bool {
	pause(ctx, 2*sc.interval)
	sc.o.printf("\n💥 geofence_service crashes: SIGKILL, so no final heartbeat; the monitor must notice the silence\n\n")
	sc.fleet.crash("geofence_service")
	if !sc.wait(ctx, "geofence_service going dead", 5*sc.interval+10*time.Second, sc.story.crashDetected) {
		return false
	}
	sc.narrator.table()
	return true
}

// gracefulStop stops geocoding_service with SIGTERM, and waits for the
// monitor to report it stopped, from its final heartbeat.
func (sc *script) gracefulStop(ctx context.Context) bool {
	sc.o.printf("\n⏹️  geocoding_service is stopped gracefully: SIGTERM, so it sends a final \"stopping\" heartbeat\n\n")
	_ = sc.fleet["geocoding_service"].Process.Signal(syscall.SIGTERM)
	if !sc.wait(ctx, "geocoding_service stopping", 5*sc.interval+10*time.Second, sc.story.stopSeen) {
		return false
	}
	sc.fleet.reap("geocoding_service")
	pause(ctx, sc.interval)
	sc.narrator.table()
	return true
}

// report prints the heartbeat gauges Prometheus scraped.
func (sc *script) report() {
	sc.o.printf("📈 from http://%s/metrics:\n", sc.metricsAddr)
	for _, l := range scrape(sc.metricsAddr) {
		sc.o.printf("   %s\n", l)
	}
}

// broker returns the Valkey to use: the environment's, or an embedded one.
func broker(o *out) (string, redis.UniversalClient, func(), error) {
	if os.Getenv(watch.EnvEndpoint) != "" || os.Getenv(watch.EnvHealthHost) != "" {
		conn, err := watch.ConnectFromEnv(watch.WithCommandTimeout(5 * time.Second))
		if err != nil {
			return "", nil, nil, err
		}
		o.printf("🗄️  using the Valkey at %s (from the environment)\n", conn.Endpoint)
		return "", conn.Client, func() {}, nil
	}
	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr("127.0.0.1:0"); err != nil {
		return "", nil, nil, fmt.Errorf("embedded broker: %w", err)
	}
	o.printf("🗄️  embedded broker (miniredis) listening on %s\n", mr.Addr())
	o.printf("   watch the same messages with: redis-cli -p %s psubscribe 'heartbeat:service:*'\n", mr.Port())
	client := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
	return "redis://" + mr.Addr(), client, mr.Close, nil
}

// startPanel serves the admin panel on addr, or on a free port if addr
// is taken, and returns its URL and how to stop it.
func startPanel(client redis.UniversalClient, endpoint string, interval time.Duration, addr string, stderr io.Writer) (string, func(), error) {
	mon, err := watch.New(watch.Connection{Client: client, Endpoint: endpoint},
		watch.WithTracker(append(panel.TrackerOptions(), watch.WithDefaultInterval(interval))...))
	if err != nil {
		return "", nil, err
	}
	p, err := panel.New(mon.Tracker(), client, panel.WithEndpoint(endpoint), panel.WithLease(3*time.Second),
		panel.WithReconcile(5*time.Second, 0), panel.WithPage(web.Files), panel.WithSeen(mon.Seen),
		panel.WithErrorf(func(format string, a ...any) { fmt.Fprintf(stderr, "admin panel: "+format+"\n", a...) }))
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return "", nil, err
		}
	}
	srv := &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	ran, served := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ran)
		// The panel stops after its watcher, so that the values of the
		// last heartbeats it observed are written (panel.Run).
		panelCtx, stopPanel := context.WithCancel(context.WithoutCancel(ctx))
		var wg sync.WaitGroup
		wg.Go(func() {
			defer stopPanel()
			_ = mon.Run(ctx, p.Observe)
		})
		_ = p.Run(panelCtx)
		wg.Wait()
	}()
	go func() { defer close(served); _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String() + "/", func() {
		cancel()
		<-ran
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
		<-served
	}, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// spawn runs one service as a child process of this binary.
func spawn(service, id, endpoint string, interval time.Duration, metricsAddr string, stderr io.Writer) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(),
		roleEnv+"="+service,
		"HEARTBEAT_INTERVAL="+strconv.FormatFloat(interval.Seconds(), 'f', -1, 64),
		"OTEL_SERVICE_NAME=",
		"OTEL_RESOURCE_ATTRIBUTES=service.instance.id="+id,
		"DEMO_METRICS_ADDR="+metricsAddr,
	)
	if endpoint != "" {
		cmd.Env = append(cmd.Env, watch.EnvEndpoint+"="+endpoint)
	}
	cmd.Stderr = prefixed{w: stderr, prefix: service + ": "}
	endWithUs(cmd)
	return cmd, cmd.Start()
}

type prefixed struct {
	w      io.Writer
	prefix string
}

func (p prefixed) Write(b []byte) (int, error) {
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if l != "" {
			fmt.Fprint(p.w, p.prefix+l)
		}
	}
	return len(b), nil
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// scrape returns the heartbeat lines of the Prometheus endpoint.
func scrape(addr string) []string {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return []string{"(scrape failed: " + err.Error() + ")"}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var lines []string
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, "heartbeat_") || strings.HasPrefix(l, "process_uptime") || strings.HasPrefix(l, "process_memory_usage") {
			lines = append(lines, l)
		}
	}
	return lines
}

// story checks that the monitor saw what the demo did.
type story struct {
	ids  map[string]string // service -> instance
	seen map[string][]watch.State
}

func newStory(ids map[string]string) *story {
	return &story{ids: ids, seen: map[string][]watch.State{}}
}

func (s *story) record(t watch.Transition) {
	for svc, id := range s.ids {
		if t.Service == svc && t.Instance == id {
			s.seen[svc] = append(s.seen[svc], t.To)
		}
	}
}

func (s *story) has(svc string, states ...watch.State) bool {
	got := s.seen[svc]
	if len(got) < len(states) {
		return false
	}
	for i, st := range states {
		if got[i] != st {
			return false
		}
	}
	return true
}

func (s *story) allAlive() bool {
	for _, svc := range services {
		if !s.has(svc, watch.Alive) {
			return false
		}
	}
	return true
}

func (s *story) crashDetected() bool {
	return s.has("geofence_service", watch.Alive, watch.Stale, watch.Dead)
}

func (s *story) stopSeen() bool { return s.has("geocoding_service", watch.Alive, watch.Stopped) }

func (s *story) summary(o *out) bool {
	ok := s.crashDetected() && s.stopSeen() && len(s.seen["tracker_fetcher"]) == 1
	o.printf("\nsummary:\n")
	for _, svc := range services {
		var names []string
		for _, st := range s.seen[svc] {
			names = append(names, st.String())
		}
		o.printf("   %-18s %s\n", svc, strings.Join(names, " -> "))
	}
	if ok {
		o.printf("✔ the crash was told from the graceful stop, and the idle tracker_fetcher stayed alive throughout\n")
	} else {
		o.printf("✘ the monitor did not see the expected story\n")
	}
	return ok
}
