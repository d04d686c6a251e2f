package xsync

import (
	"context"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync/messages"
	"github.com/redisxsync/xsync/redisx"
	"github.com/redisxsync/xsync/scripts"
)

// LockStats reports what c's lock manager holds: pending waiters (tries
// included), leases, and Redis calls under way. Tests use it to know that
// every waiter has settled before they count Redis commands.
func LockStats(ctx context.Context, c *Client) (waiters, leases, busy int, err error) {
	r, err := readLockStats(ctx, c)
	if err != nil {
		return 0, 0, 0, err
	}
	return r.Waiters, r.Leases, r.Busy, nil
}

// LockMessagesHeard reports how many messages c's lock manager has heard
// on its release channels: tests wait for a publication to reach a client
// before they count what it does.
func LockMessagesHeard(ctx context.Context, c *Client) (int, error) {
	r, err := readLockStats(ctx, c)
	if err != nil {
		return 0, err
	}
	return r.Heard, nil
}

func readLockStats(ctx context.Context, c *Client) (*messages.ReadLockStatsResult, error) {
	mgr, err := c.lockManager()
	if err != nil {
		return nil, err
	}
	return askLockStats(ctx, c.sys, mgr)
}

// askLockStats asks pid, a lock manager or a semaphore's actor, for its
// ReadLockStatsResult.
func askLockStats(ctx context.Context, sys *actor.ActorSystem, pid *actor.PID) (*messages.ReadLockStatsResult, error) {
	return request(ctx, sys, pid, &messages.ReadLockStats{}, nil, func(msg any) (*messages.ReadLockStatsResult, error) {
		r, ok := msg.(*messages.ReadLockStatsResult)
		if !ok {
			return nil, fmt.Errorf("unexpected answer %T", msg)
		}
		return r, nil
	}, nil).Wait(ctx)
}

// Scripts is a registry of xsync's Lua scripts, for the tests and
// benchmarks that call one directly.
var Scripts = redisx.MustNewRegistry(scripts.FS)

// PoolTakeArgs returns the KEYS and ARGV of a pool_take call that asks for
// n containers of pool name on DB 0 (random: any live ones) under token,
// one-shot, as the pool actor sends it alone: 128 expired containers purged
// at most, a grant kept 30s, no waiter ahead, no bypass budget.
func PoolTakeArgs(keys redisx.Keys, name, token string, n int, random bool) ([]string, []any) {
	kind := "a"
	if random {
		kind = "r"
	}
	ks := []string{
		keys.Pool(name, "ready"), keys.Pool(name, "expiry"), keys.Pool(name, "meta"),
		keys.Pool(name, "data"), keys.Pool(name, "expired"), keys.Pool(name, "grant:"+token),
	}
	return ks, []any{128, (30 * time.Second).Milliseconds(), -1, keys.PoolChannel(0), name, kind, n, -1}
}

// InternalDB returns the go-redis client that c's actors use for DB n (the
// lock scripts run on it), so that a test can hook its commands.
func InternalDB(c *Client, n int) (redis.UniversalClient, error) { return c.db(n, true) }

// LockScriptArgs returns the KEYS of key's lock on DB 0 and the ARGV of the
// lock_acquire and the lock_release of an uncontended Lock + Release of it
// under token by the client whose id is client, as the lock manager sends
// them: one key, a 30s lease, its ticket filed should it wait, the lock
// manager's turn grace (100ms) and transfer lease (500ms), no waiter after.
func LockScriptArgs(keys redisx.Keys, key, client, token string) (ks []string, acquire, release []any) {
	ks = []string{keys.Lock(key), keys.Fence(key), keys.LockQueue(key), keys.LockTickets(key)}
	wake := keys.LockWake(0, ks[0]).Arg()
	acquire = []any{token, 30000, client, "1", "", wake, 100, "30000:" + token, 500}
	release = []any{token, wake, client, 500, "0", ""}
	return ks, acquire, release
}
