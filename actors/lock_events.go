package actors

import (
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync/internal/xerr"
)

// LockEvents receive what only the lock manager sees, for the client's
// metrics. A nil func is not called; both run on the actor's goroutine and
// must not block.
type LockEvents struct {
	// RenewFailed is called for each automatic renewal of a lease that
	// failed (the confirmation of a transferred lease included): reason is
	// "lost" when the key no longer held the lease's token, "corrupt" when
	// it held data xsync did not write, "unavailable" when Redis did not
	// answer in time, "not_replicated" when the master renewed it but
	// fewer replicas than AckReplicas confirmed it.
	RenewFailed func(reason string)
	// HandedOff is called when a key a release transferred to a waiter of
	// this client becomes its lease, with how long the hand-off took.
	// sameClient (this client released it): from sending the release to
	// its answer, measured on the local clock. Another client released it:
	// from the server's time in the published message (whole ms) placed on
	// the local clock by this client's closest reading of the server's
	// clock (serverClock.earliest), to the message's arrival: an upper
	// bound, too long by at most that reading's round trip and 2ms.
	HandedOff func(d time.Duration, sameClient bool)
}

func (e LockEvents) renewFailed(err error, ok bool) {
	if e.RenewFailed == nil {
		return
	}
	switch {
	case err == nil && !ok:
		e.RenewFailed("lost")
	case err != nil && isCorrupt(err):
		e.RenewFailed("corrupt")
	case errors.Is(err, xerr.ErrNotReplicated):
		e.RenewFailed("not_replicated")
	case err != nil:
		e.RenewFailed("unavailable")
	}
}

func (e LockEvents) handedOff(since time.Time, sameClient bool) {
	if e.HandedOff != nil && !since.IsZero() {
		e.HandedOff(max(time.Since(since), 0), sameClient)
	}
}

func isCorrupt(err error) bool {
	return errors.Is(xerr.Redis("renew", err), xerr.ErrCorrupt)
}

// ScriptErrorHook returns a go-redis hook that calls failed with the name
// of xsync's script ("lock_acquire") whose call failed: see
// redisx.Registry.ErrorHook.
func ScriptErrorHook(failed func(script string, err error)) redis.Hook {
	return registry.ErrorHook(failed)
}
