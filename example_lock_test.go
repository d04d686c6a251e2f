package xsync_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/redisxsync/xsync"
)

// Two workers share one lock: a synchronous one that blocks in Lock, and an
// asynchronous one that asks with LockAsync, goes on, and collects the lease
// from its future later. The sync worker writes to DB 2, the async one to
// DB 3; the lock makes their turns one after the other, in the order they
// asked.
func ExampleClient_LockAsync() {
	ctx := context.Background()
	c, err := xsync.New(xsync.Options{
		Addr:      os.Getenv("REDIS_ADDR"),
		KeyPrefix: fmt.Sprintf("example-%d", time.Now().UnixNano()),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close(ctx)
	db2, _ := c.DB(2)
	db3, _ := c.DB(3)
	key := fmt.Sprintf("example:%d:owner", time.Now().UnixNano())
	defer db2.Del(ctx, key)
	defer db3.Del(ctx, key)

	// The sync worker: Lock blocks until the lease is granted.
	lease, err := c.Lock(ctx, []string{"shared-resource"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("sync worker holds the lock")

	// The async worker asks now; its future completes when the sync
	// worker releases.
	asyncTurn := c.LockAsync(ctx, []string{"shared-resource"})

	db2.Set(ctx, key, "sync worker", 0)
	fmt.Println("sync worker wrote DB 2")
	select {
	case <-asyncTurn.Done():
		fmt.Println("the async worker got in while the lock was held!")
	default:
		fmt.Println("async worker is waiting")
	}
	syncFence := lease.Fence("shared-resource")
	if err := lease.Release(ctx); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("sync worker released the lock")

	// The async worker: its turn comes after the release.
	asyncLease, err := asyncTurn.Wait(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("async worker holds the lock; fence rose:", asyncLease.Fence("shared-resource") > syncFence)
	db3.Set(ctx, key, "async worker", 0)
	fmt.Println("async worker wrote DB 3")
	if err := asyncLease.Release(ctx); err != nil {
		fmt.Println(err)
		return
	}

	fmt.Println("DB 2:", db2.Get(ctx, key).Val())
	fmt.Println("DB 3:", db3.Get(ctx, key).Val())
	// Output:
	// sync worker holds the lock
	// sync worker wrote DB 2
	// async worker is waiting
	// sync worker released the lock
	// async worker holds the lock; fence rose: true
	// async worker wrote DB 3
	// DB 2: sync worker
	// DB 3: async worker
}

// WithLock runs a function under a lock and releases it when the function
// returns; the function's context ends if the lease is lost.
func ExampleClient_WithLock() {
	ctx := context.Background()
	c, err := xsync.New(xsync.Options{
		Addr:      os.Getenv("REDIS_ADDR"),
		KeyPrefix: fmt.Sprintf("example-%d", time.Now().UnixNano()),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close(ctx)

	err = c.WithLock(ctx, []string{"invoice:42", "customer:7"}, func(ctx context.Context) error {
		fmt.Println("both keys are ours")
		return nil
	})
	fmt.Println("released, err =", err)
	// Output:
	// both keys are ours
	// released, err = <nil>
}
