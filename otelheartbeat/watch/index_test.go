package watch

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// Every instance of a large service is found by its id, and none that
// left, through any order of joining and leaving; the index holds one
// slot a member, within its load, and goes back to a small table when the
// service shrinks.
func TestALargeServiceFindsEveryInstanceByID(t *testing.T) {
	clock := &fakeClock{t: t0}
	tr := NewTracker(WithClock(clock), WithRetention(time.Minute))
	r := rand.New(rand.NewPCG(3, 4))
	live := map[string]bool{}
	const ids = 3000
	check := func(step int) {
		t.Helper()
		svc := tr.services["svc"]
		if svc == nil {
			return
		}
		if x := svc.byID; x != nil {
			if x.n != len(svc.members) {
				t.Fatalf("step %d: the index holds %d, the service %d", step, x.n, len(svc.members))
			}
			// Between 1/4 and 3/4 full, or the smallest table.
			if 4*x.n > 3*len(x.slots) {
				t.Fatalf("step %d: %d in a table of %d", step, x.n, len(x.slots))
			}
			if len(x.slots) > minIndexSlots && 4*x.n < len(x.slots) {
				t.Fatalf("step %d: %d hold a table of %d", step, x.n, len(x.slots))
			}
		}
		for i := range ids {
			id := fmt.Sprint("instance-", i)
			e, _ := tr.lookup(Key{"svc", id})
			if (e != nil) != live[id] || (e != nil && e.Key.Instance != id) {
				t.Fatalf("step %d: %s found %v, tracked %v", step, id, e != nil, live[id])
			}
		}
	}
	// Grow to most of ids, shrink to a few, grow again.
	for phase, join := range []int{9, 1, 6} {
		for step := range 4000 {
			id := fmt.Sprint("instance-", r.IntN(ids))
			if r.IntN(10) < join {
				tr.Observe(beat("svc", id, 1))
				live[id] = true
			} else if e, _ := tr.lookup(Key{"svc", id}); e != nil {
				tr.remove(e)
				delete(live, id)
			}
			if step%500 == 0 {
				check(phase*4000 + step)
			}
		}
		check(phase*4000 + 4000)
	}
}

// Ids whose hashes share their first slot are found however they left:
// taking one out moves back those after it that would otherwise be lost
// past the hole, also round the end of the table.
func TestAnIndexKeepsCollidingIDsFound(t *testing.T) {
	for _, at := range []uint64{0, 5, minIndexSlots - 2} { // the last wraps round
		for _, order := range [][]int{{0, 1, 2, 3, 4, 5}, {5, 4, 3, 2, 1, 0}, {2, 0, 4, 1, 5, 3}} {
			var x idIndex
			x.slots = make([]uint64, minIndexSlots)
			members := make([]*entry, 6)
			hash := map[string]uint64{}
			for i := range members {
				id := fmt.Sprint("id", i)
				// Three of one home, three of the next: tags differ above
				// the table's bits.
				h := (uint64(i)<<20|at+uint64(i/3))<<32 | 0xdead
				members[i] = &entry{Key: Key{Instance: id}, member: int32(i)}
				hash[id] = h
				x.insert(h, int32(i))
			}
			in := map[int]bool{0: true, 1: true, 2: true, 3: true, 4: true, 5: true}
			for _, gone := range order {
				x.remove(hash[members[gone].Key.Instance], int32(gone))
				delete(in, gone)
				for i, e := range members {
					got := x.find(members, e.Key.Instance, hash[e.Key.Instance])
					if (got != nil) != in[i] || (got != nil && got != e) {
						t.Fatalf("home %d, order %v: after %d left, %s found %v, in %v", at, order, gone, e.Key.Instance, got != nil, in[i])
					}
				}
			}
			if x.n != 0 {
				t.Fatalf("home %d, order %v: %d left in an empty index", at, order, x.n)
			}
			for i, s := range x.slots {
				if s != 0 {
					t.Fatalf("home %d, order %v: slot %d still holds %#x", at, order, i, s)
				}
			}
		}
	}
}
