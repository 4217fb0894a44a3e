// Package history keeps what happened to every instance in Valkey, so that
// it survives restarts of the admin panel and every replica shows the same
// past: one stream of state changes per service, the latest recorded state
// of each instance beside it, and a stream of the spans no recorder
// watched.
//
// Several replicas may run; exactly one records at a time. It holds a lease
// (a key with a TTL it renews) and a fencing epoch taken when it won the
// lease: every write is a script that refuses an epoch older than the last
// one that wrote to that service, so a recorder that was paused past its
// lease cannot write after its successor has. A transition is recorded
// only if it changes the recorded state, so two recorders, or a recorder
// and its own reconciliation, never record it twice.
//
// Keys, with the default prefix heartbeat:history: and a service's name in
// a hash tag so that its keys share a cluster slot:
//
//	heartbeat:history:{svc}:events  stream: i instance, f from, t to, a at (unix ms), c heartbeat_count, l lost
//	heartbeat:history:{svc}:state   hash: instance -> "state|at|lost", and nothing else
//	heartbeat:history:{svc}:epoch   the fencing epoch of the last recorder that wrote to the service
//	heartbeat:history:services      set of services with history
//	heartbeat:history:gaps          stream: from, to (unix ms): nobody watched
//	heartbeat:history:lease         the recorder's id, with a TTL
//	heartbeat:history:epoch         the fencing counter: the last epoch given, a Unix time in ms or above
//	heartbeat:history:watched       "epoch|unix ms" the recorder last confirmed it watched
//
// Entries older than the retention are trimmed as new ones are added
// (XADD MINID).
//
// Instance ids are the wire's: any string a publisher chose. So the state
// hash holds instances and nothing else, and a service's metadata has
// keys of its own: no instance id can overwrite it, whatever it is.
package history

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// DefaultPrefix is the prefix of every history key.
const DefaultPrefix = "heartbeat:history:"

// DefaultRetention is how long history is kept.
const DefaultRetention = 30 * 24 * time.Hour

// Event is what an entry records of an instance.
type Event uint8

// Events.
const (
	// Changed: the instance's state changed, From to To.
	Changed Event = iota
	// Forgotten: the watcher stopped tracking the instance (dead or
	// stopped past the retention of its tracker, or evicted). From is
	// its last recorded state.
	Forgotten
	// LostHeartbeats: Lost heartbeats went missing, by the sequence of
	// heartbeat_count; the state (From) did not change.
	LostHeartbeats
	// Replaced: the instance, dead or stopped (From), was replaced by a
	// new instance of its service (By), and left the watcher: a restart
	// (see watch.Replaced).
	Replaced
)

// In Valkey an entry's to is a state's name, or one of these.
const (
	forgottenMark = "forgotten"
	lostMark      = "lost"
	replacedMark  = "replaced"
)

// Entry is one recorded change of an instance.
type Entry struct {
	Service, Instance string
	Event             Event
	From, To          watch.State // To is meaningful for Changed only
	At                time.Time
	Count             int64  // heartbeat_count at the change, when known
	Lost              int64  // heartbeats lost, for LostHeartbeats
	By                string // the replacement, for Replaced
}

// Gap is a span of time no recorder watched.
type Gap struct{ From, To time.Time }

// Store reads and writes history.
type Store struct {
	c         redis.UniversalClient
	prefix    string
	retention time.Duration
}

// StoreOption configures a Store.
type StoreOption interface{ applyStore(*Store) }

type storeOptionFunc func(*Store)

func (f storeOptionFunc) applyStore(s *Store) { f(s) }

// WithPrefix sets the prefix of every history key. Default DefaultPrefix.
func WithPrefix(prefix string) StoreOption {
	return storeOptionFunc(func(s *Store) { s.prefix = prefix })
}

// WithRetention sets how long history is kept: older entries are trimmed
// as new ones are added. Default DefaultRetention.
func WithRetention(d time.Duration) StoreOption {
	return storeOptionFunc(func(s *Store) { s.retention = d })
}

// NewStore returns a store on c.
func NewStore(c redis.UniversalClient, opts ...StoreOption) (*Store, error) {
	if c == nil {
		return nil, errors.New("history: the client is nil")
	}
	st := &Store{c: c}
	for _, o := range opts {
		o.applyStore(st)
	}
	prefix, retention := st.prefix, st.retention
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if strings.ContainsAny(prefix, "{}*?[]\\ ") {
		return nil, fmt.Errorf("history: WithPrefix(%q): it holds braces, glob characters or spaces", prefix)
	}
	if retention < 0 {
		return nil, fmt.Errorf("history: WithRetention(%v): negative", retention)
	}
	if retention == 0 {
		retention = DefaultRetention
	}
	return &Store{c: c, prefix: prefix, retention: retention}, nil
}

// Retention returns how long the store keeps history.
func (s *Store) Retention() time.Duration { return s.retention }

func (s *Store) eventsKey(svc string) string { return s.prefix + "{" + svc + "}:events" }
func (s *Store) stateKey(svc string) string  { return s.prefix + "{" + svc + "}:state" }
func (s *Store) fenceKey(svc string) string  { return s.prefix + "{" + svc + "}:epoch" }
func (s *Store) servicesKey() string         { return s.prefix + "services" }
func (s *Store) gapsKey() string             { return s.prefix + "gaps" }
func (s *Store) leaseKey() string            { return s.prefix + "lease" }
func (s *Store) epochKey() string            { return s.prefix + "epoch" }
func (s *Store) watchedKey() string          { return s.prefix + "watched" }

// ErrFenced is returned by a write of a recorder whose epoch is older than
// the last one that wrote to that service: another recorder has taken
// over. The error is a *FencedError naming the services.
var ErrFenced = errors.New("history: fenced: a newer recorder has written")

// FencedError names the services whose recorded epoch refused a write.
type FencedError struct{ Services []string }

func (e *FencedError) Error() string {
	return fmt.Sprintf("history: fenced: a newer epoch has written to %s", strings.Join(e.Services, ", "))
}

// Is makes a FencedError match ErrFenced.
func (e *FencedError) Is(target error) bool { return target == ErrFenced }

// RepairEpoch sets a service's recorded epoch to epoch, for the holder of
// the lease that finds one above its own: an epoch no lease ever gave,
// written by hand or by mistake, would otherwise refuse every recorder.
func (s *Store) RepairEpoch(ctx context.Context, service string, epoch int64) error {
	return wrap("SET "+s.fenceKey(service), s.c.Set(ctx, s.fenceKey(service), epoch, 0).Err())
}

// record changes an instance's recorded state, appending the entry only if
// the state changes and the write is not older than the recorded state.
// KEYS: events, state, epoch. ARGV: epoch, minid, instance, to, at, count,
// lost, by.
var record = redis.NewScript(`
local epoch = tonumber(ARGV[1])
local cur = redis.call('GET', KEYS[3])
if not cur then
  -- History written before the epoch had a key of its own kept it in the
  -- state hash under _epoch: a number there is that, and moves (an
  -- instance's value is "state|at|lost", never a bare number).
  local legacy = redis.call('HGET', KEYS[2], '_epoch')
  if legacy and string.match(legacy, '^%d+$') then
    redis.call('SET', KEYS[3], legacy)
    redis.call('HDEL', KEYS[2], '_epoch')
    cur = legacy
  end
end
-- A malformed epoch or state is garbage, not a reason to stop recording:
-- it reads as none, or as unknown. An epoch is digits: tonumber would take
-- nan (which no comparison fences), inf, hex and fractions.
local e = 0
if cur and string.match(cur, '^%d+$') then e = tonumber(cur) end
if epoch < e then return redis.error_reply('FENCED ' .. e) end
if epoch > e then redis.call('SET', KEYS[3], ARGV[1]) end
local from = 'unknown'
local lost = '0'
local prevAt = 0
local prev = redis.call('HGET', KEYS[2], ARGV[3])
if prev then
  local st, at, l = string.match(prev, '^([%a]+)|(%d+)|(%d+)$')
  -- A number of more digits than any millisecond time is no state (it
  -- would make every write late news): maxRecordedDigits.
  if st and #at <= 15 and #l <= 15 then from = st; lost = l; prevAt = tonumber(at) else prev = false end
end
-- A write older than the recorded state is late news: it changes nothing.
if tonumber(ARGV[5]) < prevAt then return 0 end
local to = ARGV[4]
if to == 'lost' then
  if tonumber(ARGV[7]) <= tonumber(lost) then return 0 end
  redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[2], '*', 'i', ARGV[3], 'f', from, 't', 'lost', 'a', ARGV[5], 'c', ARGV[6], 'l', tostring(tonumber(ARGV[7]) - tonumber(lost)))
  local st = from
  redis.call('HSET', KEYS[2], ARGV[3], st .. '|' .. ARGV[5] .. '|' .. ARGV[7])
  return 1
end
if from == to then return 0 end
-- Leaving twice is once: what left has no recorded state.
if (to == 'forgotten' or to == 'replaced') and not prev then return 0 end
if to == 'replaced' then
  redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[2], '*', 'i', ARGV[3], 'f', from, 't', to, 'a', ARGV[5], 'c', ARGV[6], 'b', ARGV[8])
else
  redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[2], '*', 'i', ARGV[3], 'f', from, 't', to, 'a', ARGV[5], 'c', ARGV[6])
end
if to == 'forgotten' or to == 'replaced' then
  redis.call('HDEL', KEYS[2], ARGV[3])
else
  redis.call('HSET', KEYS[2], ARGV[3], to .. '|' .. ARGV[5] .. '|' .. lost)
end
return 1
`)

// Record is one write for Apply.
type Record struct {
	Service, Instance string
	Event             Event       // Changed, Forgotten, LostHeartbeats or Replaced
	To                watch.State // for Changed
	At                time.Time
	Count             int64
	Lost              int64  // the instance's lost heartbeats so far, for LostHeartbeats
	By                string // the replacement, for Replaced
}

// to is how the record script names what r records.
func (r Record) to() string {
	switch r.Event {
	case Forgotten:
		return forgottenMark
	case LostHeartbeats:
		return lostMark
	case Replaced:
		return replacedMark
	}
	return r.To.String()
}

// Apply writes records with epoch, in one pipeline. It returns how many
// changed the history, and ErrFenced if any service refused the epoch.
func (s *Store) Apply(ctx context.Context, epoch int64, recs []Record) (int, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	changed, err := s.apply(ctx, epoch, recs)
	if err != nil && strings.Contains(err.Error(), "NOSCRIPT") {
		// A restarted or new server: load the script and write again (a
		// write that changes nothing records nothing).
		if lerr := record.Load(ctx, s.c).Err(); lerr != nil {
			return changed, fmt.Errorf("history: loading the record script: %w", lerr)
		}
		var more int
		more, err = s.apply(ctx, epoch, recs)
		changed += more
	}
	return changed, err
}

func (s *Store) apply(ctx context.Context, epoch int64, recs []Record) (int, error) {
	minID := strconv.FormatInt(time.Now().Add(-s.retention).UnixMilli(), 10)
	cmds := make([]*redis.Cmd, len(recs))
	services := map[string]bool{}
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range recs {
			cmds[i] = record.EvalSha(ctx, p, []string{s.eventsKey(r.Service), s.stateKey(r.Service), s.fenceKey(r.Service)},
				epoch, minID, r.Instance, r.to(), r.At.UnixMilli(), r.Count, r.Lost, r.By)
			if !services[r.Service] {
				services[r.Service] = true
				p.SAdd(ctx, s.servicesKey(), r.Service)
			}
		}
		return nil
	})
	changed := 0
	var fenced []string
	refused := map[string]error{} // by service: what Valkey refused of its writes
	for i, c := range cmds {
		n, cerr := c.Int()
		switch {
		case cerr != nil && strings.Contains(cerr.Error(), "FENCED"):
			if !slices.Contains(fenced, recs[i].Service) {
				fenced = append(fenced, recs[i].Service)
			}
		case cerr != nil && strings.Contains(cerr.Error(), "NOSCRIPT"):
			return changed, cerr
		case cerr != nil && isDataError(cerr):
			if refused[recs[i].Service] == nil {
				refused[recs[i].Service] = cerr
			}
		case cerr == nil:
			changed += n
		}
	}
	if len(fenced) > 0 {
		return changed, &FencedError{Services: fenced}
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		if len(refused) > 0 && isDataError(err) {
			return changed, &refusedError{services: refused}
		}
		return changed, fmt.Errorf("history: recording: %w", err)
	}
	return changed, nil
}

// refusedError is writes Valkey refused, by service (a key of the wrong
// type, say), when it took the others.
type refusedError struct{ services map[string]error }

func (e *refusedError) Error() string {
	var parts []string
	for _, svc := range slices.Sorted(maps.Keys(e.services)) {
		parts = append(parts, fmt.Sprintf("history: recording %q: %v", svc, e.services[svc]))
	}
	return strings.Join(parts, "; ")
}

// Recorded is an instance's latest recorded state.
type Recorded struct {
	State watch.State
	At    time.Time
	Lost  int64
}

// Recorded returns the recorded state of every instance of every service
// with history: service -> instance -> state. A service whose key cannot be
// read is left out and named in the error, beside what could be read.
func (s *Store) Recorded(ctx context.Context) (map[string]map[string]Recorded, error) {
	svcs, err := s.Services(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]map[string]Recorded, len(svcs))
	var errs []error
	for _, svc := range svcs {
		m, err := s.RecordedOf(ctx, svc)
		if err != nil {
			if ctx.Err() != nil || !isDataError(errors.Unwrap(err)) {
				return nil, err
			}
			errs = append(errs, fmt.Errorf("%w (that service is skipped)", err))
			continue
		}
		out[svc] = m
	}
	return out, errors.Join(errs...)
}

// RecordedOf is Recorded of one service: what one service's reconciliation
// holds at once, rather than every service's.
func (s *Store) RecordedOf(ctx context.Context, service string) (map[string]Recorded, error) {
	h, err := s.c.HGetAll(ctx, s.stateKey(service)).Result()
	if err != nil {
		return nil, fmt.Errorf("history: HGETALL %s: %w", s.stateKey(service), err)
	}
	m := make(map[string]Recorded, len(h))
	for inst, v := range h {
		if rec, ok := parseRecorded(v); ok {
			m[inst] = rec
		}
	}
	return m, nil
}

// recordedPage bounds the instances whose recorded states reconciliation
// holds at once: a service's whole state hash, read in one reply, costs
// about 110 bytes an instance while it is held (11 MB for a service of
// 100,000), and a panel collecting often counts it live. A page is some
// half a megabyte, and a service of 100,000 forty round trips.
const recordedPage = 5000

// recordedOf appends to dst the recorded state of each of ids in service,
// as Valkey holds it (HMGET), "" for one it holds none of.
func (s *Store) recordedOf(ctx context.Context, service string, ids, dst []string) ([]string, error) {
	vals, err := s.c.HMGet(ctx, s.stateKey(service), ids...).Result()
	if err != nil {
		return dst, fmt.Errorf("history: HMGET %s: %w", s.stateKey(service), err)
	}
	for _, v := range vals {
		str, _ := v.(string) // nil: none
		dst = append(dst, str)
	}
	return dst, nil
}

// recordedCount is how many instances service's state hash holds
// (HLEN): a service whose states reconciliation neither reads nor scans
// is still found unreadable.
func (s *Store) recordedCount(ctx context.Context, service string) (int64, error) {
	n, err := s.c.HLen(ctx, s.stateKey(service)).Result()
	if err != nil {
		return 0, fmt.Errorf("history: HLEN %s: %w", s.stateKey(service), err)
	}
	return n, nil
}

// scanRecorded calls fn with each page of service's state hash as HSCAN
// reads it, instances and their recorded states in turn, until fn says
// to stop: an instance there throughout comes in one page or more, one
// added or deleted meanwhile in any or none.
func (s *Store) scanRecorded(ctx context.Context, service string, fn func(kv []string) bool) error {
	var cursor uint64
	for {
		kv, next, err := s.c.HScan(ctx, s.stateKey(service), cursor, "", recordedPage).Result()
		if err != nil {
			return fmt.Errorf("history: HSCAN %s: %w", s.stateKey(service), err)
		}
		if !fn(kv) || next == 0 {
			return nil
		}
		cursor = next
	}
}

// parseRecorded reads one instance's recorded state, state|at|lost, as
// the record script does (its pattern ^([%a]+)|(%d+)|(%d+)$): letters,
// then two runs of digits, each after a '|', of maxRecordedDigits at
// most, and nothing else. Anything else is no state, for reconciliation
// to write again: read leniently, a value the script cannot read could
// agree with the tracker's, and never be repaired. A state no watcher
// has reads as unknown.
func parseRecorded(v string) (Recorded, bool) {
	// Cut, where a split would allocate its parts.
	state, rest, ok := strings.Cut(v, "|")
	atText, lostText, ok2 := strings.Cut(rest, "|")
	if !ok || !ok2 || !allOf(state, isLetter) || !allOf(atText, isDigit) || !allOf(lostText, isDigit) ||
		len(atText) > maxRecordedDigits || len(lostText) > maxRecordedDigits {
		return Recorded{}, false
	}
	at, _ := strconv.ParseInt(atText, 10, 64) // digits, and few enough: no error
	lost, _ := strconv.ParseInt(lostText, 10, 64)
	st, _ := watch.ParseState(state)
	return Recorded{State: st, At: time.UnixMilli(at), Lost: lost}, true
}

// maxRecordedDigits bounds a recorded time's digits, and a lost count's,
// here and in the record script: 15 hold any millisecond time until the
// year 33,658, and fit in the 64 bits of an int64 and the 53 of a Lua
// number's mantissa alike, so that both read a number the same.
const maxRecordedDigits = 15

// allOf reports whether s is not empty and is says yes to each of its
// bytes.
func allOf(s string, is func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !is(s[i]) {
			return false
		}
	}
	return s != ""
}

func isLetter(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }

func isDataError(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && !strings.HasPrefix(err.Error(), "LOADING") && !strings.HasPrefix(err.Error(), "NOAUTH") &&
		!strings.HasPrefix(err.Error(), "WRONGPASS") && !strings.HasPrefix(err.Error(), "NOPERM")
}

// Services returns the services with history, sorted.
func (s *Store) Services(ctx context.Context) ([]string, error) {
	svcs, err := s.c.SMembers(ctx, s.servicesKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("history: SMEMBERS %s: %w", s.servicesKey(), err)
	}
	// Only what can be a service's name: the set is anyone's to write.
	svcs = slices.DeleteFunc(svcs, func(n string) bool { return wire.ValidateServiceName(n) != nil })
	slices.Sort(svcs)
	return svcs, nil
}

// ErrEntryGone is EntriesAfter's answer when the entry a reader read last is
// no longer in the service's history: the history was lost (a server
// restarted without persistence, the key deleted) or trimmed past it. What
// the reader kept is not the start of what Valkey holds now: it should
// forget it and read from the first entry.
var ErrEntryGone = errors.New("history: the last entry read is gone")

// EntriesAfter returns at most max of a service's entries added after the
// entry id after ("" for the first), oldest first, and the id of the last
// one returned (after, when there is none): a reader keeps what it has
// read and asks only for what is new. It returns ErrEntryGone when after
// is no longer in the history.
func (s *Store) EntriesAfter(ctx context.Context, service, after string, max int64) ([]Entry, string, error) {
	start, n := "-", max
	if after != "" {
		// From after itself, to see that it is still there.
		start = after
		if max < math.MaxInt64 {
			n = max + 1
		}
	}
	msgs, err := s.c.XRangeN(ctx, s.eventsKey(service), start, "+", n).Result()
	if err != nil {
		return nil, after, fmt.Errorf("history: XRANGE %s: %w", s.eventsKey(service), err)
	}
	if after != "" {
		if len(msgs) == 0 || msgs[0].ID != after {
			return nil, after, fmt.Errorf("%w: %s of %s", ErrEntryGone, after, s.eventsKey(service))
		}
		msgs = msgs[1:]
	}
	out := make([]Entry, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, entry(service, m.Values))
	}
	if len(msgs) > 0 {
		after = msgs[len(msgs)-1].ID
	}
	return out, after, nil
}

func entry(service string, v map[string]any) Entry {
	str := func(k string) string { s, _ := v[k].(string); return s }
	num := func(k string) int64 { n, _ := strconv.ParseInt(str(k), 10, 64); return n }
	e := Entry{Service: service, Instance: str("i"), At: time.UnixMilli(num("a")), Count: num("c"), Lost: num("l")}
	e.From, _ = watch.ParseState(str("f"))
	switch t := str("t"); t {
	case forgottenMark:
		e.Event = Forgotten
	case lostMark:
		e.Event = LostHeartbeats
	case replacedMark:
		e.Event, e.By = Replaced, str("b")
	default:
		e.To, _ = watch.ParseState(t)
	}
	return e
}

// AddGap records a span no recorder watched, fenced by the lease: only the
// holder of the lease records one.
func (s *Store) AddGap(ctx context.Context, g Gap) error {
	if !g.To.After(g.From) {
		return nil
	}
	minID := strconv.FormatInt(time.Now().Add(-s.retention).UnixMilli(), 10)
	err := s.c.XAdd(ctx, &redis.XAddArgs{Stream: s.gapsKey(), MinID: minID, Approx: true,
		Values: []any{"from", g.From.UnixMilli(), "to", g.To.UnixMilli()}}).Err()
	if err != nil {
		return fmt.Errorf("history: XADD %s: %w", s.gapsKey(), err)
	}
	return nil
}

// Gaps returns the spans no recorder watched that end after since.
func (s *Store) Gaps(ctx context.Context, since time.Time) ([]Gap, error) {
	msgs, err := s.c.XRange(ctx, s.gapsKey(), "-", "+").Result()
	if err != nil {
		return nil, fmt.Errorf("history: XRANGE %s: %w", s.gapsKey(), err)
	}
	var out []Gap
	for _, m := range msgs {
		from, err1 := strconv.ParseInt(fmt.Sprint(m.Values["from"]), 10, 64)
		to, err2 := strconv.ParseInt(fmt.Sprint(m.Values["to"]), 10, 64)
		added, err3 := strconv.ParseInt(strings.SplitN(m.ID, "-", 2)[0], 10, 64)
		// A gap is written when it ends, so it ends before it was added
		// (a minute of clock difference allowed) and lasts at most the
		// retention: anything else is not a gap, and is ignored.
		if err1 != nil || err2 != nil || err3 != nil || to < from || to > added+60_000 || to-from > s.retention.Milliseconds() {
			continue
		}
		g := Gap{time.UnixMilli(from), time.UnixMilli(to)}
		if g.To.After(since) {
			out = append(out, g)
		}
	}
	return out, nil
}
