package history

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// renew extends the lease if id still holds it, and notes the time it
// watched up to. KEYS: lease, watched. ARGV: id, lease ms, epoch, now ms.
var renew = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3] .. '|' .. ARGV[4])
return 1
`)

// acquire takes the lease for id if nobody holds it, under a new epoch:
// above the last one given, above the highest the caller has seen, and at
// least Valkey's clock in milliseconds. A Valkey that lost its data has
// no last one: the clock keeps the new epoch above those given before,
// also to a replica that never saw them, as long as Valkey's clock has
// passed them (an epoch is ahead of the clock only by the others given
// within its millisecond). An epoch key that is not digits of a
// number below epochLimit is garbage, and one that would reach it is
// spent: either is set anew from the clock. It returns 1, the epoch taken
// and 1 if the key was set anew; or 0 and the epoch of the lease held (0
// if garbage). KEYS: lease, epoch. ARGV: id, lease ms, highest epoch seen.
var acquire = redis.NewScript(`
local limit = 2^52
local function sane(v)
  if v and string.match(v, '^%d+$') then
    local n = tonumber(v)
    if n < limit then return n end
  end
  return nil
end
local cur = redis.call('GET', KEYS[2])
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {0, sane(cur) or 0}
end
local n, anew = sane(cur), 0
if cur and not n then anew = 1 end
local t = redis.call('TIME')
local clock = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local e = math.max((n or 0) + 1, math.min(tonumber(ARGV[3]), limit) + 1, clock)
if e >= limit then e, anew = clock, 1 end
redis.call('SET', KEYS[2], string.format('%d', e))
return {1, e, anew}
`)

// epochLimit bounds epochs, well within what Lua's numbers hold exactly
// (2^53): Unix milliseconds reach it in the year 144,683.
const epochLimit = 1 << 52

// release deletes the lease if id holds it. KEYS: lease. ARGV: id.
var release = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// Lease is one replica's claim to be the recorder.
type Lease struct {
	s      *Store
	id     string
	period time.Duration
	epoch  atomic.Int64 // taken when acquired; read by other goroutines
	// seen is the highest epoch this replica has taken or seen held; the
	// next it takes is above it.
	seen atomic.Int64
	// garbage is set when taking the lease set the epoch key anew (it held
	// no epoch, or a spent one), for the recorder to report.
	garbage atomic.Bool
	// until is when the lease runs out on this process's own clock:
	// nanoseconds since processStart, from the moment the last renewal
	// that succeeded was sent, plus the period. Valkey's TTL ran from
	// later than that, so the lease cannot have run out there before.
	until atomic.Int64
}

// processStart is the origin of the monotonic clock a lease's until is
// read on: wall-clock changes do not move it.
var processStart = time.Now()

// NewLease returns a claim for the replica id, to be held for period at a
// time and renewed well before it ends.
func (s *Store) NewLease(id string, period time.Duration) (*Lease, error) {
	if id == "" || strings.ContainsAny(id, "| ") {
		return nil, fmt.Errorf("history: replica id %q is empty or holds '|' or a space", id)
	}
	if period < 100*time.Millisecond {
		return nil, fmt.Errorf("history: lease period %v is shorter than 100ms", period)
	}
	return &Lease{s: s, id: id, period: period}, nil
}

// Period returns how long the lease lasts without a renewal.
func (l *Lease) Period() time.Duration { return l.period }

// Epoch returns the fencing epoch taken when the lease was acquired.
// It is safe to call from any goroutine.
func (l *Lease) Epoch() int64 { return l.epoch.Load() }

// TryAcquire takes the lease if nobody holds it. On success it takes a new
// fencing epoch and returns the time the previous recorder last said it
// watched (zero if there never was one): from then until now nobody did.
func (l *Lease) TryAcquire(ctx context.Context) (ok bool, lastWatched time.Time, err error) {
	sent := time.Now()
	res, err := acquire.Run(ctx, l.s.c, []string{l.s.leaseKey(), l.s.epochKey()},
		l.id, l.period.Milliseconds(), l.seen.Load()).Int64Slice()
	if err == nil && (len(res) < 2 || res[0] == 1 && len(res) != 3) {
		err = fmt.Errorf("the script answered %v", res)
	}
	if err != nil {
		// A script that failed after taking the lease (an epoch key that
		// is no number) keeps what it wrote: give the lease back.
		_ = l.Release(ctx)
		return false, time.Time{}, wrap("taking the lease "+l.s.leaseKey(), err)
	}
	epoch := res[1]
	l.see(epoch)
	if res[0] == 0 {
		return false, time.Time{}, l.checkHolder(ctx)
	}
	if res[2] == 1 {
		// Set anew from the clock: what this replica saw before is no
		// guide now.
		l.garbage.Store(true)
		l.seen.Store(epoch)
	}
	l.epoch.Store(epoch)
	l.until.Store(int64(sent.Sub(processStart) + l.period))
	lastWatched, err = l.s.Watched(ctx)
	if err != nil {
		_ = l.Release(ctx)
		return false, time.Time{}, err
	}
	return true, lastWatched, l.Renew(ctx, time.Now())
}

// see notes that epoch was taken or held.
func (l *Lease) see(epoch int64) {
	for {
		seen := l.seen.Load()
		if epoch <= seen || l.seen.CompareAndSwap(seen, epoch) {
			return
		}
	}
}

// Watched returns when a recorder last said it watched, zero if none ever
// did: whatever history has as up was up then.
func (s *Store) Watched(ctx context.Context) (time.Time, error) {
	v, err := s.c.Get(ctx, s.watchedKey()).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return time.Time{}, wrap("GET "+s.watchedKey(), err)
	}
	if _, ms, found := strings.Cut(v, "|"); found {
		if n, perr := strconv.ParseInt(ms, 10, 64); perr == nil {
			return time.UnixMilli(n), nil
		}
	}
	return time.Time{}, nil
}

// checkHolder makes a lease that would never expire expire: every
// recorder sets a TTL, so one without (written by hand, or another
// program's key) would keep every replica from recording, silently and
// for ever. It is given one lease period, and reported with its holder.
func (l *Lease) checkHolder(ctx context.Context) error {
	ttl, err := l.s.c.PTTL(ctx, l.s.leaseKey()).Result()
	if err != nil || ttl != -1 {
		return nil // -1 is "no TTL"; an error is for the next attempt
	}
	holder, _ := l.s.c.Get(ctx, l.s.leaseKey()).Result()
	if err := l.s.c.PExpire(ctx, l.s.leaseKey(), l.period).Err(); err != nil {
		return wrap("PEXPIRE "+l.s.leaseKey(), err)
	}
	return fmt.Errorf("history: the recorder lease %s was held by %q without a TTL, so no replica could record: it now expires in %v",
		l.s.leaseKey(), wire.Truncate(holder, 64), l.period)
}

// Renew extends the lease and records that the holder watched up to now.
// It returns ErrLeaseLost if another replica holds it.
func (l *Lease) Renew(ctx context.Context, now time.Time) error {
	sent := time.Now()
	n, err := renew.Run(ctx, l.s.c, []string{l.s.leaseKey(), l.s.watchedKey()},
		l.id, l.period.Milliseconds(), l.Epoch(), now.UnixMilli()).Int()
	if err != nil {
		return wrap("renewing the lease", err)
	}
	if n == 0 {
		l.until.Store(0)
		return ErrLeaseLost
	}
	l.until.Store(int64(sent.Sub(processStart) + l.period))
	return nil
}

// ValidAt reports whether the lease still runs at now on this process's
// own clock: it was renewed less than a period before now. A replica that
// cannot ask Valkey goes by this; one that was paused past its lease
// finds it false when it resumes. now must come from time.Now.
func (l *Lease) ValidAt(now time.Time) bool {
	return now.Sub(processStart) < time.Duration(l.until.Load())
}

// FenceKeys and FenceValues guard a write made in a script: it applies
// only while every key holds its value, that is, while this replica holds
// the lease under the epoch it was acquired with.
func (l *Lease) FenceKeys() []string { return []string{l.s.leaseKey(), l.s.epochKey()} }

// FenceValues are the values FenceKeys must hold; see FenceKeys.
func (l *Lease) FenceValues() []string { return []string{l.id, strconv.FormatInt(l.Epoch(), 10)} }

// Holds reports whether this replica holds the lease under epoch now, as
// Valkey says: the lease names it and no lease was given since epoch. An
// error means Valkey could not tell.
func (l *Lease) Holds(ctx context.Context, epoch int64) (bool, error) {
	var holder, current *redis.StringCmd
	_, err := l.s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		holder = p.Get(ctx, l.s.leaseKey())
		current = p.Get(ctx, l.s.epochKey())
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, wrap("GET "+l.s.leaseKey()+" and "+l.s.epochKey(), err)
	}
	if n, err := strconv.ParseInt(current.Val(), 10, 64); err == nil && n >= 0 && n < epochLimit {
		l.see(n)
	}
	return holder.Val() == l.id && current.Val() == strconv.FormatInt(epoch, 10), nil
}

// Release gives the lease up, if this replica holds it, so that a standby
// takes over at once instead of after the period.
func (l *Lease) Release(ctx context.Context) error {
	l.until.Store(0)
	return wrap("releasing the lease", release.Run(ctx, l.s.c, []string{l.s.leaseKey()}, l.id).Err())
}

// Holder returns the id of the replica holding the lease, or "".
func (s *Store) Holder(ctx context.Context) (string, error) {
	id, err := s.c.Get(ctx, s.leaseKey()).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return id, wrap("GET "+s.leaseKey(), err)
}

// ErrLeaseLost is returned by Renew when another replica holds the lease.
var ErrLeaseLost = errors.New("history: the recorder lease is held by another replica")

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("history: %s: %w", what, err)
}
