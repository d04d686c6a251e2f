// Package actors holds xsync's actors. Each owns its state alone and is
// reached only through the messages of package messages:
//
//   - Connection, one per client: the go-redis clients per DB and the one
//     pub/sub connection that everything of the client shares.
//   - LockManager, one per client: lock waiters, wake-ups and lease renewal.
//   - Pool, one per pool name per client: container waiters and wake-ups.
//   - Limiter, one per limiter name per client: rate-limit waiters, FIFO
//     per key, and one timer per key.
//   - Semaphore, one per semaphore name per client: permit waiters and the
//     leases of the permits.
//
// An actor never blocks its mailbox on Redis: it starts the call in a
// goroutine and receives the result as a message (or through ReenterAfter).
package actors
