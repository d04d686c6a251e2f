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
	// the request in WithdrawAcquire.
	Token string
	// DB is the Redis DB of the locks; Client is the script client bound to it.
	DB     int
	Client redis.UniversalClient
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
	// Groups, when it has more than one, are the slot groups of Keys on a
	// Redis Cluster (indexes into Keys), in the one global order in which
	// they are taken: each group is one script call, made while the groups
	// before it are held. Nil (or one group): every key in one script.
	Groups [][]int
}

// AcquireResult answers Acquire: a Lease, or Err. Err matches
// xsync.ErrNotObtained for a try that found a key taken and for a withdrawn
// request.
type AcquireResult struct {
	Lease *LeaseGrant
	Err   error
}

// LeaseGrant describes a granted lease.
type LeaseGrant struct {
	// ID names the lease in ReleaseLease and RefreshLease.
	ID uint64
	// Fences are the fencing tokens of the keys, in the order of Acquire.Keys
	// (whatever the order of its Groups). The lease keeps the slice: the
	// sender does not change it once sent.
	Fences []int64
	// Lost is closed by the manager when it knows the lease is lost.
	Lost <-chan struct{}
}

// WithdrawAcquire asks the lock manager to drop the pending Acquire with
// Token. The manager answers that Acquire (ErrNotObtained) if it was still
// waiting; a grant that was already sent is handed back with ReleaseLease.
// WithdrawAcquire has no answer.
type WithdrawAcquire struct {
	Token string
}

// ReleaseLease asks the lock manager to release a lease. Sent without a
// sender (a lease nobody received), it has no answer; otherwise the answer
// is *ReleaseLeaseResult.
type ReleaseLease struct {
	ID uint64
}

// ReleaseLeaseResult answers ReleaseLease. Err matches xsync.ErrLockNotHeld
// when the lease was lost (expired, deleted or taken over) before the
// release, in whole or in part.
type ReleaseLeaseResult struct {
	Err error
}

// RefreshLease asks the lock manager to extend a lease to TTL from now. The
// answer is *RefreshLeaseResult.
type RefreshLease struct {
	ID  uint64
	TTL time.Duration
}

// RefreshLeaseResult answers RefreshLease. Err matches xsync.ErrLockNotHeld
// when the lease is lost.
type RefreshLeaseResult struct {
	Err error
}

// ReadLockStats asks the lock manager what it holds, for diagnostics and tests.
// The answer is *ReadLockStatsResult.
type ReadLockStats struct{}

// ReadLockStatsResult answers ReadLockStats.
type ReadLockStatsResult struct {
	// Waiters counts the pending Acquire requests, tries included.
	Waiters int
	// Leases counts the leases the manager holds and renews.
	Leases int
	// Busy counts the Redis calls under way, subscriptions included.
	Busy int
	// Heard counts the messages heard on the lock channels since the
	// manager started (a semaphore's actor leaves it 0).
	Heard int
}
