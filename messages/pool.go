package messages

import "time"

// Container is a pool's container as the pool actor sees it; its fields are
// those of xsync.Container, so that the facade converts one into the other.
type Container struct {
	ID            string
	CreatedAt     time.Time
	TTL           time.Duration
	Interval      time.Duration
	NextAvailable time.Time
	Data          string
	UsageCount    int64
	Failures      int64
	Retired       bool
	// Grant is the token of the take that handed the container out, for
	// PoolReturn; "" when it was not handed out by a take.
	Grant string
}

// PoolTake asks a pool actor for N containers. Random takes any live ones
// (ignoring their interval) instead of the earliest ready ones. Wait keeps
// the request queued until it is served or withdrawn; without it the
// request is tried once. Token names the request: it is the key of its grant
// in Redis, and what PoolWithdrawTake and PoolHandBack refer to.
type PoolTake struct {
	Token  string
	N      int
	Random bool
	Wait   bool
	// Deadline is when a waiting take gives up (its context's deadline);
	// zero for none. The pool's waiting count in Redis ends with it.
	Deadline time.Time
}

// PoolTakeResult answers PoolTake: the containers as they are after the
// take, or an error.
type PoolTakeResult struct {
	Containers []Container
	Err        error
}

// PoolWithdrawTake drops the pending PoolTake of Token; the actor answers that
// request with an error. A grant made meanwhile is handed back. It has no
// answer of its own.
type PoolWithdrawTake struct {
	Token string
}

// PoolHandBack makes the containers granted to the PoolTake of Token ready
// again (restores their NextAvailable and UsageCount): nobody received them.
// It has no answer.
type PoolHandBack struct {
	Token string
}

// PoolPut adds or updates containers, all or none.
type PoolPut struct {
	Containers []Container
}

// PoolPutResult answers PoolPut.
type PoolPutResult struct {
	Err error
}

// PoolGet reads one container.
type PoolGet struct {
	ID string
}

// PoolGetResult answers PoolGet.
type PoolGetResult struct {
	Container Container
	Err       error
}

// PoolRemove deletes containers.
type PoolRemove struct {
	IDs []string
}

// PoolRemoveResult answers PoolRemove with the number of containers removed.
type PoolRemoveResult struct {
	Removed int
	Err     error
}

// PoolCooldown pushes a container's NextAvailable to at least now + D.
type PoolCooldown struct {
	ID string
	D  time.Duration
}

// PoolCooldownResult answers PoolCooldown.
type PoolCooldownResult struct {
	NextAvailable time.Time
	Err           error
}

// PoolReadStats asks for a pool's counters.
type PoolReadStats struct{}

// PoolReadStatsResult answers PoolReadStats. Waiting is the number of requests
// queued in this actor, Busy the Redis calls it had under way besides this
// one; the rest is read from Redis at server time At, OthersWaiting from
// the other clients' waiting entries that have not ended.
type PoolReadStatsResult struct {
	At            time.Time
	Total         int
	Ready         int
	NextReadyAt   time.Time
	Expired       int64
	Retired       int
	Waiting       int
	OthersWaiting int
	Busy          int
	Err           error
}

// PoolReadState asks a pool actor for a one-line account of its take
// machinery (its waiters, its timer, the call under way), for the reports
// of failing tests.
type PoolReadState struct{}

// PoolReadStateResult answers PoolReadState.
type PoolReadStateResult struct{ State string }

// PoolReport applies the outcome of one use of container ID to its health:
// Outcome 0 succeeded, 1 failed, 2 blocked (xsync.Outcome's values), under
// the reporting handle's policy.
type PoolReport struct {
	ID          string
	Outcome     int
	Backoff     time.Duration
	MaxBackoff  time.Duration
	RetireAfter int
}

// PoolReportResult answers PoolReport with the container's health after it.
type PoolReportResult struct {
	NextAvailable time.Time
	Failures      int64
	Retired       bool
	Err           error
}

// PoolReturn gives back containers taken but not used: IDs[i] of the
// grant of Tokens[i]. The answer is *PoolReturnResult.
type PoolReturn struct {
	Tokens []string
	IDs    [][]string
}

// PoolReturnResult answers PoolReturn: how many containers were restored
// as before their take, and how many were left as they were (overtaken
// since, or their grant record is gone).
type PoolReturnResult struct {
	Restored, Left int
	Err            error
}
