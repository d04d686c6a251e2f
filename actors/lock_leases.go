package actors

import (
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/redisxsync/xsync/internal/xerr"
	"github.com/redisxsync/xsync/messages"
)

type heldLease struct {
	id       uint64
	token    string
	db       int
	client   redis.UniversalClient
	keys     []dbKey  // every key, of every part
	lockKeys []string // their Redis names
	// parts are the slot groups of the lease, one script call each (one
	// part but for a lock across Redis Cluster slots).
	parts     []leasePart
	onePart   [1]leasePart // parts' array while there is one
	ttl       time.Duration
	autoRenew bool
	lost      chan struct{}
	// pending: a transfer gave the key this lease's token for
	// lockTransferLease at most; the first renewal, due before then,
	// confirms the full TTL.
	pending bool

	expiresAt time.Time // conservative: counted from when the call was sent
	due       time.Time // next renewal, or expiresAt without auto-renewal
	renewing  bool
	// refreshing: a Refresh is under way. A lease has one call that sets
	// its expiry under way at a time, so that each answer sets the expiry
	// of the TTL it sent: the others wait in refreshes.
	refreshing bool
	refreshes  []pendingRefresh
	// unsure: a renewal or Refresh failed without an answer, so it may
	// have run: at expiry the keys may still hold the token, and are
	// released when the lease is lost.
	unsure bool
	// set: the lease holds the groups a set has taken so far, and is
	// renewed while it waits for the next (see lock_groups.go).
	set *lockSet
}

// leasePart is one slot group of a lease.
type leasePart struct {
	keys     []dbKey
	lockKeys []string
	names    lockNames
}

// renews: the lease is renewed every TTL/3 (it asked for it, or it is a
// set's lease while it waits for its next group).
func (l *heldLease) renews() bool { return l.autoRenew || l.set != nil }

type pendingRefresh struct {
	ttl    time.Duration
	sender *actor.PID
}

// grant makes w's keys, taken by a call sent at sentAt, a lease of this
// client; the keys of a set's later group join the set's lease.
func (m *lockManager) grant(w *lockWaiter, sentAt time.Time) *heldLease {
	part := leasePart{keys: w.keys, lockKeys: w.req.Keys, names: namesOf(w.req)}
	l := (*heldLease)(nil)
	if w.set != nil {
		l = w.set.lease
	}
	if l == nil {
		m.seq++
		l = &heldLease{
			id:        m.seq,
			token:     w.req.Token,
			db:        w.req.DB,
			client:    w.req.Client,
			ttl:       w.req.TTL,
			autoRenew: w.req.AutoRenew,
			lost:      make(chan struct{}),
			set:       w.set,
		}
		l.setExpiry(sentAt)
		m.leases[l.id] = l
		if w.set != nil {
			w.set.lease = l
		}
	} else {
		// The earliest expiry and renewal of the parts are the lease's.
		at, due := l.expiresAt, l.due
		l.setExpiry(sentAt)
		l.expiresAt, l.due = minTime(at, l.expiresAt), minTime(due, l.due)
	}
	if l.parts == nil {
		// The first part: its lists are the lease's (nothing changes
		// them; a later part's append copies).
		l.onePart[0] = part
		l.parts = l.onePart[:1:1]
		l.keys, l.lockKeys = slices.Clip(part.keys), slices.Clip(part.lockKeys)
	} else {
		l.parts = append(l.parts, part)
		l.keys = append(slices.Clip(l.keys), part.keys...)
		l.lockKeys = append(slices.Clip(l.lockKeys), part.lockKeys...)
	}
	now := time.Now()
	for _, k := range part.keys {
		m.held[k] = l.id
		m.turns[k] = now
	}
	m.schedule()
	return l
}

func (l *heldLease) setExpiry(sentAt time.Time) {
	l.expiresAt = sentAt.Add(l.ttl)
	l.due = l.expiresAt
	if l.renews() {
		l.due = sentAt.Add(renewPeriod(l.ttl))
	}
}

func renewPeriod(ttl time.Duration) time.Duration {
	return max(ttl/3, time.Millisecond)
}

// dropLease forgets l: its keys are no longer held by this client. The
// Refreshes that wait are answered.
func (m *lockManager) dropLease(l *heldLease) {
	delete(m.leases, l.id)
	for _, r := range l.refreshes {
		m.root.Send(r.sender, m.notHeld())
	}
	l.refreshes = nil
	for _, k := range l.keys {
		if m.held[k] == l.id {
			delete(m.held, k)
		}
	}
}

// lose marks l lost: Lost is closed, the keys it may still hold are
// released, and the waiters of its keys are woken once that is done.
func (m *lockManager) lose(l *heldLease, release bool) {
	if l.set != nil {
		m.losePartial(l, release)
		return
	}
	m.log.Info("lease lost", zap.Strings("keys", l.lockKeys))
	m.dropLease(l)
	close(l.lost)
	if release {
		m.releaseLease(l, nil)
	} else {
		m.forgetCrossed(l)
		m.wakeKeys(l.keys)
	}
}

// forgetCrossed forgets which keys of l came by a transfer from another
// client: l is lost, and no release of it follows.
func (m *lockManager) forgetCrossed(l *heldLease) {
	for _, k := range l.keys {
		delete(m.crossed, tokenKey{l.token, k})
		m.endTurn(k)
	}
}

func (m *lockManager) release(ctx actor.Context, id uint64) {
	l := m.leases[id]
	if l == nil {
		if ctx.Sender() != nil {
			if m.closedErr != nil {
				ctx.Respond(&messages.ReleaseLeaseResult{Err: m.closedErr})
			} else {
				ctx.Respond(&messages.ReleaseLeaseResult{Err: xerr.ErrLockNotHeld})
			}
		}
		return
	}
	// The keys are no longer this client's from now on: the published
	// release wakes this client's waiters as it wakes the others'.
	m.dropLease(l)
	m.schedule()
	sender := ctx.Sender()
	m.releaseLease(l, func(err error) {
		if sender != nil {
			m.root.Send(sender, &messages.ReleaseLeaseResult{Err: err})
		}
	})
}

func (m *lockManager) releaseToken(req *messages.Acquire) {
	keys := make([]dbKey, len(req.Keys))
	for i, k := range req.Keys {
		keys[i] = dbKey{req.DB, k}
	}
	m.runRelease(req.Client, req.DB, req.Token, keys, namesOf(req), nil)
}

func (m *lockManager) onRelease(d *releaseDone) {
	defer m.callDone()
	var err error
	switch {
	case d.err != nil:
		err = xerr.Redis("release", d.err)
	case d.freed < len(d.keys):
		err = xerr.ErrLockNotHeld
	}
	if err != nil {
		// Some keys were not published as freed: whatever holds them now,
		// this client's waiters must look for themselves.
		m.wakeKeys(d.keys)
	}
	if d.then != nil {
		d.then(err)
	}
	if d.err == nil {
		m.readClock(serverClock{ms: d.serverNow, sentAt: d.sentAt})
	}
	// A turn that goes on keeps its beginning, and whether it came from
	// another client's release.
	var began time.Time
	if d.kept && len(d.fences) == 1 && d.fences[0] > 0 {
		k := d.keys[0]
		began = m.turns[k]
		if m.crossed[tokenKey{d.token, k}] {
			m.crossed[tokenKey{d.next[0].req.Token, k}] = true
		}
	}
	for _, k := range d.keys {
		tk := tokenKey{d.token, k}
		delete(m.crossed, tk)
		if m.releasing[tk]--; m.releasing[tk] <= 0 {
			delete(m.releasing, tk)
			if req := m.rerelease[tk]; req != nil {
				delete(m.rerelease, tk)
				m.releaseToken(req)
			}
		}
	}
	for i, fence := range d.fences {
		if fence > 0 && d.next[i] != nil {
			w := d.next[i]
			if m.transferred(w, d.keys[i], fence, d.sentAt.Add(transferLease(w.req.TTL))) {
				m.events.handedOff(d.sentAt, true)
				if !began.IsZero() {
					m.turns[d.keys[i]] = began
				}
			}
		}
	}
	for _, k := range d.keys {
		m.endTurn(k)
	}
}

func (m *lockManager) refresh(ctx actor.Context, r *messages.RefreshLease) {
	l := m.leases[r.ID]
	if l == nil {
		ctx.Respond(m.notHeld())
		return
	}
	l.refreshes = append(l.refreshes, pendingRefresh{ttl: r.TTL, sender: ctx.Sender()})
	m.nextRefresh(l)
}

// notHeld answers a Refresh of a lease this client no longer holds.
func (m *lockManager) notHeld() *messages.RefreshLeaseResult {
	if m.closedErr != nil {
		return &messages.RefreshLeaseResult{Err: m.closedErr}
	}
	return &messages.RefreshLeaseResult{Err: xerr.ErrLockNotHeld}
}

func (m *lockManager) onRefresh(d *refreshDone) {
	defer m.callDone()
	var res *messages.RefreshLeaseResult
	l := m.leases[d.id]
	switch {
	case l == nil:
		// Released or lost while the refresh was under way.
		res = m.notHeld()
	case d.err != nil && !time.Now().Before(l.expiresAt):
		// It ended at the expiry (its deadline) without an answer.
		res = &messages.RefreshLeaseResult{Err: xerr.ErrLockNotHeld}
		m.lose(l, true)
	case d.err != nil:
		res = &messages.RefreshLeaseResult{Err: xerr.Redis("refresh", d.err)}
		l.refreshing, l.unsure = false, true
	case !d.ok:
		res = &messages.RefreshLeaseResult{Err: xerr.ErrLockNotHeld}
		m.lose(l, true)
	case d.unreplicated:
		res = m.onUnreplicatedRefresh(l, d)
	default:
		res = &messages.RefreshLeaseResult{}
		l.refreshing, l.unsure, l.pending = false, false, false
		l.ttl = d.ttl
		l.setExpiry(d.sentAt)
	}
	m.root.Send(d.sender, res)
	if l != nil && m.leases[l.id] == l {
		m.nextRefresh(l)
	}
	m.schedule() // a renewal held back by the refresh may be due
}

// tick renews the leases that are due (and those due soon, so that they
// share the pipeline), and drops the leases that ran out.
func (m *lockManager) tick() {
	if m.closedErr != nil {
		return
	}
	now := time.Now()
	batches := map[redis.UniversalClient][]*heldLease{}
	for _, l := range m.leases {
		if !now.Before(l.expiresAt) {
			// Not renewed in time (no auto-renewal, or Redis unreachable,
			// a renewal under way included): the key is gone or about to
			// go. A renewal that may have run leaves it held: release it.
			m.lose(l, l.unsure || l.renewing || l.refreshing)
			continue
		}
		if l.renewing || l.refreshing {
			continue
		}
		if l.pending && !l.due.After(now) || !l.pending && l.renews() && !l.due.After(now.Add(renewPeriod(l.ttl)/4)) {
			l.renewing = true
			batches[l.client] = append(batches[l.client], l)
		}
	}
	for cl, ls := range batches {
		m.renew(cl, ls)
	}
	m.schedule()
}

func (m *lockManager) onRenew(d *renewDone) {
	defer m.callDone()
	now := time.Now()
	for _, r := range d.results {
		l := m.leases[r.id]
		if l == nil {
			continue
		}
		l.renewing = false
		m.events.renewFailed(r.err, r.ok)
		switch {
		case r.err != nil:
			m.log.Warn("lease renewal failed", zap.Strings("keys", l.lockKeys), zap.Error(r.err))
			l.unsure = true
			if !now.Before(l.expiresAt) {
				m.lose(l, true)
				continue
			}
			// Try again soon, and once more at the expiry at the latest.
			l.due = minTime(now.Add(renewPeriod(l.ttl)/2), l.expiresAt)
		case !r.ok:
			m.lose(l, true)
		default:
			l.unsure, l.pending = false, false
			at := l.expiresAt
			l.setExpiry(r.sentAt)
			if r.parts < len(l.parts) {
				// A set's group joined the lease while the renewal was
				// under way: it keeps its own expiry until a renewal of
				// every group, due now.
				l.expiresAt, l.due, l.pending = minTime(l.expiresAt, at), now, true
			}
		}
		m.nextRefresh(l)
	}
	m.schedule()
}

// schedule sets the lease timer to the earliest renewal or expiry.
func (m *lockManager) schedule() {
	if m.closedErr != nil {
		return
	}
	var next time.Time
	for _, l := range m.leases {
		at := l.expiresAt
		if (l.renews() || l.pending) && !l.renewing && !l.refreshing {
			at = minTime(l.due, l.expiresAt)
		}
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	if next.IsZero() {
		if m.timer != nil {
			m.timer.Stop()
		}
		m.timerAt = time.Time{}
		return
	}
	if !m.timerAt.IsZero() && !next.Before(m.timerAt) {
		return
	}
	m.timerAt = next
	d := time.Until(next)
	if m.timer == nil {
		m.timer = m.sendAfter(d, &leaseTick{})
		return
	}
	m.timer.Reset(d)
}
