package actors

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/redisxsync/xsync/messages"
	"github.com/redisxsync/xsync/redisx"
)

// Limits of a pool actor.
const (
	// poolWindow is how many requests from the head of the queue one take
	// call tries; one-shot requests further back are added to the call.
	poolWindow = 64
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
	NotFound     error // Get or Cooldown of an id the pool does not hold
	Corrupt      error // a record that does not decode, a key of another type
	Closed       error // requests after a Stop without Shutdown
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
// tries the head of the queue (and every one-shot request behind it), in
// order, and may serve several. While nothing changes, waiting costs no
// Redis command: a failed try returns the earliest time it could succeed and
// the actor sets one timer for it; a Put, Cooldown or hand-back published by
// any client wakes it (it subscribes to the pool channel of its DB before
// its first try, and tries again after a pub/sub reconnection).
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
// UsageCount), never lost.
type Pool struct {
	cfg  PoolConfig
	keys poolKeys
	log  *zap.Logger

	queue   []*poolWaiter // arrival order
	byToken map[string]*poolWaiter

	subscribing, subscribed bool
	attempting              bool // a take call is under way
	dirty                   bool // something changed since the last call began

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

	inFlight bool // part of the take call under way
	tried    bool // part of a take call since it arrived
	done     bool // answered
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
			p.queue = nil
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
	p.queue = append(p.queue, w)
	p.byToken[w.token] = w
	p.dirty = true
	p.attempt(ctx)
}

func (p *Pool) onWithdraw(ctx actor.Context, m *messages.PoolWithdraw) {
	w := p.byToken[m.Token]
	if w == nil {
		return // answered already
	}
	p.answer(ctx, w, &messages.PoolTakeResult{Err: fmt.Errorf("%w: pool %q: withdrawn", p.cfg.Errors.NotAvailable, p.cfg.Name)})
	if !w.inFlight {
		// A request in flight stays in its batch: if it is served, the
		// result is handed back.
		p.prune()
	}
	if len(p.queue) == 0 {
		p.stopTimer()
	}
}

// wake tries the waiters again: something changed.
func (p *Pool) wake(ctx actor.Context) {
	if len(p.queue) == 0 {
		return
	}
	p.dirty = true
	p.attempt(ctx)
}

// attempt starts a take call for the head of the queue when something
// changed since the last one began and none is under way.
func (p *Pool) attempt(ctx actor.Context) {
	if p.closedErr != nil || p.attempting || !p.dirty || len(p.queue) == 0 {
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
	p.dirty = false
	var batch []*poolWaiter
	for i, w := range p.queue {
		if len(batch) == poolMaxBatch {
			break
		}
		if i < poolWindow || !w.wait {
			batch = append(batch, w)
		}
	}
	reqs := make([]takeRequest, len(batch))
	for i, w := range batch {
		w.inFlight, w.tried = true, true
		reqs[i] = takeRequest{token: w.token, n: w.n, random: w.random, budget: w.budget}
	}
	p.attempting = true
	cl, keys := p.cfg.Client, p.keys
	p.goCall(ctx, func(c context.Context) any {
		start := time.Now()
		now, outs, err := runTake(c, cl, keys, reqs)
		return &takeDone{batch: batch, start: start, now: now, outs: outs, err: err}
	})
}

func (p *Pool) onTakeDone(ctx actor.Context, m *takeDone) {
	p.pending--
	p.attempting = false
	for _, w := range m.batch {
		w.inFlight = false
	}
	var handBack []string
	if m.err != nil {
		handBack = p.takeFailed(ctx, m)
	} else {
		p.backoff = 0
		var deadline time.Time
		served := 0 // requests served behind the one at hand
		for i := len(m.batch) - 1; i >= 0; i-- {
			w, o := m.batch[i], m.outs[i]
			if o.kind == takeServed {
				served++
				switch {
				case w.done:
					handBack = append(handBack, w.token)
				case len(o.containers) != w.n:
					// A resent request whose grant lost containers to a
					// Remove meanwhile: never hand out fewer than asked.
					handBack = append(handBack, w.token)
					p.answer(ctx, w, &messages.PoolTakeResult{Err: fmt.Errorf("%w: pool %q: granted containers were removed", p.cfg.Errors.NotAvailable, p.cfg.Name)})
				default:
					p.answer(ctx, w, &messages.PoolTakeResult{Containers: o.containers})
				}
				continue
			}
			if w.done {
				continue
			}
			switch {
			case o.kind == takeCorrupt:
				p.answer(ctx, w, &messages.PoolTakeResult{Err: p.corrupt(o.corruptID)})
			case !w.wait:
				p.answer(ctx, w, &messages.PoolTakeResult{Err: p.notAvailable(w)})
			default:
				if w.budget > 0 {
					w.budget = max(0, w.budget-served)
				}
				if o.kind == takeShort && o.at >= 0 {
					// The server's time, on the local clock: the call
					// reached the server no sooner than start.
					at := m.start.Add(time.Duration(o.at-m.now) * time.Microsecond)
					if deadline.IsZero() || at.Before(deadline) {
						deadline = at
					}
				}
			}
		}
		if deadline.IsZero() {
			p.stopTimer()
		} else {
			p.setTimer(ctx, deadline)
		}
	}
	p.prune()
	for i, w := range p.queue {
		if i == poolWindow {
			break
		}
		if !w.tried {
			p.dirty = true // moved into the window: never tried
		}
	}
	if len(handBack) > 0 {
		p.handBack(ctx, handBack)
	}
	p.maybeFinish(ctx)
	p.attempt(ctx)
}

// takeFailed handles a take call that failed: whether it ran is unknown.
// Waiters stay queued and are tried again after a backoff, with the same
// tokens: a grant the lost answer held is found by its record. One-shot
// requests fail; whatever they may have been granted is handed back.
func (p *Pool) takeFailed(ctx actor.Context, m *takeDone) (handBack []string) {
	wrongType := strings.HasPrefix(m.err.Error(), "WRONGTYPE")
	err := fmt.Errorf("xsync: pool %q: take: %w", p.cfg.Name, m.err)
	if wrongType {
		err = fmt.Errorf("%w: pool %q: a key holds another type: %v", p.cfg.Errors.Corrupt, p.cfg.Name, m.err)
	}
	p.log.Warn("pool take failed", zap.Error(m.err))
	waiting := false
	for _, w := range m.batch {
		switch {
		case w.done:
			handBack = append(handBack, w.token)
		case wrongType || !w.wait:
			handBack = append(handBack, w.token)
			p.answer(ctx, w, &messages.PoolTakeResult{Err: err})
		default:
			waiting = true
		}
	}
	if waiting {
		p.backoff = min(max(2*p.backoff, poolRetryMin), poolRetryMax)
		p.setTimer(ctx, time.Now().Add(p.backoff))
	}
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
		n, err := runHandBack(c, cl, keys, tokens)
		if err != nil {
			log.Warn("pool hand-back failed", zap.Strings("tokens", tokens), zap.Error(err))
		} else {
			log.Debug("pool containers handed back", zap.Int64("containers", n))
		}
		return &opDone{}
	})
}

func (p *Pool) answer(ctx actor.Context, w *poolWaiter, res *messages.PoolTakeResult) {
	w.done = true
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
}

func (p *Pool) notAvailable(w *poolWaiter) error {
	return fmt.Errorf("%w: pool %q: %d container(s)", p.cfg.Errors.NotAvailable, p.cfg.Name, w.n)
}

func (p *Pool) corrupt(id string) error {
	return fmt.Errorf("%w: pool %q: container %q: record does not decode", p.cfg.Errors.Corrupt, p.cfg.Name, id)
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
		err := fmt.Errorf("xsync: pool %q: subscribe: %w", p.cfg.Name, m.Err)
		p.log.Warn("pool subscribe failed", zap.Error(m.Err))
		for _, w := range p.queue {
			p.answer(ctx, w, &messages.PoolTakeResult{Err: err})
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

// goOp runs call in a goroutine and answers the sender with its result.
func (p *Pool) goOp(ctx actor.Context, call func(context.Context) any) {
	to := ctx.Sender()
	p.goCall(ctx, func(c context.Context) any { return &opDone{to: to, answer: call(c)} })
}

func (p *Pool) wrap(op string, err error) error {
	if strings.HasPrefix(err.Error(), "WRONGTYPE") {
		return fmt.Errorf("%w: pool %q: %s: a key holds another type: %v", p.cfg.Errors.Corrupt, p.cfg.Name, op, err)
	}
	return fmt.Errorf("xsync: pool %q: %s: %w", p.cfg.Name, op, err)
}

func (p *Pool) onPut(ctx actor.Context, m *messages.PoolPut) {
	if p.closedErr != nil {
		ctx.Respond(&messages.PoolPutResult{Err: p.closedErr})
		return
	}
	cl, keys := p.cfg.Client, p.keys
	p.goOp(ctx, func(c context.Context) any {
		id, err := runPut(c, cl, keys, m.Containers)
		switch {
		case err != nil:
			err = p.wrap("put", err)
		case id != "":
			err = p.corrupt(id)
		}
		return &messages.PoolPutResult{Err: err}
	})
}

func (p *Pool) onGet(ctx actor.Context, m *messages.PoolGet) {
	if p.closedErr != nil {
		ctx.Respond(&messages.PoolGetResult{Err: p.closedErr})
		return
	}
	cl, keys := p.cfg.Client, p.keys
	p.goOp(ctx, func(c context.Context) any {
		r, err := runGet(c, cl, keys, m.ID)
		switch {
		case err != nil:
			return &messages.PoolGetResult{Err: p.wrap("get", err)}
		case r.corrupt:
			return &messages.PoolGetResult{Err: p.corrupt(m.ID)}
		case !r.found:
			return &messages.PoolGetResult{Err: fmt.Errorf("%w: pool %q: container %q", p.cfg.Errors.NotFound, p.cfg.Name, m.ID)}
		}
		return &messages.PoolGetResult{Container: r.c}
	})
}

func (p *Pool) onRemove(ctx actor.Context, m *messages.PoolRemove) {
	if p.closedErr != nil {
		ctx.Respond(&messages.PoolRemoveResult{Err: p.closedErr})
		return
	}
	cl, keys := p.cfg.Client, p.keys
	p.goOp(ctx, func(c context.Context) any {
		n, err := runRemove(c, cl, keys, m.IDs)
		if err != nil {
			return &messages.PoolRemoveResult{Err: p.wrap("remove", err)}
		}
		return &messages.PoolRemoveResult{Removed: n}
	})
}

func (p *Pool) onCooldown(ctx actor.Context, m *messages.PoolCooldown) {
	if p.closedErr != nil {
		ctx.Respond(&messages.PoolCooldownResult{Err: p.closedErr})
		return
	}
	cl, keys := p.cfg.Client, p.keys
	p.goOp(ctx, func(c context.Context) any {
		at, err := runCooldown(c, cl, keys, m.ID, m.D)
		switch {
		case err != nil:
			return &messages.PoolCooldownResult{Err: p.wrap("cooldown", err)}
		case at < 0:
			return &messages.PoolCooldownResult{Err: fmt.Errorf("%w: pool %q: container %q", p.cfg.Errors.NotFound, p.cfg.Name, m.ID)}
		}
		return &messages.PoolCooldownResult{NextAvailable: time.UnixMicro(at)}
	})
}

func (p *Pool) onStats(ctx actor.Context) {
	if p.closedErr != nil {
		ctx.Respond(&messages.PoolStatsResult{Err: p.closedErr})
		return
	}
	cl, keys, waiting := p.cfg.Client, p.keys, 0
	for _, w := range p.queue {
		if w.wait && !w.done {
			waiting++
		}
	}
	p.goOp(ctx, func(c context.Context) any {
		s, err := runStats(c, cl, keys)
		if err != nil {
			return &messages.PoolStatsResult{Err: p.wrap("stats", err)}
		}
		s.Waiting = waiting
		return &s
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
	for _, w := range p.queue {
		if !w.done {
			// One in flight stays in its batch: a grant is handed back.
			p.answer(ctx, w, &messages.PoolTakeResult{Err: p.closedErr})
		}
	}
	p.queue = nil
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
