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

// BenchmarkSpread_LockAcrossSlots: Lock then Release of n keys by one
// goroutine, the keys in n slots (one script per slot, one after the
// other) or under one tag (one script): on a Redis Cluster, the cost of a
// lock across slots against one of the same keys given one tag. On one
// server both are one script.
func BenchmarkSpread_LockAcrossSlots(b *testing.B) {
	c := newClient(b)
	ctx := context.Background()
	for _, n := range []int{2, 4} {
		for _, tagged := range []bool{false, true} {
			keys := make([]string, n)
			for i := range keys {
				keys[i] = fmt.Sprintf("order-%d", i)
				if tagged {
					keys[i] = fmt.Sprintf("{order}:%d", i)
				}
			}
			name := fmt.Sprintf("keys=%d/slots=%d", n, n)
			if tagged {
				name = fmt.Sprintf("keys=%d/slots=1", n)
			}
			b.Run(name, func(b *testing.B) {
				for range b.N {
					l, err := c.Lock(ctx, keys, xsync.TTL(10*time.Second), xsync.AutoRenew(false))
					if err != nil {
						b.Fatal(err)
					}
					if err := l.Release(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
