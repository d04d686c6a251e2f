package actors

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/redisxsync/xsync/internal/xerr"
	"github.com/redisxsync/xsync/messages"
)

// Subscriptions. Classic pub/sub has one release channel per DB,
// subscribed before the first wait on that DB and kept. Sharded pub/sub
// (Redis Cluster) has one per slot (redisx.Keys.LockWake): subscribed
// while a waiter of this client waits for a key of that slot, dropped
// lockSubLinger after the last one is gone. A waiter tries only once every
// channel of its keys is confirmed, so that no release published after its
// attempt is missed.

// lockSubLinger is how long a slot's channel stays subscribed after its
// last waiter: a key waited for again soon (contention comes and goes)
// costs no new SSUBSCRIBE and its round trip, and a transfer to a waiter
// withdrawn just before its client left the turn queue is still heard, and
// handed on at once.
const lockSubLinger = 10 * time.Second

// lockSub is one release channel.
type lockSub struct {
	channel string
	db      int
	ready   bool      // confirmed by Redis
	users   int       // waiters that need it
	idleAt  time.Time // when its last user left; zero while it has users
}

// subSweep: time to drop the channels idle for lockSubLinger.
type subSweep struct{}

// subsOf is the release channels of w's keys, each once.
func (m *lockManager) subsOf(w *lockWaiter) []string {
	var chs []string
	for _, k := range w.keys {
		ch := m.wakeOf(k.db, k.key).Channel
		if !slices.Contains(chs, ch) {
			chs = append(chs, ch)
		}
	}
	return chs
}

// subscribe makes sure the release channels of w's keys are subscribed,
// counts w as their user, and reports whether they all are confirmed.
func (m *lockManager) subscribe(w *lockWaiter) bool {
	ready := true
	var subs []*lockSub
	for _, ch := range m.subsOf(w) {
		sub := m.subs[ch]
		if sub == nil {
			sub = &lockSub{channel: ch, db: w.req.DB}
			m.subs[ch] = sub
			m.subQueue = append(m.subQueue, ch)
		}
		sub.users++
		sub.idleAt = time.Time{}
		ready = ready && sub.ready
		subs = append(subs, sub)
	}
	m.waiterSubs[w] = subs
	m.nextSubscribe()
	return ready
}

// subscribed: every release channel of w is confirmed.
func (m *lockManager) subscribed(w *lockWaiter) bool {
	subs, ok := m.waiterSubs[w]
	if !ok {
		return false
	}
	for _, sub := range subs {
		if !sub.ready {
			return false
		}
	}
	return true
}

// unsubscribe stops counting w as a user of its channels; on sharded
// pub/sub, a confirmed channel that nobody uses any more is unsubscribed.
func (m *lockManager) unsubscribe(w *lockWaiter) {
	subs, ok := m.waiterSubs[w]
	if !ok {
		return
	}
	delete(m.waiterSubs, w)
	for _, sub := range subs {
		sub.users--
		m.dropIdle(sub)
	}
}

// dropIdle schedules, on sharded pub/sub, the unsubscription of sub when
// it is confirmed and nobody uses it; one still unconfirmed is considered
// again when it is confirmed.
func (m *lockManager) dropIdle(sub *lockSub) {
	if !m.keys.Sharded || sub.users > 0 || !sub.ready || m.subs[sub.channel] != sub || m.closedErr != nil {
		return
	}
	sub.idleAt = time.Now()
	if m.sweep == nil {
		m.sweep = m.sendAfter(lockSubLinger, &subSweep{})
	}
}

// onSubSweep unsubscribes the channels idle for lockSubLinger, and sweeps
// again when the next idle one is due.
func (m *lockManager) onSubSweep() {
	m.sweep = nil
	if m.closedErr != nil {
		return
	}
	now := time.Now()
	var next time.Duration
	for ch, sub := range m.subs {
		if sub.users > 0 || sub.idleAt.IsZero() {
			continue
		}
		if left := lockSubLinger - now.Sub(sub.idleAt); left > 0 {
			if next == 0 || left < next {
				next = left
			}
			continue
		}
		delete(m.subs, ch)
		m.root.Send(m.conn, &messages.Unsubscribe{Channel: ch, Subscriber: m.self})
	}
	if next > 0 {
		m.sweep = m.sendAfter(next, &subSweep{})
	}
}

// nextSubscribe sends the next Subscribe: one at a time, so that each
// SubscribeResult is known to answer the one in flight.
func (m *lockManager) nextSubscribe() {
	if m.subFlight != "" || len(m.subQueue) == 0 {
		return
	}
	m.subFlight, m.subQueue = m.subQueue[0], m.subQueue[1:]
	m.root.RequestWithCustomSender(m.conn, &messages.Subscribe{Channel: m.subFlight, Subscriber: m.self}, m.self)
}

func (m *lockManager) onSubscribed(r *messages.SubscribeResult) {
	ch := m.subFlight
	m.subFlight = ""
	sub := m.subs[ch]
	if sub == nil || m.closedErr != nil {
		return
	}
	if r.Err != nil {
		// Fail the waiters that need this channel; the next Lock
		// subscribes again.
		m.log.Warn("lock channel subscription failed", zap.String("channel", ch), zap.Error(r.Err))
		delete(m.subs, ch)
		for _, w := range m.waiters {
			if !w.req.Try && slices.Contains(m.waiterSubs[w], sub) {
				m.removeWaiter(w)
				w.respond(m, &messages.AcquireResult{Err: xerr.Redis("lock: subscribe", r.Err)})
			}
		}
	} else {
		sub.ready = true
		m.dropIdle(sub)
		m.wakeChannel(ch)
	}
	m.nextSubscribe()
}

// wakeChannel considers every head waiter whose keys publish on channel
// ch: after its subscription is confirmed, or confirmed again after a
// reconnection or a slot's move, when releases may have been missed.
func (m *lockManager) wakeChannel(ch string) {
	sub := m.subs[ch]
	if sub == nil {
		return
	}
	var keys []string
	for k := range m.queues {
		if k.db == sub.db && m.wakeOf(k.db, k.key).Channel == ch {
			keys = append(keys, k.key)
		}
	}
	m.wake(sub.db, keys)
}

// turn is one entry of a published hand-off: a freed key and the client
// whose turn it is ("" for anybody), or to whose waiter's token the key was
// transferred, with its fence.
type turn struct {
	key, next, token string
	fence            int64
}

// decodeTurns reads the payload of lock_release, lock_acquire and
// lock_leave, strings written as <byte length>:<string>: the server time in
// ms, then four strings per turn.
func decodeTurns(p string) (serverNow int64, turns []turn) {
	var strs []string
	for len(p) > 0 {
		i := strings.IndexByte(p, ':')
		if i < 0 {
			break
		}
		n, err := strconv.Atoi(p[:i])
		if err != nil || n < 0 || i+1+n > len(p) {
			break
		}
		strs = append(strs, p[i+1:i+1+n])
		p = p[i+1+n:]
	}
	if len(strs) == 0 {
		return 0, nil
	}
	serverNow, _ = strconv.ParseInt(strs[0], 10, 64)
	strs = strs[1:]
	turns = make([]turn, 0, len(strs)/4)
	for i := 0; i+3 < len(strs); i += 4 {
		t := turn{key: strs[i], next: strs[i+1], token: strs[i+2]}
		t.fence, _ = strconv.ParseInt(strs[i+3], 10, 64)
		turns = append(turns, t)
	}
	return serverNow, turns
}

// onTurns handles a published hand-off: a key transferred to a waiter of
// this client is its lease; the head waiter of a key whose turn is this
// client's (or anybody's) tries; the head waiter of a key whose turn is
// another client's waits lockTurnGrace for that client to take it, and
// that of a key transferred to another client lockTransferLease, the most
// that client can hold it unconfirmed.
func (m *lockManager) onTurns(db int, serverNow int64, turns []turn) {
	var mine []string
	type wait struct {
		next string
		d    time.Duration
	}
	others := map[*lockWaiter]wait{}
	for _, t := range turns {
		if t.token != "" && t.next == m.id {
			m.onTransfer(db, t, serverNow)
			continue
		}
		if t.next == "" || t.next == m.id {
			mine = append(mine, t.key)
			continue
		}
		if q := m.queues[dbKey{db, t.key}]; q != nil {
			d := lockTurnGrace
			if t.token != "" {
				d = lockTransferLease
			}
			others[q.head()] = wait{t.next, d}
		}
	}
	m.wake(db, mine)
	for w, o := range others {
		if w.inflight {
			// Its attempt may have seen the key still held: once it fails,
			// it tries again, and learns whose turn it is.
			w.dirty = true
			continue
		}
		if m.closedErr == nil && m.eligible(w) {
			if w.timer != nil && w.turnTimer {
				// The turn moved on since the timer was set: nobody is to be
				// skipped, but the deadline stays. Were it reset by every
				// turn, a client whose place in the queue was lost (a
				// failover) would never try, and never queue again, while
				// the others pass the key among themselves.
				if w.skip != o.next {
					w.skip = ""
				}
				continue
			}
			m.startWaiterTimer(w, o.d)
			w.skip, w.turnTimer = o.next, true
		}
	}
}
