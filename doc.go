// Package xsync gives Go programs Redis-backed coordination: labelled Redis
// clients, distributed locks with leases and fencing tokens, pools of
// rate-limited containers (crawler accounts, cookies, proxies) that many
// processes on many machines share without using one faster than allowed,
// rate limiters per key (Limiter, GCRA) and counting semaphores
// (Semaphore).
//
// # Clients
//
// Register connects to a Redis deployment and files the client under a
// label; Resolve finds it again anywhere in the program, and Default is the
// first one registered. New makes a client outside the registry. A client's
// DB(n) hands out a plain go-redis client bound to DB n.
//
//	crawler, err := xsync.Register("crawler", xsync.Options{URL: "redis://127.0.0.1:6379/0"})
//	...
//	c, _ := xsync.Resolve("crawler")
//	db, _ := c.DB(1)
//	db.Set(ctx, "greeting", "hello", 0)
//
// # Ownership and lifetimes
//
//   - Each client owns a few actors (protoactor-go): a connection actor
//     (the go-redis clients per DB and the client's pub/sub connection:
//     one, or one per master for sharded pub/sub on a Redis Cluster), a
//     lock manager, and one actor per pool, per limiter and
//     per semaphore.
//   - A call validates its input, sends a message to an actor and waits on
//     a Future; every blocking call X(ctx, ...) has an XAsync form that
//     returns the Future instead.
//   - Actors never wait on Redis inside their mailbox, and nothing waits by
//     polling: waiters are woken by Redis pub/sub and by timers.
//   - Client.Close (or CloseAll) ends a client: it releases the client's
//     leases, fails its waiters with ErrClosed, stops its actors, closes
//     its connections and leaves no goroutine behind. A client started in
//     the caller's actor system (Options.System) leaves that system running.
//
// # Locks
//
//   - Time is the Redis server's: lock expiry never depends on a machine's
//     clock.
//   - A lock of several keys takes all of them or none. On a Redis Cluster,
//     keys in several hash slots are taken one slot group at a time, in
//     slot order (one script each, while the earlier groups are held);
//     what a failed or cancelled request took is given back.
//   - Waiting costs no Redis command: a waiter is tried again when a
//     release of one of its keys is published, or when the lease that
//     blocks it expires.
//   - Clients take turns through a small queue per key in Redis; a release
//     transfers the key to the next client's waiter inside the release
//     script; a client that died in its turn delays the key by 100ms at
//     most, one that died with the key just transferred to it by 500ms.
//   - A client's turn serves its waiters that were waiting when it began,
//     for Options.LockTurn at most (default 20ms): each release hands the
//     key straight to the next of them, and the clients queued behind hear
//     nothing until the turn ends.
//   - The waiters of one client get a key in the order they asked for it.
//   - A lease lasts DefaultLockTTL and is renewed every third of it unless
//     TTL or AutoRenew say otherwise; Lease.Lost closes when the lease is
//     known lost, no later than Redis lets the keys go.
//   - Fencing tokens rise with every acquisition of a key, across clients.
//
// # Pools
//
//   - Time is the Redis server's: readiness, expiry, CreatedAt and
//     NextAvailable agree to the millisecond across machines.
//   - Every operation is one Lua script, O(log N) per container it touches.
//   - Ask and kin take n ready containers or none: those ready longest,
//     each with NextAvailable moved to now+Interval and UsageCount+1.
//     AcquireRandom and kin take n live ones at random and leave
//     NextAvailable alone.
//   - Waiting (WaitAsk and kin) costs no Redis command while nothing
//     changes: a failed try gives the earliest time it could succeed, the
//     pool's actor sets one timer for it, and a Put, Cooldown or hand-back
//     on any client wakes it through pub/sub. One script call tries many
//     waiters. Each pool handle writes its waiting count to Redis when it
//     changes (PoolStats.WaitingAll), with the time its last waiter gives
//     up, so that a crashed process's count ends by itself; waiters
//     without a deadline rewrite it every 5 minutes.
//   - The bypass rule: the waiters of one client are served in arrival
//     order, except that a waiter that cannot be served yet (it asks for 5,
//     3 are ready) lets later waiters go first, at most PoolBypassLimit
//     times; then it holds them back until it is served. A waiter for more
//     containers than the pool holds never holds others back. Between
//     clients there is no queue: whoever asks first when containers are
//     ready gets them.
//   - A cancelled wait (its context, or Future.Cancel) is withdrawn, and
//     containers granted meanwhile are handed back: ready again, with
//     NextAvailable and UsageCount restored. The one exception is a grant
//     whose Future is cancelled after the client's Close began: it counts
//     as used.
//   - Every take leaves a grant record (about 150 bytes) for 30 seconds, by
//     which a take whose answer was lost is resent without being served
//     twice, or handed back.
//   - Health: Report tells the pool how each use went (Succeeded, Failed,
//     Blocked). Blocked cools the container down, twice as long for each
//     Blocked of a streak, and a streak of failures can retire it (see
//     HealthPolicy). No take hands out a retired container until a Put of
//     its ID revives it; a report wakes no waiter, a reviving Put does.
//
// # Rate limiters
//
//   - GCRA, the algorithm of go-redis/redis_rate, with the same arithmetic
//     on the Redis server's clock and the same stored value: for the same
//     Limit and the same request times, the same decisions. A key costs one
//     small string, which expires once the key is back to its full burst.
//   - Waiting (Wait, WaitN, WaitNAsync) costs no Redis command until the
//     limit allows it: a refused try returns RetryAfter, and the limiter's
//     actor keeps one timer per key for it. Waiters that arrive meanwhile
//     queue behind without a command.
//   - The waiters of one client and key are served in arrival order (a big
//     request is never overtaken by small ones behind it), several by one
//     script call when they fit. Between clients there is no queue: whoever
//     asks first when events are allowed gets them.
//   - A cancelled wait consumes nothing: events allowed to it while it was
//     being cancelled are given back.
//   - Allow and AllowN do not queue: they compete with this client's
//     waiters as a call from another process would. A Reset on another
//     client does not wake this client's waiters before their timer.
//
// # Semaphores
//
//   - At most the semaphore's permits are held at once, across every
//     client. A permit is held as a *Lease, with TTL, AutoRenew, Lost,
//     Refresh and Release as for locks; the permits of a holder that died
//     come back when its lease runs out.
//   - Waiting requests queue in Redis and are granted only at the head of
//     the queue: they are served in order across every client, and a big
//     request is never overtaken by small ones.
//   - Once enough permits are free for the head, it has 100ms to take
//     them: a client that died at the head holds the others up that long
//     at most, and one too slow to answer in that time queues again at the
//     back.
//   - Waiting costs no Redis command while nothing changes: a release on
//     any client wakes the waiters through pub/sub, and a timer wakes them
//     at the earliest lease expiry.
//
// # Inspection
//
// Client.LockInfo, Client.Locks, Client.Pools, Pool.List and Pool.Exists
// read what Redis holds without changing it, in bounded batches (SCAN,
// ZSCAN); Client.ForceUnlock frees a stuck lock and hands it to its next
// waiter. Container marshals to JSON with the field names of the Python
// package's LimitedModel. The xsync command (cmd/xsync) is built on them.
//
// # Metrics
//
// With Options.MeterProvider set, a client records OpenTelemetry metrics;
// without one it records nothing:
//
//   - xsync.lock.wait, xsync.pool.wait, xsync.limiter.wait: histograms of
//     the seconds from a call to its answer (outcome; pool and kind for
//     pools, limiter for limiters' Waits).
//   - xsync.lock.acquired, xsync.lock.lost, xsync.lock.broken: counters of
//     leases granted, lost before their release, and freed by ForceUnlock.
//     While metrics are on, one goroutine per lease waits for its loss.
//   - xsync.pool.granted: containers handed out (pool, kind = ready or
//     random).
//   - xsync.pool.containers: a gauge of the pools the client has used
//     (pool, state = total, ready or retired), read from Redis only when
//     collected; xsync.pool.waiting, the requests waiting for them on
//     every client (pool), read with it.
//   - xsync.errors: calls that Redis failed (op, kind = unavailable,
//     corrupt or not_replicated); xsync.script.errors, the failed calls of xsync's scripts,
//     background ones included (script, kind).
//   - xsync.lock.renew_failures: automatic renewals that failed (reason =
//     lost, unavailable, corrupt or not_replicated).
//   - xsync.lock.handoff: seconds from a release that transferred the key
//     to a waiter of this client to its grant (from = same_client, one
//     round trip on the local clock; other_client, an upper bound from the
//     server's time the release publishes, see the README).
//
// # Errors
//
//   - Every error matches an exported sentinel with errors.Is.
//   - A wait that ends because its context is done matches both the
//     operation's sentinel (ErrNotObtained, ErrNotAvailable) and ctx.Err().
//   - A Redis that cannot be reached, refuses the credentials or does not
//     answer in time is ErrUnavailable, which wraps the cause.
//
// # Logging
//
// xsync prints nothing. Its log lines, and those of the actor system it
// starts, go to Options.Logger (a no-op logger by default). go-redis logs
// through a process-wide logger of its own, which xsync leaves alone:
// RouteGoRedisLogs sends those lines to a zap logger too, when the program
// asks.
package xsync
