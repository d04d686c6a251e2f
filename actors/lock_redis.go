package actors

import (
	"context"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync/redisx"
)

// The waits lock_acquire answers that are no time to live: -1 (a blocker
// without expiry) and -2 (no blocker, a turn of another client).
const (
	noExpiry = -1 * time.Millisecond
	turnWait = -2 * time.Millisecond
)

var (
	acquireScript = registry.Get("lock_acquire")
	releaseScript = registry.Get("lock_release")
	refreshScript = registry.Get("lock_refresh")
	leaveScript   = registry.Get("lock_leave")
)

// attempt runs lock_acquire for w. skip names a client whose turn is over.
func (m *lockManager) attempt(w *lockWaiter, skip string) {
	w.gen++
	w.inflight, w.dirty = true, false
	m.stopTimer(w)
	req, gen := w.req, w.gen
	keys := namesOf(req).all()
	queue := "1"
	if req.Try {
		queue = "0"
	}
	args := []any{req.Token, ttlMillis(req.TTL), m.id, queue, skip, m.keys.LockChannel(req.DB), lockTurnGrace.Milliseconds(), ticketOf(req), lockTransferLease.Milliseconds()}
	ack := m.ack
	m.goRedis(time.Now().Add(lockOpTimeout), func(ctx context.Context) any {
		done := &attemptDone{token: req.Token, gen: gen, sentAt: time.Now()}
		r := redisx.Run(ctx, req.Client, ack, acquireScript, keys, args...)
		res, err := r.Cmd.Slice()
		if err != nil {
			done.err = err
			return done
		}
		ints := make([]int64, len(res))
		for i, v := range res {
			ints[i], _ = v.(int64)
		}
		switch {
		case len(res) == 4 && ints[0] == 0:
			done.wait = time.Duration(ints[1]) * time.Millisecond
			done.reservedBy, _ = res[2].(string)
			done.serverNow = ints[3]
		case len(res) == len(req.Keys)+1 && ints[0] == 1:
			done.ok, done.fences = true, ints[1:]
			done.unreplicated = !r.Replicated
		default:
			done.err = fmt.Errorf("lock_acquire answered %v", res)
		}
		return done
	})
}

func (m *lockManager) runLeave(cl redis.UniversalClient, db int, keys []string) {
	args := []any{m.id, m.keys.LockChannel(db), lockTransferLease.Milliseconds()}
	m.goRedis(time.Now().Add(lockOpTimeout), func(ctx context.Context) any {
		_ = leaveScript.Run(ctx, cl, keys, args...).Err() // a stale turn is skipped after lockTurnGrace anyway
		return &leaveDone{}
	})
}

// runRelease runs lock_release. This client queues for its next turn on the
// keys it has more waiters for, with the ticket of its next waiter: the
// release may transfer the key to that waiter (see lock_transfer.go).
func (m *lockManager) runRelease(cl redis.UniversalClient, db int, token string, keys []dbKey, names lockNames, sender *actor.PID) {
	args := make([]any, 0, 4+len(keys))
	args = append(args, token, m.keys.LockChannel(db), m.id, lockTransferLease.Milliseconds())
	next := make([]*lockWaiter, len(keys))
	for i, k := range keys {
		ticket := "" // no more waiters for the key
		if q := m.queues[k]; q != nil && m.closedErr == nil {
			m.queued[k] = true
			ticket = "-"
			if t := ticketOf(q.head().req); t != "" {
				ticket, next[i] = t, q.head()
			}
		}
		args = append(args, ticket)
	}
	all := names.all()
	m.releasing[token]++
	m.goRedis(time.Now().Add(lockOpTimeout), func(ctx context.Context) any {
		d := &releaseDone{sender: sender, token: token, keys: keys, next: next, sentAt: time.Now()}
		res, err := releaseScript.Run(ctx, cl, all, args...).Slice()
		if err != nil {
			d.err = err
			return d
		}
		ints := make([]int64, len(res))
		for i, v := range res {
			ints[i], _ = v.(int64)
		}
		if len(ints) != len(keys)+2 {
			d.err = fmt.Errorf("lock_release answered %v", res)
			return d
		}
		d.freed, d.serverNow, d.fences = int(ints[0]), ints[1], ints[2:]
		return d
	})
}

// nextRefresh runs the first waiting Refresh of l, unless a renewal or a
// Refresh of l is under way.
func (m *lockManager) nextRefresh(l *heldLease) {
	if l.renewing || l.refreshing || len(l.refreshes) == 0 {
		return
	}
	r := l.refreshes[0]
	l.refreshes = l.refreshes[1:]
	l.refreshing = true
	cl, keys, token, id := l.client, l.lockKeys, l.token, l.id
	// An answer after the expiry comes too late: the lease is lost then.
	deadline := minTime(time.Now().Add(lockOpTimeout), l.expiresAt)
	ack := m.ack
	m.goRedis(deadline, func(ctx context.Context) any {
		d := &refreshDone{sender: r.sender, id: id, ttl: r.ttl, sentAt: time.Now()}
		res := redisx.Run(ctx, cl, ack, refreshScript, keys, token, ttlMillis(r.ttl))
		n, err := res.Cmd.Int()
		d.ok, d.err = n == 1, err
		d.unreplicated = d.ok && !res.Replicated
		return d
	})
}

func (m *lockManager) renew(cl redis.UniversalClient, ls []*heldLease) {
	type item struct {
		id    uint64
		keys  []string
		token string
		ttl   int64
	}
	items := make([]item, len(ls))
	// The call ends by the earliest expiry at the latest: an answer after
	// it would come too late to keep a lease, and Lost must not wait for it.
	// Until then a slow answer is worth waiting for: a new call would queue
	// behind it on the same slow server.
	deadline := time.Now().Add(lockOpTimeout)
	for i, l := range ls {
		items[i] = item{l.id, l.lockKeys, l.token, ttlMillis(l.ttl)}
		deadline = minTime(deadline, l.expiresAt)
	}
	if m.ack.On() {
		m.renewAcked(cl, deadline, ls)
		return
	}
	m.goRedis(deadline, func(ctx context.Context) any {
		sentAt := time.Now()
		pipe := cl.Pipeline()
		cmds := make([]*redis.Cmd, len(items))
		for i, it := range items {
			cmds[i] = refreshScript.Run(ctx, pipe, it.keys, it.token, it.ttl)
		}
		_, _ = pipe.Exec(ctx)
		res := make([]renewResult, len(items))
		for i, it := range items {
			if err := cmds[i].Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
				// A pipeline cannot fall back to EVAL: the server has not
				// seen the script yet (or flushed it). Once, alone.
				cmds[i] = refreshScript.Run(ctx, cl, it.keys, it.token, it.ttl)
			}
			n, err := cmds[i].Int()
			res[i] = renewResult{id: it.id, sentAt: sentAt, ok: n == 1, err: err}
		}
		return &renewDone{results: res}
	})
}
