// Package xsync gives Go programs Redis-backed coordination: labelled Redis
// clients, distributed locks with leases and fencing tokens, and pools of
// rate-limited containers (crawler accounts, cookies, proxies) that many
// processes on many machines share without using one faster than allowed.
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
// Each client owns a small set of actors (protoactor-go): a connection
// actor holding the go-redis clients per DB and the one pub/sub connection
// of the client, a lock manager, and one actor per pool. Calls validate
// their input, send a message to an actor and wait on a Future; every
// blocking call X(ctx, ...) has an XAsync form that returns the Future
// instead. Actors never wait on Redis inside their mailbox, and nothing
// waits by polling: waiters are woken by Redis pub/sub and by timers.
//
// Client.Close (or CloseAll) is the end of a client's life: it releases the
// client's leases, fails its waiters with ErrClosed, stops its actors,
// closes its connections and leaves no goroutine behind. A client started
// in the caller's actor system (Options.System) leaves that system running.
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
//   - xsync.lock.wait, xsync.pool.wait: histograms of the seconds from a
//     call to its answer (outcome; pool and kind for pools).
//   - xsync.lock.acquired, xsync.lock.lost, xsync.lock.broken: counters of
//     leases granted, lost before their release, and freed by ForceUnlock.
//     While metrics are on, one goroutine per lease waits for its loss.
//   - xsync.pool.granted: containers handed out (pool, kind = ready or
//     random).
//   - xsync.pool.containers: a gauge of the pools the client has used
//     (pool, state = total or ready), read from Redis only when collected.
//   - xsync.errors: calls that Redis failed (op, kind = unavailable or
//     corrupt).
//
// # Errors
//
// Every error matches an exported sentinel with errors.Is. A wait that ends
// because its context is done matches both the operation's sentinel
// (ErrNotObtained, ErrNotAvailable) and ctx.Err().
//
// # Logging
//
// xsync prints nothing. Its log lines, and those of the actor system it
// starts, go to Options.Logger (a no-op logger by default).
package xsync
