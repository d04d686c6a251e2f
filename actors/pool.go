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

// Limits of a pool actor.
const (
	// poolMaxBatch bounds the requests of one take call.
	poolMaxBatch = 128
	// poolCallTimeout bounds one script call.
	poolCallTimeout = 10 * time.Second
	// A take call that failed is tried again after a backoff between these.
	poolRetryMin = 50 * time.Millisecond
	poolRetryMax = 2 * time.Second
)

// DefaultMaxBypass is the bypass budget of a waiting request when
// PoolConfig.MaxBypass is not set: see Pool.
const DefaultMaxBypass = 16

// PoolErrors are the errors a Pool actor answers with. The facade gives its
// sentinels, so that callers match the answers with errors.Is.
type PoolErrors struct {
	NotAvailable error // a take that cannot be served
	NotFound     error // Get, Cooldown or Report of an id the pool does not hold
	Corrupt      error // a record that does not decode, a key of another type
	Closed       error // requests after a Stop without Shutdown
	Unavailable  error // Redis failed to answer
}

// PoolConfig configures a Pool actor.
type PoolConfig struct {
	Name   string
	DB     int
	Keys   redisx.Keys
	Client redis.Scripter // DB's client for scripts (go-redis retries off)
	Conn   *actor.PID     // the connection actor, for pub/sub
	Log    *zap.Logger
	Errors PoolErrors
	// MaxBypass is how many later requests may be served before a waiting
	// request that cannot be served yet, before it holds them back. 0 means
	// DefaultMaxBypass; negative means strict FIFO (no bypass at all).
	MaxBypass int
}

// Pool is the actor of one pool of one client. It serves the pool's
// requests: takes (Ask and AcquireRandom, waiting or not), Put, Get, Remove,
// Cooldown and Stats. The script calls run in goroutines; their results come
// back as messages, so the mailbox never waits on Redis.
//
// Takes are queued in arrival order and tried in batches: one pool_take call
// tries up to poolMaxBatch requests, in order, and may serve several. A new
// request is tried at once (with those that arrived with it). When something
// changes (a Put, Cooldown or hand-back published by any client, the timer,
// a pub/sub reconnection) a round begins: the whole queue is tried again, a
// batch after the other. While nothing changes, waiting costs no Redis
// command: a failed try returns the earliest time it could succeed and the
// actor keeps one timer, for the earliest of those times. The actor
// subscribes to the pool channel of its DB before its first try.
//
// Fairness: a waiting request that cannot be served yet (say it asks for 5
// and 3 are ready) does not stop the requests behind it, which may be
// served before it, but only MaxBypass times: then it holds back every
// request behind it until it is served, so that the containers it needs
// accumulate. A request for more containers than the pool holds never holds
// others back (it waits for a Put), and a one-shot request never does.
//
// Cancellation: a withdrawn request is dropped; a grant that raced the
// withdrawal is handed back (pool_handback restores NextAvailable and
// UsageCount), never lost, and so is a grant whose answer a failed call
// lost (the request is dropped before a new call finds it). A withdrawn
// request that held others back has them tried again at once.
type Pool struct {
	cfg  PoolConfig
	keys poolKeys
	log  *zap.Logger

	queue   []*poolWaiter // arrival order; answered ones until pruned
	byToken map[string]*poolWaiter
	// answered counts the answered waiters still in queue. A withdrawal
	// leaves its waiter there: dropping each at once made n cancellations
	// cost O(n²).
	answered int

	subscribing, subscribed bool
	attempting              bool // a take call is under way
	dirty                   bool // something changed: try every waiter again

	timer    *time.Timer
	timerAt  time.Time
	timerGen uint64
	backoff  time.Duration

	pending    int // goroutines running a script call
	closedErr  error
	shutdownTo *actor.PID
	finished   bool // Shutdown answered
}

type poolWaiter struct {
	token  string
	n      int
	random bool
	wait   bool
	sender *actor.PID
	budget int // bypasses left; -1: never holds others back

	inFlight bool      // part of the take call under way
	tried    bool      // tried since the last change (untried ones are a suffix of the queue)
	short    bool      // its last try failed with a time it could succeed at
	deadline time.Time // that time, on the local clock
	granted  bool      // served by the take call just answered
	done     bool      // answered
	// unsure: the last take call that tried it failed, so it may hold a
	// grant whose answer was lost. The next call finds that grant by the
	// token; a request dropped before then hands the token back.
	unsure bool
}

// Messages the Pool sends itself.
type (
	takeDone struct {
		batch []*poolWaiter
		start time.Time // local time just before the call
		now   int64     // server time of the call (µs)
		outs  []takeOutcome
		err   error
	}
	opDone struct {
		to     *actor.PID // nil: nobody waits for the answer
		answer any
	}
	poolTick struct {
		gen uint64
	}
)

// NewPool returns the producer of a Pool actor.
func NewPool(cfg PoolConfig) actor.Producer {
	if cfg.MaxBypass == 0 {
		cfg.MaxBypass = DefaultMaxBypass
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	return func() actor.Actor {
		return &Pool{
			cfg:     cfg,
			keys:    newPoolKeys(cfg.Keys, cfg.Name, cfg.DB),
			log:     cfg.Log,
			byToken: map[string]*poolWaiter{},
		}
	}
}

// Receive implements actor.Actor.
func (p *Pool) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *messages.PoolTake:
		p.onTake(ctx, m)
	case *messages.PoolWithdraw:
		p.onWithdraw(ctx, m)
	case *messages.PoolHandBack:
		p.handBack(ctx, []string{m.Token})
	case *messages.PoolPut:
		p.onPut(ctx, m)
	case *messages.PoolGet:
		p.onGet(ctx, m)
	case *messages.PoolRemove:
		p.onRemove(ctx, m)
	case *messages.PoolCooldown:
		p.onCooldown(ctx, m)
	case *messages.PoolReport:
		p.onReport(ctx, m)
	case *messages.PoolStats:
		p.onStats(ctx)
	case *messages.SubscribeResult:
		p.onSubscribed(ctx, m)
	case *messages.Published:
		if m.Channel == p.keys.channel && m.Payload == p.cfg.Name {
			p.wake(ctx)
		}
	case *messages.Resubscribed:
		p.wake(ctx)
	case *poolTick:
		if m.gen == p.timerGen && p.timer != nil {
			p.timer = nil
			p.wake(ctx)
		}
	case *takeDone:
		p.onTakeDone(ctx, m)
	case *opDone:
		p.pending--
		if m.to != nil {
			ctx.Send(m.to, m.answer)
		}
		p.maybeFinish(ctx)
	case *messages.Shutdown:
		p.onShutdown(ctx, m)
	case *actor.Stopping:
		p.stopTimer()
		if p.closedErr == nil {
			for _, w := range p.queue {
				if !w.done {
					p.answer(ctx, w, &messages.PoolTakeResult{Err: p.cfg.Errors.Closed})
				}
			}
			p.queue, p.answered = nil, 0
		}
	}
}

// --- takes ---

func (p *Pool) onTake(ctx actor.Context, m *messages.PoolTake) {
	if p.closedErr != nil {
		ctx.Respond(&messages.PoolTakeResult{Err: p.closedErr})
		return
	}
	if _, dup := p.byToken[m.Token]; dup || m.N <= 0 {
		ctx.Respond(&messages.PoolTakeResult{Err: fmt.Errorf("xsync: pool %q: bad take request (n=%d)", p.cfg.Name, m.N)})
		return
	}
	w := &poolWaiter{token: m.Token, n: m.N, random: m.Random, wait: m.Wait, sender: ctx.Sender(), budget: -1}
	if m.Wait && p.cfg.MaxBypass > 0 {
		w.budget = p.cfg.MaxBypass
	} else if m.Wait {
		w.budget = 0
	}
	// Untried: the next call tries it, with the waiters ahead of it only if
	// something changed since they were tried.
	p.queue = append(p.queue, w)
	p.byToken[w.token] = w
	p.attempt(ctx)
}

func (p *Pool) onWithdraw(ctx actor.Context, m *messages.PoolWithdraw) {
	w := p.byToken[m.Token]
	if w == nil {
		return // answered already
	}
	// Requests behind it were skipped only if its budget is spent: the
	// batch's allowance reached 0 on it.
	heldBack := w.holdsBack() && w.budget == 0
	timed := w.wait && w.short && p.timer != nil && w.deadline.Equal(p.timerAt)
	p.answer(ctx, w, &messages.PoolTakeResult{Err: fmt.Errorf("%w: pool %q: withdrawn", p.cfg.Errors.NotAvailable, p.cfg.Name)})
	// A request in flight stays in its batch: if it is served, the result
	// is handed back.
	if !w.inFlight && w.unsure {
		p.handBack(ctx, []string{w.token})
	}
	if p.answered*2 > len(p.queue) {
		p.prune()
	}
	if heldBack {
		// The requests it held back were skipped, not tried: try them
		// again now, or they would wait for the next change.
		p.wake(ctx)
	}
	if timed {
		p.resetTimer(ctx) // it was the earliest
	}
}

// holdsBack reports whether w limits how many requests behind it may be
// served (see Pool): while it waits, those may be skipped.
func (w *poolWaiter) holdsBack() bool {
	return !w.done && w.wait && w.short && w.budget >= 0
}

// wake tries the waiters again: something changed.
func (p *Pool) wake(ctx actor.Context) {
	if len(p.queue) == 0 {
		return
	}
	p.dirty = true
	p.attempt(ctx)
}

// attempt starts a take call, when none is under way, for the first
// untried requests of the queue. After a change every request is untried
// again: a new round.
func (p *Pool) attempt(ctx actor.Context) {
	if p.closedErr != nil || p.attempting {
		return
	}
	if p.answered > 0 {
		p.prune() // no answered request goes into a batch
	}
	if len(p.queue) == 0 {
		return
	}
	if !p.subscribed {
		// Subscribe before the first try, so that no Put published after
		// a failed try can be missed.
		if !p.subscribing {
			p.subscribing = true
			ctx.Request(p.cfg.Conn, &messages.Subscribe{Channel: p.keys.channel, Subscriber: ctx.Self()})
		}
		return
	}
	first := slices.IndexFunc(p.queue, func(w *poolWaiter) bool { return !w.tried })
	if !p.dirty {
		if first < 0 {
			return // everyone tried since the last change
		}
		// An older waiter whose time has come (its timer is about to
		// fire) goes before the new ones: a new round.
		p.dirty = p.due(p.queue[:first])
	}
	if p.dirty {
		p.dirty = false
		for _, w := range p.queue {
			w.tried = false
		}
		first = 0
	}
	allowance := p.allowance(p.queue[:first])
	if allowance == 0 {
		// A waiter ahead holds the rest back: the call would skip them.
		p.skip(ctx, p.queue[first:])
		return
	}
	batch := slices.Clone(p.queue[first:min(len(p.queue), first+poolMaxBatch)])
	reqs := make([]takeRequest, len(batch))
	for i, w := range batch {
		w.inFlight, w.tried = true, true
		reqs[i] = takeRequest{token: w.token, n: w.n, random: w.random, wait: w.wait, budget: w.budget}
	}
	p.attempting = true
	cl, keys := p.cfg.Client, p.keys
	p.goCall(ctx, func(c context.Context) any {
		start := time.Now()
		now, outs, err := runTake(c, cl, keys, allowance, reqs)
		return &takeDone{batch: batch, start: start, now: now, outs: outs, err: err}
	})
}

// due reports whether one of ws is waiting for a time that has come.
func (p *Pool) due(ws []*poolWaiter) bool {
	now := time.Now()
	for _, w := range ws {
		if !w.done && w.wait && w.short && !w.deadline.After(now) {
			return true
		}
	}
	return false
}

// allowance is how many more requests behind ahead may be served before one
// of the waiters of ahead that could be served: -1 when none holds back.
func (p *Pool) allowance(ahead []*poolWaiter) int {
	a := -1
	for _, w := range ahead {
		if w.holdsBack() && (a < 0 || w.budget < a) {
			a = w.budget
		}
	}
	return a
}

// skip marks requests as tried without a call: a waiter ahead of them holds
// them back. One-shot requests fail.
func (p *Pool) skip(ctx actor.Context, ws []*poolWaiter) {
	for _, w := range ws {
		w.tried, w.short = true, false
		if !w.wait && !w.done {
			p.answer(ctx, w, &messages.PoolTakeResult{Err: p.notAvailable(w)})
		}
	}
	p.prune()
}

func (p *Pool) onTakeDone(ctx actor.Context, m *takeDone) {
	p.pending--
	p.attempting = false
	for _, w := range m.batch {
		w.inFlight = false
		// A call that ran found any grant of an earlier, failed one.
		w.unsure = m.err != nil
	}
	var handBack []string
	if m.err != nil {
		handBack = p.takeFailed(ctx, m)
	} else {
		p.backoff = 0
		for i, w := range m.batch {
			o := m.outs[i]
			if o.kind == takeServed {
				w.granted = true
				if w.done {
					handBack = append(handBack, w.token)
				} else {
					p.answer(ctx, w, &messages.PoolTakeResult{Containers: o.containers})
				}
				continue
			}
			if w.done {
				continue
			}
			w.short = o.kind == takeShort && o.at >= 0
			switch {
			case o.kind == takeCorrupt:
				p.answer(ctx, w, &messages.PoolTakeResult{Err: fmt.Errorf("%w: pool %q: %s", p.cfg.Errors.Corrupt, p.cfg.Name, o.corrupt)})
			case !w.wait:
				p.answer(ctx, w, &messages.PoolTakeResult{Err: p.notAvailable(w)})
			case w.short:
				// The server's time, on the local clock: the call reached
				// the server no sooner than start.
				w.deadline = m.start.Add(time.Duration(o.at-m.now) * time.Microsecond)
			}
		}
		p.spendBudgets()
		p.resetTimer(ctx)
	}
	p.prune()
	if len(handBack) > 0 {
		p.handBack(ctx, handBack)
	}
	p.maybeFinish(ctx)
	p.attempt(ctx)
}

// spendBudgets takes from the bypass budget of every waiter that could be
// served one for each request behind it that the last call served.
func (p *Pool) spendBudgets() {
	servedBehind := 0
	for i := len(p.queue) - 1; i >= 0; i-- {
		w := p.queue[i]
		if w.granted {
			w.granted = false
			servedBehind++
			continue
		}
		if !w.done && w.wait && w.short && w.budget > 0 {
			w.budget = max(0, w.budget-servedBehind)
		}
	}
}

// resetTimer sets the timer for the earliest time a waiter could be served,
// or stops it when there is none (the waiters wait for a Put).
func (p *Pool) resetTimer(ctx actor.Context) {
	var at time.Time
	for _, w := range p.queue {
		if !w.done && w.wait && w.short && (at.IsZero() || w.deadline.Before(at)) {
			at = w.deadline
		}
	}
	if at.IsZero() {
		p.stopTimer()
	} else {
		p.setTimer(ctx, at)
	}
}

// takeFailed handles a take call that failed: whether it ran is unknown.
// Waiters stay queued and are tried again after a backoff, with the same
// tokens: a grant the lost answer held is found by its record. One-shot
// requests fail; whatever they may have been granted is handed back.
func (p *Pool) takeFailed(ctx actor.Context, m *takeDone) (handBack []string) {
	err := p.wrap("take", m.err)
	corrupt, _ := redisx.Classify(m.err)
	wrongType := corrupt == redisx.Corrupt
	p.log.Warn("pool take failed", zap.Error(m.err))
	p.backoff = min(max(2*p.backoff, poolRetryMin), poolRetryMax)
	for _, w := range m.batch {
		switch {
		case w.done:
			handBack = append(handBack, w.token)
		case wrongType || !w.wait:
			handBack = append(handBack, w.token)
			p.answer(ctx, w, &messages.PoolTakeResult{Err: err})
		default:
			// Tried again when the backoff is over, with the same token.
			w.short, w.deadline = true, time.Now().Add(p.backoff)
		}
	}
	p.resetTimer(ctx)
	return handBack
}

// handBack makes the grants of tokens ready again.
func (p *Pool) handBack(ctx actor.Context, tokens []string) {
	if p.finished {
		p.log.Warn("pool hand-back after shutdown: dropped", zap.Strings("tokens", tokens))
		return
	}
	cl, keys, log := p.cfg.Client, p.keys, p.log
	p.goCall(ctx, func(c context.Context) any {
		back, overtaken, err := runHandBack(c, cl, keys, tokens)
		if err != nil {
			log.Warn("pool hand-back failed", zap.Strings("tokens", tokens), zap.Error(err))
		} else {
			log.Debug("pool containers handed back", zap.Int64("containers", back), zap.Int64("overtaken", overtaken))
		}
		return &opDone{}
	})
}

func (p *Pool) answer(ctx actor.Context, w *poolWaiter, res *messages.PoolTakeResult) {
	w.done = true
	p.answered++
	delete(p.byToken, w.token)
	if w.sender != nil {
		ctx.Send(w.sender, res)
	}
}

// prune drops the answered requests from the queue.
func (p *Pool) prune() {
	q := p.queue[:0]
	for _, w := range p.queue {
		if !w.done {
			q = append(q, w)
		}
	}
	clear(p.queue[len(q):])
	p.queue = q
	p.answered = 0
}

func (p *Pool) notAvailable(w *poolWaiter) error {
	return fmt.Errorf("%w: pool %q: %d container(s)", p.cfg.Errors.NotAvailable, p.cfg.Name, w.n)
}

func (p *Pool) setTimer(ctx actor.Context, at time.Time) {
	if p.timer != nil {
		if p.timerAt.Equal(at) {
			return
		}
		p.timer.Stop()
	}
	p.timerGen++
	gen, self, root := p.timerGen, ctx.Self(), ctx.ActorSystem().Root
	p.timer = time.AfterFunc(time.Until(at), func() { root.Send(self, &poolTick{gen: gen}) })
	p.timerAt = at
}

func (p *Pool) stopTimer() {
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
		p.timerGen++
	}
}

func (p *Pool) onSubscribed(ctx actor.Context, m *messages.SubscribeResult) {
	p.subscribing = false
	if p.closedErr != nil {
		return
	}
	if m.Err != nil {
		// Waiting without the channel could miss a Put: fail the requests;
		// the next one subscribes again.
		err := fmt.Errorf("%w: pool %q: subscribe: %w", p.cfg.Errors.Unavailable, p.cfg.Name, m.Err)
		p.log.Warn("pool subscribe failed", zap.Error(m.Err))
		for _, w := range p.queue {
			if !w.done {
				p.answer(ctx, w, &messages.PoolTakeResult{Err: err})
			}
		}
		p.prune()
		return
	}
	p.subscribed = true
	p.dirty = true
	p.attempt(ctx)
}

// --- the other operations ---

// goCall runs call in a goroutine and sends its result to the actor.
func (p *Pool) goCall(ctx actor.Context, call func(context.Context) any) {
	p.pending++
	self, root := ctx.Self(), ctx.ActorSystem().Root
	go func() {
		c, cancel := context.WithTimeout(context.Background(), poolCallTimeout)
		msg := call(c)
		cancel()
		root.Send(self, msg)
	}()
}

// serve answers the request at hand with the result of call, run in a
// goroutine. fail makes the answer for an error, the closed client's too.
// call may read p's configuration, nothing else of p.
func serve[R any](p *Pool, ctx actor.Context, fail func(error) R, call func(context.Context) (R, error)) {
	if p.closedErr != nil {
		ctx.Respond(fail(p.closedErr))
		return
	}
	to := ctx.Sender()
	p.goCall(ctx, func(c context.Context) any {
		r, err := call(c)
		if err != nil {
			return &opDone{to: to, answer: fail(err)}
		}
		return &opDone{to: to, answer: r}
	})
}

// wrap turns a failed script call into an error that matches one of the
// configured sentinels: Corrupt for data xsync did not write (the script
// changed nothing), Unavailable otherwise (it wraps the cause).
func (p *Pool) wrap(op string, err error) error {
	if kind, detail := redisx.Classify(err); kind == redisx.Corrupt {
		return fmt.Errorf("%w: pool %q: %s: %s", p.cfg.Errors.Corrupt, p.cfg.Name, op, detail)
	}
	return fmt.Errorf("%w: pool %q: %s: %w", p.cfg.Errors.Unavailable, p.cfg.Name, op, err)
}

func (p *Pool) notFound(id string) error {
	return fmt.Errorf("%w: pool %q: container %q", p.cfg.Errors.NotFound, p.cfg.Name, id)
}

func (p *Pool) onPut(ctx actor.Context, m *messages.PoolPut) {
	cl, keys := p.cfg.Client, p.keys
	serve(p, ctx, func(err error) *messages.PoolPutResult { return &messages.PoolPutResult{Err: err} },
		func(c context.Context) (*messages.PoolPutResult, error) {
			if err := runPut(c, cl, keys, m.Containers); err != nil {
				return nil, p.wrap("put", err)
			}
			return &messages.PoolPutResult{}, nil
		})
}

func (p *Pool) onGet(ctx actor.Context, m *messages.PoolGet) {
	cl, keys := p.cfg.Client, p.keys
	serve(p, ctx, func(err error) *messages.PoolGetResult { return &messages.PoolGetResult{Err: err} },
		func(c context.Context) (*messages.PoolGetResult, error) {
			ct, found, err := runGet(c, cl, keys, m.ID)
			switch {
			case err != nil:
				return nil, p.wrap("get", err)
			case !found:
				return nil, p.notFound(m.ID)
			}
			return &messages.PoolGetResult{Container: ct}, nil
		})
}

func (p *Pool) onRemove(ctx actor.Context, m *messages.PoolRemove) {
	cl, keys := p.cfg.Client, p.keys
	serve(p, ctx, func(err error) *messages.PoolRemoveResult { return &messages.PoolRemoveResult{Err: err} },
		func(c context.Context) (*messages.PoolRemoveResult, error) {
			n, err := runRemove(c, cl, keys, m.IDs)
			if err != nil {
				return nil, p.wrap("remove", err)
			}
			return &messages.PoolRemoveResult{Removed: n}, nil
		})
}

func (p *Pool) onCooldown(ctx actor.Context, m *messages.PoolCooldown) {
	cl, keys := p.cfg.Client, p.keys
	serve(p, ctx, func(err error) *messages.PoolCooldownResult { return &messages.PoolCooldownResult{Err: err} },
		func(c context.Context) (*messages.PoolCooldownResult, error) {
			at, err := runCooldown(c, cl, keys, m.ID, m.D)
			switch {
			case err != nil:
				return nil, p.wrap("cooldown", err)
			case at < 0:
				return nil, p.notFound(m.ID)
			}
			return &messages.PoolCooldownResult{NextAvailable: time.UnixMicro(at)}, nil
		})
}

func (p *Pool) onStats(ctx actor.Context) {
	cl, keys, waiting := p.cfg.Client, p.keys, 0
	for _, w := range p.queue {
		if w.wait && !w.done {
			waiting++
		}
	}
	serve(p, ctx, func(err error) *messages.PoolStatsResult { return &messages.PoolStatsResult{Err: err} },
		func(c context.Context) (*messages.PoolStatsResult, error) {
			s, err := runStats(c, cl, keys)
			if err != nil {
				return nil, p.wrap("stats", err)
			}
			s.Waiting = waiting
			return &s, nil
		})
}

// --- shutdown ---

func (p *Pool) onShutdown(ctx actor.Context, m *messages.Shutdown) {
	if p.closedErr != nil {
		ctx.Respond(&messages.ShutdownResult{})
		return
	}
	p.closedErr = m.Err
	if p.closedErr == nil {
		p.closedErr = p.cfg.Errors.Closed
	}
	p.stopTimer()
	var handBack []string
	for _, w := range p.queue {
		if !w.done {
			// One in flight stays in its batch: a grant is handed back.
			p.answer(ctx, w, &messages.PoolTakeResult{Err: p.closedErr})
			if w.unsure && !w.inFlight {
				handBack = append(handBack, w.token)
			}
		}
	}
	p.queue, p.answered = nil, 0
	if len(handBack) > 0 {
		p.handBack(ctx, handBack) // before maybeFinish: Shutdown waits for it
	}
	if p.subscribed || p.subscribing {
		ctx.Send(p.cfg.Conn, &messages.Unsubscribe{Channel: p.keys.channel, Subscriber: ctx.Self()})
		p.subscribed = false
	}
	p.shutdownTo = ctx.Sender()
	p.maybeFinish(ctx)
}

// maybeFinish answers Shutdown once no script call is under way.
func (p *Pool) maybeFinish(ctx actor.Context) {
	if p.closedErr == nil || p.finished || p.pending > 0 {
		return
	}
	p.finished = true
	if p.shutdownTo != nil {
		ctx.Send(p.shutdownTo, &messages.ShutdownResult{})
	}
}
