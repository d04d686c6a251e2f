package actors

import (
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/redisxsync/xsync/internal/xerr"
	"github.com/redisxsync/xsync/messages"
)

type lockWaiter struct {
	seq     uint64
	req     *messages.Acquire
	sender  *actor.PID
	keys    []dbKey
	entered time.Time // when the manager received it
	// ticket is ticketOf(req), made once, as the scripts take it.
	ticket any

	removed  bool // out of the queues (it may still be in their slices)
	inflight bool // an attempt is under way
	dirty    bool // something changed during the attempt: try again if it fails
	// unsure: an attempt failed without an answer, so it may have taken
	// keys. The next attempt, with the same token, finds them; a waiter
	// removed before it is granted releases its token.
	unsure bool
	gen    uint64 // of its latest attempt: unique in the manager
	timer  *time.Timer
	skip   string // the client whose turn the timer ends, or ""
	// turnTimer: the timer waits out another client's turn (lockTurnGrace).
	turnTimer bool
	backoff   time.Duration
	// set is the lock request whose current slot group w is; nil for a
	// lock of one group.
	set *lockSet
}

func (w *lockWaiter) gone() bool { return w.removed }

func (m *lockManager) acquire(ctx actor.Context, req *messages.Acquire) {
	if m.closedErr != nil {
		ctx.Respond(&messages.AcquireResult{Err: m.closedErr})
		return
	}
	if _, dup := m.waiters[req.Token]; dup {
		ctx.Respond(&messages.AcquireResult{Err: fmt.Errorf("xsync: lock: token %q in use", req.Token)})
		return
	}
	m.clients[req.DB] = req.Client
	for i, k := range req.Keys {
		m.names[k] = keyNames{fence: req.FenceKeys[i], queue: req.QueueKeys[i], tickets: req.TicketKeys[i]}
	}
	if req.Try && m.ownsAny(req.DB, req.Keys) {
		// A try never jumps this client's queue: a key that a waiter or a
		// lease of this client has is not obtained, without asking Redis.
		ctx.Respond(&messages.AcquireResult{Err: xerr.ErrNotObtained})
		return
	}
	if len(req.Groups) > 1 {
		m.startSet(ctx, req)
		return
	}
	m.enter(ctx, m.newWaiter(req, ctx.Sender()))
}

// ownsAny: a waiter or a lease of this client has one of keys.
func (m *lockManager) ownsAny(db int, keys []string) bool {
	for _, k := range keys {
		if m.queues[dbKey{db, k}] != nil || m.held[dbKey{db, k}] != 0 {
			return true
		}
	}
	return false
}

func (m *lockManager) newWaiter(req *messages.Acquire, sender *actor.PID) *lockWaiter {
	m.seq++
	w := &lockWaiter{seq: m.seq, req: req, sender: sender, keys: make([]dbKey, len(req.Keys)), entered: time.Now(), ticket: ticketOf(req)}
	for i, k := range req.Keys {
		w.keys[i] = dbKey{req.DB, k}
	}
	return w
}

// enter starts w: a try attempts at once; a waiter queues behind the
// earlier waiters of its keys, and attempts once it may.
func (m *lockManager) enter(ctx actor.Context, w *lockWaiter) {
	req := w.req
	if m.closedErr != nil {
		m.answerFailed(w, m.closedErr)
		return
	}
	if req.Try {
		if w.set != nil && m.ownsAny(req.DB, req.Keys) {
			m.answerFailed(w, xerr.ErrNotObtained)
			return
		}
		m.waiters[req.Token] = w
		m.attempt(w, "")
		return
	}
	m.waiters[req.Token] = w
	for _, k := range w.keys {
		q := m.queues[k]
		if q == nil {
			q = &waitQueue[*lockWaiter]{}
			m.queues[k] = q
		}
		q.push(w)
	}
	if m.subscribe(w) {
		m.consider(w)
	}
}

// consider starts an attempt for w if it may try now, or marks it dirty if
// an attempt is under way.
func (m *lockManager) consider(w *lockWaiter) {
	if m.closedErr != nil {
		return
	}
	if w.inflight {
		w.dirty = true
		return
	}
	if !m.eligible(w) {
		return
	}
	m.attempt(w, "")
}

// eligible: w's release channels are subscribed, w is at the head of the
// queue of each of its keys, and no lease of this client holds one of them.
func (m *lockManager) eligible(w *lockWaiter) bool {
	if !m.subscribed(w) {
		return false
	}
	for _, k := range w.keys {
		if q := m.queues[k]; q == nil || q.head() != w || m.held[k] != 0 {
			return false
		}
	}
	return true
}

// wake considers the head waiters of keys of DB db, each once.
func (m *lockManager) wake(db int, keys []string) {
	var heads []*lockWaiter
	seen := map[*lockWaiter]bool{}
	for _, k := range keys {
		if q := m.queues[dbKey{db, k}]; q != nil && !seen[q.head()] {
			seen[q.head()] = true
			heads = append(heads, q.head())
		}
	}
	for _, w := range heads {
		m.consider(w)
	}
}

func (m *lockManager) wakeKeys(keys []dbKey) {
	if len(keys) == 0 {
		return
	}
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		names = append(names, k.key)
	}
	m.wake(keys[0].db, names)
}

func (m *lockManager) stopTimer(w *lockWaiter) {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	w.skip, w.turnTimer = "", false
}

func (m *lockManager) onAttempt(d *attemptDone) {
	defer m.callDone()
	m.readClock(serverClock{ms: d.serverNow, sentAt: d.sentAt})
	if s := m.superseded[d.gen]; s != nil {
		delete(m.superseded, d.gen)
		m.onSupersededAttempt(s, d)
		return
	}
	w := m.waiters[d.token]
	if w == nil || w.gen != d.gen {
		// Withdrawn (or failed by Shutdown) while the attempt was under way:
		// give back what it took, or may have taken.
		if o := m.orphans[d.gen]; o != nil {
			delete(m.orphans, d.gen)
			if d.ok || d.err != nil || o.unsure {
				m.releaseToken(o.req)
			}
			if !d.ok && !o.req.Try {
				// Its failure may have queued this client for a turn.
				m.leaveUnwanted(o.req)
			}
		}
		return
	}
	w.inflight = false
	switch {
	case d.ok && d.unreplicated:
		w.unsure = false
		m.undoGrant(w, d)
	case d.ok:
		w.unsure = false
		// Held first, so that removing w wakes no waiter of its keys.
		l := m.grant(w, d.sentAt)
		for _, k := range w.keys {
			delete(m.queued, k) // the script took this client out of the queues
		}
		m.removeWaiter(w)
		m.answerGranted(w, l, d.fences)
	case w.req.Try && d.err != nil:
		m.removeWaiter(w)
		m.releaseToken(w.req) // the call may have taken the keys
		m.answerFailed(w, xerr.Redis("lock", d.err))
	case w.req.Try:
		m.removeWaiter(w)
		m.answerFailed(w, xerr.ErrNotObtained)
	case d.err != nil && errors.Is(xerr.Redis("lock", d.err), xerr.ErrCorrupt):
		// Data xsync did not write: the script changed nothing, and
		// retrying would meet it again.
		m.removeWaiter(w)
		m.answerFailed(w, xerr.Redis("lock", d.err))
	case d.err != nil:
		m.log.Warn("lock attempt failed; retrying", zap.Strings("keys", w.req.Keys), zap.Error(d.err))
		w.unsure = true
		w.backoff = min(max(2*w.backoff, lockRetryMin), lockRetryMax)
		m.startWaiterTimer(w, w.backoff)
	default:
		w.backoff = 0
		for _, k := range w.keys {
			m.queued[k] = true // on the keys that blocked it, at least
		}
		switch {
		case w.dirty:
			m.attempt(w, "")
		case d.wait == turnWait:
			// Free, but another client's turn: skip it if it does not come.
			m.startWaiterTimer(w, lockTurnGrace)
			w.skip, w.turnTimer = d.reservedBy, true
		case d.wait == noExpiry:
			m.startWaiterTimer(w, lockNoExpiryRetry)
		default:
			m.startWaiterTimer(w, d.wait+lockExpirySlack)
		}
	}
}

func (m *lockManager) startWaiterTimer(w *lockWaiter, d time.Duration) {
	m.stopTimer(w)
	w.timer = m.sendAfter(d, &waiterTimer{token: w.req.Token, gen: w.gen})
}

// answerGranted answers w's request with l, granted with fences: a set
// goes on to its next group, or answers with every group's.
func (m *lockManager) answerGranted(w *lockWaiter, l *heldLease, fences []int64) {
	if w.set != nil {
		m.setGranted(w, l, fences)
		return
	}
	w.respond(m, &messages.AcquireResult{Lease: &messages.LeaseGrant{ID: l.id, Fences: fences, Lost: l.lost}})
}

func (w *lockWaiter) respond(m *lockManager, res *messages.AcquireResult) {
	if w.sender != nil {
		m.root.Send(w.sender, res)
	}
}

// removeWaiter takes w out of the map and the queues, and wakes the waiters
// that are now at the head of one of its queues.
func (m *lockManager) removeWaiter(w *lockWaiter) {
	w.removed = true
	delete(m.waiters, w.req.Token)
	m.unsubscribe(w)
	m.stopTimer(w)
	if w.inflight {
		m.orphans[w.gen] = w
	}
	var heads []string
	var leave []int
	for i, k := range w.keys {
		q := m.queues[k]
		if w.req.Try || q == nil {
			continue // a try is never queued
		}
		if q.head() == w {
			heads = append(heads, k.key)
		}
		if q.leave() {
			delete(m.queues, k)
			if m.queued[k] {
				delete(m.queued, k)
				leave = append(leave, i)
			}
		}
	}
	m.leave(w.req, leave)
	if w.unsure && !w.inflight {
		// A failed attempt may have taken its keys (after the queues are
		// updated: the release queues this client for the keys it still
		// waits for).
		m.releaseToken(w.req)
	}
	m.wake(w.req.DB, heads)
}

// leaveUnwanted takes this client out of the turn queues of the keys of req
// that no waiter of it wants.
func (m *lockManager) leaveUnwanted(req *messages.Acquire) {
	var idx []int
	for i, k := range req.Keys {
		if m.queues[dbKey{req.DB, k}] == nil {
			delete(m.queued, dbKey{req.DB, k})
			idx = append(idx, i)
		}
	}
	m.leave(req, idx)
}

// leave runs lock_leave for the keys of req at idx: no waiter of this client
// wants them any more, and a turn it had goes to the next client.
func (m *lockManager) leave(req *messages.Acquire, idx []int) {
	if len(idx) == 0 {
		return
	}
	var names lockNames
	for _, i := range idx {
		names.add(req.Keys[i], keyNames{fence: req.FenceKeys[i], queue: req.QueueKeys[i], tickets: req.TicketKeys[i]})
	}
	m.runLeave(req.Client, req.DB, names.all())
}

func (m *lockManager) withdraw(token string) {
	w := m.waiters[token]
	if w == nil {
		return // granted already: the future hands the lease back
	}
	m.removeWaiter(w)
	m.answerFailed(w, xerr.ErrNotObtained)
}
