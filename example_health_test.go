package xsync_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/redisxsync/xsync"
)

// A crawler tells the pool how each use of an account went: a 429 cools
// the account down (longer at each 429 in a row), and an account whose
// login keeps failing is retired until someone puts it back.
func ExamplePool_Report() {
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
	pool := client.Pool("accounts", xsync.Health(xsync.HealthPolicy{
		Backoff:     time.Minute, // after a first 429; then 2m, 4m, ...
		MaxBackoff:  time.Hour,
		RetireAfter: 3, // failures in a row
	}))
	if err := pool.Put(ctx, xsync.Container{ID: "alice"}, xsync.Container{ID: "bob"}); err != nil {
		fmt.Println(err)
		return
	}

	// alice meets a 429, then a captcha; bob's login fails three times.
	for _, r := range []struct {
		id string
		o  xsync.Outcome
	}{
		{"alice", xsync.Blocked}, {"alice", xsync.Blocked},
		{"bob", xsync.Failed}, {"bob", xsync.Failed}, {"bob", xsync.Failed},
	} {
		if err := pool.Report(ctx, r.id, r.o); err != nil {
			fmt.Println(err)
			return
		}
	}
	stats, _ := pool.Stats(ctx)
	alice, _ := pool.Get(ctx, "alice")
	bob, _ := pool.Get(ctx, "bob")
	fmt.Printf("alice: %d failures, cooling down for %v\n", alice.Failures, alice.NextAvailable.Sub(stats.At).Round(time.Minute))
	fmt.Printf("bob: %d failures, retired: %v\n", bob.Failures, bob.Retired)
	fmt.Printf("pool: %d containers, %d ready, %d retired\n", stats.Total, stats.Ready, stats.Retired)

	// bob's password is fixed: a Put revives him.
	if err := pool.Put(ctx, xsync.Container{ID: "bob", Data: "new password"}); err != nil {
		fmt.Println(err)
		return
	}
	got, err := pool.AskOne(ctx)
	fmt.Println("took", got.ID, "failures", got.Failures, err)
	// Output:
	// alice: 2 failures, cooling down for 2m0s
	// bob: 3 failures, retired: true
	// pool: 2 containers, 0 ready, 1 retired
	// took bob failures 0 <nil>
}
