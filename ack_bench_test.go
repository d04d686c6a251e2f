package xsync_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync"
	"github.com/redisxsync/xsync/internal/testredis"
)

// The cost of AckReplicas: the same calls with AckReplicas 0 and 1, on
// Sentinel and Cluster (`./hack/with-redis.sh sentinel|cluster go test
// -run '^$' -bench AckReplicas .`). One server has no replica to confirm
// anything: there only AckReplicas 0 runs.

// ackLevels are the AckReplicas values the deployment can serve.
func ackLevels(b *testing.B) []int {
	if testredis.Current(b).Topology == testredis.Single {
		b.Log("one server: no replica, AckReplicas 0 only")
		return []int{0}
	}
	return []int{0, 1}
}

// BenchmarkAckReplicas_LockRelease: Lock then Release of one of 64 keys
// (64 slots), by g goroutines of one client; nobody waits.
func BenchmarkAckReplicas_LockRelease(b *testing.B) {
	ctx := context.Background()
	for _, ack := range ackLevels(b) {
		c := newClient(b, withAck(ack))
		for _, g := range []int{1, 16} {
			b.Run(fmt.Sprintf("ack=%d/goroutines=%d", ack, g), func(b *testing.B) {
				concurrently(b, g, func(i int) error {
					key := fmt.Sprintf("job-%d", (i%g)*(64/g)+(i/g)%(64/g))
					l, err := c.Lock(ctx, []string{key}, xsync.TTL(10*time.Second))
					if err != nil {
						return err
					}
					return l.Release(ctx)
				})
			})
		}
	}
}

// BenchmarkAckReplicas_Refresh: Refresh of a held lease, one goroutine:
// what each renewal costs.
func BenchmarkAckReplicas_Refresh(b *testing.B) {
	ctx := context.Background()
	for _, ack := range ackLevels(b) {
		c := newClient(b, withAck(ack))
		b.Run(fmt.Sprintf("ack=%d", ack), func(b *testing.B) {
			l, err := c.Lock(ctx, []string{"renewed"}, xsync.TTL(time.Minute), xsync.AutoRenew(false))
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if err := l.Refresh(ctx, time.Minute); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if err := l.Release(ctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkAckReplicas_PoolAskOne: AskOne from one of 4 pools of 1000
// containers without interval, by g goroutines of one client.
func BenchmarkAckReplicas_PoolAskOne(b *testing.B) {
	ctx := context.Background()
	for _, ack := range ackLevels(b) {
		c := newClient(b, withAck(ack))
		ps := make([]*xsync.Pool, 4)
		for i := range ps {
			ps[i] = c.Pool(fmt.Sprintf("accounts-%d", i))
			fillPool(b, ps[i], 1000, "cookie=0123456789abcdef", 0)
		}
		for _, g := range []int{1, 16} {
			b.Run(fmt.Sprintf("ack=%d/goroutines=%d", ack, g), func(b *testing.B) {
				concurrently(b, g, func(i int) error {
					_, err := ps[i%len(ps)].AskOne(ctx)
					return err
				})
			})
		}
	}
}

// BenchmarkAckReplicas_WaitFloor is the floor the others compare with: a
// SET alone, and a SET and WAIT 1 in one pipeline, over a plain go-redis
// client of the master of the key.
func BenchmarkAckReplicas_WaitFloor(b *testing.B) {
	ctx := context.Background()
	raw := rawDB(b, 0)
	for _, ack := range ackLevels(b) {
		b.Run(fmt.Sprintf("ack=%d", ack), func(b *testing.B) {
			for range b.N {
				var err error
				if cc, ok := raw.(*redis.ClusterClient); ok {
					var m *redis.Client
					if m, err = cc.MasterForKey(ctx, "floor"); err == nil {
						err = setAndWait(ctx, m, ack)
					}
				} else {
					err = setAndWait(ctx, raw.(*redis.Client), ack)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func setAndWait(ctx context.Context, c *redis.Client, ack int) error {
	pipe := c.Pipeline()
	pipe.Set(ctx, "floor", "x", 0)
	if ack > 0 {
		pipe.Do(ctx, "WAIT", ack, 1000)
	}
	_, err := pipe.Exec(ctx)
	return err
}
