package actors

import (
	"context"
	"fmt"
	"time"

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

// Arguments of the lock scripts that are the same for every call, made
// interface values once (a string or an int64 above 255 is allocated each
// time it becomes one).
var (
	turnGraceArg     any = lockTurnGrace.Milliseconds()
	transferLeaseArg any = lockTransferLease.Milliseconds()
	flagArgs             = [4]any{"0", "1", "2", "3"} // lock_release's flags
)

// attempt runs lock_acquire for w. skip names a client whose turn is over.
func (m *lockManager) attempt(w *lockWaiter, skip string) {
	m.seq++
	w.gen = m.seq
	w.inflight, w.dirty = true, false
	m.stopTimer(w)
	req, gen := w.req, w.gen
	keys := namesOf(req).all()
	queue := "1"
	if req.Try {
		queue = "0"
	}
	args := []any{req.Token, ttlMillis(req.TTL), m.idArg, queue, skip, m.wakeArg(req.DB, keys[0]), turnGraceArg, w.ticket, transferLeaseArg}
	ack := m.ack
	m.goRedisFor(lockOpTimeout, func(ctx context.Context) inlineMessage {
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
	args := []any{m.idArg, m.wakeArg(db, keys[0]), transferLeaseArg}
	m.goRedisFor(lockOpTimeout, func(ctx context.Context) inlineMessage {
		_ = leaveScript.Run(ctx, cl, keys, args...).Err() // a stale turn is skipped after lockTurnGrace anyway
		return &leaveDone{}
	})
}

// runRelease runs lock_release. This client queues for its next turn on the
// keys it has more waiters for, with the ticket of its next waiter: the
// release may transfer the key to that waiter (see lock_transfer.go). then,
// if not nil, is told the outcome: nil, ErrLockNotHeld or the call's error.
func (m *lockManager) runRelease(cl redis.UniversalClient, db int, token string, keys []dbKey, names lockNames, then func(error)) {
	all := names.all()
	next := make([]*lockWaiter, len(keys))
	tickets := make([]any, len(keys))
	for i, k := range keys {
		var ticket any = "" // no more waiters for the key
		if q := m.queues[k]; q != nil && m.closedErr == nil {
			ticket = "-"
			if h := q.head(); h.ticket != "" {
				ticket, next[i] = h.ticket, h
			}
		}
		tickets[i] = ticket
	}
	flags := 0 // see lock_release.lua
	if len(keys) == 1 && m.crossed[tokenKey{token, keys[0]}] {
		flags |= 1
	}
	kept := len(keys) == 1 && m.keepsTurn(keys[0], next[0])
	if kept {
		flags |= 2
	}
	for i, k := range keys {
		if tickets[i] != "" && !kept {
			m.queued[k] = true
		}
	}
	args := make([]any, 0, 5+len(keys))
	args = append(args, token, m.wakeArg(db, all[0]), m.idArg, transferLeaseArg, flagArgs[flags])
	args = append(args, tickets...)
	for _, k := range keys {
		m.releasing[tokenKey{token, k}]++
	}
	m.goRedisFor(lockOpTimeout, func(ctx context.Context) inlineMessage {
		d := &releaseDone{then: then, token: token, keys: keys, next: next, kept: kept, sentAt: time.Now()}
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
	cl, parts, token, id := l.client, partKeys(l), l.token, l.id
	// An answer after the expiry comes too late: the lease is lost then.
	deadline := minTime(time.Now().Add(lockOpTimeout), l.expiresAt)
	ack := m.ack
	m.goRedis(deadline, func(ctx context.Context) inlineMessage {
		d := &refreshDone{sender: r.sender, id: id, ttl: r.ttl, sentAt: time.Now()}
		if len(parts) == 1 && !ack.On() {
			n, err := refreshScript.Run(ctx, cl, parts[0], token, ttlMillis(r.ttl)).Int()
			d.ok, d.err = n == 1, err
			return d
		}
		answers, replicated := refreshAll(ctx, cl, ack, []refreshItem{{parts, token, ttlMillis(r.ttl)}})
		d.ok, d.err = answers[0].result()
		d.unreplicated = d.ok && !replicated[0]
		return d
	})
}

// partKeys are the KEYS of lock_refresh for each part of l.
func partKeys(l *heldLease) [][]string {
	keys := make([][]string, len(l.parts))
	for i, p := range l.parts {
		keys[i] = p.lockKeys
	}
	return keys
}

// refreshItem is one lease to refresh: the KEYS of each of its parts.
type refreshItem struct {
	parts [][]string
	token string
	ttl   int64
}

// refreshAll runs lock_refresh for every part of every item in one
// pipeline (go-redis sends a Cluster's to each node at once), and returns
// the answers by item and part. With ack on, each master's pipeline ends
// with WAIT (redisx.RunAcked), and replicated[i] says whether the replicas
// confirmed every part of item i; without, it is true.
func refreshAll(ctx context.Context, cl redis.UniversalClient, ack redisx.Ack, items []refreshItem) (answers []refreshAnswers, replicated []bool) {
	replicated = make([]bool, len(items))
	if ack.On() {
		var calls []redisx.ScriptCall
		for _, it := range items {
			for _, keys := range it.parts {
				calls = append(calls, redisx.ScriptCall{Script: refreshScript, Keys: keys, Args: []any{it.token, it.ttl}})
			}
		}
		out := redisx.RunAcked(ctx, cl, ack, calls)
		answers = make([]refreshAnswers, len(items))
		for i, it := range items {
			replicated[i] = true
			for range it.parts {
				answers[i] = append(answers[i], out[0].Cmd)
				replicated[i] = replicated[i] && out[0].Replicated
				out = out[1:]
			}
		}
		return answers, replicated
	}
	for i := range replicated {
		replicated[i] = true
	}
	pipe := cl.Pipeline()
	cmds := make([][]*redis.Cmd, len(items))
	for i, it := range items {
		for _, keys := range it.parts {
			cmds[i] = append(cmds[i], refreshScript.Run(ctx, pipe, keys, it.token, it.ttl))
		}
	}
	_, _ = pipe.Exec(ctx)
	res := make([]refreshAnswers, len(items))
	for i, it := range items {
		for j, keys := range it.parts {
			if err := cmds[i][j].Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
				// A pipeline cannot fall back to EVAL: the server has not
				// seen the script yet (or flushed it). Once, alone.
				cmds[i][j] = refreshScript.Run(ctx, cl, keys, it.token, it.ttl)
			}
		}
		res[i] = cmds[i]
	}
	return res, replicated
}

// refreshAnswers are the answers of lock_refresh for the parts of a lease.
type refreshAnswers []*redis.Cmd

// result: ok when every part was refreshed; not ok (and no error) when a
// part was not held, whatever the others answered: the lease is lost; err
// when a part failed without an answer and none was found not held.
func (a refreshAnswers) result() (ok bool, err error) {
	for _, c := range a {
		n, e := c.Int()
		if e == nil && n != 1 {
			return false, nil
		}
		if e != nil && err == nil {
			err = e
		}
	}
	return err == nil, err
}

func (m *lockManager) renew(cl redis.UniversalClient, ls []*heldLease) {
	ids, parts := make([]uint64, len(ls)), make([]int, len(ls))
	items := make([]refreshItem, len(ls))
	// The call ends by the earliest expiry at the latest: an answer after
	// it would come too late to keep a lease, and Lost must not wait for it.
	// Until then a slow answer is worth waiting for: a new call would queue
	// behind it on the same slow server.
	deadline := time.Now().Add(lockOpTimeout)
	for i, l := range ls {
		ids[i], parts[i], items[i] = l.id, len(l.parts), refreshItem{partKeys(l), l.token, ttlMillis(l.ttl)}
		deadline = minTime(deadline, l.expiresAt)
	}
	notReplicated := make([]error, len(ls))
	if m.ack.On() {
		for i, l := range ls {
			notReplicated[i] = m.notReplicated("lease renewal", l.lockKeys) // lock_ack.go
		}
	}
	ack := m.ack
	m.goRedis(deadline, func(ctx context.Context) inlineMessage {
		sentAt := time.Now()
		answers, replicated := refreshAll(ctx, cl, ack, items)
		res := make([]renewResult, len(items))
		for i, a := range answers {
			ok, err := a.result()
			if ok && !replicated[i] {
				err = notReplicated[i]
			}
			res[i] = renewResult{id: ids[i], parts: parts[i], sentAt: sentAt, ok: ok, err: err}
		}
		return &renewDone{results: res}
	})
}
