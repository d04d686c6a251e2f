// Package actors holds xsync's actors. It is part of xsync's engine room,
// not its API: package xsync spawns the actors and talks to them through
// the messages of package messages; programs use package xsync.
//
// The actors, each the only owner of its state:
//
//   - the connection actor (NewConnection), one per client: the go-redis
//     clients per DB and the one pub/sub connection that everything of the
//     client shares;
//   - the lock manager (NewLockManager), one per client: lock waiters,
//     turns, wake-ups and lease renewal;
//   - the pool actor (NewPool), one per pool name per client: take
//     requests, batching and wake-ups.
//
// What the lock manager and the pool actors share lives once:
//
//   - worker (worker.go): a Redis call runs in a goroutine that sends its
//     result back as a message (goRedis), so the mailbox never waits on
//     Redis; timers send messages too; Shutdown is answered once no call
//     is under way;
//   - waitQueue (waitqueue.go): the FIFO of waiters, from which n waiters
//     leave in O(n);
//   - internal/xerr: the sentinels every answer's Err matches, and
//     xerr.Redis, which turns a failed Redis call into one of them.
//
// Files: lock_manager.go (the actor and its messages), lock_waiters.go
// (queues and attempts), lock_leases.go (grants, renewal, refresh,
// release), lock_turns.go (pub/sub and the turn queues), lock_redis.go
// (the script calls); pool.go (the actor), pool_take.go (takes, batching,
// bypass), pool_ops.go (Put, Get, Remove, Cooldown, Stats), pool_health.go
// (Report), pool_redis.go (the script calls and their replies);
// connection.go.
package actors
