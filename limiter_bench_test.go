package xsync_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync"
)

// Allow's throughput next to redis_rate's, in the same run, on 64 keys and
// a limit that allows everything: what a decision costs, actor and all.
func BenchmarkLimiter_Allow(b *testing.B) {
	limit := xsync.Limit{Rate: 1 << 30, Period: time.Second}
	theirs := redis_rate.Limit{Rate: 1 << 30, Period: time.Second, Burst: 1 << 30}
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = "key-" + strconv.Itoa(i)
	}
	for _, g := range []int{1, 64} {
		b.Run(fmt.Sprintf("xsync/goroutines=%d", g), func(b *testing.B) {
			l := newClient(b).Limiter("bench", limit)
			concurrently(b, g, func(i int) error {
				r, err := l.Allow(context.Background(), keys[i%len(keys)])
				if err == nil && r.Allowed != 1 {
					err = fmt.Errorf("refused: %+v", r)
				}
				return err
			})
		})
		b.Run(fmt.Sprintf("redis_rate/goroutines=%d", g), func(b *testing.B) {
			rdb := redis.NewClient(&redis.Options{Addr: redisAddr(b)})
			defer rdb.Close()
			prefix := testPrefix(b)
			rl := redis_rate.NewLimiter(rdb)
			concurrently(b, g, func(i int) error {
				r, err := rl.Allow(context.Background(), prefix+keys[i%len(keys)], theirs)
				if err == nil && r.Allowed != 1 {
					err = fmt.Errorf("refused: %+v", r)
				}
				return err
			})
		})
	}
}

// How late WaitN is allowed after the RetryAfter of the refusal before it:
// the timer, the script call and the answer. Reports p50 and p99 in ms.
// One iteration waits about 10ms (run with -benchtime=200x).
func BenchmarkLimiter_WaitLateness(b *testing.B) {
	ctx := context.Background()
	l := newClient(b).Limiter("bench", xsync.Limit{Rate: 100, Period: time.Second, Burst: 1})
	late := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		refused, err := l.Allow(ctx, "k")
		if err != nil {
			b.Fatal(err)
		}
		if refused.Allowed != 0 {
			if refused, err = l.Allow(ctx, "k"); err != nil || refused.Allowed != 0 {
				b.Fatalf("second Allow = %+v, %v: want refused", refused, err)
			}
		}
		start := time.Now()
		if err := l.Wait(ctx, "k"); err != nil {
			b.Fatal(err)
		}
		late = append(late, time.Since(start)-refused.RetryAfter)
	}
	b.StopTimer()
	reportPercentiles(b, late, "late")
}

// reportPercentiles reports the p50 and p99 of ds in ms, as name-p50-ms and
// name-p99-ms.
func reportPercentiles(b *testing.B, ds []time.Duration, name string) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	at := func(p float64) float64 {
		return float64(ds[min(len(ds)-1, int(p*float64(len(ds))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), name+"-p50-ms")
	b.ReportMetric(at(0.99), name+"-p99-ms")
}
