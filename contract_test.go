// The fixed names and signatures of the design contract: this file stops
// compiling if one of them changes. Other programs are written against
// them, so a change needs an issue that says so.

package xsync_test

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redisxsync/xsync"
)

var (
	_ func(string, xsync.Options) (*xsync.Client, error)                                                     = xsync.Register
	_ func(string) (*xsync.Client, error)                                                                    = xsync.Resolve
	_ func() *xsync.Client                                                                                   = xsync.Default
	_ func(xsync.Options) (*xsync.Client, error)                                                             = xsync.New
	_ func(context.Context) error                                                                            = xsync.CloseAll
	_ func(*xsync.Client) string                                                                             = (*xsync.Client).Label
	_ func(*xsync.Client, int) (redis.UniversalClient, error)                                                = (*xsync.Client).DB
	_ func(*xsync.Client, context.Context) error                                                             = (*xsync.Client).Close
	_ func(*xsync.Future[int], context.Context) (int, error)                                                 = (*xsync.Future[int]).Wait
	_ func(*xsync.Future[int]) <-chan struct{}                                                               = (*xsync.Future[int]).Done
	_ func(*xsync.Future[int])                                                                               = (*xsync.Future[int]).Cancel
	_ func(*xsync.Client, context.Context, []string, ...xsync.LockOption) (*xsync.Lease, error)              = (*xsync.Client).Lock
	_ func(*xsync.Client, context.Context, []string, ...xsync.LockOption) (*xsync.Lease, error)              = (*xsync.Client).TryLock
	_ func(*xsync.Client, context.Context, []string, ...xsync.LockOption) *xsync.Future[*xsync.Lease]        = (*xsync.Client).LockAsync
	_ func(*xsync.Client, context.Context, []string, func(context.Context) error, ...xsync.LockOption) error = (*xsync.Client).WithLock
	_ xsync.LockOption                                                                                       = xsync.TTL(time.Second)
	_ xsync.LockOption                                                                                       = xsync.AutoRenew(true)
	_ xsync.LockOption                                                                                       = xsync.OnDB(1)
	_ xsync.PoolOption                                                                                       = xsync.OnDB(1)
	_ func(*xsync.Lease) []string                                                                            = (*xsync.Lease).Keys
	_ func(*xsync.Lease) string                                                                              = (*xsync.Lease).Token
	_ func(*xsync.Lease, string) int64                                                                       = (*xsync.Lease).Fence
	_ func(*xsync.Lease, context.Context, time.Duration) error                                               = (*xsync.Lease).Refresh
	_ func(*xsync.Lease, context.Context) error                                                              = (*xsync.Lease).Release
	_ func(*xsync.Lease) <-chan struct{}                                                                     = (*xsync.Lease).Lost
	_                                                                                                        = xsync.Container{ID: "", CreatedAt: time.Time{}, TTL: 0, Interval: 0, NextAvailable: time.Time{}, Data: "", UsageCount: 0}
	_ func(*xsync.Client, string, ...xsync.PoolOption) *xsync.Pool                                           = (*xsync.Client).Pool
	_ func(*xsync.Pool, context.Context, ...xsync.Container) error                                           = (*xsync.Pool).Put
	_ func(*xsync.Pool, context.Context, int) ([]xsync.Container, error)                                     = (*xsync.Pool).Ask
	_ func(*xsync.Pool, context.Context) (xsync.Container, error)                                            = (*xsync.Pool).AskOne
	_ func(*xsync.Pool, context.Context, int) ([]xsync.Container, error)                                     = (*xsync.Pool).WaitAsk
	_ func(*xsync.Pool, context.Context) (xsync.Container, error)                                            = (*xsync.Pool).WaitAskOne
	_ func(*xsync.Pool, context.Context, int) ([]xsync.Container, error)                                     = (*xsync.Pool).AcquireRandom
	_ func(*xsync.Pool, context.Context) (xsync.Container, error)                                            = (*xsync.Pool).AcquireRandomOne
	_ func(*xsync.Pool, context.Context, int) ([]xsync.Container, error)                                     = (*xsync.Pool).WaitAcquireRandom
	_ func(*xsync.Pool, context.Context) (xsync.Container, error)                                            = (*xsync.Pool).WaitAcquireRandomOne
	_ func(*xsync.Pool, context.Context, int) *xsync.Future[[]xsync.Container]                               = (*xsync.Pool).AskAsync
	_ func(*xsync.Pool, context.Context) *xsync.Future[xsync.Container]                                      = (*xsync.Pool).AskOneAsync
	_ func(*xsync.Pool, context.Context, int) *xsync.Future[[]xsync.Container]                               = (*xsync.Pool).WaitAskAsync
	_ func(*xsync.Pool, context.Context) *xsync.Future[xsync.Container]                                      = (*xsync.Pool).WaitAskOneAsync
	_ func(*xsync.Pool, context.Context, int) *xsync.Future[[]xsync.Container]                               = (*xsync.Pool).AcquireRandomAsync
	_ func(*xsync.Pool, context.Context) *xsync.Future[xsync.Container]                                      = (*xsync.Pool).AcquireRandomOneAsync
	_ func(*xsync.Pool, context.Context, int) *xsync.Future[[]xsync.Container]                               = (*xsync.Pool).WaitAcquireRandomAsync
	_ func(*xsync.Pool, context.Context) *xsync.Future[xsync.Container]                                      = (*xsync.Pool).WaitAcquireRandomOneAsync
	_ func(*xsync.Pool, context.Context, string) (xsync.Container, error)                                    = (*xsync.Pool).Get
	_ func(*xsync.Pool, context.Context, ...string) (int, error)                                             = (*xsync.Pool).Remove
	_ func(*xsync.Pool, context.Context, string, time.Duration) error                                        = (*xsync.Pool).Cooldown
	_ func(*xsync.Pool, context.Context) (xsync.PoolStats, error)                                            = (*xsync.Pool).Stats
	_                                                                                                        = []error{xsync.ErrDuplicateLabel, xsync.ErrUnknownLabel, xsync.ErrInvalidOptions, xsync.ErrClosed,
		xsync.ErrNotObtained, xsync.ErrLockNotHeld, xsync.ErrInvalidKey, xsync.ErrInvalidTTL,
		xsync.ErrNotAvailable, xsync.ErrNotFound, xsync.ErrInvalidQuantity, xsync.ErrInvalidContainer, xsync.ErrCorrupt,
		xsync.ErrNotReplicated}
)

// Container health.
var (
	_ [3]xsync.Outcome                                                = [...]xsync.Outcome{xsync.Succeeded, xsync.Failed, xsync.Blocked}
	_                                                                 = xsync.HealthPolicy{Backoff: time.Second, MaxBackoff: time.Minute, RetireAfter: 3}
	_ func(xsync.HealthPolicy) xsync.PoolOption                       = xsync.Health
	_ func(*xsync.Pool, context.Context, string, xsync.Outcome) error = (*xsync.Pool).Report
	_ int64                                                           = xsync.Container{}.Failures
	_ bool                                                            = xsync.Container{}.Retired
	_ int                                                             = xsync.PoolStats{}.Retired
)
