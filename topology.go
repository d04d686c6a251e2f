package xsync

import (
	"fmt"

	"github.com/redisxsync/xsync/redisx"
)

// checkSlots fails a lock whose keys fall in different hash slots of a
// Redis Cluster: its script could not touch them all (CROSSSLOT). Keys
// with one {hash tag} share a slot. One server and Sentinel have no slots.
func (c *Client) checkSlots(keys []string) error {
	if c.topo != redisx.Cluster || len(keys) < 2 {
		return nil
	}
	first := redisx.Slot(redisx.Tagged(keys[0]))
	for _, k := range keys[1:] {
		if s := redisx.Slot(redisx.Tagged(k)); s != first {
			return fmt.Errorf("%w: %q and %q are in different Redis Cluster hash slots (%d, %d): "+
				"the keys of one lock need one {hash tag} on Cluster", ErrInvalidKey, keys[0], k, first, s)
		}
	}
	return nil
}
