package xsync_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redisxsync/xsync"
)

// At most 3 report jobs run at once across every service that shares the
// Redis: each job holds a permit while it runs. A permit is a lease: a
// service that dies gives its permits back when the lease runs out.
func ExampleSemaphore() {
	ctx := context.Background()
	client, err := xsync.New(xsync.Options{
		Addr:      os.Getenv("REDIS_ADDR"),
		KeyPrefix: fmt.Sprintf("example-%d", time.Now().UnixNano()),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close(ctx)
	jobs := client.Semaphore("report-jobs", 3)

	var running, most atomic.Int32
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lease, err := jobs.Acquire(ctx, 1)
			if err != nil {
				fmt.Println(err)
				return
			}
			defer lease.Release(ctx)
			now := running.Add(1)
			for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
			}
			// ... run the job; stop if <-lease.Lost() ...
			running.Add(-1)
		}()
	}
	wg.Wait()
	fmt.Println("jobs at once, at most:", most.Load() <= 3)

	// A big request takes several permits, all or none, and waits its turn.
	all, err := jobs.Acquire(ctx, 3)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = jobs.TryAcquire(ctx, 1)
	fmt.Println(errors.Is(err, xsync.ErrNotObtained))
	free, _ := jobs.Available(ctx)
	fmt.Println("free while the big request holds them:", free)
	all.Release(ctx)
	free, _ = jobs.Available(ctx)
	fmt.Println("free after:", free)
	// Output:
	// jobs at once, at most: true
	// true
	// free while the big request holds them: 0
	// free after: 3
}
