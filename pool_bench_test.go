package xsync_test

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync"
	"github.com/redisxsync/xsync/redisx"
)

// fillPool puts n containers with no interval (always ready) into pool
// name, in batches of 1000 sent by 4 goroutines.
func fillPool(b *testing.B, p *xsync.Pool, n int, data string, ttl time.Duration) {
	b.Helper()
	const batch = 1000
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				from := int(next.Add(batch)) - batch
				if from >= n {
					return
				}
				var cs []xsync.Container
				for i := from; i < min(from+batch, n); i++ {
					cs = append(cs, xsync.Container{ID: fmt.Sprintf("c%07d", i), Data: data, TTL: ttl})
				}
				if err := p.Put(b.Context(), cs...); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// concurrently runs op b.N times in total, from g goroutines.
func concurrently(b *testing.B, g int, op func(i int) error) {
	b.Helper()
	var (
		wg   sync.WaitGroup
		next atomic.Int64
	)
	b.ResetTimer()
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1))
				if i > b.N {
					return
				}
				if err := op(i); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
}

// rawTake returns an op that sends pool_take for one container of pool
// "bench" straight with EVALSHA, a new token each time: what one take costs
// Redis, without the pool actor.
func rawTake(raw *redis.Client, keys redisx.Keys) func(int) error {
	take := xsync.Scripts.Get("pool_take")
	var tokens atomic.Int64
	return func(int) error {
		k, args := xsync.PoolTakeArgs(keys, "bench", "raw."+strconv.FormatInt(tokens.Add(1), 36), 1, false)
		return take.Run(context.Background(), raw, k, args...).Err()
	}
}

// Throughput of Ask and AskOne through the pool actor, against the same
// pool_take script sent straight with EVALSHA (the floor: one script call
// per take, no actor). Containers have no interval, so every take succeeds.
func BenchmarkPoolThroughput(b *testing.B) {
	prefix := testPrefix(b)
	c := newClient(b, withPrefix(prefix))
	p := c.Pool("bench")
	fillPool(b, p, 1000, "cookie=0123456789abcdef", 0)
	keys := redisx.Keys{Prefix: prefix}
	raw := rawDB(b, 0)
	ctx := b.Context()
	for _, g := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("AskOne/goroutines=%d", g), func(b *testing.B) {
			concurrently(b, g, func(int) error { _, err := p.AskOne(ctx); return err })
		})
		b.Run(fmt.Sprintf("Ask3/goroutines=%d", g), func(b *testing.B) {
			concurrently(b, g, func(int) error { _, err := p.Ask(ctx, 3); return err })
		})
		b.Run(fmt.Sprintf("RawEvalsha1/goroutines=%d", g), func(b *testing.B) {
			concurrently(b, g, rawTake(raw, keys))
		})
	}
}

// Latency from the moment a container becomes ready (server time) to its
// grant to a waiter (server time of the take): the timer path.
func BenchmarkPoolReadyToGrant(b *testing.B) {
	c := newClient(b)
	p := c.Pool("bench")
	ctx := b.Context()
	const interval = 20 * time.Millisecond
	if err := p.Put(ctx, xsync.Container{ID: "only", Interval: interval}); err != nil {
		b.Fatal(err)
	}
	prev, err := p.WaitAskOne(ctx)
	if err != nil {
		b.Fatal(err)
	}
	lates := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		got, err := p.WaitAskOne(ctx)
		if err != nil {
			b.Fatal(err)
		}
		lates = append(lates, got.NextAvailable.Add(-got.Interval).Sub(prev.NextAvailable))
		prev = got
	}
	b.StopTimer()
	reportLatencies(b, lates, "late")
}

// Latency from a Put on one client to the grant to a waiter of another
// client on an empty pool (local clock): the pub/sub path.
func BenchmarkPoolPutToGrant(b *testing.B) {
	prefix := testPrefix(b)
	waiter, producer := newClient(b, withPrefix(prefix)).Pool("bench"), newClient(b, withPrefix(prefix)).Pool("bench")
	ctx := b.Context()
	lates := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		f := waiter.WaitAskOneAsync(ctx)
		poolSettled(b, waiter)
		id := "c" + strconv.Itoa(i)
		start := time.Now()
		if err := producer.Put(ctx, xsync.Container{ID: id, Interval: time.Hour}); err != nil {
			b.Fatal(err)
		}
		if _, err := f.Wait(ctx); err != nil {
			b.Fatal(err)
		}
		lates = append(lates, time.Since(start))
		if _, err := producer.Remove(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportLatencies(b, lates, "put-to-grant")
}

func reportLatencies(b *testing.B, ds []time.Duration, name string) {
	if len(ds) == 0 {
		return
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	b.ReportMetric(float64(ds[len(ds)/2].Microseconds()), "µs-"+name+"-p50")
	b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds()), "µs-"+name+"-p99")
	b.ReportMetric(float64(ds[len(ds)-1].Microseconds()), "µs-"+name+"-max")
}

// The cost of one Ask, through the actor and as a raw script call, must not
// grow with the pool's size.
func BenchmarkPoolAskCost(b *testing.B) {
	ctx := b.Context()
	for _, n := range []int{100, 10_000, 100_000} {
		prefix := testPrefix(b)
		c := newClient(b, withPrefix(prefix))
		p := c.Pool("bench")
		fillPool(b, p, n, "cookie=0123456789abcdef", time.Hour)
		keys := redisx.Keys{Prefix: prefix}
		raw := rawDB(b, 0)
		b.Run(fmt.Sprintf("Ask/containers=%d", n), func(b *testing.B) {
			concurrently(b, 1, func(int) error { _, err := p.Ask(ctx, 1); return err })
		})
		b.Run(fmt.Sprintf("RawEvalsha/containers=%d", n), func(b *testing.B) {
			concurrently(b, 1, rawTake(raw, keys))
		})
		if _, err := raw.Del(ctx, keys.Pool("bench", "ready"), keys.Pool("bench", "expiry"),
			keys.Pool("bench", "meta"), keys.Pool("bench", "data")).Result(); err != nil {
			b.Fatal(err)
		}
	}
}

// Redis memory per container (MEMORY USAGE of the pool's keys over the
// number of containers), with a TTL and a 24-byte payload, and the memory
// of one grant record (kept 30s after each take).
func BenchmarkPoolMemory(b *testing.B) {
	ctx := b.Context()
	for _, n := range []int{100, 10_000} {
		prefix := testPrefix(b)
		c := newClient(b, withPrefix(prefix))
		p := c.Pool("bench")
		fillPool(b, p, n, "cookie=0123456789abcdef", time.Hour)
		keys := redisx.Keys{Prefix: prefix}
		raw := rawDB(b, 0)
		var total, data int64
		for _, part := range []string{"ready", "expiry", "meta", "data"} {
			m, err := raw.MemoryUsage(ctx, keys.Pool("bench", part), 0).Result()
			if err != nil {
				b.Fatal(err)
			}
			total += m
			if part == "data" {
				data = m
			}
		}
		k, args := xsync.PoolTakeArgs(keys, "bench", "mem", 1, false)
		if err := xsync.Scripts.Get("pool_take").Run(ctx, raw, k, args...).Err(); err != nil {
			b.Fatal(err)
		}
		grant, err := raw.MemoryUsage(ctx, keys.Pool("bench", "grant:mem"), 0).Result()
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			for range b.N {
				// The figures are the metrics below; nothing here is timed.
			}
			b.ReportMetric(float64(total)/float64(n), "B/container")
			b.ReportMetric(float64(total-data)/float64(n), "B/container-without-payload")
			b.ReportMetric(float64(grant), "B/grant")
		})
	}
}

// BenchmarkPoolCancelWaiters: n waiters of an empty pool, cancelled at once
// (a crawler shutting down); one op is the time until every Wait returned.
func BenchmarkPoolCancelWaiters(b *testing.B) {
	for _, n := range []int{1000, 10000, 50000} {
		b.Run(fmt.Sprintf("waiters=%d", n), func(b *testing.B) {
			c := newClient(b)
			p := c.Pool("cancel")
			for range b.N {
				b.StopTimer()
				ctx, cancel := context.WithCancel(b.Context())
				fs := make([]*xsync.Future[xsync.Container], n)
				for i := range fs {
					fs[i] = p.WaitAskOneAsync(ctx)
				}
				// Every waiter is queued and tried once before the cancel.
				if _, err := p.Stats(b.Context()); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				cancel()
				for _, f := range fs {
					<-f.Done()
				}
			}
		})
	}
}
