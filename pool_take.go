package xsync

// The takes of a pool (Ask, WaitAsk, AcquireRandom and their kin) and
// Return, which gives back what a take handed out.

import (
	"context"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/redisxsync/xsync/messages"
)

// takeMode says what a take asks for: ready containers or random live
// ones, at once or waiting.
type takeMode struct{ random, wait bool }

var (
	askReady   = takeMode{}
	waitReady  = takeMode{wait: true}
	askRandom  = takeMode{random: true}
	waitRandom = takeMode{random: true, wait: true}
)

// take sends a take request to the pool's actor; pick turns the containers
// into the future's value.
func take[T any](ctx context.Context, p *Pool, op string, n int, mode takeMode, pick func([]Container) T) *Future[T] {
	if n <= 0 {
		return failedFuture[T](fmt.Errorf("%w: pool %q: %s(%d)", ErrInvalidQuantity, p.name, op, n))
	}
	pid, err := p.actor()
	if err != nil {
		return failedFuture[T](err)
	}
	token, sys := p.nextToken(), p.c.sys
	msg := &messages.PoolTake{Token: token, N: n, Random: mode.random, Wait: mode.wait}
	if d, ok := ctx.Deadline(); ok && mode.wait {
		msg.Deadline = d
	}
	convert := func(m any) (T, error) {
		var zero T
		r, ok := m.(*messages.PoolTakeResult)
		if !ok {
			return zero, fmt.Errorf("xsync: pool %q: unexpected answer %T", p.name, m)
		}
		if r.Err != nil {
			return zero, r.Err
		}
		cs := make([]Container, len(r.Containers))
		for i, c := range r.Containers {
			cs[i] = containerOf(c)
		}
		p.grants.add(r.Containers)
		return pick(cs), nil
	}
	return request(ctx, sys, pid, msg, ErrNotAvailable, convert, func(f *Future[T], _ *actor.PID) {
		// Both run in the caller's goroutine or a future's: a Send never blocks.
		f.withdraw = func() { sys.Root.Send(pid, &messages.PoolWithdrawTake{Token: token}) }
		f.discard = func(T) { sys.Root.Send(pid, &messages.PoolHandBack{Token: token}) }
		f.observe = takeObserver[T](p.c.metrics, p.name, mode.random, n)
	})
}

// Return hands back containers taken but not used (the frontier was empty,
// the job was cancelled): each is ready again as before its take, with its
// NextAvailable and UsageCount restored (its Failures as reports left
// them), unless it was taken, cooled down (by Cooldown or a Blocked
// report), retired, removed or re-Put since: then it is left as it is. Give Return the
// containers as the take returned them, within 30 seconds of the take (its
// grant record lives that long). A container that no take of this *Pool
// handed out in that time (one built by hand, one of another pool) is
// ErrInvalidContainer, and nothing is returned. Returning a container
// twice does nothing the second time.
// Return wakes the pool's waiters on every client when it restored one.
//
// A Return whose ctx is done already sends nothing; one whose ctx ends in
// flight (or that fails with ErrUnavailable) may have been applied.
func (p *Pool) Return(ctx context.Context, cs ...Container) error {
	if p.err != nil {
		return p.err
	}
	msg, err := p.grants.lookup(cs)
	if err != nil {
		return fmt.Errorf("%w: pool %q: %w", ErrInvalidContainer, p.name, err)
	}
	if len(msg.Tokens) == 0 {
		return nil
	}
	_, err = call(ctx, p, msg, func(r *messages.PoolReturnResult) (struct{}, error) { return struct{}{}, r.Err })
	return err
}

func all(cs []Container) []Container { return cs }
func one(cs []Container) Container   { return cs[0] }

// Ask takes n ready containers, all or none: those with the earliest
// NextAvailable, each with NextAvailable moved to now+Interval and
// UsageCount+1. It returns them as they are after the take, or
// ErrNotAvailable at once when fewer than n are ready. It does not jump this
// client's queue: it is refused while a waiter ahead of it holds the others
// back (see Pool). n <= 0 is ErrInvalidQuantity.
func (p *Pool) Ask(ctx context.Context, n int) ([]Container, error) {
	return waitSync(ctx, func(ctx context.Context) *Future[[]Container] { return p.AskAsync(ctx, n) })
}

// AskAsync is the Async form of Ask.
func (p *Pool) AskAsync(ctx context.Context, n int) *Future[[]Container] {
	return take(ctx, p, "Ask", n, askReady, all)
}

// AskOne is Ask for one container.
func (p *Pool) AskOne(ctx context.Context) (Container, error) {
	return waitSync(ctx, func(ctx context.Context) *Future[Container] { return p.AskOneAsync(ctx) })
}

// AskOneAsync is the Async form of AskOne.
func (p *Pool) AskOneAsync(ctx context.Context) *Future[Container] {
	return take(ctx, p, "AskOne", 1, askReady, one)
}

// WaitAsk is Ask that waits, until ctx is done, for n containers to be
// ready; a wait that ends on ctx returns an error matching both
// ErrNotAvailable and ctx.Err(). See Pool for the order in which waiters
// are served.
func (p *Pool) WaitAsk(ctx context.Context, n int) ([]Container, error) {
	return waitSync(ctx, func(ctx context.Context) *Future[[]Container] { return p.WaitAskAsync(ctx, n) })
}

// WaitAskAsync is the Async form of WaitAsk. Cancelling the future (or
// ending ctx) withdraws the wait.
func (p *Pool) WaitAskAsync(ctx context.Context, n int) *Future[[]Container] {
	return take(ctx, p, "WaitAsk", n, waitReady, all)
}

// WaitAskOne is WaitAsk for one container.
func (p *Pool) WaitAskOne(ctx context.Context) (Container, error) {
	return waitSync(ctx, func(ctx context.Context) *Future[Container] { return p.WaitAskOneAsync(ctx) })
}

// WaitAskOneAsync is the Async form of WaitAskOne.
func (p *Pool) WaitAskOneAsync(ctx context.Context) *Future[Container] {
	return take(ctx, p, "WaitAskOne", 1, waitReady, one)
}

// AcquireRandom takes n distinct live containers at random, ignoring their
// Interval: each gets UsageCount+1, NextAvailable is left alone. It returns
// them as they are after the take, or ErrNotAvailable at once when the pool
// holds fewer than n live containers. n <= 0 is ErrInvalidQuantity.
func (p *Pool) AcquireRandom(ctx context.Context, n int) ([]Container, error) {
	return waitSync(ctx, func(ctx context.Context) *Future[[]Container] { return p.AcquireRandomAsync(ctx, n) })
}

// AcquireRandomAsync is the Async form of AcquireRandom.
func (p *Pool) AcquireRandomAsync(ctx context.Context, n int) *Future[[]Container] {
	return take(ctx, p, "AcquireRandom", n, askRandom, all)
}

// AcquireRandomOne is AcquireRandom for one container.
func (p *Pool) AcquireRandomOne(ctx context.Context) (Container, error) {
	return waitSync(ctx, func(ctx context.Context) *Future[Container] { return p.AcquireRandomOneAsync(ctx) })
}

// AcquireRandomOneAsync is the Async form of AcquireRandomOne.
func (p *Pool) AcquireRandomOneAsync(ctx context.Context) *Future[Container] {
	return take(ctx, p, "AcquireRandomOne", 1, askRandom, one)
}

// WaitAcquireRandom is AcquireRandom that waits, until ctx is done, for the
// pool to hold n live containers; a wait that ends on ctx returns an error
// matching both ErrNotAvailable and ctx.Err().
func (p *Pool) WaitAcquireRandom(ctx context.Context, n int) ([]Container, error) {
	return waitSync(ctx, func(ctx context.Context) *Future[[]Container] { return p.WaitAcquireRandomAsync(ctx, n) })
}

// WaitAcquireRandomAsync is the Async form of WaitAcquireRandom.
func (p *Pool) WaitAcquireRandomAsync(ctx context.Context, n int) *Future[[]Container] {
	return take(ctx, p, "WaitAcquireRandom", n, waitRandom, all)
}

// WaitAcquireRandomOne is WaitAcquireRandom for one container.
func (p *Pool) WaitAcquireRandomOne(ctx context.Context) (Container, error) {
	return waitSync(ctx, func(ctx context.Context) *Future[Container] { return p.WaitAcquireRandomOneAsync(ctx) })
}

// WaitAcquireRandomOneAsync is the Async form of WaitAcquireRandomOne.
func (p *Pool) WaitAcquireRandomOneAsync(ctx context.Context) *Future[Container] {
	return take(ctx, p, "WaitAcquireRandomOne", 1, waitRandom, one)
}
