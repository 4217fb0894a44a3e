package watch

import (
	"bytes"
	"strings"

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

// keep returns what the tracker keeps of m for k, within room bytes, with
// its footprint and how many service fields were cut or left out. An owned
// m (see Tracker.observeOwned) that fits whole, its fields without spare
// room, is kept itself, with k's names; any other m is copied, so the
// caller's stays the caller's.
func keep(m *wire.Message, k Key, room int, owned bool) (*wire.Message, int, int) {
	if owned && cap(m.Fields) == len(m.Fields) {
		if size, ok := whole(m, k, room); ok {
			m.ServiceName, m.InstanceID = k.Service, k.Instance
			return m, size, 0
		}
	}
	h := *m
	h.ServiceName, h.InstanceID = k.Service, k.Instance // shared with the entry
	h.Fields = nil
	size := h.Footprint() - len(h.ServiceName) - len(h.InstanceID)
	cut := 0
	var fields []wire.Field
	for _, f := range m.Fields {
		short := false // cut short: counted once, kept or not
		switch v := &f.Value; {
		case v.Kind == wire.KindString && len(v.Str) > MaxKeptString:
			v.Str = strings.Clone(wire.Truncate(v.Str, MaxKeptString-len("…"))) + "…"
			cut++
			short = true
		case len(v.Raw) > MaxKeptString:
			cut++
			continue
		case v.Raw != nil:
			v.Raw = bytes.Clone(v.Raw) // the caller's slice stays the caller's
		}
		fs := wire.FieldFootprint(f)
		if size+fs > room {
			if !short {
				cut++
			}
			continue
		}
		if fields == nil {
			fields = make([]wire.Field, 0, len(m.Fields))
		}
		fields = append(fields, f)
		size += fs
	}
	if len(fields) == cap(fields) {
		h.Fields = fields // every field kept (or none): already its length
	} else {
		// Only what was kept stays allocated: a copy of the right length.
		h.Fields = append([]wire.Field(nil), fields...)
	}
	return &h, size, cut
}

// whole returns the footprint of m kept whole for k, and whether it can
// be: within room, and with nothing to cut.
func whole(m *wire.Message, k Key, room int) (int, bool) {
	size := m.Footprint() - len(m.ServiceName) - len(m.InstanceID)
	if size > room {
		return 0, false
	}
	for _, f := range m.Fields {
		if v := &f.Value; len(v.Raw) > MaxKeptString || v.Kind == wire.KindString && len(v.Str) > MaxKeptString {
			return 0, false
		}
	}
	return size, true
}
