// The fixed names and signatures of the design contract's rate limiter and
// semaphore: this file stops compiling if one of them changes.

package xsync_test

import (
	"context"
	"time"

	"github.com/redisxsync/xsync"
)

var (
	_                                                                                     = xsync.Limit{Rate: 1, Period: time.Second, Burst: 0}
	_ func(int) xsync.Limit                                                               = xsync.PerSecond
	_ func(int) xsync.Limit                                                               = xsync.PerMinute
	_ func(*xsync.Client, string, xsync.Limit, ...xsync.PoolOption) *xsync.Limiter        = (*xsync.Client).Limiter
	_                                                                                     = xsync.LimitResult{Allowed: 0, Remaining: 0, RetryAfter: 0, ResetAfter: 0}
	_ func(*xsync.Limiter, context.Context, string) (xsync.LimitResult, error)            = (*xsync.Limiter).Allow
	_ func(*xsync.Limiter, context.Context, string, int) (xsync.LimitResult, error)       = (*xsync.Limiter).AllowN
	_ func(*xsync.Limiter, context.Context, string) error                                 = (*xsync.Limiter).Wait
	_ func(*xsync.Limiter, context.Context, string, int) error                            = (*xsync.Limiter).WaitN
	_ func(*xsync.Limiter, context.Context, string, int) *xsync.Future[xsync.LimitResult] = (*xsync.Limiter).WaitNAsync
	_ func(*xsync.Limiter, context.Context, string) error                                 = (*xsync.Limiter).Reset

	_ func(*xsync.Client, string, int, ...xsync.LockOption) *xsync.Semaphore   = (*xsync.Client).Semaphore
	_ func(*xsync.Semaphore, context.Context, int) (*xsync.Lease, error)       = (*xsync.Semaphore).Acquire
	_ func(*xsync.Semaphore, context.Context, int) (*xsync.Lease, error)       = (*xsync.Semaphore).TryAcquire
	_ func(*xsync.Semaphore, context.Context, int) *xsync.Future[*xsync.Lease] = (*xsync.Semaphore).AcquireAsync
	_ func(*xsync.Semaphore, context.Context) (int, error)                     = (*xsync.Semaphore).Available
)
