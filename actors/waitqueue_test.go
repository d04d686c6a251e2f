package actors

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// A key's wait queue stays first come, first served whatever order its
// waiters leave in, and is empty exactly when the last one has left.
func TestWaitQueue_KeepsArrivalOrderWhateverLeaves(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, seed))
		q := &waitQueue[*lockWaiter]{}
		var all []*lockWaiter
		for i := range 200 {
			w := &lockWaiter{seq: uint64(i)}
			all = append(all, w)
			q.push(w)
		}
		live := slices.Clone(all)
		for _, i := range rng.Perm(len(all)) {
			w := all[i]
			w.removed = true
			empty := q.leave()
			live = slices.DeleteFunc(live, func(x *lockWaiter) bool { return x == w })
			if empty != (len(live) == 0) {
				t.Fatalf("seed %d: empty = %v with %d waiters left", seed, empty, len(live))
			}
			if empty {
				break
			}
			if q.head() != live[0] {
				t.Fatalf("seed %d: head is waiter %d, want %d, the oldest left", seed, q.head().seq, live[0].seq)
			}
			var kept []*lockWaiter
			for _, x := range q.ws {
				if !x.removed {
					kept = append(kept, x)
				}
			}
			if !slices.Equal(kept, live) || q.gone != len(q.ws)-len(live) || q.gone*2 > len(q.ws) {
				t.Fatalf("seed %d: %d live of %d, %d counted gone", seed, len(kept), len(q.ws), q.gone)
			}
		}
	}
}
