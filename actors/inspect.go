package actors

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync/internal/xerr"
	"github.com/redisxsync/xsync/messages"
	"github.com/redisxsync/xsync/redisx"
)

// The reads and the administration calls of the inspection API. They need
// no actor's state, so the facade runs them in the caller's goroutine; every
// one of them reads in bounded batches (SCAN, ZSCAN), never the whole of a
// large key in one reply.

// ScanBatch is the COUNT hint of the SCAN and ZSCAN steps of the inspection
// calls: how many keys or containers one reply holds, roughly.
const ScanBatch = 256

// LockState is what Redis holds about one lock key.
type LockState struct {
	Token   string // "" when free
	PTTL    int64  // ms left; -1 without expiry; -2 when free
	Fence   int64  // the latest fencing token issued; 0 if none
	Waiting int64  // clients in the key's turn queue
}

// ReadLock reads the lock on key: four reads in one MULTI (the keys share
// the key's slot).
func ReadLock(ctx context.Context, cl redis.Cmdable, keys redisx.Keys, key string) (LockState, error) {
	states, err := readLocks(ctx, cl.TxPipeline(), keys, []string{key})
	if err != nil {
		return LockState{}, err
	}
	return states[0], nil
}

// ReadLocks reads the locks on keys in one pipeline; the reads of a key
// are not atomic, but a lock that expires between them reads as free.
func ReadLocks(ctx context.Context, cl redis.Cmdable, keys redisx.Keys, lockKeys []string) ([]LockState, error) {
	return readLocks(ctx, cl.Pipeline(), keys, lockKeys)
}

func readLocks(ctx context.Context, pipe redis.Pipeliner, keys redisx.Keys, lockKeys []string) ([]LockState, error) {
	type reads struct {
		token, fence *redis.StringCmd
		pttl         *redis.DurationCmd
		waiting      *redis.IntCmd
	}
	rs := make([]reads, len(lockKeys))
	for i, key := range lockKeys {
		rs[i] = reads{
			token:   pipe.Get(ctx, keys.Lock(key)),
			pttl:    pipe.PTTL(ctx, keys.Lock(key)),
			fence:   pipe.Get(ctx, keys.Fence(key)),
			waiting: pipe.ZCard(ctx, keys.LockQueue(key)),
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]LockState, len(lockKeys))
	for i, r := range rs {
		s := LockState{Token: r.token.Val(), PTTL: -2, Waiting: r.waiting.Val()}
		// go-redis keeps PTTL's codes -1 (no expiry) and -2 (no key) as
		// they are: -1ns and -2ns.
		switch d := r.pttl.Val(); {
		case s.Token == "" || d == -2:
			s.Token = ""
		case d < 0:
			s.PTTL = int64(d)
		default:
			s.PTTL = d.Milliseconds()
		}
		if v := r.fence.Val(); v != "" {
			n, err := r.fence.Int64()
			if err != nil {
				return nil, fmt.Errorf("%w: the fence of %q is %q", xerr.ErrCorrupt, lockKeys[i], v)
			}
			s.Fence = n
		}
		out[i] = s
	}
	return out, nil
}

// ScanLocks calls fn with the caller's keys of the lock keys under the
// prefix, one SCAN page at a time; a key may come twice.
func ScanLocks(ctx context.Context, cl redis.Cmdable, keys redisx.Keys, fn func(lockKeys []string) error) error {
	return scanKeys(ctx, cl, keys.LockPattern(), func(page []string) error {
		var out []string
		for _, raw := range page {
			if k, ok := keys.LockKeyOf(raw); ok {
				out = append(out, k)
			}
		}
		if len(out) == 0 {
			return nil
		}
		return fn(out)
	})
}

// ScanPools calls fn with the name of every pool under the prefix that has
// containers or has had some expire, in SCAN order; a name may come twice.
func ScanPools(ctx context.Context, cl redis.Cmdable, keys redisx.Keys, fn func(name string) error) error {
	return scanKeys(ctx, cl, keys.PoolPattern(), func(page []string) error {
		for _, raw := range page {
			for _, part := range []string{"ready", "expired"} {
				if name, ok := keys.PoolNameOf(raw, part); ok {
					if err := fn(name); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
}

// scanKeys calls fn with every page of a SCAN of the keys that match
// pattern. On a Redis Cluster every master holds a share of the keys: each
// is scanned, and fn is called for one page at a time.
func scanKeys(ctx context.Context, cl redis.Cmdable, pattern string, fn func(page []string) error) error {
	cc, ok := cl.(*redis.ClusterClient)
	if !ok {
		return scanNode(ctx, cl, pattern, fn)
	}
	var mu sync.Mutex
	return cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		return scanNode(ctx, m, pattern, func(page []string) error {
			mu.Lock()
			defer mu.Unlock()
			return fn(page)
		})
	})
}

// scanNode is scanKeys on one node.
func scanNode(ctx context.Context, cl redis.Cmdable, pattern string, fn func(page []string) error) error {
	var cursor uint64
	for {
		page, next, err := cl.Scan(ctx, cursor, pattern, ScanBatch).Result()
		if err != nil {
			return err
		}
		if err := fn(page); err != nil {
			return err
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// PoolExists reports whether pool name holds any key: containers, or the
// count of those that expired.
func PoolExists(ctx context.Context, cl redis.Cmdable, keys redisx.Keys, name string) (bool, error) {
	k := newPoolKeys(keys, name, 0)
	n, err := cl.Exists(ctx, k.base[0], k.base[2], k.base[4]).Result()
	return n > 0, err
}

// ListPool calls fn with every page of pool name's live containers,
// retired ones included, one pool_list call (an HSCAN step over the
// records) per page; a container may come twice.
func ListPool(ctx context.Context, cl redis.Scripter, keys redisx.Keys, name string, fn func([]messages.Container) error) error {
	k := newPoolKeys(keys, name, 0)
	script := registry.Get("pool_list")
	cursor := "0"
	for {
		res, err := script.Run(ctx, cl, k.base, cursor, ScanBatch).Slice()
		if err != nil {
			return err
		}
		if len(res) == 0 {
			return errors.New("pool_list: empty reply")
		}
		next, ok := res[0].(string)
		if !ok {
			return fmt.Errorf("pool_list: cursor %T", res[0])
		}
		page := make([]messages.Container, 0, len(res)-1)
		for _, r := range res[1:] {
			f, ok := r.([]any)
			if !ok {
				return fmt.Errorf("pool_list: container %T", r)
			}
			c, err := parseListed(f)
			if err != nil {
				return fmt.Errorf("pool_list: %w", err)
			}
			page = append(page, c)
		}
		if err := fn(page); err != nil {
			return err
		}
		if next == "0" {
			return nil
		}
		cursor = next
	}
}

// ForceUnlock frees the lock on key, on DB db, whoever holds it, and hands
// it to the next client in its turn queue. It returns the token that held
// it, "" when it was free.
func ForceUnlock(ctx context.Context, cl redis.Scripter, keys redisx.Keys, db int, key string) (string, error) {
	return registry.Get("lock_force_unlock").Run(ctx, cl,
		[]string{keys.Lock(key), keys.Fence(key), keys.LockQueue(key), keys.LockTickets(key)},
		keys.LockWake(db, keys.Lock(key)).Arg(), lockTransferLease.Milliseconds()).Text()
}
