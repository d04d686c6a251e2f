// Command xsync inspects and administers what the xsync library keeps in
// Redis: the pools of rate-limited containers and the locks.
//
//	go install github.com/redisxsync/xsync/cmd/xsync@latest
//
//	xsync [--url URL] [--prefix P] [--db N] VERB
//
// The URL is also read from XSYNC_URL; the default is
// redis://127.0.0.1:6379/0. The verbs:
//
//	pools                                  the pools, with their counts
//	pool ls NAME                           a pool's containers
//	pool stats NAME [--watch DUR]          a pool's counts, once or every DUR
//	pool put NAME --id ID [--interval D] [--ttl D] [--data S]
//	pool import NAME [FILE]                JSON lines (the seed's LimitedModel), from FILE or stdin
//	pool export NAME                       JSON lines, to stdout
//	pool cooldown NAME ID DUR              not before now+DUR
//	pool rm NAME ID...
//	lock ls                                the locks held
//	lock show KEY
//	lock break KEY                         free a held lock; its next waiter gets it
//	top                                    a live view of pools and locks (q quits)
//
// Listings print aligned tables; --json prints JSON lines instead. The exit
// status is 0 on success, 1 when the operation failed (Redis unreachable,
// a pool or key that does not exist, a rejected import) and 2 on bad usage.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/redisxsync/xsync"
)

func main() {
	// go-redis prints its own lines (a failed dial) to stderr unless told
	// otherwise; the command says what failed in one line of its own.
	xsync.RouteGoRedisLogs(nil)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	stop()
	os.Exit(code)
}
