package messages

import (
	"time"

	"github.com/redis/go-redis/v9"
)

// Acquire asks the lock manager for the locks on Keys, all or none, for the
// owner Token. Unless Try is set, the request waits in the manager's FIFO
// queues until it is granted or withdrawn. The answer is *AcquireResult.
type Acquire struct {
	// Token is the random owner token of this acquisition; it also names
	// the request in Withdraw.
	Token string
	// DB is the Redis DB of the locks; Client is the script client bound to it.
	DB     int
	Client *redis.Client
	// Keys are the Redis names of the lock keys, FenceKeys those of their
	// fencing counters, QueueKeys those of their turn queues, TicketKeys
	// those of their queues' tickets, in the same order.
	Keys       []string
	FenceKeys  []string
	QueueKeys  []string
	TicketKeys []string
	// TTL is the lease length; AutoRenew makes the manager renew it every TTL/3.
	TTL       time.Duration
	AutoRenew bool
	// Try asks for one attempt: no queueing, no waiting.
	Try bool
}

// AcquireResult answers Acquire: a Lease, or NotObtained (a try that found a
// key taken, or a withdrawn request), or Err.
type AcquireResult struct {
	Lease       *LeaseGrant
	NotObtained bool
	Err         error
}

// LeaseGrant describes a granted lease.
type LeaseGrant struct {
	// ID names the lease in ReleaseLease and RefreshLease.
	ID uint64
	// Fences are the fencing tokens of the keys, in the order of Acquire.Keys.
	Fences []int64
	// Lost is closed by the manager when it knows the lease is lost.
	Lost <-chan struct{}
}

// Withdraw asks the lock manager to drop the pending Acquire with Token. The
// manager answers that Acquire (NotObtained) if it was still waiting; a
// grant that was already sent is handed back with ReleaseLease. Withdraw
// has no answer.
type Withdraw struct {
	Token string
}

// ReleaseLease asks the lock manager to release a lease. Sent without a
// sender (a lease nobody received), it has no answer; otherwise the answer
// is *ReleaseResult.
type ReleaseLease struct {
	ID uint64
}

// ReleaseResult answers ReleaseLease. NotHeld means the lease was lost
// (expired, deleted or taken over) before the release, in whole or in part.
type ReleaseResult struct {
	NotHeld bool
	Err     error
}

// RefreshLease asks the lock manager to extend a lease to TTL from now. The
// answer is *RefreshResult.
type RefreshLease struct {
	ID  uint64
	TTL time.Duration
}

// RefreshResult answers RefreshLease. NotHeld means the lease is lost.
type RefreshResult struct {
	NotHeld bool
	Err     error
}

// LockStats asks the lock manager what it holds, for diagnostics and tests.
// The answer is *LockStatsResult.
type LockStats struct{}

// LockStatsResult answers LockStats.
type LockStatsResult struct {
	// Waiters counts the pending Acquire requests, tries included.
	Waiters int
	// Leases counts the leases the manager holds and renews.
	Leases int
	// Busy counts the Redis calls under way, subscriptions included.
	Busy int
}
