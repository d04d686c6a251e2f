package actors

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/redisxsync/xsync/messages"
	"github.com/redisxsync/xsync/redisx"
)

// Timings of the lock manager.
const (
	// lockOpTimeout bounds one acquire, release or refresh script call.
	lockOpTimeout = 5 * time.Second
	// lockRetryMin and lockRetryMax bound the back-off of a waiter whose
	// attempt failed on Redis itself (not on a taken key).
	lockRetryMin = 20 * time.Millisecond
	lockRetryMax = time.Second
	// lockNoExpiryRetry is how long a waiter blocked by a key without an
	// expiry (written by something else than xsync) waits between attempts
	// when no release is published.
	lockNoExpiryRetry = time.Second
	// lockExpirySlack is added to a blocker's remaining time to live before
	// the retry, so that the retry finds the key expired.
	lockExpirySlack = time.Millisecond
	// lockTurnGrace is how long a free key stays reserved for the client
	// whose turn it is: a client that does not take it by then (it died, or
	// its waiter cannot use the key now) loses its turn to the next. Redis
	// times the turns (lock_acquire), so that a TryLock, too, gets a key
	// whose turn went to a dead client.
	lockTurnGrace = 100 * time.Millisecond
	// lockConfirmAfter is when the holder of a transferred key renews it to
	// its full lease: early in the turn grace, so that the renewal has most
	// of it to land; a lease released sooner never sends it.
	lockConfirmAfter = lockTurnGrace / 4
)

// The waits lock_acquire answers that are no time to live: -1 (a blocker
// without expiry) and -2 (no blocker, a turn of another client).
const (
	noExpiry = -1 * time.Millisecond
	turnWait = -2 * time.Millisecond
)

var (
	acquireScript = Scripts.Get("lock_acquire")
	releaseScript = Scripts.Get("lock_release")
	refreshScript = Scripts.Get("lock_refresh")
	leaveScript   = Scripts.Get("lock_leave")
)

// LockManager is the actor that owns the locks of one client: the waiters,
// FIFO per key, and the leases the client holds.
//
// Waiting costs no Redis command while nothing changes. The manager
// subscribes once per DB to the channel on which every release of a lock of
// that DB is published (before the first attempt, so that no release is
// missed). Only the head waiter of a key tries, and only when no lease of
// this client holds one of its keys; a waiter that found a key taken is
// tried again when a release of one of its keys is published, or when a
// timer fires at the blocker's expiry (a holder that died without releasing),
// and every waiter is tried again after a pub/sub reconnection.
//
// Clients take turns: a client whose waiter found a key taken queues (once,
// keeping its place) in the key's turn queue in Redis, and a release
// publishes whose turn it is. Only that client tries; the others set a
// timer of lockTurnGrace, after which a turn that was not taken is skipped.
// A release by a client that has more waiters for the key queues it again,
// behind the clients that waited before: the lock passes from client to
// client in the order they asked, at one acquire and one release script per
// acquisition, and the waiters of one client get it in their own order.
//
// Leases with auto-renewal are renewed every TTL/3, every lease due at about
// the same time in one pipeline per DB. A lease that a renewal or a Refresh
// finds gone, or that could not be renewed before its TTL ran out, is lost:
// its Lost channel is closed and the keys it still holds are released.
//
// Redis calls run in goroutines that send their result back to the actor:
// the mailbox never waits for Redis.
type LockManager struct {
	id   string // this client's id in the turn queues
	keys redisx.Keys
	conn *actor.PID
	log  *zap.Logger
	self *actor.PID
	sys  *actor.ActorSystem

	seq     uint64
	waiters map[string]*lockWaiter // by token; tries included
	// orphans are the waiters withdrawn during their attempt: what the
	// attempt took is released when it answers.
	orphans map[string]*lockWaiter
	// superseded are the waiters granted by a transfer during their
	// attempt: its answer confirms the lease, or is given back if the lease
	// is gone.
	superseded map[string]*lockWaiter
	queues     map[dbKey]*waitQueue
	leases     map[uint64]*heldLease
	held       map[dbKey]uint64 // the lease of this client holding a key
	// queued are the keys in whose turn queue this client may be: left
	// when its last waiter for the key is withdrawn.
	queued  map[dbKey]bool
	clients map[int]*redis.Client // script clients by DB
	names   map[string]keyNames   // lock key -> the names of its other keys
	// clock is the latest reading of the server's clock, which dates the
	// transfers that other clients' releases publish.
	clock serverClock

	subs      map[int]*lockSub // by DB
	channels  map[string]int   // channel -> DB
	subQueue  []int            // DBs whose Subscribe waits for the one in flight
	subFlight int              // DB of the Subscribe in flight, -1 if none

	timer   *time.Timer // fires at the earliest lease renewal or expiry
	timerAt time.Time

	busy      int // Redis calls under way
	closedErr error
	shutdown  *actor.PID // who asked for Shutdown, answered when busy is 0
}

// waitQueue is the FIFO of the waiters of one key. A removed waiter is
// dropped at once from the front, and from elsewhere once the removed are
// half the slice: removing n waiters costs O(n), not O(n²). The front is
// never a removed waiter; a queue with no waiter left is deleted.
type waitQueue struct {
	ws   []*lockWaiter
	gone int // removed waiters in ws
}

// head is the first waiter.
func (q *waitQueue) head() *lockWaiter { return q.ws[0] }

// remove takes w (marked removed) out, and reports whether q is empty now.
func (q *waitQueue) remove(w *lockWaiter) (empty bool) {
	q.gone++
	for len(q.ws) > 0 && q.ws[0].removed {
		q.ws[0] = nil
		q.ws = q.ws[1:]
		q.gone--
	}
	if q.gone*2 > len(q.ws) {
		live := make([]*lockWaiter, 0, len(q.ws)-q.gone)
		for _, x := range q.ws {
			if !x.removed {
				live = append(live, x)
			}
		}
		q.ws, q.gone = live, 0
	}
	return len(q.ws) == 0
}

// dbKey is a lock key (its Redis name) on one DB.
type dbKey struct {
	db  int
	key string
}

type lockSub struct {
	ready bool
}

type lockWaiter struct {
	seq    uint64
	req    *messages.Acquire
	sender *actor.PID
	keys   []dbKey

	removed  bool // out of the queues (it may still be in their slices)
	inflight bool // an attempt is under way
	dirty    bool // something changed during the attempt: try again if it fails
	// unsure: an attempt failed without an answer, so it may have taken
	// keys. The next attempt, with the same token, finds them; a waiter
	// removed before it is granted releases its token.
	unsure  bool
	gen     uint64
	timer   *time.Timer
	skip    string // the client whose turn the timer ends, or ""
	backoff time.Duration
}

type heldLease struct {
	id        uint64
	token     string
	db        int
	client    *redis.Client
	keys      []dbKey
	lockKeys  []string
	names     lockNames
	ttl       time.Duration
	autoRenew bool
	lost      chan struct{}
	// pending: a transfer gave the key this lease's token for the turn grace
	// at most; the first renewal, due before then, confirms the full TTL.
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
}

type pendingRefresh struct {
	ttl    time.Duration
	sender *actor.PID
}

// Messages the lock manager sends itself from its goroutines and timers.
type (
	attemptDone struct {
		token  string
		gen    uint64
		sentAt time.Time
		ok     bool
		fences []int64
		// wait is the remaining TTL of the blocker: noExpiry for none,
		// turnWait when the keys were free but reserved for reservedBy's
		// turn.
		wait       time.Duration
		reservedBy string
		serverNow  int64 // the server's clock (ms) when it answered a blocked attempt
		err        error
	}
	waiterTimer struct {
		token string
		gen   uint64
	}
	releaseDone struct {
		sender *actor.PID
		keys   []dbKey
		// next are the waiters of this client whose tickets went with the
		// release, by key (nil for none); fences, the fences of the keys
		// transferred to them (0 for none).
		next      []*lockWaiter
		sentAt    time.Time
		freed     int
		fences    []int64
		serverNow int64
		err       error
	}
	leaveDone   struct{}
	refreshDone struct {
		sender *actor.PID
		id     uint64
		ttl    time.Duration
		sentAt time.Time
		ok     bool
		err    error
	}
	renewDone struct {
		results []renewResult
	}
	renewResult struct {
		id     uint64
		sentAt time.Time
		ok     bool
		err    error
	}
	leaseTick struct{}
)

// NewLockManager returns the producer of a client's LockManager. keys names
// the Redis keys and channels; conn is the client's Connection actor, which
// serves the pub/sub subscriptions.
func NewLockManager(id string, keys redisx.Keys, conn *actor.PID, log *zap.Logger) actor.Producer {
	return func() actor.Actor {
		return &LockManager{
			id:         id,
			keys:       keys,
			conn:       conn,
			log:        log,
			waiters:    map[string]*lockWaiter{},
			orphans:    map[string]*lockWaiter{},
			superseded: map[string]*lockWaiter{},
			queues:     map[dbKey]*waitQueue{},
			leases:     map[uint64]*heldLease{},
			held:       map[dbKey]uint64{},
			queued:     map[dbKey]bool{},
			clients:    map[int]*redis.Client{},
			names:      map[string]keyNames{},
			subs:       map[int]*lockSub{},
			channels:   map[string]int{},
			subFlight:  -1,
		}
	}
}

// Receive implements actor.Actor.
func (m *LockManager) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		m.self, m.sys = ctx.Self(), ctx.ActorSystem()
	case *messages.Acquire:
		m.acquire(ctx, msg)
	case *messages.Withdraw:
		m.withdraw(msg.Token)
	case *messages.ReleaseLease:
		m.release(ctx, msg.ID)
	case *messages.RefreshLease:
		m.refresh(ctx, msg)
	case *messages.LockStats:
		busy := m.busy + len(m.subQueue)
		if m.subFlight >= 0 {
			busy++
		}
		ctx.Respond(&messages.LockStatsResult{Waiters: len(m.waiters), Leases: len(m.leases), Busy: busy})
	case *messages.SubscribeResult:
		m.onSubscribed(ctx, msg)
	case *messages.Published:
		if db, ok := m.channels[msg.Channel]; ok {
			now, turns := decodeTurns(msg.Payload)
			m.onTurns(db, now, turns)
		}
	case *messages.Resubscribed:
		if db, ok := m.channels[msg.Channel]; ok {
			m.log.Info("lock releases may have been missed: retrying every waiter", zap.Int("db", db))
			m.wakeAll(db)
		}
	case *attemptDone:
		m.onAttempt(msg)
	case *waiterTimer:
		if w := m.waiters[msg.token]; w != nil && w.gen == msg.gen && !w.inflight {
			skip := w.skip
			w.timer, w.skip = nil, ""
			if m.closedErr == nil && m.eligible(w) {
				m.attempt(w, skip)
			}
		}
	case *leaveDone:
		m.busy--
		m.maybeShutDown()
	case *releaseDone:
		m.onRelease(msg)
	case *refreshDone:
		m.onRefresh(msg)
	case *renewDone:
		m.onRenew(msg)
	case *leaseTick:
		m.timerAt = time.Time{}
		m.tick()
	case *messages.Shutdown:
		m.onShutdown(ctx, msg)
	case *actor.Stopping:
		// Shutdown is the graceful path; this one only stops the timers
		// when the actor is stopped without it.
		m.stopTimers()
	}
}

// ---- acquiring ----

func (m *LockManager) acquire(ctx actor.Context, req *messages.Acquire) {
	if m.closedErr != nil {
		ctx.Respond(&messages.AcquireResult{Err: m.closedErr})
		return
	}
	if _, dup := m.waiters[req.Token]; dup {
		ctx.Respond(&messages.AcquireResult{Err: errors.New("token in use")})
		return
	}
	m.clients[req.DB] = req.Client
	for i, k := range req.Keys {
		m.names[k] = keyNames{fence: req.FenceKeys[i], queue: req.QueueKeys[i], tickets: req.TicketKeys[i]}
	}
	m.seq++
	w := &lockWaiter{seq: m.seq, req: req, sender: ctx.Sender(), keys: make([]dbKey, len(req.Keys))}
	for i, k := range req.Keys {
		w.keys[i] = dbKey{req.DB, k}
	}
	if req.Try {
		// A try never jumps this client's queue: a key that a waiter or a
		// lease of this client has is not obtained, without asking Redis.
		for _, k := range w.keys {
			if m.queues[k] != nil || m.held[k] != 0 {
				ctx.Respond(&messages.AcquireResult{NotObtained: true})
				return
			}
		}
		m.waiters[req.Token] = w
		m.attempt(w, "")
		return
	}
	m.waiters[req.Token] = w
	for _, k := range w.keys {
		q := m.queues[k]
		if q == nil {
			q = &waitQueue{}
			m.queues[k] = q
		}
		q.ws = append(q.ws, w)
	}
	if m.subscribe(ctx, req.DB) {
		m.consider(w)
	}
}

// consider starts an attempt for w if it may try now, or marks it dirty if
// an attempt is under way.
func (m *LockManager) consider(w *lockWaiter) {
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

// eligible: w's DB is subscribed, w is at the head of the queue of each of
// its keys, and no lease of this client holds one of them.
func (m *LockManager) eligible(w *lockWaiter) bool {
	if sub := m.subs[w.req.DB]; sub == nil || !sub.ready {
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
func (m *LockManager) wake(db int, keys []string) {
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

func (m *LockManager) wakeKeys(keys []dbKey) {
	if len(keys) == 0 {
		return
	}
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		names = append(names, k.key)
	}
	m.wake(keys[0].db, names)
}

// wakeAll considers every head waiter of DB db.
func (m *LockManager) wakeAll(db int) {
	var keys []string
	for k := range m.queues {
		if k.db == db {
			keys = append(keys, k.key)
		}
	}
	m.wake(db, keys)
}

// attempt runs lock_acquire for w. skip names a client whose turn is over.
func (m *LockManager) attempt(w *lockWaiter, skip string) {
	w.gen++
	w.inflight, w.dirty = true, false
	m.stopTimer(w)
	req, gen := w.req, w.gen
	keys := namesOf(req).all()
	queue := "1"
	if req.Try {
		queue = "0"
	}
	args := []any{req.Token, ttlMillis(req.TTL), m.id, queue, skip, m.keys.LockChannel(req.DB), lockTurnGrace.Milliseconds(), ticketOf(req)}
	m.goRedis(func() any {
		ctx, cancel := context.WithTimeout(context.Background(), lockOpTimeout)
		defer cancel()
		done := &attemptDone{token: req.Token, gen: gen, sentAt: time.Now()}
		res, err := acquireScript.Run(ctx, req.Client, keys, args...).Slice()
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
		default:
			done.err = fmt.Errorf("lock_acquire answered %v", res)
		}
		return done
	})
}

func (m *LockManager) stopTimer(w *lockWaiter) {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	w.skip = ""
}

func (m *LockManager) onAttempt(d *attemptDone) {
	m.busy--
	defer m.maybeShutDown()
	if d.serverNow > 0 {
		m.clock = serverClock{ms: d.serverNow, sentAt: d.sentAt}
	}
	if s := m.superseded[d.token]; s != nil {
		delete(m.superseded, d.token)
		m.onSupersededAttempt(s, d)
		return
	}
	w := m.waiters[d.token]
	if w == nil || w.gen != d.gen {
		// Withdrawn (or failed by Shutdown) while the attempt was under way:
		// give back what it took, or may have taken.
		if o := m.orphans[d.token]; o != nil {
			delete(m.orphans, d.token)
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
	case d.ok:
		w.unsure = false
		// Held first, so that removing w wakes no waiter of its keys.
		l := m.grant(w, d)
		for _, k := range w.keys {
			delete(m.queued, k) // the script took this client out of the queues
		}
		m.removeWaiter(w)
		w.respond(m, &messages.AcquireResult{Lease: &messages.LeaseGrant{ID: l.id, Fences: d.fences, Lost: l.lost}})
	case w.req.Try && d.err != nil:
		m.removeWaiter(w)
		m.releaseToken(w.req) // the call may have taken the keys
		w.respond(m, &messages.AcquireResult{Err: d.err})
	case w.req.Try:
		m.removeWaiter(w)
		w.respond(m, &messages.AcquireResult{NotObtained: true})
	case d.err != nil && isCorrupt(d.err):
		// Data xsync did not write: the script changed nothing, and
		// retrying would meet it again.
		m.removeWaiter(w)
		w.respond(m, &messages.AcquireResult{Err: d.err})
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
			w.skip = d.reservedBy
		case d.wait == noExpiry:
			m.startWaiterTimer(w, lockNoExpiryRetry)
		default:
			m.startWaiterTimer(w, d.wait+lockExpirySlack)
		}
	}
}

func (m *LockManager) startWaiterTimer(w *lockWaiter, d time.Duration) {
	m.stopTimer(w)
	token, gen, self, sys := w.req.Token, w.gen, m.self, m.sys
	w.timer = time.AfterFunc(d, func() { sys.Root.Send(self, &waiterTimer{token: token, gen: gen}) })
}

func (w *lockWaiter) respond(m *LockManager, res *messages.AcquireResult) {
	if w.sender != nil {
		m.sys.Root.Send(w.sender, res)
	}
}

// removeWaiter takes w out of the map and the queues, and wakes the waiters
// that are now at the head of one of its queues.
func (m *LockManager) removeWaiter(w *lockWaiter) {
	w.removed = true
	delete(m.waiters, w.req.Token)
	m.stopTimer(w)
	if w.inflight {
		m.orphans[w.req.Token] = w
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
		if q.remove(w) {
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
func (m *LockManager) leaveUnwanted(req *messages.Acquire) {
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
func (m *LockManager) leave(req *messages.Acquire, idx []int) {
	if len(idx) == 0 {
		return
	}
	var names lockNames
	for _, i := range idx {
		names.add(req.Keys[i], keyNames{fence: req.FenceKeys[i], queue: req.QueueKeys[i], tickets: req.TicketKeys[i]})
	}
	m.runLeave(req.Client, req.DB, names.all())
}

func (m *LockManager) runLeave(cl *redis.Client, db int, keys []string) {
	args := []any{m.id, m.keys.LockChannel(db), lockTurnGrace.Milliseconds()}
	m.goRedis(func() any {
		ctx, cancel := context.WithTimeout(context.Background(), lockOpTimeout)
		defer cancel()
		_ = leaveScript.Run(ctx, cl, keys, args...).Err() // a stale turn is skipped after lockTurnGrace anyway
		return &leaveDone{}
	})
}

func (m *LockManager) withdraw(token string) {
	w := m.waiters[token]
	if w == nil {
		return // granted already: the future hands the lease back
	}
	m.removeWaiter(w)
	w.respond(m, &messages.AcquireResult{NotObtained: true})
}

// ---- leases ----

func (m *LockManager) grant(w *lockWaiter, d *attemptDone) *heldLease {
	m.seq++
	l := &heldLease{
		id:        m.seq,
		token:     w.req.Token,
		db:        w.req.DB,
		client:    w.req.Client,
		keys:      w.keys,
		lockKeys:  w.req.Keys,
		names:     namesOf(w.req),
		ttl:       w.req.TTL,
		autoRenew: w.req.AutoRenew,
		lost:      make(chan struct{}),
	}
	l.setExpiry(d.sentAt)
	m.leases[l.id] = l
	for _, k := range l.keys {
		m.held[k] = l.id
	}
	m.schedule()
	return l
}

func (l *heldLease) setExpiry(sentAt time.Time) {
	l.expiresAt = sentAt.Add(l.ttl)
	l.due = l.expiresAt
	if l.autoRenew {
		l.due = sentAt.Add(renewPeriod(l.ttl))
	}
}

func renewPeriod(ttl time.Duration) time.Duration {
	return max(ttl/3, time.Millisecond)
}

// dropLease forgets l: its keys are no longer held by this client. The
// Refreshes that wait are answered.
func (m *LockManager) dropLease(l *heldLease) {
	delete(m.leases, l.id)
	for _, r := range l.refreshes {
		m.sys.Root.Send(r.sender, m.notHeld())
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
func (m *LockManager) lose(l *heldLease, release bool) {
	m.log.Info("lease lost", zap.Strings("keys", l.lockKeys))
	m.dropLease(l)
	close(l.lost)
	if release {
		m.runRelease(l.client, l.db, l.token, l.keys, l.names, nil)
	} else {
		m.wakeKeys(l.keys)
	}
}

func (m *LockManager) release(ctx actor.Context, id uint64) {
	l := m.leases[id]
	if l == nil {
		if ctx.Sender() != nil {
			if m.closedErr != nil {
				ctx.Respond(&messages.ReleaseResult{Err: m.closedErr})
			} else {
				ctx.Respond(&messages.ReleaseResult{NotHeld: true})
			}
		}
		return
	}
	// The keys are no longer this client's from now on: the published
	// release wakes this client's waiters as it wakes the others'.
	m.dropLease(l)
	m.schedule()
	m.runRelease(l.client, l.db, l.token, l.keys, l.names, ctx.Sender())
}

func (m *LockManager) releaseToken(req *messages.Acquire) {
	keys := make([]dbKey, len(req.Keys))
	for i, k := range req.Keys {
		keys[i] = dbKey{req.DB, k}
	}
	m.runRelease(req.Client, req.DB, req.Token, keys, namesOf(req), nil)
}

// runRelease runs lock_release. This client queues for its next turn on the
// keys it has more waiters for.
func (m *LockManager) runRelease(cl *redis.Client, db int, token string, keys []dbKey, names lockNames, sender *actor.PID) {
	args := make([]any, 0, 4+len(keys))
	args = append(args, token, m.keys.LockChannel(db), m.id, lockTurnGrace.Milliseconds())
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
	m.goRedis(func() any {
		ctx, cancel := context.WithTimeout(context.Background(), lockOpTimeout)
		defer cancel()
		d := &releaseDone{sender: sender, keys: keys, next: next, sentAt: time.Now()}
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

func (m *LockManager) onRelease(d *releaseDone) {
	m.busy--
	defer m.maybeShutDown()
	res := &messages.ReleaseResult{}
	switch {
	case d.err != nil:
		res.Err = d.err
	case d.freed < len(d.keys):
		res.NotHeld = true
	}
	if res.Err != nil || res.NotHeld {
		// Some keys were not published as freed: whatever holds them now,
		// this client's waiters must look for themselves.
		m.wakeKeys(d.keys)
	}
	if d.sender != nil {
		m.sys.Root.Send(d.sender, res)
	}
	if d.err == nil {
		m.clock = serverClock{ms: d.serverNow, sentAt: d.sentAt}
	}
	for i, fence := range d.fences {
		if fence > 0 && d.next[i] != nil {
			w := d.next[i]
			m.transferred(w, d.keys[i], fence, d.sentAt.Add(transferLease(w.req.TTL)))
		}
	}
}

func (m *LockManager) refresh(ctx actor.Context, r *messages.RefreshLease) {
	l := m.leases[r.ID]
	if l == nil {
		ctx.Respond(m.notHeld())
		return
	}
	l.refreshes = append(l.refreshes, pendingRefresh{ttl: r.TTL, sender: ctx.Sender()})
	m.nextRefresh(l)
}

// notHeld answers a Refresh of a lease this client no longer holds.
func (m *LockManager) notHeld() *messages.RefreshResult {
	if m.closedErr != nil {
		return &messages.RefreshResult{Err: m.closedErr}
	}
	return &messages.RefreshResult{NotHeld: true}
}

// nextRefresh runs the first waiting Refresh of l, unless a renewal or a
// Refresh of l is under way.
func (m *LockManager) nextRefresh(l *heldLease) {
	if l.renewing || l.refreshing || len(l.refreshes) == 0 {
		return
	}
	r := l.refreshes[0]
	l.refreshes = l.refreshes[1:]
	l.refreshing = true
	cl, keys, token, id := l.client, l.lockKeys, l.token, l.id
	// An answer after the expiry comes too late: the lease is lost then.
	deadline := minTime(time.Now().Add(lockOpTimeout), l.expiresAt)
	m.goRedis(func() any {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		d := &refreshDone{sender: r.sender, id: id, ttl: r.ttl, sentAt: time.Now()}
		n, err := refreshScript.Run(ctx, cl, keys, token, ttlMillis(r.ttl)).Int()
		d.ok, d.err = n == 1, err
		return d
	})
}

func (m *LockManager) onRefresh(d *refreshDone) {
	m.busy--
	defer m.maybeShutDown()
	var res *messages.RefreshResult
	l := m.leases[d.id]
	switch {
	case l == nil:
		// Released or lost while the refresh was under way.
		res = m.notHeld()
	case d.err != nil && !time.Now().Before(l.expiresAt):
		// It ended at the expiry (its deadline) without an answer.
		res = &messages.RefreshResult{NotHeld: true}
		m.lose(l, true)
	case d.err != nil:
		res = &messages.RefreshResult{Err: d.err}
		l.refreshing, l.unsure = false, true
	case !d.ok:
		res = &messages.RefreshResult{NotHeld: true}
		m.lose(l, true)
	default:
		res = &messages.RefreshResult{}
		l.refreshing, l.unsure, l.pending = false, false, false
		l.ttl = d.ttl
		l.setExpiry(d.sentAt)
	}
	m.sys.Root.Send(d.sender, res)
	if l != nil && m.leases[l.id] == l {
		m.nextRefresh(l)
	}
	m.schedule() // a renewal held back by the refresh may be due
}

// tick renews the leases that are due (and those due soon, so that they
// share the pipeline), and drops the leases that ran out.
func (m *LockManager) tick() {
	if m.closedErr != nil {
		return
	}
	now := time.Now()
	batches := map[*redis.Client][]*heldLease{}
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
		if l.pending && !l.due.After(now) || !l.pending && l.autoRenew && !l.due.After(now.Add(renewPeriod(l.ttl)/4)) {
			l.renewing = true
			batches[l.client] = append(batches[l.client], l)
		}
	}
	for cl, ls := range batches {
		m.renew(cl, ls)
	}
	m.schedule()
}

func (m *LockManager) renew(cl *redis.Client, ls []*heldLease) {
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
	m.goRedis(func() any {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
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

func (m *LockManager) onRenew(d *renewDone) {
	m.busy--
	defer m.maybeShutDown()
	now := time.Now()
	for _, r := range d.results {
		l := m.leases[r.id]
		if l == nil {
			continue
		}
		l.renewing = false
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
			l.setExpiry(r.sentAt)
		}
		m.nextRefresh(l)
	}
	m.schedule()
}

// schedule sets the lease timer to the earliest renewal or expiry.
func (m *LockManager) schedule() {
	if m.closedErr != nil {
		return
	}
	var next time.Time
	for _, l := range m.leases {
		at := l.expiresAt
		if (l.autoRenew || l.pending) && !l.renewing && !l.refreshing {
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
		self, sys := m.self, m.sys
		m.timer = time.AfterFunc(d, func() { sys.Root.Send(self, &leaseTick{}) })
		return
	}
	m.timer.Reset(d)
}

// ---- pub/sub ----

// subscribe makes sure DB db's release channel is subscribed, and reports
// whether it is already confirmed.
func (m *LockManager) subscribe(ctx actor.Context, db int) bool {
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
func (m *LockManager) nextSubscribe(ctx actor.Context) {
	if m.subFlight >= 0 || len(m.subQueue) == 0 {
		return
	}
	m.subFlight, m.subQueue = m.subQueue[0], m.subQueue[1:]
	ctx.Request(m.conn, &messages.Subscribe{Channel: m.keys.LockChannel(m.subFlight), Subscriber: m.self})
}

func (m *LockManager) onSubscribed(ctx actor.Context, r *messages.SubscribeResult) {
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
				w.respond(m, &messages.AcquireResult{Err: fmt.Errorf("subscribe: %w", r.Err)})
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

// onTurns handles a published release: the head waiter of a key whose turn
// is this client's (or anybody's) tries; the head waiter of a key whose turn
// is another client's waits lockTurnGrace for that client to take it.
func (m *LockManager) onTurns(db int, serverNow int64, turns []turn) {
	var mine []string
	others := map[*lockWaiter]string{}
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
			others[q.head()] = t.next
		}
	}
	m.wake(db, mine)
	for w, next := range others {
		if w.inflight {
			// Its attempt may have seen the key still held: once it fails,
			// it tries again, and learns whose turn it is.
			w.dirty = true
			continue
		}
		if m.closedErr == nil && m.eligible(w) {
			m.startWaiterTimer(w, lockTurnGrace)
			w.skip = next
		}
	}
}

// ---- shutdown ----

func (m *LockManager) onShutdown(ctx actor.Context, s *messages.Shutdown) {
	if m.closedErr != nil {
		ctx.Respond(&messages.ShutdownResult{})
		return
	}
	m.closedErr = s.Err
	if m.closedErr == nil {
		m.closedErr = errors.New("xsync: lock manager shut down")
	}
	m.shutdown = ctx.Sender()
	for _, w := range m.waiters {
		m.removeWaiter(w)
		w.respond(m, &messages.AcquireResult{Err: m.closedErr})
	}
	for _, l := range m.leases {
		m.dropLease(l)
		close(l.lost)
		m.runRelease(l.client, l.db, l.token, l.keys, l.names, nil)
	}
	byDB := map[int][]dbKey{}
	for k := range m.queued {
		byDB[k.db] = append(byDB[k.db], k)
	}
	for db, ks := range byDB {
		var names lockNames
		for _, k := range ks {
			names.add(k.key, m.names[k.key])
		}
		m.runLeave(m.clients[db], db, names.all())
	}
	m.queued = map[dbKey]bool{}
	m.stopTimers()
	for channel := range m.channels {
		ctx.Send(m.conn, &messages.Unsubscribe{Channel: channel, Subscriber: m.self})
	}
	m.channels = map[string]int{}
	m.maybeShutDown()
}

// maybeShutDown answers Shutdown once no Redis call is under way.
func (m *LockManager) maybeShutDown() {
	if m.shutdown == nil || m.busy > 0 {
		return
	}
	m.sys.Root.Send(m.shutdown, &messages.ShutdownResult{})
	m.shutdown = nil
}

func (m *LockManager) stopTimers() {
	if m.timer != nil {
		m.timer.Stop()
	}
	for _, w := range m.waiters {
		if w.timer != nil {
			w.timer.Stop()
		}
	}
}

// ---- helpers ----

// goRedis runs call, a Redis call, in a goroutine and sends its result to
// the actor.
func (m *LockManager) goRedis(call func() any) {
	m.busy++
	self, sys := m.self, m.sys
	go func() { sys.Root.Send(self, call()) }()
}

func ttlMillis(d time.Duration) int64 {
	return max(d.Milliseconds(), 1)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// isCorrupt reports whether a script failed on data xsync did not write.
func isCorrupt(err error) bool {
	kind, _ := redisx.Classify(err)
	return kind == redisx.Corrupt
}
