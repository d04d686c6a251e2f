package xsync_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/redisxsync/xsync"
)

// An API allows 5 calls per second per API key, 2 at once. Allow decides
// at once, as go-redis/redis_rate does; Wait waits for the limit, without
// polling Redis.
func ExampleLimiter() {
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
	limiter := client.Limiter("github-api", xsync.Limit{Rate: 5, Period: time.Second, Burst: 2})

	for i := 1; i <= 3; i++ {
		res, err := limiter.Allow(ctx, "token-alice")
		if err != nil {
			fmt.Println(err)
			return
		}
		if res.Allowed > 0 {
			fmt.Printf("call %d: allowed, %d more at once\n", i, res.Remaining)
		} else {
			// One event every 200ms: the next in at most that.
			fmt.Printf("call %d: refused, retry in <= 200ms: %v\n", i, res.RetryAfter <= 200*time.Millisecond)
		}
	}

	// Wait until the limit allows the call, however many goroutines and
	// processes share the key.
	if err := limiter.Wait(ctx, "token-alice"); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("call 3: allowed after waiting")

	// A wait that the context ends consumes nothing.
	short, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	err = limiter.WaitN(short, "token-alice", 2)
	fmt.Println(errors.Is(err, xsync.ErrNotAvailable), errors.Is(err, context.DeadlineExceeded))
	// Output:
	// call 1: allowed, 1 more at once
	// call 2: allowed, 0 more at once
	// call 3: refused, retry in <= 200ms: true
	// call 3: allowed after waiting
	// true true
}
