// The fixed names of the design's inspection API, metrics and JSON: this
// file stops compiling if one of them changes.

package xsync_test

import (
	"context"
	"encoding/json"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/redisxsync/xsync"
)

var (
	_                                                                                           = xsync.LockInfo{Key: "", Held: false, Token: "", TTL: time.Duration(0), Fence: int64(0), Waiting: 0}
	_ func(*xsync.Client, context.Context, string, ...xsync.LockOption) (xsync.LockInfo, error) = (*xsync.Client).LockInfo
	_ func(*xsync.Client, context.Context, ...xsync.LockOption) ([]xsync.LockInfo, error)       = (*xsync.Client).Locks
	_ func(*xsync.Client, context.Context, string, ...xsync.LockOption) (bool, error)           = (*xsync.Client).ForceUnlock
	_ func(*xsync.Client, context.Context, ...xsync.PoolOption) ([]string, error)               = (*xsync.Client).Pools
	_ func(*xsync.Pool, context.Context) ([]xsync.Container, error)                             = (*xsync.Pool).List
	_ metric.MeterProvider                                                                      = xsync.Options{}.MeterProvider
	_ json.Marshaler                                                                            = xsync.Container{}
	_ json.Unmarshaler                                                                          = (*xsync.Container)(nil)
)
