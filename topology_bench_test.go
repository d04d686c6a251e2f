package xsync_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redisxsync/xsync"
	"github.com/redisxsync/xsync/redisx"
)

// Benchmarks whose keys are spread over many hash slots: on a Redis
// Cluster (`make bench-cluster`) every master serves a share of them; on
// one server they measure the same calls without the cluster's routing.

// BenchmarkSpread_LockRelease: Lock then Release of one of 256 keys (256
// tags, so 256 slots), by g goroutines of one client; no two goroutines
// share a key, so nobody waits.
func BenchmarkSpread_LockRelease(b *testing.B) {
	c := newClient(b)
	ctx := context.Background()
	const keys = 256
	slots := map[int]bool{}
	for i := range keys {
		slots[redisx.Slot(fmt.Sprintf("{job-%d}", i))] = true
	}
	for _, g := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			concurrently(b, g, func(i int) error {
				key := fmt.Sprintf("job-%d", (i%g)*(keys/g)+(i/g)%(keys/g))
				l, err := c.Lock(ctx, []string{key}, xsync.TTL(10*time.Second), xsync.AutoRenew(false))
				if err != nil {
					return err
				}
				return l.Release(ctx)
			})
		})
	}
	b.Logf("%d keys in %d slots", keys, len(slots))
}

// BenchmarkSpread_PoolAskOne: AskOne from one of 16 pools (16 slots) of
// 1000 containers without interval, by g goroutines of one client.
func BenchmarkSpread_PoolAskOne(b *testing.B) {
	prefix := testPrefix(b)
	c := newClient(b, withPrefix(prefix))
	ctx := context.Background()
	const pools = 16
	ps := make([]*xsync.Pool, pools)
	for i := range ps {
		ps[i] = c.Pool(fmt.Sprintf("accounts-%d", i))
		fillPool(b, ps[i], 1000, "cookie=0123456789abcdef", 0)
	}
	for _, g := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			concurrently(b, g, func(i int) error {
				_, err := ps[i%pools].AskOne(ctx)
				return err
			})
		})
	}
}
