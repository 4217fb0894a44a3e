package watch

import "hash/maphash"

// idIndex finds a large service's members by id. It is a table of their
// places in the service's members, open-addressed with linear probing:
// each slot holds the high 32 bits of its id's hash, which also say where
// it is looked for first, and its place plus one (0: empty). That is 8
// bytes a slot, 11 to 32 an instance at the load it keeps (1/4 to 3/4),
// where a Go map of *entry by id costs about 60, and its slots hold no
// pointer for the collector to follow. Since a slot holds the bits its
// place comes from, the table grows and shrinks from its own slots,
// without reading the members' ids again under the tracker's lock. The
// hash is seeded at random per process, so no choice of ids can make them
// collide on purpose.
type idIndex struct {
	slots []uint64
	n     int
}

var idSeed = maphash.MakeSeed()

func idHash(id string) uint64 { return maphash.String(idSeed, id) }

// minIndexSlots is the smallest table: a service gets one past
// smallService instances.
const minIndexSlots = 32

// full reports whether a table of n slots holds as many as it should.
func full(used, n int) bool { return 4*used > 3*n }

// sparse reports whether a table of n slots holds so few that it should
// shrink: a table made again holds more than 3/8, so it never shrinks
// back and forth.
func sparse(used, n int) bool { return n > minIndexSlots && 4*used < n }

func slotOf(h uint64, member int32) uint64 { return h&^0xffffffff | uint64(uint32(member)+1) }

// home is where a slot of hash h is looked for first.
func home(h, mask uint64) uint64 { return h >> 32 & mask }

// find returns the member of members whose id is id, nil if none. The
// table always has an empty slot (it is at most 3/4 full), which ends the
// search for an id it does not hold.
func (x *idIndex) find(members []*entry, id string, h uint64) *entry {
	mask := uint64(len(x.slots) - 1)
	tag := h &^ 0xffffffff
	for i := home(h, mask); ; i = (i + 1) & mask {
		s := x.slots[i]
		if s == 0 {
			return nil
		}
		if s&^0xffffffff == tag {
			if e := members[uint32(s)-1]; e.Key.Instance == id {
				return e
			}
		}
	}
}

// build makes the table for members, with room for them.
func (x *idIndex) build(members []*entry) {
	x.slots, x.n = make([]uint64, slotsFor(len(members))), 0
	for i, e := range members {
		x.insert(idHash(e.Key.Instance), int32(i))
	}
}

// slotsFor is the table for n members and one more.
func slotsFor(n int) int {
	slots := minIndexSlots
	for full(n+1, slots) {
		slots *= 2
	}
	return slots
}

// resize makes the table again with room for what it holds, from its own
// slots.
func (x *idIndex) resize() {
	old := x.slots
	x.slots, x.n = make([]uint64, slotsFor(x.n)), 0
	for _, s := range old {
		if s != 0 {
			x.insert(s, int32(uint32(s)-1))
		}
	}
}

// insert adds member, whose id hashes to h. The table has room: add
// grows it first.
func (x *idIndex) insert(h uint64, member int32) {
	mask := uint64(len(x.slots) - 1)
	i := home(h, mask)
	for x.slots[i] != 0 {
		i = (i + 1) & mask
	}
	x.slots[i] = slotOf(h, member)
	x.n++
}

// add adds the last of members, growing the table when it is full.
func (x *idIndex) add(members []*entry) {
	if full(x.n+1, len(x.slots)) {
		x.resize()
	}
	last := len(members) - 1
	x.insert(idHash(members[last].Key.Instance), int32(last))
}

// at returns the slot holding member, whose id hashes to h, and whether
// it is there. It always is; were it not, through a fault of the
// tracker's, at says so after a round of the table rather than hold the
// tracker's lock for ever.
func (x *idIndex) at(h uint64, member int32) (uint64, bool) {
	mask := uint64(len(x.slots) - 1)
	want := slotOf(h, member)
	i := home(h, mask)
	for range x.slots {
		switch x.slots[i] {
		case want:
			return i, true
		case 0:
			return 0, false
		}
		i = (i + 1) & mask
	}
	return 0, false
}

// remove takes member, whose id hashes to h, out of the table, moving back
// the slots after it that would no longer be found past the hole.
func (x *idIndex) remove(h uint64, member int32) {
	mask := uint64(len(x.slots) - 1)
	hole, ok := x.at(h, member)
	if !ok {
		return
	}
	for i := (hole + 1) & mask; x.slots[i] != 0; i = (i + 1) & mask {
		// The slot at i may move into the hole when its home is not
		// between the hole and i, going round the table.
		if (i-home(x.slots[i], mask))&mask >= (i-hole)&mask {
			x.slots[hole] = x.slots[i]
			hole = i
		}
	}
	x.slots[hole] = 0
	x.n--
	if sparse(x.n, len(x.slots)) {
		x.resize()
	}
}

// moved says that the member with the id hashing to h went from place
// from to place to.
func (x *idIndex) moved(h uint64, from, to int32) {
	if i, ok := x.at(h, from); ok {
		x.slots[i] = slotOf(h, to)
	}
}
