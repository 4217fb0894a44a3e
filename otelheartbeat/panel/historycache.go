package panel

import (
	"cmp"
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/history"
	"github.com/otel-heartbeat/heartbeat/otelheartbeat/watch"
)

// maxEntries bounds the history entries kept in memory per service: a
// service that changes state every 10 s for 30 days has 260,000.
const maxEntries = 300_000

// entryCache keeps every service's history entries as read so far, in
// order of time, and reads only what was added since: history only grows
// at its end, unless Valkey lost it, and then it is read again whole.
type entryCache struct {
	mu       sync.Mutex
	services map[string]*cachedEntries
}

// cachedEntries is one service's history as the cache keeps it: what uptime
// and the charts' marks read of each entry, in 32 bytes rather than a
// history.Entry's 96, the names shared with the tracker.
type cachedEntries struct {
	shared  bool // entries read before the tracker loaded the fleet have the tracker's names since
	mu      sync.Mutex
	service string
	entries []cachedEntry
	by      []string // the replacements of the Replaced entries, see cachedEntry.aux
	lost    []int64  // the lost counts too large for cachedEntry.aux
	last    string   // the id of the last entry read
	capped  bool
	changes uint64 // counts the changes to entries: a reader that saw a count has seen them all
}

// cachedEntry is a history.Entry without its service (its cachedEntries')
// and its heartbeat count, which no reader of the cache needs.
type cachedEntry struct {
	instance string
	at       int64 // Unix milliseconds, as history keeps times
	// Of a Replaced entry, where its By is in by. Of a LostHeartbeats one,
	// its Lost, or where it is in lost, as -1-aux, when it is negative or
	// does not fit.
	aux      int32
	event    history.Event
	from, to watch.State
}

// lostAux is aux of a LostHeartbeats entry of lost heartbeats.
func (ce *cachedEntries) lostAux(lost int64) int32 {
	if lost >= 0 && lost <= math.MaxInt32 {
		return int32(lost)
	}
	ce.lost = append(ce.lost, lost)
	return int32(-len(ce.lost))
}

// lostOf is Lost of the LostHeartbeats entry c.
func (ce *cachedEntries) lostOf(c cachedEntry) int64 {
	if c.aux >= 0 {
		return int64(c.aux)
	}
	return ce.lost[-1-c.aux]
}

// read returns a service's entries within the retention, oldest first,
// from since on (all of them when since is zero), in a slice of the
// caller's own.
func (c *entryCache) read(ctx context.Context, p *Panel, svc string, now, since time.Time) ([]history.Entry, error) {
	var out []history.Entry
	err := c.with(ctx, p, svc, now, func(ce *cachedEntries) {
		out = ce.history(ce.before(since))
	})
	return out, err
}

// with calls fn with a service's entries, read up to now, while it holds
// them: fn reads them in place (see cachedSource), and keeps nothing of
// them past its return. Readers of the service's history wait meanwhile:
// an uptime computation of a service of 100,000 instances holds it for
// some 40 to 70 ms.
func (c *entryCache) with(ctx context.Context, p *Panel, svc string, now time.Time, fn func(*cachedEntries)) error {
	c.mu.Lock()
	if c.services == nil {
		c.services = map[string]*cachedEntries{}
	}
	ce, ok := c.services[svc]
	if !ok {
		ce = &cachedEntries{service: svc}
		c.services[svc] = ce
	}
	c.mu.Unlock()
	ce.mu.Lock()
	defer ce.mu.Unlock()
	for {
		more, last, err := p.store.EntriesAfter(ctx, svc, ce.last, 10_000)
		if errors.Is(err, history.ErrEntryGone) {
			// What is kept is not the start of what Valkey holds now.
			ce.reset()
			continue
		}
		if err != nil {
			return err
		}
		if p.loaded.Load() && !ce.shared {
			// Read before the tracker knew the fleet: once, with its names.
			ce.shareNames(p.tr)
			ce.shared = true
		}
		ce.add(p.tr, more)
		ce.last = last
		if n := len(ce.entries) - maxEntries; n > 0 {
			if !ce.capped {
				p.cfg.errorf("history of %q holds more than %d entries: uptime is computed from the latest %d", svc, maxEntries, maxEntries)
				ce.capped = true
			}
			ce.drop(n)
		}
		if len(more) < 10_000 {
			break
		}
	}
	// Trimmed in Valkey past the retention: trimmed here too.
	ce.drop(ce.before(now.Add(-p.store.Retention())))
	fn(ce)
	return nil
}

// reset forgets every entry read, to read the service's history again
// from its first entry.
func (ce *cachedEntries) reset() {
	ce.entries, ce.by, ce.lost, ce.last, ce.capped = nil, nil, nil, "", false
	ce.changes++
}

// add merges more, in the order history wrote them, into the entries kept,
// in order of time: entries of one time stay in the order written, as a
// stable sort of the whole history would leave them. History is mostly
// written in order of time, but not always (a transition found by a tick
// is written after a heartbeat heard later); sorting once here spares
// every uptime computation a sort.
func (ce *cachedEntries) add(tr *watch.Tracker, more []history.Entry) {
	if len(more) == 0 {
		return
	}
	ce.changes++
	in := make([]cachedEntry, len(more))
	for i, e := range more {
		k, _ := tr.Names(watch.Key{Service: ce.service, Instance: e.Instance})
		c := cachedEntry{instance: k.Instance, at: e.At.UnixMilli(), event: e.Event, from: e.From, to: e.To}
		switch e.Event {
		case history.LostHeartbeats:
			c.aux = ce.lostAux(e.Lost)
		case history.Replaced:
			by, _ := tr.Names(watch.Key{Service: ce.service, Instance: e.By})
			c.aux = int32(len(ce.by))
			ce.by = append(ce.by, by.Instance)
		}
		in[i] = c
	}
	ce.entries = mergeByTime(ce.entries, in)
}

// shareNames gives the entries the tracker's copy of their names where it
// has one, so that history kept for uptime holds no second copy of every id.
func (ce *cachedEntries) shareNames(tr *watch.Tracker) {
	for i := range ce.entries {
		k, _ := tr.Names(watch.Key{Service: ce.service, Instance: ce.entries[i].instance})
		ce.entries[i].instance = k.Instance
	}
	for i := range ce.by {
		k, _ := tr.Names(watch.Key{Service: ce.service, Instance: ce.by[i]})
		ce.by[i] = k.Instance
	}
}

// before is how many entries are earlier than t.
func (ce *cachedEntries) before(t time.Time) int {
	if t.IsZero() {
		return 0
	}
	// Earlier than t in whole milliseconds: earlier than t rounded up.
	ms := t.UnixMilli()
	if t.Sub(time.UnixMilli(ms)) > 0 {
		ms++
	}
	i, _ := slices.BinarySearchFunc(ce.entries, ms, func(e cachedEntry, ms int64) int {
		if e.at < ms {
			return -1
		}
		return 1
	})
	return i
}

// drop forgets the oldest n entries, and the replacements and lost counts
// only they held.
func (ce *cachedEntries) drop(n int) {
	if n <= 0 {
		return
	}
	ce.changes++
	aside := slices.ContainsFunc(ce.entries[:n], func(e cachedEntry) bool {
		return e.event == history.Replaced || e.event == history.LostHeartbeats && e.aux < 0
	})
	if n > len(ce.entries)/2 {
		// A copy, so that the many forgotten do not stay behind the slice
		// until it grows.
		ce.entries = slices.Clone(ce.entries[n:])
	} else {
		ce.entries = ce.entries[n:]
	}
	if !aside {
		return
	}
	var (
		by   []string
		lost []int64
	)
	for i := range ce.entries {
		switch e := &ce.entries[i]; {
		case e.event == history.Replaced:
			by = append(by, ce.by[e.aux])
			e.aux = int32(len(by) - 1)
		case e.event == history.LostHeartbeats && e.aux < 0:
			lost = append(lost, ce.lost[-1-e.aux])
			e.aux = int32(-len(lost))
		}
	}
	ce.by, ce.lost = by, lost
}

// history returns the entries from the i-th on as history.Entry.
func (ce *cachedEntries) history(i int) []history.Entry {
	out := make([]history.Entry, len(ce.entries)-i)
	for j, c := range ce.entries[i:] {
		out[j] = ce.entry(c)
	}
	return out
}

// entry is c as history.Entry.
func (ce *cachedEntries) entry(c cachedEntry) history.Entry {
	e := history.Entry{Service: ce.service, Instance: c.instance, Event: c.event, From: c.from, To: c.to, At: time.UnixMilli(c.at)}
	switch c.event {
	case history.LostHeartbeats:
		e.Lost = ce.lostOf(c)
	case history.Replaced:
		e.By = ce.by[c.aux]
	}
	return e
}

// cachedSource is a service's cached entries as an uptime.Source: each
// turned into a history.Entry as it is read, rather than all of them at
// once (96 bytes an entry, some 10 MB a computation for a service of
// 100,000 instances, every 10 s). It is read while the cache holds the
// service (entryCache.with).
type cachedSource struct{ ce *cachedEntries }

func (s cachedSource) Len() int                  { return len(s.ce.entries) }
func (s cachedSource) Entry(i int) history.Entry { return s.ce.entry(s.ce.entries[i]) }

// mergeByTime returns have, in order of time, with more (in the order
// written) merged in: entries of one time stay in the order written.
func mergeByTime(have, more []cachedEntry) []cachedEntry {
	byTime := func(a, b cachedEntry) int { return cmp.Compare(a.at, b.at) }
	slices.SortStableFunc(more, byTime)
	if len(have) == 0 || len(more) == 0 || more[0].at >= have[len(have)-1].at {
		return append(have, more...)
	}
	out := make([]cachedEntry, 0, len(have)+len(more))
	for len(have) > 0 && len(more) > 0 {
		if more[0].at < have[0].at {
			out, more = append(out, more[0]), more[1:]
		} else {
			out, have = append(out, have[0]), have[1:]
		}
	}
	return append(append(out, have...), more...)
}
