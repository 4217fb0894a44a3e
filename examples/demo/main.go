// Command demo tells the heartbeat story in under a minute, with nothing
// installed but Go:
//
//	go run ./examples/demo
//
// It starts an embedded Valkey-compatible broker (miniredis), three services
// built on the library - tracker_fetcher, geocoding_service and
// geofence_service, each a process of its own with the service data the seed
// lists - the monitor and the admin panel (a web page of the fleet, its
// history and uptime). All three are alive; geofence_service crashes
// (SIGKILL, so no final heartbeat) and the monitor reports it stale, then
// dead, by its own timing; geocoding_service stops gracefully and is
// reported stopped, not dead; then the demo ends with a summary. The
// tracker fetcher also serves its heartbeat gauges to Prometheus, beside
// the Valkey heartbeat.
//
// With OTEL_EXPORTER_VALKEY_ENDPOINT or HEALTH_REDIS_HOST set it uses that
// Valkey instead of the embedded broker.
//
//	--interval 1s   heartbeat interval (the story takes about ten of them)
//	--forever       skip the crash and the stop; run until interrupted
//	--panel ADDR    where the admin panel serves (default 127.0.0.1:8080,
//	                another free port if taken; empty: no panel)
package main

import (
	"context"
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
	term.QuietGoRedis()
	os.Exit(runDemo(os.Args[1:], os.Stdout, os.Stderr))
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

func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	interval := fs.Duration("interval", time.Second, "heartbeat interval")
	forever := fs.Bool("forever", false, "skip the crash and the stop; run until interrupted")
	panelAddr := fs.String("panel", "127.0.0.1:8080", "where the admin panel serves (another free port if taken; empty: no panel)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := watch.CheckInterval(*interval); err != nil {
		fmt.Fprintf(stderr, "demo: --interval: %v\n", err)
		return 2
	}
	o := &out{w: stdout}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// The broker.
	endpoint, client, closeBroker, err := broker(o)
	if err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return 1
	}
	defer closeBroker()
	defer client.Close()

	// The admin panel, beside the monitor.
	if *panelAddr != "" {
		url, stopPanel, err := startPanel(client, endpoint, *interval, *panelAddr, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "demo: admin panel: %v\n", err)
			return 1
		}
		defer stopPanel()
		o.printf("🖥️  admin panel: %s (live page; API at %sapi/v1/services; metrics at %smetrics)\n", url, url, url)
	}

	// The monitor, on this process's goroutine of its own.
	ids := map[string]string{}
	for _, s := range services {
		ids[s] = uuid.NewString()
	}
	style := term.Style{Color: term.Colour(stdout), Location: time.Local}
	transitions := make(chan watch.Transition, 100)
	tables := make(chan chan struct{}, 1)
	mon, err := watch.New(watch.Connection{Client: client}, watch.WithRefresh(*interval/2))
	if err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return 1
	}
	seen := map[string]bool{}
	monCtx, stopMonitor := context.WithCancel(context.Background())
	monDone := make(chan struct{})
	go func() {
		defer close(monDone)
		_ = mon.Run(monCtx, func(e watch.Event) {
			switch e.Kind {
			case watch.KindHeartbeat:
				// The first heartbeat of each instance, in the seed's format.
				if !seen[e.Message.InstanceID] {
					seen[e.Message.InstanceID] = true
					o.do(func(w io.Writer) { style.Heartbeat(w, e.Message, e.At) })
				}
			case watch.KindTransition:
				o.do(func(w io.Writer) { style.Transition(w, e.Transition) })
				select {
				case transitions <- e.Transition:
				default:
				}
			case watch.KindRefresh:
				select {
				case done := <-tables:
					o.do(func(w io.Writer) {
						fmt.Fprintln(w)
						style.Table(w, mon.Tracker(), mon.Stats(), e.At)
						fmt.Fprintln(w)
					})
					close(done)
				default:
				}
			case watch.KindLoaded, watch.KindIdle:
			default:
				o.do(func(w io.Writer) { style.Event(w, e) })
			}
		})
	}()
	defer func() { stopMonitor(); <-monDone }()
	table := func() {
		done := make(chan struct{})
		tables <- done
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	}

	// The services.
	metricsAddr, err := freeAddr()
	if err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return 1
	}
	procs := map[string]*exec.Cmd{}
	defer func() {
		for _, p := range procs {
			_ = p.Process.Kill()
			_ = p.Wait()
		}
	}()
	for _, s := range services {
		cmd, err := spawn(s, ids[s], endpoint, *interval, metricsAddr, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "demo: start %s: %v\n", s, err)
			return 1
		}
		procs[s] = cmd
	}
	o.printf("started %s, %s and %s (pids %d, %d, %d); heartbeat every %v\n\n",
		services[0], services[1], services[2], procs[services[0]].Process.Pid, procs[services[1]].Process.Pid, procs[services[2]].Process.Pid, *interval)

	story := newStory(ids)
	wait := func(what string, timeout time.Duration, done func() bool) bool {
		deadline := time.After(timeout)
		for !done() {
			select {
			case t := <-transitions:
				story.record(t)
			case <-deadline:
				o.printf("demo: %s did not happen within %v\n", what, timeout)
				return false
			case <-ctx.Done():
				return false
			}
		}
		return true
	}
	if !wait("all three alive", 10**interval+10*time.Second, story.allAlive) {
		return 1
	}
	o.printf("\n📈 Prometheus serves tracker_fetcher's heartbeat gauges too: http://%s/metrics\n", metricsAddr)
	table()

	if *forever {
		o.printf("running until interrupted (Ctrl-C); kill -9 a pid above to watch a crash being detected\n")
		<-ctx.Done()
		stopAll(procs, *interval)
		return 0
	}

	// A crash.
	pause(ctx, 2**interval)
	o.printf("\n💥 geofence_service crashes: SIGKILL, so no final heartbeat; the monitor must notice the silence\n\n")
	_ = procs["geofence_service"].Process.Kill()
	_ = procs["geofence_service"].Wait()
	delete(procs, "geofence_service")
	if !wait("geofence_service going dead", 5**interval+10*time.Second, story.crashDetected) {
		return 1
	}
	table()

	// A graceful stop.
	o.printf("\n⏹️  geocoding_service is stopped gracefully: SIGTERM, so it sends a final \"stopping\" heartbeat\n\n")
	_ = procs["geocoding_service"].Process.Signal(syscall.SIGTERM)
	if !wait("geocoding_service stopping", 5**interval+10*time.Second, story.stopSeen) {
		return 1
	}
	_ = procs["geocoding_service"].Wait()
	delete(procs, "geocoding_service")
	pause(ctx, *interval)
	table()

	o.printf("📈 from http://%s/metrics:\n", metricsAddr)
	for _, l := range scrape(metricsAddr) {
		o.printf("   %s\n", l)
	}

	stopAll(procs, *interval)
	ok := story.summary(o)
	if !ok {
		return 1
	}
	return 0
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
		panel.WithReconcile(5*time.Second, 0), panel.WithPage(web.Files),
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
		var wg sync.WaitGroup
		wg.Go(func() { _ = mon.Run(ctx, p.Observe) })
		_ = p.Run(ctx)
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

func stopAll(procs map[string]*exec.Cmd, interval time.Duration) {
	for _, p := range procs {
		_ = p.Process.Signal(syscall.SIGTERM)
	}
	for name, p := range procs {
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10*time.Second + 3*interval):
			_ = p.Process.Kill()
			<-done
		}
		delete(procs, name)
	}
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
