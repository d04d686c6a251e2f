package actors

import (
	"context"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/redisxsync/xsync/internal/xerr"
	"github.com/redisxsync/xsync/messages"
)

// serve answers the request at hand with the result of call, run in a
// goroutine. fail makes the answer for an error, the closed client's too.
// call may read p's configuration, nothing else of p.
func serve[R any](p *poolActor, ctx actor.Context, fail func(error) R, call func(context.Context) (R, error)) {
	if p.closedErr != nil {
		ctx.Respond(fail(p.closedErr))
		return
	}
	to := ctx.Sender()
	p.goRedisFor(poolCallTimeout, func(c context.Context) inlineMessage {
		r, err := call(c)
		if err != nil {
			return &opDone{to: to, answer: fail(err)}
		}
		return &opDone{to: to, answer: r}
	})
}

// wrap classifies err, the failure of the Redis call of op.
func (p *poolActor) wrap(op string, err error) error {
	return xerr.Redis(fmt.Sprintf("pool %q: %s", p.cfg.Name, op), err)
}

func (p *poolActor) notFound(id string) error {
	return fmt.Errorf("%w: pool %q: container %q", xerr.ErrNotFound, p.cfg.Name, id)
}

func (p *poolActor) onPut(ctx actor.Context, m *messages.PoolPut) {
	cl, keys := p.cfg.Client, p.keys
	serve(p, ctx, func(err error) *messages.PoolPutResult { return &messages.PoolPutResult{Err: err} },
		func(c context.Context) (*messages.PoolPutResult, error) {
			if err := runPut(c, cl, keys, m.Containers); err != nil {
				return nil, p.wrap("put", err)
			}
			return &messages.PoolPutResult{}, nil
		})
}

func (p *poolActor) onGet(ctx actor.Context, m *messages.PoolGet) {
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

func (p *poolActor) onRemove(ctx actor.Context, m *messages.PoolRemove) {
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

func (p *poolActor) onCooldown(ctx actor.Context, m *messages.PoolCooldown) {
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

func (p *poolActor) onStats(ctx actor.Context) {
	cl, keys, id, waiting, busy := p.cfg.Client, p.keys, p.cfg.ID, 0, p.busy
	for _, w := range p.queue.ws {
		if w.wait && !w.done {
			waiting++
		}
	}
	serve(p, ctx, func(err error) *messages.PoolReadStatsResult { return &messages.PoolReadStatsResult{Err: err} },
		func(c context.Context) (*messages.PoolReadStatsResult, error) {
			s, err := runStats(c, cl, keys, id)
			if err != nil {
				return nil, p.wrap("stats", err)
			}
			s.Waiting, s.Busy = waiting, busy
			return &s, nil
		})
}

func (p *poolActor) onReturn(ctx actor.Context, m *messages.PoolReturn) {
	cl, keys := p.cfg.Client, p.keys
	serve(p, ctx, func(err error) *messages.PoolReturnResult { return &messages.PoolReturnResult{Err: err} },
		func(c context.Context) (*messages.PoolReturnResult, error) {
			back, left, err := runReturn(c, cl, keys, m.Tokens, m.IDs)
			if err != nil {
				return nil, p.wrap("return", err)
			}
			return &messages.PoolReturnResult{Restored: int(back), Left: int(left)}, nil
		})
}
