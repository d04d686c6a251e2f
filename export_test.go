package xsync

import (
	"context"
	"fmt"

	"github.com/redisxsync/xsync/messages"
)

// LockStats reports what c's lock manager holds: pending waiters (tries
// included), leases, and Redis calls under way. Tests use it to know that
// every waiter has settled before they count Redis commands.
func LockStats(ctx context.Context, c *Client) (waiters, leases, busy int, err error) {
	mgr, err := c.lockManager()
	if err != nil {
		return 0, 0, 0, err
	}
	f := request(ctx, c.sys, mgr, &messages.ReadLockStats{}, nil, func(msg any) (*messages.ReadLockStatsResult, error) {
		r, ok := msg.(*messages.ReadLockStatsResult)
		if !ok {
			return nil, fmt.Errorf("unexpected answer %T", msg)
		}
		return r, nil
	}, nil)
	r, err := f.Wait(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	return r.Waiters, r.Leases, r.Busy, nil
}
