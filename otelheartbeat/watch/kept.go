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
	// by wire.Message.Footprint: the original design's heartbeat, with its three
	// service fields, holds about 700.
	DefaultHeartbeatBytes = 4 << 10
	// DefaultHeartbeatBudget is what every kept heartbeat together may
	// hold. Each instance's share is the budget divided by the instances
	// tracked, and at most DefaultHeartbeatBytes: 4 KiB each up to 32,768
	// instances, 134 bytes each at 1,000,000.
	DefaultHeartbeatBudget = 128 << 20
	// MaxKeptString is the longest string service value kept as it is: a
	// longer one is cut at a character boundary and ends with "…".
	MaxKeptString = 256
)

// WithHeartbeatBudget bounds what a tracker keeping heartbeats holds of
// them, by wire.Message.Footprint: at most perInstance bytes of each, at
// most its fair share of total (total divided by the instances tracked),
// and total bytes together. Its service fields are kept in their order
// while they fit, a string longer than MaxKeptString is cut, and any other
// value that long (an array, an object) is left out. What no heartbeat can
// do without is kept even past the budget: the message itself, with the
// documented fields, its status and its instance_address (160 bytes and
// the address, which a publisher holds to 512; instance ids and service
// names are shared with the tracker's entries). So the kept heartbeats
// hold at most total bytes, plus 160 bytes and the address per instance.
// Instance.Cut counts what was cut or left out of each instance's last
// heartbeat, and Tracker.Cut all of it. Defaults: DefaultHeartbeatBytes
// and DefaultHeartbeatBudget; values below them are allowed, down to
// keeping no service field at all.
func WithHeartbeatBudget(perInstance, total int) TrackerOption {
	return trackerOptionFunc(func(t *Tracker) {
		t.keptMax, t.keptBudget = max(perInstance, 0), max(total, 0)
	})
}

// keep returns what the tracker keeps of m, packed (see packed), within
// room bytes by wire.Message.Footprint, with that footprint and how many
// service fields were cut or left out. Nothing of m is kept but copies,
// so the caller's message stays the caller's. The scratch buffers are the
// tracker's, kept for the next call; the packed bytes are one allocation
// of their own.
func keep(s *keepScratch, m *wire.Message, room int) (packed, int, int) {
	size := messageFootprint(m)
	cut, kept := 0, 0
	s.fields = s.fields[:0]
	for i := range m.Fields {
		f := &m.Fields[i]
		v, more := &f.Value, ""
		var fs int
		switch {
		case v.Kind == wire.KindString && len(v.Str) > MaxKeptString:
			short := wire.Value{Kind: wire.KindString, Str: wire.Truncate(v.Str, MaxKeptString-len(ellipsis))}
			v, more = &short, ellipsis
			fs = wire.FieldFootprint(wire.Field{Key: f.Key, Value: short}) + len(ellipsis)
			cut++ // cut short: counted once, kept or not
			if size+fs > room {
				continue
			}
		case len(v.Raw) > MaxKeptString:
			cut++
			continue
		default:
			if fs = wire.FieldFootprint(*f); size+fs > room {
				cut++
				continue
			}
		}
		s.fields = packField(s.fields, f.Key, v, more)
		size += fs
		kept++
	}
	s.head = packHead(s.head[:0], m)
	s.head = binary.AppendUvarint(s.head, uint64(kept))
	s.head = append(s.head, s.fields...)
	return makePacked(s.head), size, cut
}

// ellipsis ends a string value cut short.
const ellipsis = "…"

// keepScratch is where keep packs.
type keepScratch struct{ head, fields []byte }

// messageFootprint is m's footprint without its service fields and its
// names, which are shared with the tracker's entry.
func messageFootprint(m *wire.Message) int {
	return (&wire.Message{Status: m.Status, InstanceAddress: m.InstanceAddress}).Footprint()
}
