package actors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/redisxsync/xsync/internal/xerr"
	"github.com/redisxsync/xsync/messages"
)

func (p *poolActor) onTake(ctx actor.Context, m *messages.PoolTake) {
	if p.closedErr != nil {
		ctx.Respond(&messages.PoolTakeResult{Err: p.closedErr})
		return
	}
	if _, dup := p.byToken[m.Token]; dup || m.N <= 0 {
		ctx.Respond(&messages.PoolTakeResult{Err: fmt.Errorf("xsync: pool %q: bad take request (n=%d)", p.cfg.Name, m.N)})
		return
	}
	w := &poolWaiter{token: m.Token, n: m.N, random: m.Random, wait: m.Wait, sender: ctx.Sender(), budget: -1, until: m.Deadline}
	if m.Wait && p.cfg.MaxBypass > 0 {
		w.budget = p.cfg.MaxBypass
	} else if m.Wait {
		w.budget = 0
	}
	// Untried: the next call tries it, with the waiters ahead of it only if
	// something changed since they were tried.
	p.queue.push(w)
	p.byToken[w.token] = w
	p.attempt(ctx)
}

func (p *poolActor) onWithdraw(ctx actor.Context, m *messages.PoolWithdrawTake) {
	w := p.byToken[m.Token]
	if w == nil {
		return // answered already
	}
	// Requests behind it were skipped only if its budget is spent: the
	// batch's allowance reached 0 on it.
	heldBack := w.holdsBack() && w.budget == 0
	timed := w.wait && w.short && p.timer != nil && w.deadline.Equal(p.timerAt)
	p.answer(ctx, w, &messages.PoolTakeResult{Err: fmt.Errorf("%w: pool %q: withdrawn", xerr.ErrNotAvailable, p.cfg.Name)})
	// A request in flight stays in its batch: if it is served, the result
	// is handed back.
	if !w.inFlight && w.unsure {
		p.handBack(ctx, []string{w.token})
	}
	p.queue.trim()
	if heldBack {
		// The requests it held back were skipped, not tried: try them
		// again now, or they would wait for the next change.
		p.wake(ctx)
	}
	if timed {
		p.resetTimer(ctx) // it was the earliest
	}
	p.syncWaiting()
}

// holdsBack reports whether w limits how many requests behind it may be
// served (see Pool): while it waits, those may be skipped.
func (w *poolWaiter) holdsBack() bool {
	return !w.done && w.wait && w.short && w.budget >= 0
}

// wake tries the waiters again: something changed.
func (p *poolActor) wake(ctx actor.Context) {
	if len(p.queue.ws) == 0 {
		return
	}
	p.dirty = true
	p.attempt(ctx)
}

// attempt starts a take call, when none is under way, for the first
// untried requests of the queue. After a change every request is untried
// again: a new round.
func (p *poolActor) attempt(ctx actor.Context) {
	if p.closedErr != nil || p.attempting {
		return
	}
	if p.queue.gone > 0 {
		p.queue.compact() // no answered request goes into a batch
	}
	if len(p.queue.ws) == 0 {
		return
	}
	if !p.subscribed {
		// Subscribe before the first try, so that no Put published after
		// a failed try can be missed.
		if !p.subscribing {
			p.subscribing = true
			ctx.Request(p.cfg.Conn, &messages.Subscribe{Channel: p.keys.channel.Channel, Subscriber: p.self})
		}
		return
	}
	first := slices.IndexFunc(p.queue.ws, func(w *poolWaiter) bool { return !w.tried })
	if !p.dirty {
		if first < 0 {
			return // everyone tried since the last change
		}
		// An older waiter whose time has come (its timer is about to
		// fire) goes before the new ones: a new round.
		p.dirty = p.due(p.queue.ws[:first])
	}
	if p.dirty {
		p.dirty = false
		for _, w := range p.queue.ws {
			w.tried = false
		}
		first = 0
	}
	allowance := p.allowance(p.queue.ws[:first])
	if allowance == 0 {
		// A waiter ahead holds the rest back: the call would skip them.
		p.skip(ctx, p.queue.ws[first:])
		return
	}
	batch := slices.Clone(p.queue.ws[first:min(len(p.queue.ws), first+poolMaxBatch)])
	reqs := make([]takeRequest, len(batch))
	for i, w := range batch {
		w.inFlight, w.tried = true, true
		reqs[i] = takeRequest{token: w.token, n: w.n, random: w.random, wait: w.wait, budget: w.budget}
	}
	p.attempting = true
	cl, keys, ack := p.cfg.Client, p.keys, p.cfg.Ack
	p.goRedisFor(poolCallTimeout, func(c context.Context) inlineMessage {
		start := time.Now()
		now, outs, replicated, err := runTake(c, cl, ack, keys, allowance, reqs)
		return &takeDone{batch: batch, start: start, now: now, outs: outs, unreplicated: !replicated, err: err}
	})
}

// due reports whether one of ws is waiting for a time that has come.
func (p *poolActor) due(ws []*poolWaiter) bool {
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
func (p *poolActor) allowance(ahead []*poolWaiter) int {
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
func (p *poolActor) skip(ctx actor.Context, ws []*poolWaiter) {
	for _, w := range ws {
		w.tried, w.short = true, false
		w.waited = w.waited || w.wait
		if !w.wait && !w.done {
			p.answer(ctx, w, &messages.PoolTakeResult{Err: p.notAvailable(w)})
		}
	}
	p.queue.compact()
	p.syncWaiting()
}

func (p *poolActor) onTakeDone(ctx actor.Context, m *takeDone) {
	p.busy--
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
		p.waiting.readClock(m.start, m.now)
		for i, w := range m.batch {
			o := m.outs[i]
			if o.kind == takeServed {
				w.granted = !m.unreplicated // an undone take bypassed no one
				switch {
				case w.done:
					handBack = append(handBack, w.token)
				case m.unreplicated:
					// A failover could forget this take and hand the
					// containers out again: undo it.
					handBack = append(handBack, w.token)
					p.answer(ctx, w, &messages.PoolTakeResult{Err: p.notReplicated(w)})
				default:
					for i := range o.containers {
						o.containers[i].Grant = w.token
					}
					p.answer(ctx, w, &messages.PoolTakeResult{Containers: o.containers})
				}
				continue
			}
			if w.done {
				continue
			}
			w.waited = w.waited || w.wait
			w.short = o.kind == takeShort && o.at >= 0
			switch {
			case o.kind == takeCorrupt:
				p.answer(ctx, w, &messages.PoolTakeResult{Err: fmt.Errorf("%w: pool %q: %s", xerr.ErrCorrupt, p.cfg.Name, o.corrupt)})
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
	p.queue.compact()
	if len(handBack) > 0 {
		p.handBack(ctx, handBack)
	}
	p.syncWaiting()
	p.maybeFinish()
	p.attempt(ctx)
}

// spendBudgets takes from the bypass budget of every waiter that could be
// served one for each request behind it that the last call served.
func (p *poolActor) spendBudgets() {
	servedBehind := 0
	for i := len(p.queue.ws) - 1; i >= 0; i-- {
		w := p.queue.ws[i]
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
func (p *poolActor) resetTimer(ctx actor.Context) {
	var at time.Time
	for _, w := range p.queue.ws {
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
func (p *poolActor) takeFailed(ctx actor.Context, m *takeDone) (handBack []string) {
	err := p.wrap("take", m.err)
	wrongType := errors.Is(err, xerr.ErrCorrupt)
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
			w.short, w.deadline, w.waited = true, time.Now().Add(p.backoff), true
		}
	}
	p.resetTimer(ctx)
	return handBack
}

// handBack makes the grants of tokens ready again.
func (p *poolActor) handBack(ctx actor.Context, tokens []string) {
	if p.finished {
		p.log.Warn("pool hand-back after shutdown: dropped", zap.Strings("tokens", tokens))
		return
	}
	cl, keys, log := p.cfg.Client, p.keys, p.log
	p.goRedisFor(poolCallTimeout, func(c context.Context) inlineMessage {
		back, overtaken, err := runHandBack(c, cl, keys, tokens)
		if err != nil {
			log.Warn("pool hand-back failed", zap.Strings("tokens", tokens), zap.Error(err))
		} else {
			log.Debug("pool containers handed back", zap.Int64("containers", back), zap.Int64("overtaken", overtaken))
		}
		return &opDone{}
	})
}

func (p *poolActor) answer(ctx actor.Context, w *poolWaiter, res *messages.PoolTakeResult) {
	w.done = true
	p.queue.left()
	delete(p.byToken, w.token)
	if w.sender != nil {
		ctx.Send(w.sender, res)
	}
}

func (p *poolActor) notReplicated(w *poolWaiter) error {
	return fmt.Errorf("%w: pool %q: take of %d container(s): fewer than %d replica(s) confirmed it within %v; handed back",
		xerr.ErrNotReplicated, p.cfg.Name, w.n, p.cfg.Ack.Replicas, p.cfg.Ack.Timeout)
}

func (p *poolActor) notAvailable(w *poolWaiter) error {
	return fmt.Errorf("%w: pool %q: %d container(s)", xerr.ErrNotAvailable, p.cfg.Name, w.n)
}

func (p *poolActor) setTimer(ctx actor.Context, at time.Time) {
	if p.timer != nil {
		if p.timerAt.Equal(at) {
			return
		}
		p.timer.Stop()
	}
	p.timerGen++
	p.timer = p.sendAfter(time.Until(at), &poolTick{gen: p.timerGen})
	p.timerAt = at
}

func (p *poolActor) stopTimer() {
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
		p.timerGen++
	}
}

func (p *poolActor) onSubscribed(ctx actor.Context, m *messages.SubscribeResult) {
	p.subscribing = false
	if p.closedErr != nil {
		return
	}
	if m.Err != nil {
		// Waiting without the channel could miss a Put: fail the requests;
		// the next one subscribes again.
		err := p.wrap("subscribe", m.Err)
		p.log.Warn("pool subscribe failed", zap.Error(m.Err))
		for _, w := range p.queue.ws {
			if !w.done {
				p.answer(ctx, w, &messages.PoolTakeResult{Err: err})
			}
		}
		p.queue.compact()
		p.syncWaiting()
		return
	}
	p.subscribed = true
	p.dirty = true
	p.attempt(ctx)
}
