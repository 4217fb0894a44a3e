package main

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// slowValkey is how late an answer of Valkey's makes a failed check one
// that could not tell: the checks' timings allow half an interval.
const slowValkey = 500 * time.Millisecond

// lagWatch pings Valkey every 100 ms while the checks run, and keeps how
// late the answers were: a check that failed while Valkey did not answer
// in time says it cannot tell, never a verdict on the library.
type lagWatch struct {
	mu      sync.Mutex
	slow    []lagSpan // answers later than slowValkey
	pending time.Time // the PING under way, zero when none
	stop    func()
}

type lagSpan struct {
	at  time.Time // when the PING was sent
	lag time.Duration
}

func watchLag(c redis.UniversalClient) *lagWatch {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	l := &lagWatch{stop: func() { cancel(); <-done }}
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case sent := <-t.C:
				l.mu.Lock()
				l.pending = sent
				l.mu.Unlock()
				pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
				_ = c.Ping(pctx).Err()
				pcancel()
				lag := time.Since(sent)
				l.mu.Lock()
				l.pending = time.Time{}
				if lag >= slowValkey && len(l.slow) < 1000 {
					l.slow = append(l.slow, lagSpan{sent, lag})
				}
				l.mu.Unlock()
			}
		}
	}()
	return l
}

// since returns the latest Valkey answered since t, a PING still waiting
// included.
func (l *lagWatch) since(t time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var worst time.Duration
	for _, s := range l.slow {
		if s.at.Add(s.lag).After(t) {
			worst = max(worst, s.lag)
		}
	}
	if !l.pending.IsZero() {
		worst = max(worst, time.Since(l.pending))
	}
	return worst
}
