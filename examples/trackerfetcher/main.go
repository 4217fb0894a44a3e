// Command trackerfetcher is a service in the original design's shape: a
// TrackerFetcherService with Start and Stop, a queue of trackers to fetch,
// the state of its upstream API and the time of its last successful fetch,
// with its heartbeat wired in at Start and Stop.
//
// It is configured by environment variables only:
//
//	OTEL_SERVICE_NAME              default tracker_fetcher
//	OTEL_RESOURCE_ATTRIBUTES       e.g. service.instance.id=...,deployment.environment=prod
//	HEARTBEAT_INTERVAL             seconds, default 60
//	OTEL_EXPORTER_VALKEY_ENDPOINT  e.g. rediss://user:password@host:6379 (default localhost:6379)
//	HEALTH_REDIS_HOST, HEALTH_REDIS_PORT, HEALTH_REDIS_PASSWORD  the original design's variables
//
// SIGINT or SIGTERM stops it gracefully: the final heartbeat says
// "stopping", so monitors show the instance as stopped, not dead.
//
// SIGUSR1 hangs its work loop, as a hung upstream call would, and SIGUSR2
// frees it: the heartbeat goes on, on time, while
// last_successful_operation stops moving and queue_size grows. That is
// what an admin panel's health rules are for (--health-rule
// 'tracker_fetcher: last_successful_operation older than 5m').
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat"
)

// TrackerFetcherService fetches tracker positions from an upstream API.
// The fetching is simulated; the heartbeat is real.
type TrackerFetcherService struct {
	queue chan int  // tracker ids waiting to be fetched
	hang  chan bool // Hang's requests to the work loop

	mu          sync.Mutex
	apiStatus   string
	lastSuccess time.Time

	heartbeat *otelheartbeat.Manager
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// NewTrackerFetcherService returns a stopped service.
func NewTrackerFetcherService() *TrackerFetcherService {
	return &TrackerFetcherService{queue: make(chan int, 10_000), hang: make(chan bool, 1), apiStatus: "authenticating"}
}

// Hang hangs the work loop (true) or frees it (false), as a hung upstream
// call would: the heartbeat goes on.
func (s *TrackerFetcherService) Hang(hung bool) {
	select {
	case <-s.hang: // a request not taken yet is replaced
	default:
	}
	s.hang <- hung
}

// QueueSize is the number of trackers waiting to be fetched.
func (s *TrackerFetcherService) QueueSize() int { return len(s.queue) }

// APIStatus is the state of the upstream API session.
func (s *TrackerFetcherService) APIStatus() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apiStatus
}

// LastSuccessfulOperation is when a fetch last succeeded; zero if never.
func (s *TrackerFetcherService) LastSuccessfulOperation() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastSuccess
}

// Start starts fetching and publishing heartbeats.
func (s *TrackerFetcherService) Start(ctx context.Context) error {
	hb, err := otelheartbeat.NewTrackerFetcherHeartbeat(s)
	if err != nil {
		return err
	}
	if err := hb.Start(ctx); err != nil {
		return err
	}
	s.heartbeat = hb
	log.Printf("%s: heartbeats every %v to %s, instance %s", hb.ServiceName(), hb.Interval(), hb.Endpoint(), hb.InstanceID())

	work, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(2)
	go s.schedule(work)
	go s.fetch(work)
	return nil
}

// schedule enqueues trackers that are due for a position update.
func (s *TrackerFetcherService) schedule(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	next := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for i := 0; i < rand.IntN(8); i++ {
				select {
				case s.queue <- next:
					next++
				default: // queue full: the heartbeat's queue_size shows it
				}
			}
		}
	}
}

// fetch drains the queue, one simulated API call at a time.
func (s *TrackerFetcherService) fetch(ctx context.Context) {
	defer s.wg.Done()
	s.setAPIStatus("authenticated")
	for {
		select {
		case <-ctx.Done():
			return
		case hung := <-s.hang:
			for hung { // stuck until freed
				select {
				case <-ctx.Done():
					return
				case hung = <-s.hang:
				}
			}
		case <-s.queue:
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(20+rand.IntN(60)) * time.Millisecond):
			}
			s.mu.Lock()
			s.lastSuccess = time.Now()
			s.mu.Unlock()
		}
	}
}

func (s *TrackerFetcherService) setAPIStatus(v string) {
	s.mu.Lock()
	s.apiStatus = v
	s.mu.Unlock()
}

// Stop stops fetching and sends the final heartbeat.
func (s *TrackerFetcherService) Stop(ctx context.Context) error {
	if s.cancel != nil {
		s.cancel()
		s.wg.Wait()
	}
	if s.heartbeat != nil {
		return s.heartbeat.Stop(ctx)
	}
	return nil
}

func main() {
	log.SetFlags(log.LstdFlags | log.Lmsgprefix)
	log.SetPrefix("trackerfetcher: ")
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Print(err) }))
	if err := run(); err != nil {
		log.Print(err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	usr := make(chan os.Signal, 4)
	signal.Notify(usr, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(usr)
	svc := NewTrackerFetcherService()
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := svc.Start(startCtx); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case sig := <-usr:
			// One signal a state, not a toggle: signals of one kind sent
			// in a burst merge, and a merged toggle would be lost.
			hung := sig == syscall.SIGUSR1
			svc.Hang(hung)
			log.Printf("work loop hung: %v (SIGUSR1 hangs it, SIGUSR2 frees it; the heartbeat goes on)", hung)
		}
	}
	log.Print("stopping")

	stopCtx, cancelStop := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelStop()
	if err := svc.Stop(stopCtx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("stop: %w", err)
	}
	log.Print("stopped")
	return nil
}
