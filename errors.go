package xsync

import "github.com/redisxsync/xsync/internal/xerr"

// Sentinel errors. Every error returned by xsync matches one of these with
// errors.Is, possibly joined with a context error or wrapped with detail.
var (
	// ErrDuplicateLabel is returned by Register for a label already registered.
	ErrDuplicateLabel = xerr.ErrDuplicateLabel
	// ErrUnknownLabel is returned by Resolve for a label never registered.
	ErrUnknownLabel = xerr.ErrUnknownLabel
	// ErrInvalidOptions is returned by Register and New for options that
	// cannot work: a bad URL, a negative DB or ConnectTimeout, both Addr
	// and URL set (even when they agree), a DB the server does not have;
	// and by calls given an option that cannot work (a negative OnDB).
	ErrInvalidOptions = xerr.ErrInvalidOptions
	// ErrClosed is returned by every call on a closed client, and by the
	// futures and waiters that a Close ended.
	ErrClosed = xerr.ErrClosed
	// ErrUnavailable is returned when Redis could not be reached, refused
	// the credentials, or did not answer in time. It wraps the cause:
	// errors.As(err, new(*net.OpError)) still works. A write that failed so
	// may or may not have been applied.
	ErrUnavailable = xerr.ErrUnavailable

	// ErrNotObtained is returned when a lock could not be taken: by TryLock at
	// once, by Lock joined with ctx.Err() when its context ends first.
	ErrNotObtained = xerr.ErrNotObtained
	// ErrLockNotHeld is returned by Lease.Refresh and Lease.Release when the
	// lease expired or was taken over.
	ErrLockNotHeld = xerr.ErrLockNotHeld
	// ErrInvalidKey is returned for no key, an empty key or a duplicate key.
	ErrInvalidKey = xerr.ErrInvalidKey
	// ErrInvalidTTL is returned for a lease length under one millisecond.
	ErrInvalidTTL = xerr.ErrInvalidTTL

	// ErrNotAvailable is returned when a pool cannot hand out the containers
	// asked for: by Ask at once, by WaitAsk joined with ctx.Err().
	ErrNotAvailable = xerr.ErrNotAvailable
	// ErrNotFound is returned for a container id the pool does not hold.
	ErrNotFound = xerr.ErrNotFound
	// ErrInvalidQuantity is returned when asking for n <= 0 containers.
	ErrInvalidQuantity = xerr.ErrInvalidQuantity
	// ErrInvalidOutcome is returned by Pool.Report for an Outcome that is
	// none of Succeeded, Failed and Blocked.
	ErrInvalidOutcome = xerr.ErrInvalidOutcome
	// ErrInvalidContainer is returned for a container that cannot be stored:
	// no ID, a negative TTL or Interval, a payload over 1 MiB.
	ErrInvalidContainer = xerr.ErrInvalidContainer
	// ErrCorrupt is returned for data in Redis that xsync did not write in
	// the shape it expects; the error names the key or id. The call that
	// met it changed nothing.
	ErrCorrupt = xerr.ErrCorrupt
	// ErrNotReplicated is returned, with Options.AckReplicas > 0, when
	// fewer replicas than AckReplicas confirmed a write within
	// AckTimeout: by a lock acquisition and a pool take, whose grant was
	// undone (the keys released, the containers handed back), and by
	// Lease.Refresh, whose lease keeps the expiry the replicas confirmed
	// last.
	ErrNotReplicated = xerr.ErrNotReplicated
)
