package xsync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/redisxsync/xsync"
)

// A container as JSON: the field names of the Python package's
// LimitedModel, times in milliseconds since the epoch, durations in
// milliseconds.
func ExampleContainer_MarshalJSON() {
	b, _ := json.Marshal(xsync.Container{
		ID:       "alice",
		Interval: 2 * time.Second,
		TTL:      24 * time.Hour,
		Data:     "sid=9f2c01",
	})
	fmt.Println(string(b))

	var c xsync.Container
	_ = json.Unmarshal([]byte(`{"id": "bob", "interval_ms": 1500.0, "containers": [{"sid": "x"}]}`), &c)
	fmt.Println(c.ID, c.Interval, c.Data)
	// Output:
	// {"id":"alice","ct":0,"ttl_ms":86400000,"interval_ms":2000,"next_time_available":0,"containers":"sid=9f2c01","usage_count":0,"failures":0,"retired":false}
	// bob 1.5s [{"sid":"x"}]
}

// An operator frees a lock whose holder is stuck: the client waiting for
// it gets it at once, with a higher fencing token.
func ExampleClient_ForceUnlock() {
	ctx := context.Background()
	opts := xsync.Options{URL: os.Getenv("REDIS_URL"), KeyPrefix: fmt.Sprintf("example-break-%d", time.Now().UnixNano())}
	stuck, _ := xsync.New(opts)
	defer stuck.Close(ctx)
	waiter, _ := xsync.New(opts)
	defer waiter.Close(ctx)
	admin, _ := xsync.New(opts)
	defer admin.Close(ctx)

	held, err := stuck.Lock(ctx, []string{"login:alice"}, xsync.TTL(time.Hour))
	if err != nil {
		fmt.Println(err)
		return
	}
	waiting := waiter.LockAsync(ctx, []string{"login:alice"})
	for deadline := time.Now().Add(5 * time.Second); ; {
		info, err := admin.LockInfo(ctx, "login:alice")
		if err != nil {
			fmt.Println(err)
			return
		}
		if info.Waiting == 1 || time.Now().After(deadline) {
			fmt.Println("held:", info.Held, "fence:", info.Fence, "waiting:", info.Waiting)
			break
		}
		time.Sleep(time.Millisecond) // ok: polls an observation (the waiter queued), with a deadline
	}

	broke, _ := admin.ForceUnlock(ctx, "login:alice")
	next, err := waiting.Wait(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("broke:", broke, "next fence:", next.Fence("login:alice"))
	fmt.Println("old holder's refresh:", held.Refresh(ctx, time.Hour))
	_ = next.Release(ctx)
	// Output:
	// held: true fence: 1 waiting: 1
	// broke: true next fence: 2
	// old holder's refresh: xsync: lock not held
}
