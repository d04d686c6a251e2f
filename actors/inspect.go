package actors

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

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

// ErrBadData is wrapped by the errors of the reads below for a key that
// holds what xsync does not write.
var ErrBadData = errors.New("data xsync did not write")

// LockState is what Redis holds about one lock key.
type LockState struct {
	Token   string // "" when free
	PTTL    int64  // ms left; -1 without expiry; -2 when free
	Fence   int64  // the latest fencing token issued; 0 if none
	Waiting int64  // clients in the key's turn queue
}

// ReadLock reads the lock on key: four reads in one MULTI.
func ReadLock(ctx context.Context, cl redis.Cmdable, keys redisx.Keys, key string) (LockState, error) {
	pipe := cl.TxPipeline() // MULTI: the four reads see one moment
	token := pipe.Get(ctx, keys.Lock(key))
	pttl := pipe.PTTL(ctx, keys.Lock(key))
	fence := pipe.Get(ctx, keys.Fence(key))
	waiting := pipe.ZCard(ctx, keys.LockQueue(key))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return LockState{}, err
	}
	s := LockState{Token: token.Val(), Waiting: waiting.Val()}
	if s.Token == "" {
		s.PTTL = -2
	} else {
		// go-redis keeps PTTL's codes -1 (no expiry) and -2 (no key) as
		// they are: -1ns and -2ns.
		if d := pttl.Val(); d < 0 {
			s.PTTL = int64(d)
		} else {
			s.PTTL = d.Milliseconds()
		}
	}
	if v := fence.Val(); v != "" {
		n, err := fence.Int64()
		if err != nil {
			return LockState{}, fmt.Errorf("%w: the fence of %q is %q", ErrBadData, key, v)
		}
		s.Fence = n
	}
	return s, nil
}

// ScanLocks calls fn with the caller's key of every lock key under the
// prefix, in SCAN order; a key may come twice.
func ScanLocks(ctx context.Context, cl redis.Cmdable, keys redisx.Keys, fn func(key string) error) error {
	return scanKeys(ctx, cl, keys.LockPattern(), func(raw string) error {
		if k, ok := keys.LockKeyOf(raw); ok {
			return fn(k)
		}
		return nil
	})
}

// ScanPools calls fn with the name of every pool under the prefix that has
// containers or has had some expire, in SCAN order; a name may come twice.
func ScanPools(ctx context.Context, cl redis.Cmdable, keys redisx.Keys, fn func(name string) error) error {
	return scanKeys(ctx, cl, keys.PoolPattern(), func(raw string) error {
		for _, part := range []string{"ready", "expired"} {
			if name, ok := keys.PoolNameOf(raw, part); ok {
				return fn(name)
			}
		}
		return nil
	})
}

func scanKeys(ctx context.Context, cl redis.Cmdable, pattern string, fn func(raw string) error) error {
	var cursor uint64
	for {
		page, next, err := cl.Scan(ctx, cursor, pattern, ScanBatch).Result()
		if err != nil {
			return err
		}
		for _, raw := range page {
			if err := fn(raw); err != nil {
				return err
			}
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

// ListPool calls fn with every page of pool name's live containers, one
// pool_list call (a ZSCAN step) per page; a container may come twice.
func ListPool(ctx context.Context, cl redis.Scripter, keys redisx.Keys, name string, fn func([]messages.Container) error) error {
	k := newPoolKeys(keys, name, 0)
	script := Scripts.Get("pool_list")
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
			c, err := parseContainer(f)
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
	return Scripts.Get("lock_force_unlock").Run(ctx, cl,
		[]string{keys.Lock(key), keys.LockQueue(key)}, keys.LockChannel(db)).Text()
}
