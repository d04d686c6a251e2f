package actors

import (
	"strconv"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/redisxsync/xsync/internal/xerr"
	"github.com/redisxsync/xsync/messages"
)

// subscribe makes sure DB db's release channel is subscribed, and reports
// whether it is already confirmed.
func (m *lockManager) subscribe(ctx actor.Context, db int) bool {
	if sub := m.subs[db]; sub != nil {
		return sub.ready
	}
	m.subs[db] = &lockSub{}
	m.channels[m.keys.LockChannel(db)] = db
	m.subQueue = append(m.subQueue, db)
	m.nextSubscribe(ctx)
	return false
}

// nextSubscribe sends the next Subscribe: one at a time, so that each
// SubscribeResult is known to answer the one in flight.
func (m *lockManager) nextSubscribe(ctx actor.Context) {
	if m.subFlight >= 0 || len(m.subQueue) == 0 {
		return
	}
	m.subFlight, m.subQueue = m.subQueue[0], m.subQueue[1:]
	ctx.Request(m.conn, &messages.Subscribe{Channel: m.keys.LockChannel(m.subFlight), Subscriber: m.self})
}

func (m *lockManager) onSubscribed(ctx actor.Context, r *messages.SubscribeResult) {
	db := m.subFlight
	m.subFlight = -1
	if db < 0 || m.closedErr != nil {
		return
	}
	if r.Err != nil {
		// Fail the waiters of this DB; the next Lock subscribes again.
		m.log.Warn("lock channel subscription failed", zap.Int("db", db), zap.Error(r.Err))
		delete(m.subs, db)
		delete(m.channels, m.keys.LockChannel(db))
		for _, w := range m.waiters {
			if w.req.DB == db && !w.req.Try {
				m.removeWaiter(w)
				w.respond(m, &messages.AcquireResult{Err: xerr.Redis("lock: subscribe", r.Err)})
			}
		}
	} else {
		m.subs[db].ready = true
		m.wakeAll(db)
	}
	m.nextSubscribe(ctx)
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
			m.startWaiterTimer(w, o.d)
			w.skip = o.next
		}
	}
}
