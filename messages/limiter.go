package messages

import "time"

// LimitAllow asks a limiter actor for N events of Key. Without Wait the
// request is tried once, at once, and answered with the decision, allowed
// or not. With Wait it queues behind the earlier waiters of Key and is
// answered once allowed (or withdrawn). ID names a waiting request in
// LimitWithdraw. The answer is *LimitAllowResult.
type LimitAllow struct {
	ID   uint64
	Key  string
	N    int
	Wait bool
}

// LimitAllowResult answers LimitAllow with the decision, as the facade's
// LimitResult has it, or Err. Err matches xsync.ErrNotAvailable for a
// withdrawn wait.
type LimitAllowResult struct {
	Allowed    int
	Remaining  int
	RetryAfter time.Duration
	ResetAfter time.Duration
	Err        error
}

// LimitWithdraw drops the waiting LimitAllow of ID; the actor answers that
// request with an error. Events allowed to it meanwhile are given back. It
// has no answer.
type LimitWithdraw struct {
	ID uint64
}

// LimitRefund gives back N events of Key that were allowed but that nobody
// received. It has no answer.
type LimitRefund struct {
	Key string
	N   int
}

// LimitReset forgets what Key has used: it is back to its full burst. The
// answer is *LimitResetResult.
type LimitReset struct {
	Key string
}

// LimitResetResult answers LimitReset.
type LimitResetResult struct {
	Err error
}

// LimitReadStats asks a limiter actor what it holds, for tests and
// diagnostics. The answer is *LimitReadStatsResult.
type LimitReadStats struct{}

// LimitReadStatsResult answers LimitReadStats: the waiting requests, the
// keys with a timer set, and the Redis calls under way.
type LimitReadStatsResult struct {
	Waiting int
	Timers  int
	Busy    int
}
