package xsync_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// 32 goroutines over 2 clients take and give back 1 of 4 permits as fast
// as they can. Reports the acquisitions per second, and fairness: the
// fewest and the most acquisitions of one goroutine, as a share of the
// mean (1 and 1 would be perfectly even), and client A's share of all.
func BenchmarkSemaphore_Contended(b *testing.B) {
	ctx := context.Background()
	prefix := testPrefix(b)
	a := newClient(b, withPrefix(prefix)).Semaphore("bench", 4)
	c2 := newClient(b, withPrefix(prefix)).Semaphore("bench", 4)
	const goroutines = 32
	counts := make([]int64, goroutines)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for g := range goroutines {
		s := a
		if g%2 == 1 {
			s = c2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				lease, err := s.Acquire(ctx, 1)
				if err != nil {
					b.Error(err)
					return
				}
				counts[g]++
				if err := lease.Release(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	var sum, ofA int64
	for g, n := range counts {
		sum += n
		if g%2 == 0 {
			ofA += n
		}
	}
	mean := float64(sum) / goroutines
	b.ReportMetric(float64(sum)/elapsed.Seconds(), "acq/s")
	if mean > 0 {
		b.ReportMetric(float64(slices.Min(counts))/mean, "min/mean")
		b.ReportMetric(float64(slices.Max(counts))/mean, "max/mean")
		b.ReportMetric(float64(ofA)/float64(sum), "client-a-share")
	}
}
