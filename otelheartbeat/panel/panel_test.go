package panel

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/otel-heartbeat/heartbeat/otelheartbeat/history"
)

// The history cache keeps entries as a stable sort of everything read by
// time would, however the reads split the history, and never changes what
// it handed out before.
func TestHistoryIsKeptInOrderOfTime(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	for seed := range 300 {
		r := rand.New(rand.NewPCG(uint64(seed), 1))
		var all []history.Entry
		for i := range 1 + r.IntN(60) {
			// Mostly in order, some late, some at one moment.
			at := t0.Add(time.Duration(i-r.IntN(3)*r.IntN(8)) * time.Second)
			all = append(all, history.Entry{Instance: strconv.Itoa(i), At: at})
		}
		var have []history.Entry
		var handed [][]history.Entry
		var copies [][]history.Entry
		for rest := all; len(rest) > 0; {
			n := 1 + r.IntN(len(rest))
			have = mergeByTime(have, rest[:n])
			rest = rest[n:]
			out := have[:len(have):len(have)]
			handed, copies = append(handed, out), append(copies, slices.Clone(out))
		}
		want := slices.Clone(all)
		slices.SortStableFunc(want, func(a, b history.Entry) int { return a.At.Compare(b.At) })
		if !slices.Equal(have, want) {
			t.Fatalf("seed %d: kept\n%v\nwant\n%v", seed, have, want)
		}
		for i := range handed {
			if !slices.Equal(handed[i], copies[i]) {
				t.Fatalf("seed %d: read %d changed after it was handed out", seed, i)
			}
		}
	}
}
