package xsync_test

import (
	"context"
	"fmt"
	"os"

	"github.com/redisxsync/xsync"
)

// The quick start: register a Redis deployment under a label, find it
// again by label anywhere in the program, and use one of its DBs.
func Example() {
	ctx := context.Background()
	// REDIS_URL is set by `make test`; in a program it would be a literal
	// such as "redis://127.0.0.1:6379/0".
	_, err := xsync.Register("crawler", xsync.Options{URL: os.Getenv("REDIS_URL")})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer xsync.CloseAll(ctx)

	c, err := xsync.Resolve("crawler")
	if err != nil {
		fmt.Println(err)
		return
	}
	db, err := c.DB(1)
	if err != nil {
		fmt.Println(err)
		return
	}
	db.Set(ctx, "example:greeting", "hello from DB 1", 0)
	fmt.Println(db.Get(ctx, "example:greeting").Val())
	fmt.Println(xsync.Default().Label())
	db.Del(ctx, "example:greeting")
	// Output:
	// hello from DB 1
	// crawler
}
