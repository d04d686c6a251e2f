package actors

import (
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/redisxsync/xsync/internal/xerr"
	"github.com/redisxsync/xsync/messages"
)

// Slot groups: a lock whose keys fall in different Redis Cluster slots
// (Acquire.Groups) is taken one group at a time, in the order of Groups.
//
//   - Each group is an Acquire of its own (same token, TTL and mode) with a
//     waiter of its own: it queues behind the earlier waiters of its keys
//     when its turn in the set comes, waits as any waiter does (woken by
//     releases, never polled) and is taken by one lock_acquire.
//   - The groups taken so far form one heldLease, partial until the last
//     group is in: it is renewed every TTL/3 whatever AutoRenew says, so
//     that no group runs out while a later one is waited for.
//   - Every client takes the groups in the same order (by slot), and a
//     waiter waits only for keys of its current group, holding only keys of
//     earlier ones: no two sets can wait for each other.
//   - The caller gets every key or none: a set that fails (a try blocked on
//     a later group, a withdrawal, an error, a group lost meanwhile) gives
//     back the groups it holds before it answers.

// lockSetTTLShare: a set's lease without renewal is renewed once at its
// grant when its first groups would expire sooner than TTL less a
// lockSetTTLShare-th of it from then (they were taken long before the
// last).
const lockSetTTLShare = 10

// lockSet is a lock request taken group by group.
type lockSet struct {
	req    *messages.Acquire // as the caller sent it
	sender *actor.PID
	next   int        // the group asked for now
	lease  *heldLease // the groups held so far; nil before the first
	fences []int64    // by index of req.Keys
}

// groupRequest is the Acquire of group g of req.
func groupRequest(req *messages.Acquire, g []int) *messages.Acquire {
	sub := *req
	sub.Groups = nil
	sub.Keys, sub.FenceKeys = make([]string, len(g)), make([]string, len(g))
	sub.QueueKeys, sub.TicketKeys = make([]string, len(g)), make([]string, len(g))
	for j, i := range g {
		sub.Keys[j], sub.FenceKeys[j] = req.Keys[i], req.FenceKeys[i]
		sub.QueueKeys[j], sub.TicketKeys[j] = req.QueueKeys[i], req.TicketKeys[i]
	}
	return &sub
}

// startSet starts taking req, whose keys are in several slot groups, at
// its first group.
func (m *lockManager) startSet(ctx actor.Context, req *messages.Acquire) {
	s := &lockSet{req: req, sender: ctx.Sender(), fences: make([]int64, len(req.Keys))}
	m.startGroup(ctx, s)
}

// startGroup makes the waiter of the set's next group, queued behind the
// waiters of its keys that came before.
func (m *lockManager) startGroup(ctx actor.Context, s *lockSet) {
	w := m.newWaiter(groupRequest(s.req, s.req.Groups[s.next]), s.sender)
	w.set = s
	m.enter(ctx, w)
}

// setGranted records the group that w, a waiter of a set, was granted with
// fences, and starts the next group; the last one answers the caller with
// the whole lease. l is the set's lease, w's keys in it already.
func (m *lockManager) setGranted(w *lockWaiter, l *heldLease, fences []int64) {
	s := w.set
	for j, i := range s.req.Groups[s.next] {
		s.fences[i] = fences[j]
	}
	s.next++
	if s.next < len(s.req.Groups) {
		// Started by Receive once this message is handled: it may need
		// the actor's context (a subscription).
		m.nextGroups = append(m.nextGroups, s)
		return
	}
	l.set = nil
	if now := time.Now(); !l.autoRenew && l.expiresAt.Before(now.Add(l.ttl-l.ttl/lockSetTTLShare)) {
		// The groups taken first were renewed while a later one was waited
		// for, not set to a TTL from now: one renewal of every group now
		// gives the lease the TTL it was asked for. A set taken at once
		// (the usual case) does without.
		l.pending = true
		l.due = now
	}
	m.schedule()
	if s.sender != nil {
		m.root.Send(s.sender, &messages.AcquireResult{Lease: &messages.LeaseGrant{ID: l.id, Fences: s.fences, Lost: l.lost}})
	}
}

// startNextGroups starts the next group of each set that got one in the
// message just handled.
func (m *lockManager) startNextGroups(ctx actor.Context) {
	sets := m.nextGroups
	m.nextGroups = nil
	for _, s := range sets {
		m.startGroup(ctx, s)
	}
}

// answerFailed answers w's request with err. The groups a set holds are
// given back first: its caller hears no answer while they are still held.
func (m *lockManager) answerFailed(w *lockWaiter, err error) {
	s := w.set
	if s == nil || s.lease == nil || m.leases[s.lease.id] != s.lease {
		w.respond(m, &messages.AcquireResult{Err: err})
		return
	}
	l := s.lease
	m.dropLease(l)
	m.schedule()
	m.releaseLease(l, func(error) { w.respond(m, &messages.AcquireResult{Err: err}) })
}

// losePartial handles the loss of a set's groups while it waits for a later
// one (a key deleted, or Redis unreachable past the TTL): the request fails
// with ErrNotObtained (and ErrLockNotHeld), having given back what it still
// holds. It is not started over: an attempt of its token may still be under
// way, and could meet the release of a new one.
func (m *lockManager) losePartial(l *heldLease, release bool) {
	s := l.set
	m.log.Info("keys taken for a lock were lost while it waited for its other keys", zap.Strings("keys", l.lockKeys))
	m.dropLease(l)
	m.schedule()
	err := fmt.Errorf("%w: keys %v were lost while it waited for its other keys: %w", xerr.ErrNotObtained, l.lockKeys, xerr.ErrLockNotHeld)
	// The set's current group waits (a set with a lease is never without
	// one): its caller is answered once the groups are given back.
	w := m.waiters[l.token]
	answer := func(error) {}
	if w != nil && w.set == s {
		m.removeWaiter(w)
		answer = func(error) { w.respond(m, &messages.AcquireResult{Err: err}) }
	}
	if release {
		m.releaseLease(l, answer)
		return
	}
	m.forgetCrossed(l)
	m.wakeKeys(l.keys)
	answer(nil)
}

// releaseLease releases every group of l, and calls then (if not nil) with
// the first error once every group's release has answered.
func (m *lockManager) releaseLease(l *heldLease, then func(error)) {
	all := &releaseAll{left: len(l.parts), then: then}
	for _, p := range l.parts {
		m.runRelease(l.client, l.db, l.token, p.keys, p.names, all.one)
	}
}

// releaseAll gathers the answers of the releases of a lease's groups.
type releaseAll struct {
	left int
	err  error
	then func(error)
}

func (a *releaseAll) one(err error) {
	if a.err == nil {
		a.err = err
	}
	if a.left--; a.left == 0 && a.then != nil {
		a.then(a.err)
	}
}
