package xsync

import (
	"cmp"
	"slices"

	"github.com/redisxsync/xsync/redisx"
)

// slotGroups splits the keys of a lock by Redis Cluster hash slot, for a
// lock whose keys do not share one: one script cannot touch them all
// (CROSSSLOT), so each group is taken by a script of its own, in the order
// of their slots. That order is the same for every client, which is what
// keeps two locks of overlapping key sets from each holding what the other
// waits for. It returns nil when one script can take every key: one server,
// Sentinel, or keys of one slot (one {hash tag}). A group keeps the keys in
// the caller's order.
func (c *Client) slotGroups(keys []string) [][]int {
	if c.topo != redisx.Cluster || len(keys) < 2 {
		return nil
	}
	bySlot := map[int][]int{}
	for i, k := range keys {
		s := redisx.Slot(redisx.Tagged(k))
		bySlot[s] = append(bySlot[s], i)
	}
	if len(bySlot) == 1 {
		return nil
	}
	slots := make([]int, 0, len(bySlot))
	for s := range bySlot {
		slots = append(slots, s)
	}
	slices.SortFunc(slots, cmp.Compare[int])
	groups := make([][]int, len(slots))
	for i, s := range slots {
		groups[i] = bySlot[s]
	}
	return groups
}
