package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bsm/redislock"
	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync"
)

// A contender is one lock implementation under the workload: it opens its
// clients against addr, with every key it writes under prefix.
type contender struct {
	name string
	open func(ctx context.Context, addr, prefix string) (*rig, error)
}

// A rig is one contender's two clients, ready to run.
type rig struct {
	// worker returns goroutine g's lock function and the go-redis client
	// that its critical section uses: both of client g%2.
	worker func(g int) (lockFunc, redis.Cmdable)
	close  func()
}

// lockFunc waits for the lock until ctx is done; unlock releases it.
type lockFunc func(ctx context.Context) (unlock func(context.Context) error, err error)

// errLost marks a release that found its lease gone: it expired before.
var errLost = errors.New("lease lost before its release")

// lockTTL is the lease of the polling locks when their defaults do not
// set one; xsync's default lease is 30s too.
const lockTTL = 30 * time.Second

func contenders() []contender {
	return []contender{
		{name: "xsync", open: openXsync},
		{name: "redsync, defaults", open: openRedsync()},
		{name: "redsync, 1ms retry delay", open: openRedsync(redsync.WithRetryDelay(time.Millisecond))},
		{name: "redislock, LinearBackoff(100ms)", open: openRedislock(100 * time.Millisecond)},
		{name: "redislock, LinearBackoff(1ms)", open: openRedislock(time.Millisecond)},
	}
}

// openXsync opens two xsync clients; each goroutine calls Lock with the
// defaults (30s lease, auto-renewed).
func openXsync(ctx context.Context, addr, prefix string) (*rig, error) {
	var clients [2]*xsync.Client
	closeAll := func() {
		for _, c := range clients {
			if c != nil {
				_ = c.Close(context.Background())
			}
		}
	}
	for i := range clients {
		c, err := xsync.New(xsync.Options{Addr: addr, KeyPrefix: prefix})
		if err != nil {
			closeAll()
			return nil, err
		}
		clients[i] = c
	}
	keys := []string{"k"}
	return &rig{
		worker: func(g int) (lockFunc, redis.Cmdable) {
			c := clients[g%2]
			db, _ := c.DB(0)
			return func(ctx context.Context) (func(context.Context) error, error) {
				l, err := c.Lock(ctx, keys)
				if err != nil {
					return nil, err
				}
				return func(ctx context.Context) error {
					if err := l.Release(ctx); errors.Is(err, xsync.ErrLockNotHeld) {
						return errors.Join(errLost, err)
					} else {
						return err
					}
				}, nil
			}, db
		},
		close: closeAll,
	}, nil
}

// openRedsync opens two go-redis clients with a redsync over each. A
// LockContext that used up its tries (ErrFailed, or ErrTaken when the
// last try found the key held) is called again: the
// goroutine waits until it holds the lock or the run ends.
func openRedsync(opts ...redsync.Option) func(ctx context.Context, addr, prefix string) (*rig, error) {
	return func(ctx context.Context, addr, prefix string) (*rig, error) {
		rdbs := [2]*redis.Client{redis.NewClient(&redis.Options{Addr: addr}), redis.NewClient(&redis.Options{Addr: addr})}
		key := prefix + ":lock"
		return &rig{
			worker: func(g int) (lockFunc, redis.Cmdable) {
				rdb := rdbs[g%2]
				m := redsync.New(goredis.NewPool(rdb)).NewMutex(key, opts...)
				return func(ctx context.Context) (func(context.Context) error, error) {
					for {
						err := m.LockContext(ctx)
						if err == nil {
							return func(ctx context.Context) error {
								ok, err := m.UnlockContext(ctx)
								if err == nil && !ok || errors.Is(err, redsync.ErrLockAlreadyExpired) {
									return errors.Join(errLost, err)
								}
								return err
							}, nil
						}
						if ctx.Err() != nil {
							return nil, errors.Join(err, ctx.Err())
						}
						var taken *redsync.ErrTaken
						if !errors.Is(err, redsync.ErrFailed) && !errors.As(err, &taken) {
							return nil, err
						}
					}
				}, rdb
			},
			close: func() {
				for _, r := range rdbs {
					_ = r.Close()
				}
			},
		}, nil
	}
}

// openRedislock opens two go-redis clients with a redislock over each,
// retrying every backoff until the run ends.
func openRedislock(backoff time.Duration) func(ctx context.Context, addr, prefix string) (*rig, error) {
	return func(ctx context.Context, addr, prefix string) (*rig, error) {
		rdbs := [2]*redis.Client{redis.NewClient(&redis.Options{Addr: addr}), redis.NewClient(&redis.Options{Addr: addr})}
		locks := [2]*redislock.Client{redislock.New(rdbs[0]), redislock.New(rdbs[1])}
		key := prefix + ":lock"
		return &rig{
			worker: func(g int) (lockFunc, redis.Cmdable) {
				lc := locks[g%2]
				opt := &redislock.Options{RetryStrategy: redislock.LinearBackoff(backoff)}
				return func(ctx context.Context) (func(context.Context) error, error) {
					l, err := lc.Obtain(ctx, key, lockTTL, opt)
					if err != nil {
						return nil, fmt.Errorf("redislock: %w", err)
					}
					return func(ctx context.Context) error {
						if err := l.Release(ctx); errors.Is(err, redislock.ErrLockNotHeld) {
							return errors.Join(errLost, err)
						} else {
							return err
						}
					}, nil
				}, rdbs[g%2]
			},
			close: func() {
				for _, r := range rdbs {
					_ = r.Close()
				}
			},
		}, nil
	}
}
