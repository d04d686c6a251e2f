package xsync_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/redisxsync/xsync"
)

// The producer/consumer example of the original, in Go: a producer puts
// accounts into a pool as they log in; four workers share nine requests,
// each taking whichever account has been ready longest, and no account is
// used more than once per 100ms, whatever the number of workers or
// processes.
func ExamplePool() {
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
	pool := client.Pool("accounts")

	// The producer.
	go func() {
		for i := 1; i <= 3; i++ {
			err := pool.Put(ctx, xsync.Container{
				ID:       fmt.Sprintf("account-%d", i),
				Interval: 100 * time.Millisecond,
				Data:     fmt.Sprintf("session=%d", i),
			})
			if err != nil {
				fmt.Println(err)
			}
		}
	}()

	// The consumers.
	var (
		mu          sync.Mutex
		uses        = map[string]int{}
		first, last time.Time
		wg          sync.WaitGroup
		requests    = make(chan int)
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range requests {
				account, err := pool.WaitAskOne(ctx)
				if err != nil {
					fmt.Println(err)
					return
				}
				// ... send the request with account.Data ...
				takenAt := account.NextAvailable.Add(-account.Interval) // server time
				mu.Lock()
				uses[account.ID]++
				if first.IsZero() || takenAt.Before(first) {
					first = takenAt
				}
				if takenAt.After(last) {
					last = takenAt
				}
				mu.Unlock()
			}
		}()
	}
	for i := range 9 {
		requests <- i
	}
	close(requests)
	wg.Wait()

	ids := make([]string, 0, len(uses))
	for id := range uses {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fmt.Printf("%s used %d times\n", id, uses[id])
	}
	fmt.Println("9 requests on 3 accounts took 2 intervals or more:", last.Sub(first) >= 200*time.Millisecond)
	// Output:
	// account-1 used 3 times
	// account-2 used 3 times
	// account-3 used 3 times
	// 9 requests on 3 accounts took 2 intervals or more: true
}

// Ask is all-or-nothing: it takes n ready containers or none.
func ExamplePool_Ask() {
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
	proxies := client.Pool("proxies")
	err = proxies.Put(ctx,
		xsync.Container{ID: "proxy-a", Interval: time.Minute},
		xsync.Container{ID: "proxy-b", Interval: time.Minute})
	if err != nil {
		fmt.Println(err)
		return
	}

	_, err = proxies.Ask(ctx, 3)
	fmt.Println("three:", errors.Is(err, xsync.ErrNotAvailable))
	two, err := proxies.Ask(ctx, 2)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("two:", two[0].ID, two[1].ID, "used", two[0].UsageCount, "time(s)")
	_, err = proxies.AskOne(ctx)
	fmt.Println("one more within the minute:", errors.Is(err, xsync.ErrNotAvailable))
	// Output:
	// three: true
	// two: proxy-a proxy-b used 1 time(s)
	// one more within the minute: true
}

// After a 429, Cooldown keeps an account out of use for longer than its
// interval; the pool's waiters, on every client, get it back on time.
func ExamplePool_Cooldown() {
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
	accounts := client.Pool("accounts")
	if err := accounts.Put(ctx, xsync.Container{ID: "alice", Interval: 10 * time.Millisecond}); err != nil {
		fmt.Println(err)
		return
	}

	first, err := accounts.WaitAskOne(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	// The site answered 429: rest the account for 200ms.
	if err := accounts.Cooldown(ctx, first.ID, 200*time.Millisecond); err != nil {
		fmt.Println(err)
		return
	}
	again, err := accounts.WaitAskOne(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	rested := again.NextAvailable.Add(-again.Interval).Sub(first.NextAvailable.Add(-first.Interval))
	fmt.Println(again.ID, "rested 200ms or more:", rested >= 200*time.Millisecond)
	// Output:
	// alice rested 200ms or more: true
}
