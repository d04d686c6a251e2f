package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/redisxsync/xsync/internal/xerr"
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
	// lockTransferLease is the longest a key transferred by a release
	// (lock_transfer.go) is held before its new holder confirms it: a holder
	// that died delays the key by no more. It is longer than a turn so that
	// a live holder whose news or timer comes late (a busy machine, a GC
	// pause) does not lose its lease.
	lockTransferLease = 500 * time.Millisecond
	// lockConfirmAfter is when the holder of a transferred key renews it to
	// its full lease: early, so that the renewal has most of the transfer's
	// lease to land; a lease released sooner never sends it.
	lockConfirmAfter = 50 * time.Millisecond
)

// lockManager is the actor that owns the locks of one client: the waiters,
// FIFO per key, and the leases the client holds.
//
// Waiting costs no Redis command while nothing changes. The manager
// subscribes to the channel on which the releases of a waiter's keys are
// published, before the waiter's first attempt, so that no release is
// missed: one per DB, or per slot on a Cluster (lock_turns.go). Only the
// head waiter of a key tries, and only when no lease of
// this client holds one of its keys; a waiter that found a key taken is
// tried again when a release of one of its keys is published, or when a
// timer fires at the blocker's expiry (a holder that died without releasing),
// and every waiter is tried again after a pub/sub reconnection.
//
// Clients take turns: a client whose waiter found a key taken queues (once,
// keeping its place) in the key's turn queue in Redis, with a ticket for
// that waiter. A release transfers the key to the ticket of the client at
// the head of the queue (lock_transfer.go), or publishes whose turn it is
// (a head whose waiter wants several keys): only that client tries; the
// others set a timer of lockTurnGrace, after which a turn that was not
// taken is over (lockTransferLease for a key transferred to another
// client, which ends unless confirmed). A client's turn serves, in their
// own order, its waiters for the key that were waiting when the turn began
// (for a while: see NewLockManager): each release hands the key straight
// to the next of them, and the clients queued behind hear nothing. Then
// the release queues the client again, with its next waiter's ticket,
// behind the clients that waited before: the lock passes from client to
// client in the order they asked, at one release script per acquisition.
//
// Leases with auto-renewal are renewed every TTL/3, every lease due at about
// the same time in one pipeline per DB. A lease that a renewal or a Refresh
// finds gone, or that could not be renewed before its TTL ran out, is lost:
// its Lost channel is closed and the keys it still holds are released.
//
// Redis calls run in goroutines that send their result back to the actor:
// the mailbox never waits for Redis.
type lockManager struct {
	worker
	id   string // this client's id in the turn queues
	keys redisx.Keys
	conn *actor.PID
	log  *zap.Logger
	// ack: grants and renewals count once ack.Replicas replicas confirmed
	// them (lock_ack.go).
	ack redisx.Ack
	// events reach the client's metrics.
	events LockEvents
	// heard counts the messages heard on the release channels (ReadLockStats).
	heard int

	// wakes caches the release channels and their script arguments
	// (see wakeOf), by DB or, on sharded pub/sub, by slot.
	wakes map[int]wakeEntry
	idArg any // id, as the scripts take it

	seq     uint64
	waiters map[string]*lockWaiter // by token; tries included
	// orphans are the waiters withdrawn during their attempt, by the gen
	// of the attempt: what it took is released when it answers.
	orphans map[uint64]*lockWaiter
	// superseded are the waiters granted by a transfer during their
	// attempt: its answer confirms the lease, or is given back if the lease
	// is gone.
	superseded map[uint64]*lockWaiter // by gen, as orphans
	// releasing counts the releases under way by token and key; rerelease are the
	// tokens to release again once they are done (see onSupersededAttempt).
	releasing map[tokenKey]int
	rerelease map[tokenKey]*messages.Acquire
	// crossed are the keys that came to a token by a transfer from another
	// client, until that token's release of the key answers (or its lease
	// is lost without one): that release queues this client before it pops
	// the head, and deletes the ticket the transfer left (lock_release.lua).
	crossed map[tokenKey]bool
	turn    time.Duration // how long a turn may go on (see NewLockManager)
	// turns: when this client's turn on a key it holds began (its first
	// lease of the key since another client held it, or since it was free).
	turns  map[dbKey]time.Time
	queues map[dbKey]*waitQueue[*lockWaiter]
	leases map[uint64]*heldLease
	held   map[dbKey]uint64 // the lease of this client holding a key
	// queued are the keys in whose turn queue this client may be: left
	// when its last waiter for the key is withdrawn.
	queued  map[dbKey]bool
	clients map[int]redis.UniversalClient // script clients by DB
	names   map[string]keyNames           // lock key -> the names of its other keys
	// clock is the reading of the server's clock that dates the transfers
	// other clients' releases publish (see readClock).
	clock serverClock

	subs       map[string]*lockSub        // release channels, by name (lock_turns.go)
	waiterSubs map[*lockWaiter][]*lockSub // the channels each waiter needs
	subQueue   []string                   // channels whose Subscribe waits for the one in flight
	subFlight  string                     // channel of the Subscribe in flight, "" if none
	sweep      *time.Timer                // drops the idle channels (sharded pub/sub)

	timer   *time.Timer // fires at the earliest lease renewal or expiry
	timerAt time.Time

	// nextGroups are the locks across slots whose next slot group starts
	// once the message under way is handled (lock_groups.go).
	nextGroups []*lockSet
}

// dbKey is a lock key (its Redis name) on one DB.
type dbKey struct {
	db  int
	key string
}

// tokenKey is a key of an owner token: the slot groups of one lock share
// their token, and are released each on its own.
type tokenKey struct {
	token string
	key   dbKey
}

// Messages the lock manager sends itself from its goroutines and timers.
type (
	attemptDone struct {
		callResult
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
		// unreplicated: ok, but fewer replicas than ack.Replicas confirmed
		// it: the grant is undone.
		unreplicated bool
		err          error
	}
	waiterTimer struct {
		token string
		gen   uint64
	}
	releaseDone struct {
		callResult
		then  func(error) // told the outcome, when not nil
		token string
		keys  []dbKey
		// next are the waiters of this client whose tickets went with the
		// release, by key (nil for none); fences, the fences of the keys
		// transferred to them (0 for none).
		next []*lockWaiter
		// kept: the release went on with this client's turn (one key),
		// straight to next[0].
		kept      bool
		sentAt    time.Time
		freed     int
		fences    []int64
		serverNow int64
		err       error
	}
	leaveDone   struct{ callResult }
	refreshDone struct {
		callResult
		sender *actor.PID
		id     uint64
		ttl    time.Duration
		sentAt time.Time
		ok     bool
		// unreplicated: ok on the master, but not confirmed by the replicas.
		unreplicated bool
		err          error
	}
	renewDone struct {
		callResult
		results []renewResult
	}
	renewResult struct {
		id     uint64
		parts  int // the lease's parts the renewal covered
		sentAt time.Time
		ok     bool
		err    error
	}
	leaseTick struct{}
)

// NewLockManager returns the producer of a client's LockManager. keys names
// the Redis keys and channels; conn is the client's Connection actor, which
// serves the pub/sub subscriptions; ack, how many replicas confirm a grant
// or a renewal; events receive what the client's metrics count.
//
// turn is how long a client's turn on a key may go on: a release hands the
// key straight to the client's next waiter, without a word to the clients
// queued behind, while that waiter was already waiting when the turn began
// and the turn began less than turn ago. Then the key goes to the next
// client in the queue. 0: every release ends the turn.
func NewLockManager(id string, keys redisx.Keys, conn *actor.PID, ack redisx.Ack, turn time.Duration, log *zap.Logger, events LockEvents) actor.Producer {
	return func() actor.Actor {
		return &lockManager{
			id:         id,
			idArg:      id,
			ack:        ack,
			turn:       turn,
			keys:       keys,
			conn:       conn,
			log:        log,
			events:     events,
			waiters:    map[string]*lockWaiter{},
			orphans:    map[uint64]*lockWaiter{},
			superseded: map[uint64]*lockWaiter{},
			releasing:  map[tokenKey]int{},
			rerelease:  map[tokenKey]*messages.Acquire{},
			crossed:    map[tokenKey]bool{},
			turns:      map[dbKey]time.Time{},
			queues:     map[dbKey]*waitQueue[*lockWaiter]{},
			leases:     map[uint64]*heldLease{},
			held:       map[dbKey]uint64{},
			queued:     map[dbKey]bool{},
			clients:    map[int]redis.UniversalClient{},
			names:      map[string]keyNames{},
			subs:       map[string]*lockSub{},
			waiterSubs: map[*lockWaiter][]*lockSub{},
		}
	}
}

// Receive implements actor.Actor.
func (m *lockManager) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		m.started(ctx)
	case *messages.Acquire:
		m.acquire(ctx, msg)
	case *messages.WithdrawAcquire:
		m.withdraw(msg.Token)
	case *messages.ReleaseLease:
		m.release(ctx, msg.ID)
	case *messages.RefreshLease:
		m.refresh(ctx, msg)
	case *messages.ReadLockStats:
		busy := m.busy + len(m.subQueue)
		if m.subFlight != "" {
			busy++
		}
		ctx.Respond(&messages.ReadLockStatsResult{Waiters: len(m.waiters), Leases: len(m.leases), Busy: busy, Heard: m.heard})
	case *messages.SubscribeResult:
		m.onSubscribed(msg)
	case *messages.Published:
		if sub, ok := m.subs[msg.Channel]; ok {
			m.heard++
			now, turns := decodeTurns(msg.Payload)
			m.onTurns(sub.db, now, turns)
		}
	case *messages.Resubscribed:
		if _, ok := m.subs[msg.Channel]; ok {
			m.log.Info("lock releases may have been missed: retrying the waiters", zap.String("channel", msg.Channel))
			m.wakeChannel(msg.Channel)
		}
	case *attemptDone:
		m.onAttempt(msg)
	case *waiterTimer:
		if w := m.waiters[msg.token]; w != nil && w.gen == msg.gen && !w.inflight {
			skip := w.skip
			w.timer, w.skip, w.turnTimer = nil, "", false
			if m.closedErr == nil && m.eligible(w) {
				m.attempt(w, skip)
			}
		}
	case *subSweep:
		m.onSubSweep()
	case *leaveDone:
		m.callDone()
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
		m.endIdle()
	}
	if len(m.nextGroups) > 0 {
		m.startNextGroups(ctx)
	}
}

func (m *lockManager) onShutdown(ctx actor.Context, s *messages.Shutdown) {
	if !m.beginShutdown(ctx, s, xerr.ErrClosed) {
		return
	}
	for _, w := range m.waiters {
		m.removeWaiter(w)
		w.respond(m, &messages.AcquireResult{Err: m.closedErr})
	}
	for _, l := range m.leases {
		m.dropLease(l)
		close(l.lost)
		m.releaseLease(l, nil)
	}
	// One leave per release channel: per DB, or per slot on a Cluster,
	// whose scripts touch one slot each.
	byChannel := map[string][]dbKey{}
	for k := range m.queued {
		ch := m.wakeOf(k.db, k.key).Channel
		byChannel[ch] = append(byChannel[ch], k)
	}
	for _, ks := range byChannel {
		var names lockNames
		for _, k := range ks {
			names.add(k.key, m.names[k.key])
		}
		m.runLeave(m.clients[ks[0].db], ks[0].db, names.all())
	}
	m.queued = map[dbKey]bool{}
	m.stopTimers()
	for channel := range m.subs {
		ctx.Send(m.conn, &messages.Unsubscribe{Channel: channel, Subscriber: m.self})
	}
	m.subs = map[string]*lockSub{}
	m.maybeFinish()
}

func (m *lockManager) stopTimers() {
	if m.timer != nil {
		m.timer.Stop()
	}
	if m.sweep != nil {
		m.sweep.Stop()
	}
	for _, w := range m.waiters {
		if w.timer != nil {
			w.timer.Stop()
		}
	}
}

// wakeOf is the channel on which the releases of key (a Redis name) on DB
// db are published, redisx.Keys.LockWake, built once per DB (per slot on
// sharded pub/sub, where there is DB 0 only).
func (m *lockManager) wakeOf(db int, key string) redisx.Wake { return m.wakeEntry(db, key).wake }

// wakeArg is wakeOf(db, key).Arg() as the scripts take it.
func (m *lockManager) wakeArg(db int, key string) any { return m.wakeEntry(db, key).arg }

// wakeEntry is a release channel and its script argument.
type wakeEntry struct {
	wake redisx.Wake
	arg  any
}

func (m *lockManager) wakeEntry(db int, key string) wakeEntry {
	i := db
	if m.keys.Sharded {
		i = redisx.Slot(key)
	}
	e, ok := m.wakes[i]
	if !ok {
		w := m.keys.LockWake(db, key)
		e = wakeEntry{wake: w, arg: w.Arg()}
		if m.wakes == nil {
			m.wakes = map[int]wakeEntry{}
		}
		m.wakes[i] = e
	}
	return e
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
