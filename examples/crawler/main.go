// Command crawler shows xsync in use. Until the full crawl lands it
// registers a label and round-trips a value through DB 1.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/redisxsync/xsync"
)

func main() {
	redisURL := flag.String("redis", os.Getenv("REDIS_URL"), "Redis URL, e.g. redis://127.0.0.1:6379/0")
	flag.Parse()
	if err := run(*redisURL); err != nil {
		fmt.Fprintln(os.Stderr, "crawler:", err)
		os.Exit(1)
	}
}

func run(redisURL string) error {
	ctx := context.Background()
	if _, err := xsync.Register("crawler", xsync.Options{URL: redisURL}); err != nil {
		return err
	}
	defer xsync.CloseAll(ctx)
	c, err := xsync.Resolve("crawler")
	if err != nil {
		return err
	}
	db, err := c.DB(1)
	if err != nil {
		return err
	}
	if err := db.Set(ctx, "crawler:hello", "world", 0).Err(); err != nil {
		return err
	}
	v, err := db.Get(ctx, "crawler:hello").Result()
	if err != nil {
		return err
	}
	fmt.Printf("label %q, DB 1: crawler:hello = %s\n", c.Label(), v)
	return nil
}
