package actors

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

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
	semAcquireScript   = Scripts.Get("sem_acquire")
	semReleaseScript   = Scripts.Get("sem_release")
	semRefreshScript   = Scripts.Get("sem_refresh")
	semAvailableScript = Scripts.Get("sem_available")
)

// SemaphoreConfig configures a Semaphore actor.
type SemaphoreConfig struct {
	Name    string
	DB      int
	Permits int // >= 1 (the facade checks)
	Keys    redisx.Keys
	Client  redis.Scripter // the DB's client for scripts (go-redis retries off)
	Conn    *actor.PID     // the connection actor, for pub/sub
	Log     *zap.Logger
	Closed  error // the answer to requests after a Stop without Shutdown
}

// Semaphore is the actor of one semaphore of one client: its waiters, in
// arrival order, and the leases of permits it granted and renews. Like the
// LockManager it answers ReleaseLease and RefreshLease, so that a Lease can
// stand for permits.
//
// Every waiting request queues in the semaphore's queue in Redis, so that
// requests are served in order across every client (sem_acquire). Waiting
// costs no Redis command while nothing changes: a refused request returns
// the earliest time something could change by itself (a lease's expiry, the
// end of a dead head's turn), the actor keeps one timer for the earliest of
// those, and a release on any client wakes it through pub/sub. One call
// tries up to semMaxBatch requests. The actor subscribes before its first
// try, so that no release published after a refusal can be missed.
type Semaphore struct {
	cfg     SemaphoreConfig
	log     *zap.Logger
	keys    []string
	channel string

	queue   []*semWaiter
	byToken map[string]*semWaiter
	leases  map[uint64]*semLease
	lastID  uint64

	subscribing, subscribed bool
	attempting              bool

	timer    *time.Timer
	timerAt  time.Time
	timerGen uint64
	backoff  time.Duration

	pending    int
	closedErr  error
	shutdownTo *actor.PID
	finished   bool
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

type semLease struct {
	id        uint64
	token     string
	ttl       time.Duration
	autoRenew bool
	lost      chan struct{}
	lostOnce  bool
	expires   time.Time // local: no later than Redis' expiry
	timer     *time.Timer
	timerGen  uint64
}

// Messages the Semaphore sends itself.
type (
	semDone struct {
		batch []*semWaiter
		start time.Time
		now   int64
		outs  [][2]int64
		err   error
	}
	semTick  struct{ gen uint64 }
	semRenew struct {
		id  uint64
		gen uint64
	}
	semRenewed struct {
		id    uint64
		to    *actor.PID // a Refresh waiting for the answer; nil for a renewal
		ttl   time.Duration
		start time.Time
		held  bool
		err   error
	}
	semOpDone struct {
		to     *actor.PID
		answer any
	}
)

// NewSemaphore returns the producer of a Semaphore actor.
func NewSemaphore(cfg SemaphoreConfig) actor.Producer {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	return func() actor.Actor {
		k := cfg.Keys
		return &Semaphore{
			cfg: cfg,
			log: cfg.Log,
			keys: []string{
				k.Semaphore(cfg.Name, "holders"), k.Semaphore(cfg.Name, "held"), k.Semaphore(cfg.Name, "queue"),
				k.Semaphore(cfg.Name, "wanted"), k.Semaphore(cfg.Name, "meta"),
			},
			channel: k.SemaphoreChannel(cfg.DB),
			byToken: map[string]*semWaiter{},
			leases:  map[uint64]*semLease{},
		}
	}
}

// Receive implements actor.Actor.
func (s *Semaphore) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *messages.SemAcquire:
		s.onAcquire(ctx, m)
	case *messages.Withdraw:
		s.onWithdraw(ctx, m)
	case *messages.ReleaseLease:
		s.onRelease(ctx, m)
	case *messages.RefreshLease:
		s.onRefresh(ctx, m)
	case *messages.SemAvailable:
		s.onAvailable(ctx)
	case *messages.LockStats:
		busy := s.pending
		if s.subscribing {
			busy++
		}
		ctx.Respond(&messages.LockStatsResult{Waiters: len(s.byToken), Leases: len(s.leases), Busy: busy})
	case *messages.SubscribeResult:
		s.onSubscribed(ctx, m)
	case *messages.Published:
		if m.Channel == s.channel && m.Payload == s.cfg.Name {
			s.wake(ctx)
		}
	case *messages.Resubscribed:
		s.wake(ctx)
	case *semTick:
		if m.gen == s.timerGen && s.timer != nil {
			s.timer = nil
			s.wake(ctx)
		}
	case *semDone:
		s.onDone(ctx, m)
	case *semRenew:
		s.onRenewTick(ctx, m)
	case *semRenewed:
		s.onRenewed(ctx, m)
	case *semOpDone:
		s.pending--
		if m.to != nil {
			ctx.Send(m.to, m.answer)
		}
		s.maybeFinish(ctx)
	case *messages.Shutdown:
		s.onShutdown(ctx, m)
	case *actor.Stopping:
		s.stopTimer()
		for _, l := range s.leases {
			s.stopLeaseTimer(l)
			s.loseLease(l)
		}
		if s.closedErr == nil {
			for _, w := range s.queue {
				if !w.done {
					s.answer(ctx, w, &messages.AcquireResult{Err: s.cfg.Closed})
				}
			}
		}
	}
}

// --- acquiring ---

func (s *Semaphore) onAcquire(ctx actor.Context, m *messages.SemAcquire) {
	if s.closedErr != nil {
		ctx.Respond(&messages.AcquireResult{Err: s.closedErr})
		return
	}
	if _, dup := s.byToken[m.Token]; dup || m.N <= 0 || m.N > s.cfg.Permits || m.TTL < time.Millisecond {
		ctx.Respond(&messages.AcquireResult{Err: fmt.Errorf("xsync: semaphore %q: bad request (n=%d)", s.cfg.Name, m.N)})
		return
	}
	w := &semWaiter{token: m.Token, n: m.N, ttl: m.TTL, autoRenew: m.AutoRenew, try: m.Try, sender: ctx.Sender()}
	s.queue = append(s.queue, w)
	s.byToken[w.token] = w
	s.attempt(ctx)
}

func (s *Semaphore) onWithdraw(ctx actor.Context, m *messages.Withdraw) {
	w := s.byToken[m.Token]
	if w == nil {
		return
	}
	s.answer(ctx, w, &messages.AcquireResult{NotObtained: true})
	if !w.inFlight {
		s.leave(ctx, w)
	}
	s.prune()
	s.resetTimer(ctx)
}

// leave takes an answered waiter out of Redis: out of the queue, and its
// permits back if a lost answer granted them.
func (s *Semaphore) leave(ctx actor.Context, w *semWaiter) {
	if w.queued {
		w.queued = false
		s.release(ctx, nil, w.token)
	}
}

// wake tries every waiter again: something changed.
func (s *Semaphore) wake(ctx actor.Context) {
	for _, w := range s.queue {
		w.tried = false
	}
	s.attempt(ctx)
}

// attempt starts a sem_acquire call for the first untried waiters, unless
// one is under way.
func (s *Semaphore) attempt(ctx actor.Context) {
	if s.closedErr != nil || s.attempting {
		return
	}
	s.prune()
	if len(s.queue) == 0 {
		return
	}
	if !s.subscribed {
		if !s.subscribing {
			s.subscribing = true
			ctx.Request(s.cfg.Conn, &messages.Subscribe{Channel: s.channel, Subscriber: ctx.Self()})
		}
		return
	}
	var batch []*semWaiter
	for _, w := range s.queue {
		if !w.tried && len(batch) < semMaxBatch {
			batch = append(batch, w)
		}
	}
	if len(batch) == 0 {
		return
	}
	args := make([]any, 0, 4+4*len(batch))
	args = append(args, s.cfg.Permits, semTurnGrace.Milliseconds(), s.channel, s.cfg.Name)
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
	s.goCall(ctx, func(c context.Context) any {
		start := time.Now()
		now, outs, err := runSemAcquire(c, cl, keys, args, len(batch))
		return &semDone{batch: batch, start: start, now: now, outs: outs, err: err}
	})
}

func runSemAcquire(ctx context.Context, cl redis.Scripter, keys []string, args []any, n int) (int64, [][2]int64, error) {
	res, err := semAcquireScript.Run(ctx, cl, keys, args...).Slice()
	if err != nil {
		return 0, nil, err
	}
	if len(res) != n+1 {
		return 0, nil, fmt.Errorf("sem_acquire: %d replies for %d requests", len(res)-1, n)
	}
	now, ok := res[0].(int64)
	if !ok {
		return 0, nil, fmt.Errorf("sem_acquire: server time is %T", res[0])
	}
	outs := make([][2]int64, n)
	for i, r := range res[1:] {
		a, ok := r.([]any)
		if !ok || len(a) != 2 {
			return 0, nil, fmt.Errorf("sem_acquire: reply %v", r)
		}
		nums, ok := int64s(a)
		if !ok {
			return 0, nil, fmt.Errorf("sem_acquire: reply %v", a)
		}
		outs[i] = [2]int64{nums[0], nums[1]}
	}
	return now, outs, nil
}

func (s *Semaphore) onDone(ctx actor.Context, m *semDone) {
	s.pending--
	s.attempting = false
	for _, w := range m.batch {
		w.inFlight = false
	}
	if m.err != nil {
		s.log.Warn("semaphore acquire failed", zap.Error(m.err))
		s.backoff = min(max(2*s.backoff, semRetryMin), semRetryMax)
		err := fmt.Errorf("semaphore %q: %w", s.cfg.Name, m.err)
		for _, w := range m.batch {
			// Whether the call ran is unknown: the token may hold permits.
			w.queued = true
			switch {
			case w.done:
				s.leave(ctx, w)
			case w.try:
				s.answer(ctx, w, &messages.AcquireResult{Err: err})
				s.leave(ctx, w)
			default:
				w.at = time.Now().Add(s.backoff)
			}
		}
	} else {
		s.backoff = 0
		for i, w := range m.batch {
			o := m.outs[i]
			if o[0] == 1 {
				if w.done {
					// Withdrawn meanwhile (a try too): give the permits back.
					w.queued = true
					s.leave(ctx, w)
					continue
				}
				w.queued = false
				s.grant(ctx, w, m.start)
				continue
			}
			if w.done {
				s.leave(ctx, w)
				continue
			}
			if w.try {
				s.answer(ctx, w, &messages.AcquireResult{NotObtained: true})
				continue
			}
			w.at = time.Time{}
			if o[1] >= 0 {
				// Counted from the answer: never before the server's time.
				w.at = time.Now().Add(time.Duration(o[1]-m.now) * time.Millisecond)
			}
		}
	}
	s.prune()
	s.resetTimer(ctx)
	s.maybeFinish(ctx)
	s.attempt(ctx)
}

func (s *Semaphore) grant(ctx actor.Context, w *semWaiter, start time.Time) {
	s.lastID++
	l := &semLease{id: s.lastID, token: w.token, ttl: w.ttl, autoRenew: w.autoRenew,
		lost: make(chan struct{}), expires: start.Add(w.ttl)}
	s.leases[l.id] = l
	s.scheduleLease(ctx, l)
	s.answer(ctx, w, &messages.AcquireResult{Lease: &messages.LeaseGrant{ID: l.id, Lost: l.lost}})
}

func (s *Semaphore) answer(ctx actor.Context, w *semWaiter, res *messages.AcquireResult) {
	w.done = true
	delete(s.byToken, w.token)
	if w.sender != nil {
		ctx.Send(w.sender, res)
	}
}

// prune drops the answered waiters that no call is trying.
func (s *Semaphore) prune() {
	s.queue = slices.DeleteFunc(s.queue, func(w *semWaiter) bool { return w.done && !w.inFlight })
}

// resetTimer sets the timer for the earliest time a waiter may be served
// without a release, or stops it.
func (s *Semaphore) resetTimer(ctx actor.Context) {
	var at time.Time
	for _, w := range s.queue {
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
	gen, self, root := s.timerGen, ctx.Self(), ctx.ActorSystem().Root
	s.timer = time.AfterFunc(time.Until(at), func() { root.Send(self, &semTick{gen: gen}) })
	s.timerAt = at
}

func (s *Semaphore) stopTimer() {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
		s.timerGen++
	}
}

func (s *Semaphore) onSubscribed(ctx actor.Context, m *messages.SubscribeResult) {
	s.subscribing = false
	if s.closedErr != nil {
		return
	}
	if m.Err != nil {
		err := fmt.Errorf("semaphore %q: subscribe: %w", s.cfg.Name, m.Err)
		s.log.Warn("semaphore subscribe failed", zap.Error(m.Err))
		for _, w := range s.queue {
			if !w.done {
				s.answer(ctx, w, &messages.AcquireResult{Err: err})
			}
		}
		s.prune()
		return
	}
	s.subscribed = true
	s.wake(ctx)
}

// --- leases ---

// scheduleLease sets the lease's timer: its next renewal, or its expiry.
func (s *Semaphore) scheduleLease(ctx actor.Context, l *semLease) {
	s.stopLeaseTimer(l)
	at := l.expires
	if l.autoRenew {
		at = l.expires.Add(-l.ttl + l.ttl/3)
	}
	l.timerGen++
	id, gen, self, root := l.id, l.timerGen, ctx.Self(), ctx.ActorSystem().Root
	l.timer = time.AfterFunc(time.Until(at), func() { root.Send(self, &semRenew{id: id, gen: gen}) })
}

func (s *Semaphore) stopLeaseTimer(l *semLease) {
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
		l.timerGen++
	}
}

func (s *Semaphore) onRenewTick(ctx actor.Context, m *semRenew) {
	l := s.leases[m.id]
	if l == nil || l.timerGen != m.gen {
		return
	}
	l.timer = nil
	if !time.Now().Before(l.expires) {
		// Not renewed in time (or no renewal): Redis lets it go now.
		s.loseLease(l)
		delete(s.leases, l.id)
		return
	}
	s.refresh(ctx, l, nil, l.ttl)
}

// refresh runs sem_refresh for l; to, when set, gets the answer.
func (s *Semaphore) refresh(ctx actor.Context, l *semLease, to *actor.PID, ttl time.Duration) {
	cl, keys, id, token := s.cfg.Client, s.keys, l.id, l.token
	s.goCall(ctx, func(c context.Context) any {
		start := time.Now()
		n, err := semRefreshScript.Run(c, cl, keys, token, durMs(ttl)).Int64()
		return &semRenewed{id: id, to: to, ttl: ttl, start: start, held: n == 1, err: err}
	})
}

func (s *Semaphore) onRenewed(ctx actor.Context, m *semRenewed) {
	s.pending--
	defer s.maybeFinish(ctx)
	l := s.leases[m.id]
	switch {
	case l == nil:
		if m.to != nil {
			ctx.Send(m.to, &messages.RefreshResult{NotHeld: true})
		}
	case m.err != nil:
		s.log.Warn("semaphore lease refresh failed", zap.Error(m.err))
		if m.to != nil {
			ctx.Send(m.to, &messages.RefreshResult{Err: fmt.Errorf("semaphore %q: %w", s.cfg.Name, m.err)})
		}
		if l.timer == nil && s.closedErr == nil {
			// Try again soon, until the lease runs out.
			l.timerGen++
			id, gen, self, root := l.id, l.timerGen, ctx.Self(), ctx.ActorSystem().Root
			l.timer = time.AfterFunc(min(semRetryMax, max(0, time.Until(l.expires))), func() { root.Send(self, &semRenew{id: id, gen: gen}) })
		}
	case !m.held:
		s.stopLeaseTimer(l)
		s.loseLease(l)
		delete(s.leases, l.id)
		if m.to != nil {
			ctx.Send(m.to, &messages.RefreshResult{NotHeld: true})
		}
	default:
		l.ttl, l.expires = m.ttl, m.start.Add(m.ttl)
		if s.closedErr == nil {
			s.scheduleLease(ctx, l)
		}
		if m.to != nil {
			ctx.Send(m.to, &messages.RefreshResult{})
		}
	}
}

func (s *Semaphore) onRefresh(ctx actor.Context, m *messages.RefreshLease) {
	l := s.leases[m.ID]
	switch {
	case s.closedErr != nil:
		ctx.Respond(&messages.RefreshResult{Err: s.closedErr})
	case l == nil:
		ctx.Respond(&messages.RefreshResult{NotHeld: true})
	default:
		s.refresh(ctx, l, ctx.Sender(), m.TTL)
	}
}

func (s *Semaphore) onRelease(ctx actor.Context, m *messages.ReleaseLease) {
	l := s.leases[m.ID]
	if l == nil {
		if ctx.Sender() != nil {
			if s.closedErr != nil {
				ctx.Respond(&messages.ReleaseResult{Err: s.closedErr})
			} else {
				ctx.Respond(&messages.ReleaseResult{NotHeld: true})
			}
		}
		return
	}
	s.stopLeaseTimer(l)
	delete(s.leases, l.id)
	s.release(ctx, ctx.Sender(), l.token)
}

// release runs sem_release for token; to, when set, gets the answer.
func (s *Semaphore) release(ctx actor.Context, to *actor.PID, tokens ...string) {
	if s.finished {
		s.log.Warn("semaphore release after shutdown: dropped", zap.Strings("tokens", tokens))
		return
	}
	args := make([]any, 0, 2+len(tokens))
	args = append(args, s.channel, s.cfg.Name)
	for _, t := range tokens {
		args = append(args, t)
	}
	cl, keys, log, name := s.cfg.Client, s.keys, s.log, s.cfg.Name
	s.goCall(ctx, func(c context.Context) any {
		live, err := semReleaseScript.Run(c, cl, keys, args...).Int64()
		if err != nil {
			log.Warn("semaphore release failed", zap.Error(err))
			return &semOpDone{to: to, answer: &messages.ReleaseResult{Err: fmt.Errorf("semaphore %q: %w", name, err)}}
		}
		return &semOpDone{to: to, answer: &messages.ReleaseResult{NotHeld: live == 0}}
	})
}

func (s *Semaphore) loseLease(l *semLease) {
	if !l.lostOnce {
		l.lostOnce = true
		close(l.lost)
	}
}

func (s *Semaphore) onAvailable(ctx actor.Context) {
	if s.closedErr != nil {
		ctx.Respond(&messages.SemAvailableResult{Err: s.closedErr})
		return
	}
	to, cl, keys, permits, name := ctx.Sender(), s.cfg.Client, s.keys, s.cfg.Permits, s.cfg.Name
	s.goCall(ctx, func(c context.Context) any {
		r, err := semAvailableScript.Run(c, cl, keys, permits).Int64Slice()
		if err == nil && len(r) != 2 {
			err = fmt.Errorf("sem_available: %d replies", len(r))
		}
		if err != nil {
			return &semOpDone{to: to, answer: &messages.SemAvailableResult{Err: fmt.Errorf("semaphore %q: %w", name, err)}}
		}
		return &semOpDone{to: to, answer: &messages.SemAvailableResult{Available: int(r[0]), Queued: int(r[1])}}
	})
}

// goCall runs call in a goroutine and sends its result to the actor.
func (s *Semaphore) goCall(ctx actor.Context, call func(context.Context) any) {
	s.pending++
	self, root := ctx.Self(), ctx.ActorSystem().Root
	go func() {
		c, cancel := context.WithTimeout(context.Background(), semCallTimeout)
		msg := call(c)
		cancel()
		root.Send(self, msg)
	}()
}

// --- shutdown ---

func (s *Semaphore) onShutdown(ctx actor.Context, m *messages.Shutdown) {
	if s.closedErr != nil {
		ctx.Respond(&messages.ShutdownResult{})
		return
	}
	s.closedErr = m.Err
	if s.closedErr == nil {
		s.closedErr = s.cfg.Closed
	}
	s.stopTimer()
	var tokens []string
	for _, w := range s.queue {
		if !w.done {
			s.answer(ctx, w, &messages.AcquireResult{Err: s.closedErr})
		}
		if !w.inFlight && w.queued {
			w.queued = false
			tokens = append(tokens, w.token)
		}
	}
	s.prune()
	// The client's leases are released, and known lost.
	for _, l := range s.leases {
		s.stopLeaseTimer(l)
		s.loseLease(l)
		tokens = append(tokens, l.token)
	}
	clear(s.leases)
	if len(tokens) > 0 {
		s.release(ctx, nil, tokens...)
	}
	if s.subscribed || s.subscribing {
		ctx.Send(s.cfg.Conn, &messages.Unsubscribe{Channel: s.channel, Subscriber: ctx.Self()})
		s.subscribed = false
	}
	s.shutdownTo = ctx.Sender()
	s.maybeFinish(ctx)
}

// maybeFinish answers Shutdown once no Redis call is under way.
func (s *Semaphore) maybeFinish(ctx actor.Context) {
	if s.closedErr == nil || s.finished || s.pending > 0 {
		return
	}
	s.finished = true
	if s.shutdownTo != nil {
		ctx.Send(s.shutdownTo, &messages.ShutdownResult{})
	}
}
