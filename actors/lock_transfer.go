package actors

import (
	"strconv"
	"time"

	"github.com/redisxsync/xsync/messages"
)

// Transfers: a release that has a waiter hands it the key inside the
// release script, so that the lock changes hands at one script call.
//
//   - A waiter of one key files a ticket (its token and lease length) when
//     its client queues for the key: by its blocked attempt, or with the
//     release of the lease before it in the same client.
//   - A release that frees a key whose turn queue's head has a ticket sets
//     the key to that token, counts its fence and takes the head out of the
//     queue. The new holder learns it from the release's answer (a waiter
//     of the releasing client) or from the published hand-off (a waiter of
//     another client): no attempt of its own.
//   - The transferred key lives lockTransferLease at most until its holder
//     confirms it with a renewal, due lockConfirmAfter after the grant (a
//     lease released before never needs it). A holder that died lets it
//     expire by then; one whose waiter withdrew releases it at once, and
//     the release hands it on.
//   - The holder dates a published transfer by the server's clock, against
//     its latest reading of that clock, so that its lease is lost by the
//     local clock before Redis lets the key go; and no earlier than its
//     waiter entered, before any call that filed its ticket was sent.

// keyNames are the Redis names that go with one lock key.
type keyNames struct {
	fence, queue, tickets string
}

// lockNames are the Redis names of the keys of one lease or request, in
// the order of the lock scripts' KEYS.
type lockNames struct {
	lock, fence, queue, tickets []string
}

func (n *lockNames) add(lock string, k keyNames) {
	n.lock = append(n.lock, lock)
	n.fence = append(n.fence, k.fence)
	n.queue = append(n.queue, k.queue)
	n.tickets = append(n.tickets, k.tickets)
}

// all is KEYS of lock_acquire, lock_release and lock_leave.
func (n lockNames) all() []string {
	all := make([]string, 0, 4*len(n.lock))
	return append(append(append(append(all, n.lock...), n.fence...), n.queue...), n.tickets...)
}

func namesOf(req *messages.Acquire) lockNames {
	return lockNames{lock: req.Keys, fence: req.FenceKeys, queue: req.QueueKeys, tickets: req.TicketKeys}
}

// ticketOf is the ticket a waiter files: "<lease ms>:<token>" for a waiter
// of one key, "" for a waiter of several keys (it takes turns) and a try.
func ticketOf(req *messages.Acquire) string {
	if req.Try || len(req.Keys) != 1 {
		return ""
	}
	return strconv.FormatInt(ttlMillis(req.TTL), 10) + ":" + req.Token
}

// transferLease is how long a transferred key lives until its holder
// confirms it.
func transferLease(ttl time.Duration) time.Duration {
	return time.Duration(min(ttlMillis(ttl), lockTransferLease.Milliseconds())) * time.Millisecond
}

// serverClock is one reading of the server's clock: ms, taken while a call
// sent at sentAt was under way.
type serverClock struct {
	ms     int64
	sentAt time.Time
}

// earliest is the earliest local time at which the server's clock can have
// read ms (its readings are whole milliseconds), the clocks' drift since
// the reading aside; the zero time when the clock was never read.
func (c serverClock) earliest(ms int64) time.Time {
	if c.sentAt.IsZero() {
		return time.Time{}
	}
	return minTime(c.bound(ms), time.Now())
}

func (c serverClock) bound(ms int64) time.Time {
	return c.sentAt.Add(time.Duration(ms-c.ms-1) * time.Millisecond)
}

// lockClockAge is how long a reading of the server's clock is kept while
// no tighter one comes: the clocks' drift over it is negligible.
const lockClockAge = time.Minute

// readClock keeps the reading that dates the server's clock the closest: a
// call that waited long before it reached the server (for a connection, on
// a busy machine) reads it late, and would date transfers too early.
func (m *lockManager) readClock(c serverClock) {
	if c.ms <= 0 {
		return
	}
	if m.clock.sentAt.IsZero() || time.Since(m.clock.sentAt) > lockClockAge || c.bound(c.ms).After(m.clock.bound(c.ms)) {
		m.clock = c
	}
}

// onTransfer handles a published transfer of key t.key to a token of this
// client.
func (m *lockManager) onTransfer(db int, t turn, serverNow int64) {
	k := dbKey{db, t.key}
	m.crossed[tokenKey{t.token, k}] = true
	w := m.waiters[t.token]
	if w == nil || w.req.Try || len(w.keys) != 1 || w.keys[0] != k {
		// Withdrawn, or a lock across slots now at another group.
		if m.leaseHolding(t.token, k) != nil {
			return // its attempt got the key first
		}
		m.releaseKey(k, t.token) // hand it on
		return
	}
	if m.ack.On() {
		m.transferred(w, k, t.fence, time.Time{})
		return
	}
	// The transfer ran after the call that filed w's ticket was sent, so
	// after w entered: the bound when the clock was never read (the
	// scripts read it only on the paths that need it) or read too long ago.
	since := m.clock.earliest(serverNow)
	if since.Before(w.entered) {
		since = w.entered
	}
	if m.transferred(w, k, t.fence, since.Add(transferLease(w.req.TTL))) {
		m.events.handedOff(since, false)
	}
}

// transferred grants w the key k that a release transferred to it, with
// fence, unless w left meanwhile or the news came after the transfer's short
// lease ended: then the key is released (and handed on), and w, if it
// waits, queues again. A lease whose news came late is confirmed at once.
// It reports whether w was granted the key. With replicas to wait for, w
// confirms the key by an attempt instead, and is not granted it here.
func (m *lockManager) transferred(w *lockWaiter, k dbKey, fence int64, expiresAt time.Time) bool {
	if m.waiters[w.req.Token] != w {
		// Gone, or granted already: by an attempt that ran after the
		// transfer and found the key holding its token (its answer came
		// first). That key is its lease's now, not to be released.
		if m.leaseHolding(w.req.Token, k) == nil {
			m.releaseKey(k, w.req.Token)
		}
		return false
	}
	if m.ack.On() && m.closedErr == nil {
		m.confirmTransfer(w, k) // lock_ack.go
		return false
	}
	if m.closedErr != nil || !time.Now().Before(expiresAt) {
		m.releaseToken(w.req)
		return false
	}
	if w.inflight {
		// The attempt under way runs before the transfer (and is answered
		// as blocked) or after it (and finds the token holding the key).
		m.superseded[w.gen] = w
		w.inflight = false
	}
	// The key's short lease, and its confirmation, are the lease's if they
	// come first (a lock across slots has other parts).
	l := m.grant(w, time.Now())
	l.expiresAt = minTime(l.expiresAt, expiresAt)
	if l.ttl > lockTransferLease {
		l.pending = true
		l.due = minTime(l.due, time.Now().Add(min(time.Until(expiresAt)/2, lockConfirmAfter)))
	} else {
		l.due = minTime(l.due, expiresAt)
	}
	m.schedule()
	delete(m.queued, k) // the release took this client out of the queue
	// The key holds w's token now, whatever an earlier failed attempt did:
	// it is the lease's, not to be given back as the keys of an unsure
	// waiter that leaves are.
	w.unsure = false
	m.removeWaiter(w)
	m.answerGranted(w, l, []int64{fence})
	return true
}

// leaseHolding is the lease of token that holds key k, or nil.
func (m *lockManager) leaseHolding(token string, k dbKey) *heldLease {
	if l := m.leases[m.held[k]]; l != nil && l.token == token {
		return l
	}
	return nil
}

// onSupersededAttempt handles the answer of an attempt of a waiter that a
// transfer granted meanwhile. An attempt that ran after the transfer found
// the key holding the token and set its full lease: it confirms the lease,
// or is given back if the lease is gone.
func (m *lockManager) onSupersededAttempt(w *lockWaiter, d *attemptDone) {
	if l := m.leaseHolding(w.req.Token, w.keys[0]); l != nil {
		// A lease of several slot groups waits for the renewal of them all.
		if d.ok && !l.renewing && !l.refreshing && len(l.parts) == 1 {
			l.pending, l.unsure = false, false
			l.setExpiry(d.sentAt)
			m.schedule()
		}
		return
	}
	if d.ok || d.err != nil {
		if tk := (tokenKey{w.req.Token, w.keys[0]}); m.releasing[tk] > 0 {
			// Sent now, this release could overtake the one under way (on
			// another connection) and make it report the lease lost.
			m.rerelease[tk] = w.req
			return
		}
		m.releaseToken(w.req)
	}
}

// releaseKey releases key k if it still holds token: a key transferred to a
// waiter that no longer wants it.
func (m *lockManager) releaseKey(k dbKey, token string) {
	cl := m.clients[k.db]
	if cl == nil || m.finished {
		return // closed: the transfer's short lease ends by itself
	}
	if m.releasing[tokenKey{token, k}] > 0 {
		return // the release under way hands it on
	}
	var names lockNames
	names.add(k.key, m.names[k.key])
	m.runRelease(cl, k.db, token, []dbKey{k}, names, nil)
}

// keepsTurn reports whether the release of key k goes on with this
// client's turn, straight to its next waiter next: next was waiting when
// the turn began, less than m.turn ago. With replicas to wait for, a
// transfer is confirmed by an attempt, and every release ends the turn.
func (m *lockManager) keepsTurn(k dbKey, next *lockWaiter) bool {
	if next == nil || next.set != nil || m.ack.On() {
		return false
	}
	began, ok := m.turns[k]
	return ok && next.entered.Before(began) && time.Since(began) < m.turn
}

// endTurn forgets when this client's turn on k began, unless a lease of
// this client holds k again.
func (m *lockManager) endTurn(k dbKey) {
	if _, held := m.held[k]; !held {
		delete(m.turns, k)
	}
}
