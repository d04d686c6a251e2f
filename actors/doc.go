// Package actors holds xsync's actors. It is part of xsync's engine room,
// not its API: package xsync spawns the actors and talks to them through
// the messages of package messages; programs use package xsync.
//
// The actors, each the only owner of its state:
//
//   - the connection actor (NewConnection), one per client: the go-redis
//     clients per DB and the pub/sub connection that everything of the
//     client shares (one per master for sharded pub/sub on a Redis
//     Cluster, connection_shard.go);
//   - the lock manager (NewLockManager), one per client: lock waiters,
//     turns, wake-ups and lease renewal;
//   - the pool actor (NewPool), one per pool name per client: take
//     requests, batching and wake-ups;
//   - the limiter actor (NewLimiter), one per limiter name per client:
//     waiters in order per key, one timer per key, batched script calls;
//   - the semaphore actor (NewSemaphore), one per semaphore name per
//     client: permit waiters, wake-ups, and the leases of the permits.
//
// What the lock manager, the pool, limiter and semaphore actors share lives
// once:
//
//   - worker (worker.go): a Redis call runs in a goroutine that sends its
//     result back as a message (goRedis), so the mailbox never waits on
//     Redis; the goroutine of a finished call waits a while for the next
//     one; timers send messages too; Shutdown is answered once no call is
//     under way;
//   - Dispatcher (dispatcher.go): every actor's mailbox runs on a goroutine
//     of an earlier run when one waits, not on a new one each time;
//   - NewMailbox (mailbox.go): every actor's mailbox; a Redis call's result
//     and a published message run on the goroutine that posts them (the
//     call's, the pub/sub reader's) when the actor is idle, bounded, and
//     the goroutine of a run makes the last Redis call the run started, so
//     that a request costs one hand-off there and one back; what callers
//     and timers send goes through the dispatcher;
//   - waitQueue (waitqueue.go): the FIFO of waiters, from which n waiters
//     leave in O(n);
//   - internal/xerr: the sentinels every answer's Err matches, and
//     xerr.Redis, which turns a failed Redis call into one of them.
//
// Files: lock_manager.go (the actor and its messages), lock_waiters.go
// (queues and attempts), lock_leases.go (grants, renewal, refresh,
// release), lock_turns.go (pub/sub and the turn queues), lock_redis.go
// (the script calls), lock_transfer.go (keys a release hands on),
// lock_groups.go (locks across Cluster slots, one slot group after the
// other), lock_ack.go (grants and renewals the replicas must confirm);
// pool.go (the actor), pool_take.go (takes, batching,
// bypass), pool_ops.go (Put, Get, Remove, Cooldown, Stats), pool_health.go
// (Report), pool_redis.go (the script calls and their replies); limiter.go
// (the actor), limiter_redis.go (its script's call); semaphore.go (the
// actor, its waiters), semaphore_leases.go (leases of permits),
// semaphore_redis.go (its script calls); connection.go.
package actors
