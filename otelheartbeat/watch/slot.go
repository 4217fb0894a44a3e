package watch

// Slot names an instance while a Tracker tracks it, for a consumer that
// keeps something of every instance (a count, the times of its latest
// heartbeats) in slices rather than in a map by Key: a heartbeat's Event
// carries its instance's Slot, so that the consumer finds its part
// without hashing the names, and holds no names of its own.
//
// Index is small: below Tracker.Slots, which is at most the most
// instances the tracker has tracked at once. Once the instance is
// forgotten, its Index is given to another instance in the next
// generation (Gen), so a consumer that keeps the Gen beside what it keeps
// at an Index knows whose it is, and Before tells an event read late, of
// an instance since forgotten, from one of the instance now there. The
// zero Slot (Gen 0) names no instance. A Slot means something only to the
// tracker that gave it.
type Slot struct {
	Index int32
	Gen   uint32
}

// Valid reports whether s names an instance.
func (s Slot) Valid() bool { return s.Gen != 0 && s.Index >= 0 }

// Before reports whether s is of an earlier generation than o, both at one
// Index. Generations count round, skipping 0, after 4,294,967,295
// instances in one slot; Before compares them as serial numbers, so that
// the wrap is no different from any other step.
func (s Slot) Before(o Slot) bool { return int32(s.Gen-o.Gen) < 0 }

// takeSlot returns a slot for a new instance: one of an instance
// forgotten, or a new one, in its next generation.
func (t *Tracker) takeSlot() int32 {
	var i int32
	if n := len(t.freeSlots); n > 0 {
		i = t.freeSlots[n-1]
		t.freeSlots = t.freeSlots[:n-1]
	} else {
		i = int32(len(t.gens))
		t.gens = append(t.gens, 0)
		t.slots.Store(int32(len(t.gens)))
	}
	if t.gens[i]++; t.gens[i] == 0 { // after 4,294,967,295 instances in one slot
		t.gens[i] = 1
	}
	return i
}

// Slots returns how many slots the tracker has made: every Slot it gives
// has an Index below it. It never shrinks, and costs no lock, so that a
// consumer can check a slot on every heartbeat.
func (t *Tracker) Slots() int { return int(t.slots.Load()) }

// slotOf is e's Slot.
func (t *Tracker) slotOf(e *entry) Slot { return Slot{Index: e.slot, Gen: t.gens[e.slot]} }

// SlotOf returns the Slot of the instance k, and whether it is tracked.
func (t *Tracker) SlotOf(k Key) (Slot, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, _ := t.lookup(k); e != nil {
		return t.slotOf(e), true
	}
	return Slot{}, false
}

// slotsHeld bounds the look-ups SlotsOf makes under one hold of the
// tracker's lock, so that heartbeats wait for it no longer than for a few
// hundred.
const slotsHeld = 512

// SlotsOf appends to dst the Slot of each of ids as an instance of
// service, the zero Slot for one not tracked, in their order. A consumer
// that looks up many instances at once (a panel keeping every instance's
// uptime by slot) pays the tracker's lock once for hundreds of them,
// rather than once each as SlotOf.
func (t *Tracker) SlotsOf(service string, ids []string, dst []Slot) []Slot {
	for len(ids) > 0 {
		n := min(len(ids), slotsHeld)
		t.mu.Lock()
		svc := t.services[service]
		for _, id := range ids[:n] {
			var s Slot
			if svc != nil {
				if e := svc.find(id); e != nil {
					s = t.slotOf(e)
				}
			}
			dst = append(dst, s)
		}
		t.mu.Unlock()
		ids = ids[n:]
	}
	return dst
}
