package actors

import (
	"context"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/redisxsync/xsync/internal/xerr"
	"github.com/redisxsync/xsync/messages"
	"github.com/redisxsync/xsync/redisx"
)

// Limits of a semaphore actor.
const (
	// semMaxBatch bounds the requests of one sem_acquire call.
	semMaxBatch = 64
	// semCallTimeout bounds one script call.
	semCallTimeout = 5 * time.Second
	// semTurnGrace is how long the head of a semaphore's queue has to take
	// its permits once they are free: a head whose client died holds the
	// others up that long at most.
	semTurnGrace = 100 * time.Millisecond
	// A call that failed is tried again after a backoff between these.
	semRetryMin = 20 * time.Millisecond
	semRetryMax = time.Second
)

var (
	semAcquireScript   = registry.Get("sem_acquire")
	semReleaseScript   = registry.Get("sem_release")
	semRefreshScript   = registry.Get("sem_refresh")
	semAvailableScript = registry.Get("sem_available")
)

// SemaphoreConfig configures a semaphore actor.
type SemaphoreConfig struct {
	Name    string
	DB      int
	Permits int // >= 1 (the facade checks)
	Keys    redisx.Keys
	Client  redis.Scripter // the DB's client for scripts (go-redis retries off)
	Conn    *actor.PID     // the connection actor, for pub/sub
	Log     *zap.Logger
}

// semaphoreActor is the actor of one semaphore of one client: its waiters,
// in arrival order, and the leases of permits it granted and renews. Like
// the lock manager it answers WithdrawAcquire, ReleaseLease, RefreshLease
// and ReadLockStats, so that a Lease can stand for permits.
//
// Every waiting request queues in the semaphore's queue in Redis, so that
// requests are served in order across every client (sem_acquire). Waiting
// costs no Redis command while nothing changes: a refused request returns
// the earliest time something could change by itself (a lease's expiry, the
// end of a dead head's turn), the actor keeps one timer for the earliest of
// those, and a release on any client wakes it through pub/sub. One call
// tries up to semMaxBatch requests. The actor subscribes before its first
// try, so that no release published after a refusal can be missed.
type semaphoreActor struct {
	worker
	cfg     SemaphoreConfig
	log     *zap.Logger
	keys    []string
	channel redisx.Wake // Arg() for the scripts, Channel to subscribe

	queue   waitQueue[*semWaiter] // arrival order
	byToken map[string]*semWaiter
	leases  map[uint64]*semLease
	lastID  uint64

	subscribing, subscribed bool
	attempting              bool

	timer    *time.Timer
	timerAt  time.Time
	timerGen uint64
	backoff  time.Duration
}

type semWaiter struct {
	token     string
	n         int
	ttl       time.Duration
	autoRenew bool
	try       bool
	sender    *actor.PID

	tried    bool      // tried since the last change
	inFlight bool      // in the call under way
	done     bool      // answered
	queued   bool      // may be in the Redis queue (or hold permits: a lost answer)
	at       time.Time // refused: when to try again by itself; zero: on a release
}

// gone reports whether w may leave the queue: answered, and in no call (one
// in a call stays, so that permits granted to it are given back).
func (w *semWaiter) gone() bool { return w.done && !w.inFlight }

// Messages the semaphore actor sends itself.
type (
	semDone struct {
		callResult
		batch []*semWaiter
		start time.Time
		now   int64
		outs  [][2]int64
		err   error
	}
	semTick   struct{ gen uint64 }
	semOpDone struct {
		callResult
		to     *actor.PID // nil: nobody waits for the answer
		answer any
	}
)

// NewSemaphore returns the producer of a semaphore actor.
func NewSemaphore(cfg SemaphoreConfig) actor.Producer {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	return func() actor.Actor {
		k := cfg.Keys
		return &semaphoreActor{
			cfg: cfg,
			log: cfg.Log,
			keys: []string{
				k.Semaphore(cfg.Name, "holders"), k.Semaphore(cfg.Name, "held"), k.Semaphore(cfg.Name, "queue"),
				k.Semaphore(cfg.Name, "wanted"), k.Semaphore(cfg.Name, "meta"),
			},
			channel: k.SemaphoreWake(cfg.DB, cfg.Name),
			byToken: map[string]*semWaiter{},
			leases:  map[uint64]*semLease{},
		}
	}
}

// Receive implements actor.Actor.
func (s *semaphoreActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		s.started(ctx)
	case *messages.SemAcquire:
		s.onAcquire(ctx, m)
	case *messages.WithdrawAcquire:
		s.onWithdraw(ctx, m)
	case *messages.ReleaseLease:
		s.onRelease(ctx, m)
	case *messages.RefreshLease:
		s.onRefresh(ctx, m)
	case *messages.SemAvailable:
		s.onAvailable(ctx)
	case *messages.ReadLockStats:
		busy := s.busy
		if s.subscribing {
			busy++
		}
		ctx.Respond(&messages.ReadLockStatsResult{Waiters: len(s.byToken), Leases: len(s.leases), Busy: busy})
	case *messages.SubscribeResult:
		s.onSubscribed(ctx, m)
	case *messages.Published:
		if m.Channel == s.channel.Channel && m.Payload == s.cfg.Name {
			s.wake()
		}
	case *messages.Resubscribed:
		s.wake()
	case *semTick:
		if m.gen == s.timerGen && s.timer != nil {
			s.timer = nil
			s.wake()
		}
	case *semDone:
		s.onDone(ctx, m)
	case *semRenew:
		s.onRenewTick(m)
	case *semRenewed:
		s.onRenewed(ctx, m)
	case *semOpDone:
		if m.to != nil {
			ctx.Send(m.to, m.answer)
		}
		s.callDone()
	case *messages.Shutdown:
		s.onShutdown(ctx, m)
	case *actor.Stopping:
		s.stopTimer()
		for _, l := range s.leases {
			s.stopLeaseTimer(l)
			s.loseLease(l)
		}
		if s.closedErr == nil {
			for _, w := range s.queue.ws {
				if !w.done {
					s.answer(ctx, w, &messages.AcquireResult{Err: xerr.ErrClosed})
				}
			}
		}
	}
}

func (s *semaphoreActor) onAcquire(ctx actor.Context, m *messages.SemAcquire) {
	if s.closedErr != nil {
		ctx.Respond(&messages.AcquireResult{Err: s.closedErr})
		return
	}
	if _, dup := s.byToken[m.Token]; dup || m.N <= 0 || m.N > s.cfg.Permits || m.TTL < time.Millisecond {
		ctx.Respond(&messages.AcquireResult{Err: fmt.Errorf("xsync: semaphore %q: bad request (n=%d)", s.cfg.Name, m.N)})
		return
	}
	w := &semWaiter{token: m.Token, n: m.N, ttl: m.TTL, autoRenew: m.AutoRenew, try: m.Try, sender: ctx.Sender()}
	s.queue.push(w)
	s.byToken[w.token] = w
	s.attempt()
}

func (s *semaphoreActor) onWithdraw(ctx actor.Context, m *messages.WithdrawAcquire) {
	w := s.byToken[m.Token]
	if w == nil {
		return
	}
	s.answer(ctx, w, &messages.AcquireResult{Err: xerr.ErrNotObtained})
	if !w.inFlight {
		s.leave(w)
		s.queue.leave()
	}
	s.resetTimer()
}

// leave takes an answered waiter out of Redis: out of the queue, and its
// permits back if a lost answer granted them.
func (s *semaphoreActor) leave(w *semWaiter) {
	if w.queued {
		w.queued = false
		s.release(nil, w.token)
	}
}

// wake tries every waiter again: something changed.
func (s *semaphoreActor) wake() {
	for _, w := range s.queue.ws {
		w.tried = false
	}
	s.attempt()
}

// attempt starts a sem_acquire call for the first untried waiters, unless
// one is under way.
func (s *semaphoreActor) attempt() {
	if s.closedErr != nil || s.attempting || s.queue.trim() {
		return
	}
	if !s.subscribed {
		if !s.subscribing {
			s.subscribing = true
			s.root.RequestWithCustomSender(s.cfg.Conn, &messages.Subscribe{Channel: s.channel.Channel, Subscriber: s.self}, s.self)
		}
		return
	}
	var batch []*semWaiter
	for _, w := range s.queue.ws {
		if !w.done && !w.tried && len(batch) < semMaxBatch {
			batch = append(batch, w)
		}
	}
	if len(batch) == 0 {
		return
	}
	args := make([]any, 0, 4+4*len(batch))
	args = append(args, s.cfg.Permits, semTurnGrace.Milliseconds(), s.channel.Arg(), s.cfg.Name)
	for _, w := range batch {
		w.tried, w.inFlight = true, true
		// A waiting request queues in Redis (or holds permits) from now on.
		wait := "0"
		if !w.try {
			wait, w.queued = "1", true
		}
		args = append(args, w.token, w.n, durMs(w.ttl), wait)
	}
	s.attempting = true
	cl, keys := s.cfg.Client, s.keys
	s.goRedisFor(semCallTimeout, func(c context.Context) inlineMessage {
		start := time.Now()
		now, outs, err := runSemAcquire(c, cl, keys, args, len(batch))
		return &semDone{batch: batch, start: start, now: now, outs: outs, err: err}
	})
}

func (s *semaphoreActor) onDone(ctx actor.Context, m *semDone) {
	s.attempting = false
	for _, w := range m.batch {
		w.inFlight = false
	}
	if m.err != nil {
		s.log.Warn("semaphore acquire failed", zap.Error(m.err))
		s.backoff = min(max(2*s.backoff, semRetryMin), semRetryMax)
		err := s.wrap("acquire", m.err)
		for _, w := range m.batch {
			// Whether the call ran is unknown: the token may hold permits.
			w.queued = true
			switch {
			case w.done:
				s.leave(w)
			case w.try:
				s.answer(ctx, w, &messages.AcquireResult{Err: err})
				s.leave(w)
			default:
				w.at = time.Now().Add(s.backoff)
			}
		}
	} else {
		s.backoff = 0
		for i, w := range m.batch {
			o := m.outs[i]
			switch {
			case o[0] == 1 && w.done:
				// Withdrawn meanwhile (a try too): give the permits back.
				w.queued = true
				s.leave(w)
			case o[0] == 1:
				w.queued = false
				s.grant(ctx, w, m.start)
			case w.done:
				s.leave(w)
			case w.try:
				s.answer(ctx, w, &messages.AcquireResult{Err: xerr.ErrNotObtained})
			default:
				w.at = time.Time{}
				if o[1] >= 0 {
					// Counted from the answer: never before the server's time.
					w.at = time.Now().Add(time.Duration(o[1]-m.now) * time.Millisecond)
				}
			}
		}
	}
	for _, w := range m.batch {
		if w.done {
			s.queue.left()
		}
	}
	s.resetTimer()
	s.attempt()
	s.callDone()
}

func (s *semaphoreActor) answer(ctx actor.Context, w *semWaiter, res *messages.AcquireResult) {
	w.done = true
	delete(s.byToken, w.token)
	if w.sender != nil {
		ctx.Send(w.sender, res)
	}
}

// resetTimer sets the timer for the earliest time a waiter may be served
// without a release, or stops it.
func (s *semaphoreActor) resetTimer() {
	var at time.Time
	for _, w := range s.queue.ws {
		if !w.done && !w.at.IsZero() && (at.IsZero() || w.at.Before(at)) {
			at = w.at
		}
	}
	if at.IsZero() {
		s.stopTimer()
		return
	}
	if s.timer != nil && s.timerAt.Equal(at) {
		return
	}
	s.stopTimer()
	s.timerGen++
	s.timer, s.timerAt = s.sendAfter(time.Until(at), &semTick{gen: s.timerGen}), at
}

func (s *semaphoreActor) stopTimer() {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
		s.timerGen++
	}
}

func (s *semaphoreActor) onSubscribed(ctx actor.Context, m *messages.SubscribeResult) {
	s.subscribing = false
	if s.closedErr != nil {
		return
	}
	if m.Err != nil {
		err := s.wrap("subscribe", m.Err)
		s.log.Warn("semaphore subscribe failed", zap.Error(m.Err))
		for _, w := range s.queue.ws {
			if !w.done {
				s.answer(ctx, w, &messages.AcquireResult{Err: err})
				s.queue.left()
			}
		}
		s.queue.trim()
		return
	}
	s.subscribed = true
	s.wake()
}

func (s *semaphoreActor) wrap(op string, err error) error {
	return xerr.Redis(fmt.Sprintf("semaphore %q: %s", s.cfg.Name, op), err)
}

func (s *semaphoreActor) onShutdown(ctx actor.Context, m *messages.Shutdown) {
	if !s.beginShutdown(ctx, m, xerr.ErrClosed) {
		return
	}
	s.stopTimer()
	var tokens []string
	for _, w := range s.queue.ws {
		if !w.done {
			s.answer(ctx, w, &messages.AcquireResult{Err: s.closedErr})
		}
		// One in flight stays: its call's answer gives back what it got.
		if !w.inFlight && w.queued {
			w.queued = false
			tokens = append(tokens, w.token)
		}
	}
	// The client's leases are released, and known lost.
	for _, l := range s.leases {
		s.stopLeaseTimer(l)
		s.loseLease(l)
		tokens = append(tokens, l.token)
	}
	clear(s.leases)
	if len(tokens) > 0 {
		s.release(nil, tokens...)
	}
	if s.subscribed || s.subscribing {
		ctx.Send(s.cfg.Conn, &messages.Unsubscribe{Channel: s.channel.Channel, Subscriber: ctx.Self()})
		s.subscribed = false
	}
	s.maybeFinish()
}
