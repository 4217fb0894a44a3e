// Package series keeps heartbeat values over time in Valkey: every numeric
// field of every instance's heartbeats (memory, CPU, and each numeric
// service field), as rollups per step (the last value, the least and the
// greatest), so that an admin panel can draw an instance's memory or queue
// over the last hour and day, and show what changed before it died.
//
// Each instance is kept in two rings of fixed size, one per tier: Fine, a
// record every 30 s over the last hour, and Coarse, a record every 5
// minutes over the retention (WithRetention, a day by default). A ring is
// one Valkey string of records, each the step's start, then each of the
// instance's fields in its column: the last, least and greatest value as
// 32-bit floats (about 7 significant digits), NaN where the field had no
// value in the step. A record is written in place: it is overwritten when
// the ring comes round, so nothing is trimmed and a ring never grows but
// when a field joins the instance's columns (a hash beside the rings, at
// most MaxFields). Its key expires at least a tier's span after the
// instance's last heartbeat (at most a coarse and a fine step more: see
// merge).
//
// What that costs is fixed per instance, whatever the heartbeat interval:
// (4 + 12 bytes a field) x (120 + 288 per day of retention), 21 KB for
// four fields at a day (BytesPerInstance), plus the allocator's rounding
// and three keys' overhead: 24 KB measured by
// BenchmarkSeriesBytesPerInstanceDay against a real redis-server (see
// docs/performance.md). And what it costs Valkey to write is fixed per
// heartbeat, whatever its fields: its columns asked, and one record read
// and written a tier.
//
// A Writer is fed heartbeats as they arrive and writes the rollups in
// batches, each merged into its record by a script in Valkey (the least
// and greatest of what every writer saw in the step), so a standby that
// takes over mid-step continues the same points. Its queue is bounded;
// what does not fit is dropped and counted (Dropped), never blocking the
// caller.
package series

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// DefaultPrefix begins every key of the series.
const DefaultPrefix = "heartbeat:series:"

// Tiers.
const (
	FineStep    = 30 * time.Second
	FineSpan    = time.Hour
	CoarseStep  = 5 * time.Minute
	MinSpan     = time.Hour
	MaxSpan     = 30 * 24 * time.Hour
	MaxFields   = 16             // numeric fields kept per instance: memory, CPU, then the service's in the heartbeat's order
	DefaultSpan = 24 * time.Hour // the coarse tier's, WithRetention
)

// A record is the step's start (32-bit Unix seconds), then a column a
// field: its last, least and greatest value (32-bit floats).
const (
	stampBytes  = 4
	columnBytes = 12
)

// recordBytes is the size of a record of columns fields.
func recordBytes(columns int64) int64 { return stampBytes + columnBytes*columns }

// Tier is one resolution: a point per Step over Span.
type Tier struct{ Step, Span time.Duration }

func (t Tier) slots() int64 { return int64(t.Span / t.Step) }

// Store reads and writes the series.
type Store struct {
	c      redis.UniversalClient
	prefix string
	tiers  [2]Tier // fine, coarse
	now    func() time.Time
	budget int64 // of ring bytes a call, wholeBudget but in tests
}

// Option configures a Store.
type Option interface{ apply(*Store) }

type optionFunc func(*Store)

func (f optionFunc) apply(s *Store) { f(s) }

// WithPrefix sets the prefix of every key. Default: DefaultPrefix.
func WithPrefix(p string) Option { return optionFunc(func(s *Store) { s.prefix = p }) }

// WithRetention sets how long the coarse tier keeps points: MinSpan to
// MaxSpan, a whole number of CoarseStep. Default: DefaultSpan.
func WithRetention(d time.Duration) Option {
	return optionFunc(func(s *Store) { s.tiers[1].Span = d })
}

// NewStore returns a store of series in c.
func NewStore(c redis.UniversalClient, opts ...Option) (*Store, error) {
	s := &Store{c: c, prefix: DefaultPrefix, tiers: [2]Tier{{FineStep, FineSpan}, {CoarseStep, DefaultSpan}}, now: time.Now, budget: wholeBudget}
	for _, o := range opts {
		o.apply(s)
	}
	if c == nil {
		return nil, errors.New("series: NewStore needs a Valkey client")
	}
	if err := CheckRetention(s.tiers[1].Span); err != nil {
		return nil, err
	}
	return s, nil
}

// CheckRetention says what is wrong with a retention, if anything.
func CheckRetention(d time.Duration) error {
	if d < MinSpan || d > MaxSpan || d%CoarseStep != 0 {
		return errors.New("series: retention " + d.String() + ": want 1h to 720h, a whole number of 5m")
	}
	return nil
}

// Retention is how long the coarse tier keeps points.
func (s *Store) Retention() time.Duration { return s.tiers[1].Span }

// TierFor is the finest tier that holds since: Fine within the last
// hour (and a step, so that "the last hour" asked a moment ago is still
// an hour), Coarse beyond.
func (s *Store) TierFor(since time.Time) Tier {
	if !since.Before(s.now().Add(-s.tiers[0].Span - s.tiers[0].Step)) {
		return s.tiers[0]
	}
	return s.tiers[1]
}

// BytesPerInstance is the bytes of values an instance of fields numeric
// fields holds in Valkey at most, its two rings (the keys' own overhead
// and its columns' hash are not counted).
func (s *Store) BytesPerInstance(fields int) int64 {
	return recordBytes(int64(fields)) * (s.tiers[0].slots() + s.tiers[1].slots())
}

// ringKey is an instance's ring of a tier. The service is a hash tag, so
// that one service's rings share a cluster slot and are written by one
// script; the instance id is length-prefixed, so that no id can make
// another's key.
func (s *Store) ringKey(t Tier, service, instance string) string {
	return string(appendRingKey(nil, s.servicePart(service), t, instance))
}

// appendRingKey appends a ring's key, from its service's part (made once
// for many keys), to b.
func appendRingKey(b []byte, servicePart string, t Tier, instance string) []byte {
	b = strconv.AppendInt(append(b, servicePart...), int64(t.Step/time.Second), 10)
	return appendInstance(append(b, "s:"...), instance)
}

// appendInstance appends an instance id to a key, length-prefixed.
func appendInstance(b []byte, instance string) []byte {
	return append(append(strconv.AppendInt(b, int64(len(instance)), 10), ':'), instance...)
}

// columnsKey is the hash of an instance's fields' columns in its records
// (1 to MaxFields, in the order the fields came), and under the empty
// name, how many there are: a record's size.
func (s *Store) columnsKey(service, instance string) string {
	return string(appendColumnsKey(nil, s.servicePart(service), instance))
}

func appendColumnsKey(b []byte, servicePart, instance string) []byte {
	return appendInstance(append(append(b, servicePart...), "columns:"...), instance)
}

// servicePart is the prefix and the service: its hash tag, with no '{'
// or '}' (so that it is never empty or cut short: a service's keys share
// a cluster slot whatever its name), then the name itself,
// length-prefixed.
func (s *Store) servicePart(service string) string {
	tag := []byte(service)
	for i, c := range tag {
		if c == '{' || c == '}' {
			tag[i] = '_'
		}
	}
	return s.prefix + "{" + string(tag) + "}:" + strconv.Itoa(len(service)) + ":" + service + ":"
}

// Point is one step's rollup.
type Point struct {
	At             time.Time // the step's start
	Last, Min, Max float64
}

// Read returns the points of one field of each of instances from since
// to until, oldest first, in the finest tier that holds since; an
// instance with none has no entry.
func (s *Store) Read(ctx context.Context, service, field string, instances []string, since, until time.Time) (Tier, map[string][]Point, error) {
	t := s.TierFor(since)
	from, to := since.Truncate(t.Step).Unix(), until.Unix()
	// Only the records of the span: one range of the ring, or two where
	// it comes round.
	step, n := int64(t.Step/time.Second), t.slots()
	var ranges [][2]int64
	if first, last := from/step, to/step; last-first+1 >= n {
		ranges = [][2]int64{{0, n - 1}}
	} else if a, b := first%n, last%n; a <= b {
		ranges = [][2]int64{{a, b}}
	} else {
		ranges = [][2]int64{{a, n - 1}, {0, b}}
	}
	out := map[string][]Point{}
	// An instance whose rings were laid out again between the look at its
	// columns and the one at its rings (a field joined) is read once more.
	todo := instances
	for attempt := 0; attempt < 2 && len(todo) > 0; attempt++ {
		again, err := s.read(ctx, t, service, field, todo, ranges, from, to, out)
		if err != nil {
			return t, nil, err
		}
		todo = again
	}
	return t, out, nil
}

// read reads the points of one field of instances into out, and returns
// the instances whose rings are not of the size their columns say.
func (s *Store) read(ctx context.Context, t Tier, service, field string, instances []string, ranges [][2]int64, from, to int64, out map[string][]Point) ([]string, error) {
	// Each instance's field's column and its records' size first, in one
	// round trip.
	cols := make([]*redis.SliceCmd, len(instances))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range instances {
			cols[i] = p.HMGet(ctx, s.columnsKey(service, id), "", field)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	var again []string
	n := t.slots()
	// A batch of instances a round trip, so that a long span of many
	// instances never holds more than a batch's rings at once.
	for start := 0; start < len(instances); start += readBatch {
		end := min(start+readBatch, len(instances))
		type ring struct {
			col, size int64
			size0     *redis.IntCmd
			parts     []*redis.StringCmd
		}
		rings := make([]ring, end-start)
		_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := start; i < end; i++ {
				count, col, ok := column(cols[i])
				if !ok {
					continue
				}
				r := &rings[i-start]
				r.col, r.size = col, recordBytes(count)
				k := s.ringKey(t, service, instances[i])
				// Its length says whether it is of that size: a ring
				// written under another retention or columns is not read.
				r.size0 = p.StrLen(ctx, k)
				for _, g := range ranges {
					r.parts = append(r.parts, p.GetRange(ctx, k, g[0]*r.size, (g[1]+1)*r.size-1))
				}
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
		for i, r := range rings {
			switch {
			case r.size0 == nil: // no columns: nothing kept
			case r.size0.Val() != n*r.size:
				if r.size0.Val() != 0 {
					again = append(again, instances[start+i])
				}
			default:
				if pts := points(r.parts, r.size, r.col, from, to); len(pts) > 0 {
					out[instances[start+i]] = pts
				}
			}
		}
	}
	return again, nil
}

// readBatch is how many instances' rings one round trip of Read reads.
const readBatch = 16

// column reads an instance's record size (its columns) and a field's
// column from its columns' hash, if both are what the writer makes.
func column(c *redis.SliceCmd) (count, col int64, ok bool) {
	v := c.Val()
	if len(v) != 2 {
		return 0, 0, false
	}
	count, ok = number(v[0], MaxFields)
	if !ok {
		return 0, 0, false
	}
	col, ok = number(v[1], count)
	return count, col, ok
}

// number reads a count or a column as the writer writes it, 1 to hi:
// digits only, no sign, no leading zero, as the merge script reads it.
func number(x any, hi int64) (int64, bool) {
	s, _ := x.(string)
	if len(s) == 0 || len(s) > 2 || s[0] == '0' || strings.ContainsFunc(s, func(c rune) bool { return c < '0' || c > '9' }) {
		return 0, false
	}
	n, _ := strconv.ParseInt(s, 10, 64)
	return n, n <= hi
}

// points decodes one column of the records read of a ring, within
// [from, to], oldest first.
func points(cmds []*redis.StringCmd, size, col, from, to int64) []Point {
	var pts []Point
	le := binary.LittleEndian
	at := stampBytes + columnBytes*(col-1)
	for _, c := range cmds {
		b, err := c.Bytes()
		if err != nil {
			continue
		}
		for off := int64(0); off+size <= int64(len(b)); off += size {
			step := int64(le.Uint32(b[off:]))
			if step == 0 || step < from || step > to {
				continue
			}
			v := b[off+at:]
			last := le.Uint32(v)
			if math.IsNaN(float64(math.Float32frombits(last))) {
				continue // no value of the field in that step
			}
			pts = append(pts, Point{At: time.Unix(step, 0), Last: value(last), Min: value(le.Uint32(v[4:])), Max: value(le.Uint32(v[8:]))})
		}
	}
	slices.SortFunc(pts, func(a, b Point) int { return a.At.Compare(b.At) })
	// A ring another client wrote into may hold a step twice.
	return slices.CompactFunc(pts, func(a, b Point) bool { return a.At.Equal(b.At) })
}

// value reads a kept 32-bit float as the number it was written as (11.6,
// not 11.600000381469727).
func value(bits uint32) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(math.Float32frombits(bits)), 'g', -1, 32), 64)
	return f
}

// Fields returns the fields kept of any of instances, sorted: at most
// MaxFields of each, and only names ReadableField accepts, whatever else
// another client put in an instance's columns.
func (s *Store) Fields(ctx context.Context, service string, instances []string) ([]string, error) {
	cmds := make([]*redis.StringSliceCmd, len(instances))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		// At most the fields the writer keeps of an instance, and its
		// count: a hash another client filled is neither read whole nor
		// listed whole.
		for i, id := range instances {
			cmds[i] = p.HRandField(ctx, s.columnsKey(service, id), MaxFields+1)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	var out []string
	for _, c := range cmds {
		n := 0
		for _, f := range c.Val() {
			if ReadableField(f) && n < MaxFields {
				out = append(out, f)
				n++
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// merge writes rollups into their instances' records, each merged with
// what the record holds for the same step. KEYS: per instance, its fine
// ring, its coarse ring and its columns' hash. ARGV: the most fields an
// instance keeps; then per tier (fine, coarse) its step in seconds, its
// slots and its keys' time to live in milliseconds; then the ring bytes
// the call may make or lay out whole (wholeBudget); then a run an
// argument: one
// instance's rollups of one fine step (one string for Go to make, not
// seven a rollup), little-endian: its fine ring's key index and how many
// rollups (32-bit), then each rollup: the Unix second of its last value
// (32-bit, as a record holds it), its last, least and greatest value
// (32-bit floats, as a record holds them, so that they go in bit for bit),
// the length of its field's name (32-bit) and the name. Each rollup goes
// into its field's column of its step's record in both tiers. A field past
// an instance's most is not kept. It returns how many rollups were not
// kept (see run), for the writer to count.
//
// What a call costs Valkey is its commands and its Lua (see
// BenchmarkWriterFlush's server CPU), so it runs as few commands as it
// can, and they do not grow with a heartbeat's fields: a run's instance's
// columns are asked once, for the run's fields (HMGET: the hash is never
// read whole, whoever filled it), and its record is read and written once
// a tier, whose write's reply is the ring's size; a record is unpacked
// once, merged into and packed once, and a run's rollups are kept in one
// table. Runs are written in turn, so an instance's second run in a call
// (a field that joined late, another step) sees what its first wrote.
//
// Columns whose count the writer did not write (none, or another
// client's: a count or a column is digits only, 1 to 16) say nothing of
// the rings' layout: the rings are made again. A ring of another size
// (the retention changed) or none is made again whole at once, so that
// Valkey allocates it exactly rather than growing it by doubling. When a
// field joins an instance's columns, its rings are laid out again with a
// column more (NaN in every record), once, by gsub. Both cost Valkey by
// the ring's bytes: zeroing a ring made is cheap, but a ring laid out
// again is read into Lua, cut and written back (30 ms for one of 16
// fields at 30 days), so a call spends at most wholeBudget on them, and
// what is past it waits for a later call: an instance first heard is not
// written, fields joining are not kept, until then. A record is the last
// written to its slot, whichever step: the writer stamps values with its
// own clock, and a clock set back after running ahead is believed.
//
// Only a coarse step's first record sets its rings' time to live (a
// panel flushes every second, a fleet beats every few seconds or
// minutes), and a ring made gets its own at once: the coarse ring its
// span and a coarse step, the fine ring its span, a coarse step and a
// fine step, so each expires a span after its last value at least. The
// columns' hash is given the coarse ring's time to live whenever its
// coarse ring is, or a column is added, so it outlives them; at once, so
// that a call that fails further on (a key of the wrong type) leaves none
// without.
var merge = redis.NewScript(mergeSource)

const mergeSource = `
local most, budget = tonumber(ARGV[1]), tonumber(ARGV[8])
-- afford spends cost of the call's budget for rings made or laid out
-- whole, if it is left; the call's first such work is always afforded,
-- so that every call gets some done.
local full = budget
local function afford(cost)
  if cost > budget and budget < full then
    return false
  end
  budget = budget - cost
  return true
end
local tiers = {{tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]}, {tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]}}
local hashTTL = tiers[2][3]
local nan = 0 / 0
-- A record of count columns, as struct packs it.
local formats = {}
local function format(count)
  local f = formats[count]
  if f == nil then
    f = '<I' .. string.rep('fff', count)
    formats[count] = f
  end
  return f
end
-- number is s as the writer writes a count or a column, 1 to hi: digits
-- only, no sign, no leading zero; nil otherwise.
local function number(s, hi)
  if type(s) == 'string' and string.find(s, '^[1-9]%d?$') then
    local x = tonumber(s)
    if x <= hi then
      return x
    end
  end
  return nil
end
-- record is the values of a record of step start: old's (that step's,
-- as read, or nil) with the rollups of r (five values each: the time,
-- last, least, greatest and field) of that step merged into their
-- columns, in order.
local function record(r, cols, count, step, start, old)
  local rec
  if old then
    rec = {struct.unpack(format(count), old)}
    rec[#rec] = nil -- the position after
  else
    rec = {start}
    for i = 2, 3 * count + 1 do
      rec[i] = nan
    end
  end
  for b = 0, #r - 5, 5 do
    local c = cols[r[b + 5]]
    if c and r[b + 1] - r[b + 1] % step == start then
      local o = 3 * c - 1
      local lo, hi = r[b + 3], r[b + 4]
      -- NaN (no value yet) is neither less nor greater.
      if rec[o + 1] < lo then lo = rec[o + 1] end
      if rec[o + 2] > hi then hi = rec[o + 2] end
      rec[o], rec[o + 1], rec[o + 2] = r[b + 2], lo, hi
    end
  end
  return struct.pack(format(count), unpack(rec))
end
-- run writes one run: an instance's rollups of one fine step. It returns
-- how many of them are not kept: all of an instance whose rings wait for
-- a later call (first heard, or its rings gone or of another size, past
-- the budget: written in neither tier), those of fields with no column
-- (joining past the budget, or past most).
local function run(a)
  local k, n, pos = struct.unpack('<II', a)
  local hash = KEYS[k + 2]
  local r, names = {}, {}
  for j = 1, n do
    local at, v, lo, hi, len
    at, v, lo, hi, len, pos = struct.unpack('<IfffI', a, pos)
    local name = string.sub(a, pos, pos + len - 1)
    pos = pos + len
    names[j] = name
    local b = 5 * j - 5
    r[b + 1], r[b + 2], r[b + 3], r[b + 4], r[b + 5] = at, v, lo, hi, name
  end
  -- Its columns: those its hash holds, then new ones while it has fewer
  -- than most. Columns the writer did not make (none, or another
  -- client's) say nothing of its rings: they are made again.
  local got = redis.call('HMGET', hash, '', unpack(names))
  local count = number(got[1], most)
  local fresh = count == nil
  if fresh then
    count, got = 0, {}
  end
  local count0, cols, added = count, {}, nil
  for j = 1, n do
    local name = names[j]
    if cols[name] == nil then
      local c = number(got[j + 1], count0)
      if c then
        cols[name] = c
      elseif count < most then
        count = count + 1
        cols[name] = count
        added = added or {}
        added[#added + 1] = name
        added[#added + 1] = count
      else
        cols[name] = false
      end
    end
  end
  -- Rings made or laid out again whole cost Valkey their bytes: a ring
  -- made is zeroed, a byte a byte; one laid out again is read into Lua,
  -- cut and written back, some sixteen times that a byte of what it held.
  -- A call spends its budget, and what is past it waits for a later call.
  local size = 4 + 12 * count
  local records = tiers[1][2] + tiers[2][2]
  local relay = false
  if fresh then
    if not afford(records * size) then
      return n
    end
    redis.call('DEL', hash, KEYS[k], KEYS[k + 1])
  elseif count > count0 then
    if afford(16 * records * (4 + 12 * count0)) then
      relay = true
    else
      for j = 2, #added, 2 do
        cols[added[j - 1]] = nil
      end
      count, added = count0, nil
      size = 4 + 12 * count
    end
  end
  local unkept = 0
  for j = 1, n do
    if not cols[names[j]] then
      unkept = unkept + 1
    end
  end
  -- Columns added are given their time to live at once, so that a call
  -- failing further on leaves none without.
  local expired = added ~= nil
  if added then
    redis.call('HSET', hash, '', count, unpack(added))
    redis.call('PEXPIRE', hash, hashTTL)
  end
  if relay then
    -- A column more in every record of its rings, NaN: in C, by gsub.
    local size0 = 4 + 12 * count0
    local every = string.rep('.', size0)
    local pad = string.gsub(string.rep(struct.pack('<f', nan), 3 * (count - count0)), '%%', '%%%%')
    for t = 1, 2 do
      local key, slots = KEYS[k + t - 1], tiers[t][2]
      local old = redis.call('GET', key)
      if old and #old == slots * size0 then
        redis.call('SET', key, (string.gsub(old, every, '%0' .. pad)), 'KEEPTTL')
      elseif old then
        redis.call('DEL', key)
      end
    end
  end
  -- Coarse first: a coarse step's first record renews both rings.
  local renew, kept = false, false
  for t = 2, 1, -1 do
    local key = KEYS[k + t - 1]
    local step, slots, ttl = tiers[t][1], tiers[t][2], tiers[t][3]
    local ringSize = slots * size
    local start = r[1] - r[1] % step
    local off = ((start / step) % slots) * size
    local old = redis.call('GETRANGE', key, off, off + size - 1)
    local fits = #old == size
    local was
    if fits then
      was = struct.unpack('<I', old)
      if was ~= start then
        old = nil
      end
      fits = redis.call('SETRANGE', key, off, record(r, cols, count, step, start, old)) == ringSize
    end
    local written = fits
    if not fits and (fresh or afford(ringSize)) then
      -- A ring of another size, or none: made again whole.
      redis.call('DEL', key)
      redis.call('SETRANGE', key, ringSize - 1, '\0')
      redis.call('SETRANGE', key, off, record(r, cols, count, step, start, nil))
      was, written = nil, true
    end
    if written then
      kept = true
      if t == 2 and was ~= start then
        renew = true
        if not expired then
          redis.call('PEXPIRE', hash, hashTTL)
          expired = true
        end
      end
      if renew or was == nil then
        redis.call('PEXPIRE', key, ttl)
      end
    end
  end
  if not kept then
    return n
  end
  return unkept
end
local unkept = 0
for i = 9, #ARGV do
  unkept = unkept + run(ARGV[i])
end
return unkept
`

// update is the rollup of one field of one instance over part of a fine
// step, to merge into both tiers: 40 bytes, as the values are written as
// float32 and their time in whole seconds, and the instance's names are
// held once for all the values of a heartbeat (who).
type update struct {
	field        string
	at           uint32 // of the last value, Unix seconds (see add)
	last, lo, hi float32
	who          int32 // the instance's names, in the Writer's whos
}

// who is the instance an update is of.
type who struct{ service, instance string }

// DefaultQueue bounds the values a Writer holds between two writes.
const DefaultQueue = 200_000

// Writer writes heartbeats' values to a Store. Add may be called from any
// goroutine; Flush from one. A flush hands go-redis its script calls'
// arguments in buffers the next flush writes again: a hook on the Store's
// client that keeps a command past the call finds its arguments emptied.
type Writer struct {
	s     *Store
	max   int
	mu    sync.Mutex
	queue []update
	whos  []who // the queue's updates' instances
	// runs holds, per instance and step, where its values begin in the
	// queue and how many there are, so that a heartbeat every second
	// queues one value a field per step, not one per heartbeat, for one
	// map look-up a heartbeat. A field that joins an instance's values
	// after another instance's were queued is found in strays instead.
	runs   map[runKey]run
	strays map[strayKey]int
	// slots holds, at an instance's slot (AddSlot), where its values
	// begin in the queue, when they were queued since the queue's epoch
	// began: a flush or a discard starts the next.
	slots     []slotRun
	epoch     uint32
	dropped   int64
	closed    bool // see Close
	unkept    int64
	unwritten int64
	// spare is the queue last written, and its whos, kept for the next
	// one: a steady flow of values fills the same room every second.
	spare     []update
	spareWhos []who
	// The last flush's script calls, their room kept for the next one
	// (see Flush): their text, the keys' and arguments' spans of it, those
	// spans cut, and the calls' arguments.
	text       []byte
	keys, args []span
	refs       []arg
	anys       []any
	// The last flush's order of the queue by service, and each value's
	// service, their room kept for the next one.
	order, svcOf []int32
}

// span is a part of a buffer.
type span struct{ from, to int }

// arg is one key or argument of a script call: a span of the Writer's
// buffer. go-redis writes an encoding.BinaryMarshaler as the bytes it
// returns, and a pointer to one is boxed into an interface without an
// allocation; the buffer is written again only by the next Flush, after
// go-redis has sent this one's.
type arg struct{ b []byte }

func (a *arg) MarshalBinary() ([]byte, error) { return a.b, nil }

// String is the key a cluster client routes a call by.
func (a *arg) String() string { return string(a.b) }

type runKey struct {
	service, instance string
	step              int64
}

type run struct{ start, n int }

// slotRun is where an instance's values begin in the queue of an epoch.
type slotRun struct {
	epoch uint32
	start int32
}

// maxSlot bounds the slots a Writer keeps runs at (AddSlot), 8 MiB of
// them: a tracker's default bound. Beyond it, an instance's values are
// found by its names.
const maxSlot = watch.DefaultMaxInstances

type strayKey struct {
	runKey
	field string
}

// NewWriter returns a writer to s, holding at most queue values between
// two writes (DefaultQueue when 0 or less).
func NewWriter(s *Store, queue int) *Writer {
	if queue <= 0 {
		queue = DefaultQueue
	}
	return &Writer{s: s, max: queue, runs: map[runKey]run{}, strays: map[strayKey]int{}, epoch: 1}
}

// Add queues the numeric fields of m, received at at. It never blocks
// on Valkey.
func (w *Writer) Add(m *wire.Message, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	rk := runKey{m.ServiceName, m.InstanceID, fineStep(at.Unix())}
	r, had := w.runs[rk]
	if !had {
		r = run{start: len(w.queue)}
	}
	was := r
	r = w.add(m, at, rk, r, had)
	if r.n > 0 && r != was { // a heartbeat of the same step mostly merges: nothing to store
		w.runs[rk] = r
	}
}

// AddSlot is Add for a caller that has m's instance's slot in its watcher's
// tracker (a heartbeat's watch.Event.Slot): the values the instance queued
// in this step since the last flush are found at the slot's index rather
// than by a map look-up of its names, which at a hundred thousand
// instances is most of what Add costs. Where the slot holds none of them,
// the values start a rollup of their own, though the instance may have
// some queued under another slot (evicted at the tracker's bound and
// heard again within the second) or for a step it has left (heartbeats
// out of order): that step is then written as two rollups, which Valkey
// merges into the values one would have made. What is written is the
// same; the queue holds more. A heartbeat without a valid slot is given
// to Add; an instance's heartbeats given to both within one flush may
// leave its step's last value an earlier heartbeat's.
func (w *Writer) AddSlot(slot watch.Slot, m *wire.Message, at time.Time) {
	if !slot.Valid() || slot.Index >= maxSlot {
		w.Add(m, at)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	i := int(slot.Index)
	if i >= len(w.slots) {
		w.slots = slices.Grow(w.slots, i+1-len(w.slots))[:i+1]
	}
	rk := runKey{m.ServiceName, m.InstanceID, fineStep(at.Unix())}
	r, had := run{start: len(w.queue)}, false
	if sr := w.slots[i]; sr.epoch == w.epoch && int(sr.start) < len(w.queue) {
		// Its run, if the slot's values are this instance's in this step:
		// the values from start on that are.
		for j := int(sr.start); j < len(w.queue) && w.of(&w.queue[j], rk); j++ {
			r, had = run{start: int(sr.start), n: r.n + 1}, true
		}
	}
	if r = w.add(m, at, rk, r, had); r.n > 0 && !had {
		w.slots[i] = slotRun{epoch: w.epoch, start: int32(r.start)}
	}
}

// fineStep is the start of the fine step that holds sec, in Unix seconds.
// It is worked out in whole seconds rather than by truncating a Time:
// it is asked once or twice for every value queued and flushed.
func fineStep(sec int64) int64 {
	const step = int64(FineStep / time.Second)
	r := sec % step
	if r < 0 {
		r += step
	}
	return sec - r
}

// of reports whether u, queued, is a value of rk's instance in rk's step.
func (w *Writer) of(u *update, rk runKey) bool {
	who := &w.whos[u.who]
	return who.instance == rk.instance && who.service == rk.service && fineStep(int64(u.at)) == rk.step
}

// add queues the numeric fields of m, received at at, into the run r of
// rk (had: already queued before) and returns the run.
func (w *Writer) add(m *wire.Message, at time.Time, rk runKey, r run, had bool) run {
	n := 0
	whoOf := int32(-1) // m's instance in whos, once a value needs it
	// A slot holds its time in 32-bit Unix seconds: a time before 1970
	// or from 2106 would wrap into another's. Its values are dropped.
	sec := at.Unix()
	badTime := sec <= 0 || sec > math.MaxUint32
	add := func(field string, v float64) {
		if n >= MaxFields || math.IsNaN(v) || math.IsInf(v, 0) || !ReadableField(field) {
			return
		}
		n++
		if badTime {
			w.dropped++
			return
		}
		v32 := float32(max(min(v, math.MaxFloat32), -math.MaxFloat32))
		i := -1
		for j := r.start; j < r.start+r.n; j++ {
			if w.queue[j].field == field {
				i = j
				break
			}
		}
		if i < 0 && had {
			if j, ok := w.strays[strayKey{rk, field}]; ok {
				i = j
			}
		}
		if i >= 0 {
			// The same step: one rollup.
			q := &w.queue[i]
			q.at, q.last, q.lo, q.hi = uint32(sec), v32, min(q.lo, v32), max(q.hi, v32)
			return
		}
		if len(w.queue) >= w.max || w.closed {
			w.dropped++
			return
		}
		if whoOf < 0 {
			if r.n > 0 { // the run's values are this instance's
				whoOf = w.queue[r.start].who
			} else {
				whoOf = int32(len(w.whos))
				w.whos = append(w.whos, who{m.ServiceName, m.InstanceID})
			}
		}
		if r.start+r.n == len(w.queue) {
			r.n++ // the run goes on at the queue's end
		} else {
			w.strays[strayKey{rk, field}] = len(w.queue)
		}
		w.queue = append(w.queue, update{field: field, at: uint32(sec), last: v32, lo: v32, hi: v32, who: whoOf})
	}
	if m.Has&wire.HasMemory != 0 {
		add(wire.KeyMemoryUsageMB, m.MemoryUsageMB)
	}
	if m.Has&wire.HasCPU != 0 {
		add(wire.KeyCPUUsagePercent, m.CPUUsagePercent)
	}
	for _, f := range m.Fields {
		switch f.Value.Kind {
		case wire.KindInt:
			add(f.Key, float64(f.Value.Int))
		case wire.KindFloat:
			add(f.Key, f.Value.Float)
		}
	}
	return r
}

// ReadableField reports whether a field's values are kept: a name the API
// can ask for (at most MaxFieldName bytes, no control character).
func ReadableField(f string) bool {
	if f == "" || len(f) > MaxFieldName {
		return false
	}
	// Asked of every value queued: a byte at a time, as the characters
	// refused are ASCII and no byte of another character is.
	for i := 0; i < len(f); i++ {
		if c := f[i]; c < ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// MaxFieldName bounds a field name whose values are kept.
const MaxFieldName = 256

// Close ends the queue: a value added from now on, but one that merges
// into a value queued, is counted in Dropped rather than queued. Flush
// still writes what is queued. A host that stops closes the writer, then
// flushes it, so that every value it was given is written or counted.
func (w *Writer) Close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

// Dropped is how many values did not fit in the queue, came at a time a
// slot cannot hold (before 1970 or from 2106), or after Close.
func (w *Writer) Dropped() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dropped
}

// Unkept is how many values were written to Valkey and not kept there:
// of an instance first heard (or whose rings were gone or of another
// size), or of a field joining an instance's, past what one call may lay
// out (see merge; the instance's or field's next values are kept), or of
// a field past the MaxFields an instance keeps.
func (w *Writer) Unkept() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.unkept
}

// Unwritten is how many of the queue's rollups (an instance's values of a
// field in one fine step, counted once, as Unkept counts them) a flush
// took and does not know written: their call failed (Valkey unreachable,
// say, or its answer lost), was refused, or was out of time; and those
// Abandon forgot. A call that failed midway may have written some of
// them. Flush says why; this says how many.
func (w *Writer) Unwritten() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.unwritten
}

// Abandon forgets what is queued, as Discard does, and counts it
// unwritten: rollups that were to be written and will not be (a replica
// that stops, and could not write them first).
func (w *Writer) Abandon() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.unwritten += int64(len(w.queue))
	w.discard()
}

// Discard forgets what is queued: a replica that stopped recording must
// not write what it heard meanwhile.
func (w *Writer) Discard() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.discard()
}

// discard is Discard, with w.mu held.
func (w *Writer) discard() {
	w.queue = w.queue[:0]
	clear(w.whos) // holds no names of instances gone
	w.whos = w.whos[:0]
	clear(w.runs)
	clear(w.strays)
	w.nextEpoch()
}

// nextEpoch starts the next queue's epoch: the runs at slots are of the
// queue before.
func (w *Writer) nextEpoch() {
	if w.epoch++; w.epoch == 0 { // after 4,294,967,295 queues
		clear(w.slots)
		w.epoch = 1
	}
}

// maxPerScript bounds the record writes one script call makes (two an
// instance: its fine and coarse records), so that Valkey is never held
// for long.
const maxPerScript = 2_000

// wholeBudget bounds the ring bytes one script call makes whole, for
// instances first heard (or rings gone), and lays out again, for fields
// that join them, each byte of a ring laid out again counted sixteen
// times (see merge): some 20 ms of Valkey's at most. That is nine
// instances' rings made of 16 fields at the longest retention, 760 of
// four fields at a day; one instance's rings laid out again for a 16th
// field at the longest retention (30 ms), 49 for a fifth at a day. Past
// it, an instance first heard is written from a later call, and fields
// that join wait for one.
const wholeBudget = 16 << 20

// maxRun bounds the rollups of one run, a script call's argument: one
// instance's of one fine step, MaxFields mostly, more when a writer
// queued some twice.
const maxRun = 64

// flushBatch is about how many rollups a flush writes in one round trip,
// and one call at most: about 150 KB of calls to build and send, where a
// second's flow at 100,000 instances every 10 s is 40,000 rollups.
const flushBatch = 2_000

// Flush writes what is queued, one script call per service and up to
// maxPerScript ring writes (its rings share a cluster slot), about
// flushBatch rollups a round trip. It returns how many rollups were
// written, and why any were not: each reason once, and Valkey's refusal
// of a call (a key of another type under the series' prefix, say) with
// the services it refused. What fails is dropped: the values are a
// chart's, and the next heartbeat brings more.
func (w *Writer) Flush(ctx context.Context) (int, error) {
	w.mu.Lock()
	q, whos := w.queue, w.whos
	if len(q) == 0 {
		w.mu.Unlock()
		// Quiet: the room the last flush needed (a burst's, perhaps) is
		// not kept for nothing.
		w.text, w.refs, w.anys, w.keys, w.args = nil, nil, nil, nil, nil
		w.order, w.svcOf = nil, nil
		return 0, nil
	}
	w.queue, w.spare = w.spare[:0], nil
	w.whos, w.spareWhos = w.spareWhos[:0], nil
	clear(w.runs)
	clear(w.strays)
	w.nextEpoch()
	w.mu.Unlock()
	// The queue written is the next one's room, unless a burst left it
	// far larger than the flow needs.
	defer func() {
		clear(q)
		clear(whos)
		w.mu.Lock()
		defer w.mu.Unlock()
		if worthKeeping(cap(q), len(q)) {
			w.spare = q[:0]
		}
		if worthKeeping(cap(whos), len(whos)) {
			w.spareWhos = whos[:0]
		}
	}()
	// One script per service (its rings share a cluster slot), in the
	// order the services were first heard, each service's rollups in the
	// order they came; the keys' parts made once. The queue is put in
	// that order by counting (order, in room kept from the flush before):
	// each value's service (svcOf), looked up once a heartbeat's values
	// (an instance's are next to one another), not once a value; then
	// where each service's values begin (ends), then each value's place.
	svcIndex := map[string]int32{}
	var (
		services []string
		// ends is by service: first how many values it has, then where
		// they begin in order, and once they are placed, where they end.
		ends []int32
	)
	svcOf := slices.Grow(w.svcOf[:0], len(q))[:len(q)]
	cur, curWho := int32(-1), int32(-1)
	for i := range q {
		if u := &q[i]; u.who != curWho {
			if svc := whos[u.who].service; cur < 0 || svc != services[cur] {
				c, ok := svcIndex[svc]
				if !ok {
					c = int32(len(services))
					svcIndex[svc] = c
					services = append(services, svc)
					ends = append(ends, 0)
				}
				cur = c
			}
			curWho = u.who
		}
		svcOf[i] = cur
		ends[cur]++
	}
	from := int32(0)
	for c, n := range ends {
		ends[c] = from
		from += n
	}
	order := slices.Grow(w.order[:0], len(q))[:len(q)]
	for i, c := range svcOf {
		order[ends[c]] = int32(i)
		ends[c]++
	}
	fine, coarse := w.s.tiers[0], w.s.tiers[1]
	head := []any{MaxFields,
		// A fine ring's time to live is renewed with its coarse ring's,
		// on a coarse step's first record: a coarse step more.
		int64(fine.Step / time.Second), fine.slots(), (fine.Span + coarse.Step + fine.Step).Milliseconds(),
		// The columns' hash lives as long as the longest ring.
		int64(coarse.Step / time.Second), coarse.slots(), (coarse.Span + coarse.Step).Milliseconds(),
		w.s.budget}
	// Every call's keys and arguments are written in one buffer, kept from
	// one flush to the next, and handed to go-redis as spans of it by
	// pointer (see arg): a string each, and its boxing into an interface,
	// would be most of what the panel allocates. The calls go out a batch
	// at a time (flushBatch), so that the buffer is a batch's, whatever
	// the flow.
	type call struct {
		service    string
		keys, args span // in keys and args
		values     int
	}
	var (
		calls           []call
		keys, args      = w.keys[:0], w.args[:0] // in text
		text            = w.text[:0]
		refs, anys      = w.refs[:0], w.anys[:0]
		first, firstArg int // the call being written's first key and argument
		values, batch   int // rollups in the call being written, and in the batch
		written         int
		errs            []error
	)
	keysOf := map[string]int{} // an instance's fine ring's key index, in the call made
	callSvc := ""              // the service of the call being written
	var refused refusals       // what Valkey refused, and of which services
	var notKept int64          // values written and not kept (see merge)
	// An instance's values are next to one another in the queue, but for
	// a field that joined late: each run of them in one fine step is an
	// argument (maxRun rollups at most), its count written when the run
	// ends (at n).
	var (
		runOf   string
		runStep int64 // the run's fine step
		n, at   int   // the run's rollups, and where their count goes in text
	)
	endRun := func() {
		if n > 0 {
			binary.LittleEndian.PutUint32(text[at:], uint32(n))
			args[len(args)-1].to = len(text)
			n = 0
		}
	}
	end := func() {
		endRun()
		calls = append(calls, call{callSvc, span{first, len(keys)}, span{firstArg, len(args)}, values})
		first, firstArg, values = len(keys), len(args), 0
		clear(keysOf)
	}
	// send writes the calls made, and starts the buffers anew.
	send := func() {
		batch = 0
		if len(calls) == 0 {
			return
		}
		if ctx.Err() != nil {
			// Out of time: what is left is dropped, and said once.
			errs = appendDistinct(errs, ctx.Err())
			calls, keys, args, text = calls[:0], keys[:0], args[:0], text[:0]
			first, firstArg = 0, 0
			return
		}
		// The spans are cut from the buffer once it is whole: appending
		// may have moved it.
		refs = slices.Grow(refs[:0], len(keys)+len(args))[:len(keys)+len(args)]
		for i, k := range keys {
			refs[i].b = text[k.from:k.to:k.to]
		}
		argRefs := refs[len(keys):]
		for i, a := range args {
			argRefs[i].b = text[a.from:a.to:a.to]
		}
		// Each EVALSHA's arguments, the hash to be set, cut from one slice.
		anys = slices.Grow(anys[:0], len(calls)*(3+len(head))+len(keys)+len(args))
		cmdArgs := make([][]any, len(calls))
		for i, c := range calls {
			from := len(anys)
			anys = append(anys, "evalsha", "", c.keys.to-c.keys.from)
			for j := c.keys.from; j < c.keys.to; j++ {
				anys = append(anys, &refs[j])
			}
			anys = append(anys, head...)
			for j := c.args.from; j < c.args.to; j++ {
				anys = append(anys, &argRefs[j])
			}
			cmdArgs[i] = anys[from:len(anys):len(anys)]
		}
		callErrs, unkept, err := w.send(ctx, cmdArgs)
		for i, c := range calls {
			switch e := callErrs[i]; {
			case e == nil:
				// What another script of the same hash answers is
				// not trusted beyond what the call held.
				n := min(max(unkept[i], 0), int64(c.values))
				written += c.values - int(n)
				notKept += n
			case refusedCall(e):
				refused.add(e, c.service)
			}
		}
		if err != nil {
			errs = appendDistinct(errs, err)
		}
		clear(refs)
		clear(anys)
		calls, keys, args, text = calls[:0], keys[:0], args[:0], text[:0]
		first, firstArg = 0, 0
	}
	le := binary.LittleEndian
	for si, svc := range services {
		svcPart := w.s.servicePart(svc)
		callSvc = svc
		begin := int32(0)
		if si > 0 {
			begin = ends[si-1]
		}
		for _, i := range order[begin:ends[si]] {
			u := &q[i]
			instance, step := whos[u.who].instance, fineStep(int64(u.at))
			if n == 0 || instance != runOf || step != runStep || n >= maxRun {
				endRun()
				// Two record writes an instance's run, a call's rollups
				// a batch's at most.
				if 2*(len(args)-firstArg) >= maxPerScript || values >= flushBatch {
					end()
					if batch >= flushBatch {
						send()
					}
				}
				ki, ok := keysOf[instance]
				if !ok {
					ki = len(keys) - first + 1 // counting from 1, as Lua does
					for _, t := range [2]Tier{fine, coarse} {
						from := len(text)
						text = appendRingKey(text, svcPart, t, instance)
						keys = append(keys, span{from, len(text)})
					}
					from := len(text)
					text = appendColumnsKey(text, svcPart, instance)
					keys = append(keys, span{from, len(text)})
					keysOf[instance] = ki
				}
				from := len(text)
				text = le.AppendUint32(text, uint32(ki))
				at = len(text)
				text = le.AppendUint32(text, 0) // the count, at the run's end
				args = append(args, span{from, len(text)})
				runOf, runStep = instance, step
			}
			text = le.AppendUint32(text, u.at)
			for _, v := range [3]float32{u.last, u.lo, u.hi} {
				text = le.AppendUint32(text, math.Float32bits(v))
			}
			text = le.AppendUint32(text, uint32(len(u.field)))
			text = append(text, u.field...)
			n++
			values++
			batch++
		}
		if len(args) > firstArg {
			end()
			if batch >= flushBatch {
				send()
			}
		}
	}
	send()
	errs = append(errs, refused.errs()...)
	// Every rollup taken from the queue was written and kept, written and
	// not kept, or not written: its call failed, was refused, or was out
	// of time.
	if unwritten := int64(len(q)-written) - notKept; notKept > 0 || unwritten > 0 {
		w.mu.Lock()
		w.unkept += notKept
		w.unwritten += unwritten
		w.mu.Unlock()
	}
	// Kept for the next flush: a batch's room, at most; and the queue's
	// order's, as the queue's own room is (see above).
	w.text, w.refs, w.anys, w.keys, w.args = text[:0], refs[:0], anys[:0], keys[:0], args[:0]
	w.order, w.svcOf = nil, nil
	if worthKeeping(cap(order), len(order)) {
		w.order, w.svcOf = order[:0], svcOf[:0]
	}
	return written, errors.Join(errs...)
}

// worthKeeping reports whether room of capacity c, of which a flush used
// n, is kept for the next: not when a burst left it far larger than the
// flow needs.
func worthKeeping(c, n int) bool { return c <= 2*n+1024 }

// appendDistinct appends err to errs unless one of errs says the same.
func appendDistinct(errs []error, err error) []error {
	for _, e := range errs {
		if e.Error() == err.Error() {
			return errs
		}
	}
	return append(errs, err)
}

// send makes script calls in one round trip, by hash; a Valkey that does
// not know the script (restarted, flushed) is sent it whole, once per call
// that failed so. It returns each call's error, nil for those written,
// and how many of their values were not kept (the script's answer); and,
// when the calls could not be made (Valkey unreachable, out of time),
// why, once: the context's error alone when out of time.
func (w *Writer) send(ctx context.Context, cmdArgs [][]any) ([]error, []int64, error) {
	pipe := func(name, script string, which []int) ([]*redis.Cmd, error) {
		cmds := make([]*redis.Cmd, len(which))
		_, err := w.s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, c := range which {
				cmdArgs[c][0], cmdArgs[c][1] = name, script
				cmds[i] = redis.NewCmd(ctx, cmdArgs[c]...)
				cmds[i].SetFirstKeyPos(3)
				_ = p.Process(ctx, cmds[i])
			}
			return nil
		})
		return cmds, err
	}
	all := make([]int, len(cmdArgs))
	for i := range all {
		all[i] = i
	}
	callErrs, unkept := make([]error, len(cmdArgs)), make([]int64, len(cmdArgs))
	var errs []error // not Valkey's refusals of a call: said once
	failed := func(i int, e error) {
		callErrs[i] = e
		if !refusedCall(e) {
			errs = appendDistinct(errs, e)
		}
	}
	// answered takes call i's answer: the values its script did not keep.
	// A call with no answer (its connection refused before it was sent,
	// as a wrong password is, which go-redis says of the pipeline alone)
	// failed for the pipeline's reason.
	answered := func(i int, c *redis.Cmd, pipeErr error) {
		n, e := c.Int64()
		if e != nil {
			if pipeErr == nil {
				pipeErr = e
			}
			callErrs[i] = unsent{pipeErr} // not the call's own refusal
			errs = appendDistinct(errs, pipeErr)
			return
		}
		unkept[i] = n
	}
	cmds, err := pipe("evalsha", merge.Hash(), all)
	var again []int
	for i, c := range cmds {
		switch e := c.Err(); {
		case e != nil && redis.HasErrorPrefix(e, "NOSCRIPT"):
			again = append(again, i)
		case e != nil:
			failed(i, e)
		default:
			answered(i, c, err)
		}
	}
	if len(again) > 0 {
		cmds, err := pipe("eval", mergeSource, again)
		for j, c := range cmds {
			if e := c.Err(); e != nil {
				failed(again[j], e)
			} else {
				answered(again[j], c, err)
			}
		}
	}
	if err := ctx.Err(); err != nil && slices.ContainsFunc(callErrs, func(e error) bool { return e != nil }) {
		return callErrs, unkept, err
	}
	return callErrs, unkept, errors.Join(errs...)
}

// refusedCall reports whether err is Valkey's refusal of a call for what
// it is: its keys (a key of another type, a user's rights to them), not
// the server's state (out of memory, loading, a replica, busy), which
// refuses every call alike.
func refusedCall(err error) bool {
	var refusal redis.Error
	if !errors.As(err, &refusal) {
		return false
	}
	for _, p := range []string{"OOM ", "LOADING ", "READONLY ", "MASTERDOWN ", "BUSY ", "MISCONF ", "CLUSTERDOWN ", "NOREPLICAS "} {
		if redis.HasErrorPrefix(err, p) {
			return false
		}
	}
	return true
}

// unsent is why a call got no answer of its own: not a refusal of it,
// whatever error it wraps (it does not unwrap).
type unsent struct{ err error }

func (u unsent) Error() string { return u.err.Error() }

// refusals are Valkey's errors for script calls, each said once with the
// services whose calls it refused: a few named, the rest counted. A
// flush writes its services one after another, so a service refused
// again is the last one its refusal counted.
type refusals struct{ said []refusal }

type refusal struct {
	err   error
	named []string // the first services refused, namedServices at most
	n     int      // services refused
	last  string
}

// namedServices is how many services a refusal names.
const namedServices = 3

func (r *refusals) add(err error, service string) {
	for i := range r.said {
		if f := &r.said[i]; f.err.Error() == err.Error() {
			if f.last != service {
				f.n, f.last = f.n+1, service
				if len(f.named) < namedServices {
					f.named = append(f.named, service)
				}
			}
			return
		}
	}
	r.said = append(r.said, refusal{err: err, named: []string{service}, n: 1, last: service})
}

// errs are the refusals, each with its services.
func (r *refusals) errs() []error {
	out := make([]error, len(r.said))
	for i, f := range r.said {
		out[i] = fmt.Errorf("%w (%s)", f.err, forServices(f.named, f.n))
	}
	return out
}

// forServices names the services named, of n, and counts the rest.
func forServices(named []string, n int) string {
	quoted := make([]string, len(named))
	for i, s := range named {
		quoted[i] = strconv.Quote(s)
	}
	switch {
	case n == 1:
		return "service " + quoted[0]
	case n == len(named):
		return "services " + strings.Join(quoted[:len(quoted)-1], ", ") + " and " + quoted[len(quoted)-1]
	}
	return fmt.Sprintf("services %s and %d more", strings.Join(quoted, ", "), n-len(named))
}
