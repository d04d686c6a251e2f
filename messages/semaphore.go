package messages

import "time"

// SemAcquire asks a semaphore actor for N permits, all or none, for the
// owner Token. Unless Try is set, the request waits in the semaphore's queue
// (in Redis, across clients) until it is granted or withdrawn
// (WithdrawAcquire with its Token). The answer is *AcquireResult, whose Err
// matches xsync.ErrNotObtained for a refused try or a withdrawn request.
// The semaphore actor answers RefreshLease, ReleaseLease and ReadLockStats
// as the lock manager does, so that a Lease stands for permits.
type SemAcquire struct {
	Token     string
	N         int
	TTL       time.Duration
	AutoRenew bool
	Try       bool
}

// SemAvailable asks a semaphore actor for the permits free now. The answer
// is *SemAvailableResult.
type SemAvailable struct{}

// SemAvailableResult answers SemAvailable: the free permits and the
// requests queued, across every client.
type SemAvailableResult struct {
	Available int
	Queued    int
	Err       error
}
