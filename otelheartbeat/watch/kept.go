package watch

import (
	"encoding/binary"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/wire"
)

// What a tracker keeping heartbeats (WithHeartbeats) keeps of them is
// bounded in bytes, whatever the heartbeats carry: a publisher may send 64
// service fields of 1 KiB strings, and a flood of such heartbeats under
// new instance ids must not grow a watcher's memory with their size.
const (
	// DefaultHeartbeatBytes is what one kept heartbeat may hold at most,
	// packed (see Instance.Heartbeat): the original design's heartbeat,
	// with its three service fields, holds about 90.
	DefaultHeartbeatBytes = 4 << 10
	// DefaultHeartbeatBudget is what every kept heartbeat together may
	// hold. Each instance's share is the budget divided by the instances
	// tracked, and at most DefaultHeartbeatBytes: 4 KiB each up to 32,768
	// instances, 134 bytes each at 1,000,000 (the original design's
	// heartbeat fits whole).
	DefaultHeartbeatBudget = 128 << 20
	// MaxKeptString is the longest string service value kept as it is: a
	// longer one is cut at a character boundary and ends with "…".
	MaxKeptString = 256
)

// WithHeartbeatBudget bounds what a tracker keeping heartbeats holds of
// them, in the bytes they are kept in (packed, see Instance.Heartbeat): at
// most perInstance bytes of each, at most its fair share of total (total
// divided by the instances tracked), and total bytes together. Its service
// fields are kept in their order while they fit, a string longer than
// MaxKeptString is cut, and any other value that long (an array, an
// object) is left out. What no heartbeat can do without is kept even past
// the budget: its timestamp, interval, status and instance_address (about
// 25 bytes and the address, which publishers and the decoder hold to
// wire.MaxAddressLength, 512: a longer one, given to Observe by hand, is
// left out, as a status other than the wire's two is cut to 32 bytes; the
// names and the counted values are the entry's own). So the kept
// heartbeats hold at most total bytes, plus 25 bytes and the address per
// instance. A heartbeat is held to its share when it is kept: one kept
// while fewer instances were tracked holds its larger share until its
// instance's next heartbeat, and until then an instance that joins gets
// what the budget has left, which may be none of its service fields.
// Instance.Cut counts what was cut or left out of each instance's last
// heartbeat, and Tracker.Cut what was of every heartbeat kept since the
// tracker began. Defaults: DefaultHeartbeatBytes
// and DefaultHeartbeatBudget; values below them are allowed, down to
// keeping no service field at all.
func WithHeartbeatBudget(perInstance, total int) TrackerOption {
	return trackerOptionFunc(func(t *Tracker) {
		t.keptMax, t.keptBudget = max(perInstance, 0), max(total, 0)
	})
}

// keep returns what the tracker keeps of m, packed (see packed), within
// room bytes (packed.size), and how many service fields were cut or left
// out. Nothing of m is kept but copies, so the caller's
// message stays the caller's. The scratch buffers are the tracker's, kept
// for the next call; the packed bytes are one allocation of their own.
func keep(s *keepScratch, m *wire.Message, room int) (packed, int) {
	s.head = packHead(s.head[:0], m)
	// The bytes besides the fields: the head, the count of fields, and
	// the length the packed bytes begin with, as many as they could take.
	base := len(s.head) + binary.MaxVarintLen16 + binary.MaxVarintLen32
	cut, kept := 0, 0
	s.fields = s.fields[:0]
	for i := range m.Fields {
		f := &m.Fields[i]
		v, more, short := &f.Value, "", false
		switch {
		case v.Kind == wire.KindString && len(v.Str) > MaxKeptString:
			v = &wire.Value{Kind: wire.KindString, Str: wire.Truncate(v.Str, MaxKeptString-len(ellipsis))}
			more, short = ellipsis, true
			cut++ // cut short: counted once, kept or not
		case v.Kind == wire.KindRaw && len(v.Raw) > MaxKeptString:
			cut++
			continue
		}
		mark := len(s.fields)
		if s.fields = packField(s.fields, f.Key, v, more); base+len(s.fields) > room {
			s.fields = s.fields[:mark]
			if !short {
				cut++
			}
			continue
		}
		kept++
	}
	s.head = binary.AppendUvarint(s.head, uint64(kept))
	s.head = append(s.head, s.fields...)
	return makePacked(s.head), cut
}

// ellipsis ends a string value cut short.
const ellipsis = "…"

// keepScratch is where keep packs.
type keepScratch struct{ head, fields []byte }
