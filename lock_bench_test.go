package xsync_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync"
	"github.com/redisxsync/xsync/redisx"
)

// lockCalls counts the script calls (EVALSHA, EVAL) the server has run:
// one per lock round trip (acquire, release or refresh).
func lockCalls(b *testing.B, r redis.UniversalClient) int64 {
	c := commandCounts(b, r)
	return c["evalsha"] + c["eval"]
}

// allCommands counts every command the server has run, those that scripts
// call included (commandstats counts both), INFO left out.
func allCommands(b *testing.B, r redis.UniversalClient) int64 {
	var n int64
	for name, c := range commandCounts(b, r) {
		if name != "info" {
			n += c
		}
	}
	return n
}

// waitSettled spins until c's lock manager has n waiters and no Redis call
// under way; benchmarks call it with the timer stopped.
func waitSettled(b *testing.B, c *xsync.Client, n int) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		w, _, busy, err := xsync.LockStats(b.Context(), c)
		if err != nil {
			b.Fatal(err)
		}
		if w == n && busy == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("lock manager did not settle at %d waiters", n)
		}
		runtime.Gosched()
	}
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

// BenchmarkLock_Uncontended: Lock then Release of a free key, one goroutine.
func BenchmarkLock_Uncontended(b *testing.B) {
	c := newClient(b)
	ctx := b.Context()
	raw := rawDB(b, 0)
	// Warm up: the lock manager, the channel subscription, the script cache.
	l, err := c.Lock(ctx, []string{"k"})
	if err != nil {
		b.Fatal(err)
	}
	_ = l.Release(ctx)
	calls0, cmds0 := lockCalls(b, raw), allCommands(b, raw)
	b.ResetTimer()
	wake0 := wakeups()
	for i := 0; i < b.N; i++ {
		l, err := c.Lock(ctx, []string{"k"})
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric((wakeups()-wake0)/float64(b.N), "wakeups/op")
	b.ReportMetric(float64(lockCalls(b, raw)-calls0)/float64(b.N), "rtt/op")
	// The count of one INFO commandstats is left out: it is what lockCalls
	// ran between the two readings.
	b.ReportMetric(float64(allCommands(b, raw)-cmds0)/float64(b.N), "cmds/op")
}

// BenchmarkLock_TwoPings is the floor BenchmarkLock_Uncontended compares
// with: two PINGs, the two round trips of a Lock and a Release, from one
// goroutine over a plain go-redis client.
func BenchmarkLock_TwoPings(b *testing.B) {
	raw := rawDB(b, 0)
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		if err := raw.Ping(ctx).Err(); err != nil {
			b.Fatal(err)
		}
		if err := raw.Ping(ctx).Err(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLock_RawScripts is the floor of BenchmarkLock_Uncontended
// that the scripts set: lock_acquire then lock_release of a free key, sent
// straight with EVALSHA from one goroutine, as the lock manager sends them,
// without the actors. Compared with BenchmarkLock_TwoPings, it is what the
// commands inside the two scripts cost.
func BenchmarkLock_RawScripts(b *testing.B) {
	prefix := testPrefix(b)
	raw := rawDB(b, 0)
	ctx := context.Background()
	acquire, release := xsync.Scripts.Get("lock_acquire"), xsync.Scripts.Get("lock_release")
	for i := 0; i < b.N; i++ {
		keys, aArgs, rArgs := xsync.LockScriptArgs(redisx.Keys{Prefix: prefix}, "k", "bench-client", "token-"+strconv.Itoa(i))
		res, err := acquire.Run(ctx, raw, keys, aArgs...).Slice()
		if err != nil {
			b.Fatal(err)
		}
		if granted, _ := res[0].(int64); granted != 1 {
			b.Fatalf("lock_acquire answered %v on a free key", res)
		}
		freed, err := release.Run(ctx, raw, keys, rArgs...).Slice()
		if err != nil {
			b.Fatal(err)
		}
		if n, _ := freed[0].(int64); n != 1 {
			b.Fatalf("lock_release answered %v for the key it holds", freed)
		}
	}
}

// BenchmarkLock_HandOff measures the time from the start of a Release to
// the grant of the waiter queued behind it, with the waiter in the same
// client as the holder and in another one.
func BenchmarkLock_HandOff(b *testing.B) {
	for _, mode := range []string{"same-client", "cross-client"} {
		b.Run(mode, func(b *testing.B) {
			prefix := testPrefix(b)
			ctx := b.Context()
			one := newClient(b, withPrefix(prefix))
			two := one
			if mode == "cross-client" {
				two = newClient(b, withPrefix(prefix))
			}
			holders := []*xsync.Client{one, two}
			lease, err := one.Lock(ctx, []string{"k"}, xsync.TTL(time.Minute))
			if err != nil {
				b.Fatal(err)
			}
			lat := make([]time.Duration, 0, b.N)
			var woken float64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				next := holders[(i+1)%2]
				f := next.LockAsync(ctx, []string{"k"}, xsync.TTL(time.Minute))
				waitSettled(b, next, 1)
				b.StartTimer()
				start, wake0 := time.Now(), wakeups()
				if err := lease.Release(ctx); err != nil {
					b.Fatal(err)
				}
				if lease, err = f.Wait(ctx); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
				woken += wakeups() - wake0
			}
			b.StopTimer()
			b.ReportMetric(woken/float64(b.N), "wakeups/op")
			_ = lease.Release(ctx)
			slices.Sort(lat)
			b.ReportMetric(float64(percentile(lat, 0.5).Microseconds()), "p50-µs")
			b.ReportMetric(float64(percentile(lat, 0.99).Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkLock_Contended: goroutines spread over two clients take one
// lock in turn and do a GET-then-SET of a counter under it.
func BenchmarkLock_Contended(b *testing.B) {
	for _, n := range []int{2, 8, 32} {
		b.Run(fmt.Sprintf("goroutines=%d", n), func(b *testing.B) {
			prefix := testPrefix(b)
			ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
			defer cancel()
			clients := []*xsync.Client{newClient(b, withPrefix(prefix)), newClient(b, withPrefix(prefix))}
			for _, c := range clients { // warm up
				l, err := c.Lock(ctx, []string{"k"})
				if err != nil {
					b.Fatal(err)
				}
				_ = l.Release(ctx)
			}
			raw := rawDB(b, 0)
			counter := prefix + ":counter"
			var (
				left   atomic.Int64
				wg     sync.WaitGroup
				mu     sync.Mutex
				waits  []time.Duration
				perG   = make([]int, n)
				failed atomic.Bool
			)
			left.Store(int64(b.N))
			calls0 := lockCalls(b, raw)
			b.ResetTimer()
			start := time.Now()
			for g := 0; g < n; g++ {
				c := clients[g%2]
				db, _ := c.DB(0)
				wg.Add(1)
				go func() {
					defer wg.Done()
					var mine []time.Duration
					for left.Add(-1) >= 0 {
						t0 := time.Now()
						lease, err := c.Lock(ctx, []string{"k"})
						if err != nil {
							b.Error(err)
							failed.Store(true)
							return
						}
						mine = append(mine, time.Since(t0))
						v, err := db.Get(ctx, counter).Int()
						if err != nil && !errors.Is(err, redis.Nil) {
							b.Error(err)
						}
						db.Set(ctx, counter, v+1, 0)
						if err := lease.Release(ctx); err != nil {
							b.Error(err)
						}
						perG[g]++
					}
					mu.Lock()
					waits = append(waits, mine...)
					mu.Unlock()
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if failed.Load() {
				return
			}
			if got, _ := raw.Get(ctx, counter).Int(); got != b.N {
				b.Fatalf("counter = %d after %d locked increments", got, b.N)
			}
			slices.Sort(waits)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "acq/s")
			b.ReportMetric(float64(percentile(waits, 0.5).Microseconds()), "p50-wait-µs")
			b.ReportMetric(float64(percentile(waits, 0.99).Microseconds()), "p99-wait-µs")
			b.ReportMetric(float64(slices.Min(perG)), "min-acq")
			b.ReportMetric(float64(slices.Max(perG)), "max-acq")
			b.ReportMetric(float64(lockCalls(b, raw)-calls0)/float64(b.N), "rtt/acq")
		})
	}
}

// BenchmarkLock_CancelWaiters: n waiters of one held key, cancelled at once
// (a crawler shutting down); one op is the time until every Wait returned.
func BenchmarkLock_CancelWaiters(b *testing.B) {
	for _, n := range []int{1000, 10000, 50000} {
		b.Run(fmt.Sprintf("waiters=%d", n), func(b *testing.B) {
			c := newClient(b)
			ctx := b.Context()
			holder, err := c.Lock(ctx, []string{"held"}, xsync.TTL(time.Hour))
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = holder.Release(ctx) }()
			for range b.N {
				b.StopTimer()
				wctx, cancel := context.WithCancel(ctx)
				fs := make([]*xsync.Future[*xsync.Lease], n)
				for i := range fs {
					fs[i] = c.LockAsync(wctx, []string{"held"})
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
