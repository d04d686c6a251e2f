package actors

import (
	"fmt"

	"github.com/redisxsync/xsync/internal/xerr"
	"github.com/redisxsync/xsync/messages"
)

// Replicas (ack.On()): a grant or a renewal counts once ack.Replicas
// replicas confirmed it (redisx.RunAcked: the script and WAIT down one
// connection), so that a failover cannot lose it.
//
//   - An attempt that took the keys but was not confirmed is undone: the
//     keys are released as a Release would (handed on to the next waiter),
//     and the waiter fails with ErrNotReplicated.
//   - A key a release transfers (lock_transfer.go) is granted by a script
//     of another call, which WAITs for no one on this client's behalf: the
//     waiter confirms it with an attempt of its own, which finds the key
//     holding its token, and only that attempt's answer grants it.
//   - Renewals and Refresh end each master's pipeline with WAIT
//     (refreshAll); one that was not confirmed leaves the lease's
//     expiry where the replicas last confirmed it (or sooner, when the
//     master now has a shorter TTL): it is renewed again soon, and is lost
//     at that expiry unless a renewal is confirmed by then.

// notReplicated is the error of a grant or renewal the replicas did not
// confirm.
func (m *lockManager) notReplicated(what string, keys []string) error {
	return fmt.Errorf("%w: %s %q: fewer than %d replica(s) confirmed it within %v",
		xerr.ErrNotReplicated, what, keys, m.ack.Replicas, m.ack.Timeout)
}

// undoGrant gives back the keys that w's attempt took but the replicas did
// not confirm, as a grant followed by a Release would (with the groups a
// set took before), and fails w once they are released.
func (m *lockManager) undoGrant(w *lockWaiter, d *attemptDone) {
	// Held first, so that removing w wakes no waiter of its keys: the
	// release's news does.
	l := m.grant(w, d.sentAt)
	for _, k := range w.keys {
		delete(m.queued, k) // the script took this client out of the queues
	}
	m.removeWaiter(w)
	m.dropLease(l)
	m.schedule()
	err := m.notReplicated("lock", w.req.Keys)
	m.releaseLease(l, func(error) { w.respond(m, &messages.AcquireResult{Err: err}) })
}

// confirmTransfer has w confirm, by an attempt with WAIT, the key k that a
// release transferred to it.
func (m *lockManager) confirmTransfer(w *lockWaiter, k dbKey) {
	delete(m.queued, k) // the release took this client out of the queue
	if w.inflight {
		// Answered as blocked if it ran before the transfer: then it
		// tries again at once.
		w.dirty = true
		return
	}
	m.attempt(w, "")
}

// onUnreplicatedRefresh handles a Refresh that the master applied but the
// replicas did not confirm: the lease keeps its confirmed expiry, or the
// master's, when the Refresh shortened the lease.
func (m *lockManager) onUnreplicatedRefresh(l *heldLease, d *refreshDone) *messages.RefreshLeaseResult {
	l.refreshing, l.unsure = false, true
	l.expiresAt = minTime(l.expiresAt, d.sentAt.Add(d.ttl))
	l.due = minTime(l.due, l.expiresAt)
	return &messages.RefreshLeaseResult{Err: m.notReplicated("refresh", l.lockKeys)}
}
