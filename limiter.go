package xsync

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/redisxsync/xsync/actors"
	"github.com/redisxsync/xsync/messages"
)

// Limit is a rate limit: Rate events per Period, at most Burst at once.
type Limit struct {
	// Rate is the number of events allowed per Period; >= 1.
	Rate int
	// Period is the time over which Rate events are allowed; > 0.
	Period time.Duration
	// Burst is how many events may happen at once, after a quiet time;
	// 0 means Rate. Negative is invalid.
	Burst int
}

// PerSecond is a limit of rate events per second, rate at once.
func PerSecond(rate int) Limit { return Limit{Rate: rate, Period: time.Second, Burst: rate} }

// PerMinute is a limit of rate events per minute, rate at once.
func PerMinute(rate int) Limit { return Limit{Rate: rate, Period: time.Minute, Burst: rate} }

// String describes the limit: "10 per 1s (burst 10)".
func (l Limit) String() string {
	return fmt.Sprintf("%d per %v (burst %d)", l.Rate, l.Period, l.Burst)
}

// normalized checks the limit and gives Burst its default.
func (l Limit) normalized() (Limit, error) {
	switch {
	case l.Rate <= 0:
		return l, fmt.Errorf("%w: limit %v: rate must be at least 1", ErrInvalidOptions, l)
	case l.Period <= 0:
		return l, fmt.Errorf("%w: limit %v: period must be positive", ErrInvalidOptions, l)
	case l.Burst < 0:
		return l, fmt.Errorf("%w: limit %v: negative burst", ErrInvalidOptions, l)
	case l.Burst == 0:
		l.Burst = l.Rate
	}
	return l, nil
}

// LimitResult is a limiter's decision on a request for n events.
type LimitResult struct {
	// Allowed is the number of events allowed by this call: 0 or n.
	Allowed int
	// Remaining is the number of events that could still be allowed now.
	// (redis_rate's is sometimes one less: the rounding of a double.)
	Remaining int
	// RetryAfter is when a refused request would be allowed (if nothing
	// else is allowed meanwhile); -1 when the request was allowed.
	RetryAfter time.Duration
	// ResetAfter is the time until the key is back to its full burst.
	ResetAfter time.Duration
}

// Limiter is a rate limiter shared by every client of the same Redis DB
// under the same KeyPrefix: each key (an API key, a domain, a user) may have
// Limit.Rate events per Limit.Period, Limit.Burst at once. Get one from
// Client.Limiter; it is safe for use by many goroutines.
//
// It is GCRA, the algorithm of go-redis/redis_rate, with the same arithmetic
// on the Redis server's clock: for the same Limit and the same request
// times it makes the same decisions, and a key costs one small string in
// Redis, which expires once the key is back to its full burst. Every
// decision is one Lua script, atomic.
//
// Waiting (Wait, WaitN, WaitNAsync) costs no Redis command until the time
// the limit allows it: a refused try returns RetryAfter, and the client's
// limiter actor sets one timer per key for it. The waiters of one client and
// key are served in arrival order (a big request is never overtaken by
// small ones behind it), several by one script call when they fit. A wait
// that is cancelled (its context, or Future.Cancel) consumes nothing:
// events allowed to it while it was being cancelled are given back. Between
// clients there is no queue: whoever asks first when events are allowed
// gets them.
//
// Allow and AllowN do not queue: they compete with this client's waiters
// as a call from another process would. A Reset on another client does not
// wake this client's waiters before their timer.
type Limiter struct {
	c     *Client
	name  string
	db    int
	limit Limit
	err   error // invalid name or limit: every call fails with it

	seq    atomic.Uint64
	worker lazyWorker
}

// Limiter returns the rate limiter called name, with limit, on Options.DB
// or on the DB that OnDB gives. Every call with the same name, DB and limit
// returns the same *Limiter. Limiter itself never fails: an empty name, a
// negative DB or an invalid limit (Rate or Period <= 0, Burst < 0) makes
// every call fail with ErrInvalidOptions, and so does a name this client
// already uses with another limit; a closed client makes them fail with
// ErrClosed. The limiter starts its actor on first use.
//
// Clients that share the name share its keys: use the same limit on every
// client, as redis_rate's callers do.
func (c *Client) Limiter(name string, limit Limit, opts ...PoolOption) *Limiter {
	s := newPoolSettings(c, opts)
	l := &Limiter{c: c, name: name, db: s.db}
	norm, err := limit.normalized()
	l.limit = norm
	switch {
	case name == "":
		l.err = fmt.Errorf("%w: empty limiter name", ErrInvalidOptions)
	case s.db < 0:
		l.err = fmt.Errorf("%w: limiter %q: negative DB %d", ErrInvalidOptions, name, s.db)
	case err != nil:
		l.err = fmt.Errorf("limiter %q: %w", name, err)
	}
	if l.err != nil {
		return l
	}
	key := strconv.Itoa(s.db) + "/" + name
	c.mu.Lock()
	defer c.mu.Unlock()
	if have := c.limiters[key]; have != nil {
		if have.limit == norm {
			return have
		}
		l.err = fmt.Errorf("%w: limiter %q has limit %v on this client, not %v", ErrInvalidOptions, name, have.limit, norm)
		return l
	}
	if c.closing {
		l.err = ErrClosed
		return l
	}
	if c.limiters == nil {
		c.limiters = map[string]*Limiter{}
	}
	c.limiters[key] = l
	return l
}

// Name is the limiter's name.
func (l *Limiter) Name() string { return l.name }

// Limit is the limiter's limit, with Burst set when it was 0.
func (l *Limiter) Limit() Limit { return l.limit }

// actor returns the limiter's actor, spawned on first use.
func (l *Limiter) actor() (*actor.PID, error) {
	return l.worker.get(l.c, l.err, l.db, func(cl redis.UniversalClient) *actor.Props {
		return actor.PropsFromProducer(actors.NewLimiter(actors.LimiterConfig{
			Name:   l.name,
			Keys:   l.c.keys,
			Client: cl,
			Rate:   l.limit.Rate,
			Period: l.limit.Period,
			Burst:  l.limit.Burst,
			Log:    l.c.log.Named("limiter").With(zap.String("limiter", l.name), zap.Int("db", l.db)),
		}))
	})
}

// Allow is AllowN(ctx, key, 1).
func (l *Limiter) Allow(ctx context.Context, key string) (LimitResult, error) {
	return l.AllowN(ctx, key, 1)
}

// AllowN decides at once whether n events of key may happen now, and
// counts them if so: Allowed is n, or 0 with RetryAfter saying when they
// would be. It never waits for the limit. n <= 0 is ErrInvalidQuantity; n
// over the burst is refused, as by redis_rate. An empty key is
// ErrInvalidKey. When ctx ends while the call is under way, events it was
// allowed are given back.
func (l *Limiter) AllowN(ctx context.Context, key string, n int) (LimitResult, error) {
	if err := l.check(key, n, "AllowN"); err != nil {
		return LimitResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return LimitResult{}, err
	}
	return waitSync(ctx, func(ctx context.Context) *Future[LimitResult] { return l.send(ctx, key, n, false, nil) })
}

// Wait is WaitN(ctx, key, 1).
func (l *Limiter) Wait(ctx context.Context, key string) error {
	return l.WaitN(ctx, key, 1)
}

// WaitN waits until n events of key are allowed, and counts them, or until
// ctx is done: then the error matches both ErrNotAvailable and ctx.Err(),
// and nothing was consumed. See Limiter for the order in which waiters are
// served. n <= 0, or n over the limit's Burst (it would never be allowed),
// is ErrInvalidQuantity; an empty key ErrInvalidKey.
func (l *Limiter) WaitN(ctx context.Context, key string, n int) error {
	_, err := waitSync(ctx, func(ctx context.Context) *Future[LimitResult] { return l.WaitNAsync(ctx, key, n) })
	return err
}

// WaitNAsync is the Async form of WaitN; the future's value is the decision
// that allowed the events. Cancelling the future, or the end of ctx,
// withdraws the wait; events allowed meanwhile are given back.
func (l *Limiter) WaitNAsync(ctx context.Context, key string, n int) *Future[LimitResult] {
	if err := l.check(key, n, "WaitN"); err != nil {
		return failedFuture[LimitResult](err)
	}
	if n > l.limit.Burst {
		return failedFuture[LimitResult](fmt.Errorf("%w: limiter %q: WaitN(%d) over the burst of %d: never allowed",
			ErrInvalidQuantity, l.name, n, l.limit.Burst))
	}
	if err := ctx.Err(); err != nil {
		return failedFuture[LimitResult](joinErr(ErrNotAvailable, err))
	}
	return l.send(ctx, key, n, true, ErrNotAvailable)
}

// Reset forgets what key has used: it is back to its full burst, and this
// client's waiters for it are tried at once.
func (l *Limiter) Reset(ctx context.Context, key string) error {
	if err := l.check(key, 1, "Reset"); err != nil {
		return err
	}
	pid, err := l.actor()
	if err != nil {
		return err
	}
	_, err = request(ctx, l.c.sys, pid, &messages.LimitReset{Key: key}, nil, func(m any) (struct{}, error) {
		r, ok := m.(*messages.LimitResetResult)
		if !ok {
			return struct{}{}, fmt.Errorf("xsync: limiter %q: unexpected answer %T", l.name, m)
		}
		return struct{}{}, r.Err
	}, nil).Wait(ctx)
	return err
}

func (l *Limiter) check(key string, n int, op string) error {
	switch {
	case l.err != nil:
		return l.err
	case key == "":
		return fmt.Errorf("%w: limiter %q: empty key", ErrInvalidKey, l.name)
	case n <= 0:
		return fmt.Errorf("%w: limiter %q: %s(%d)", ErrInvalidQuantity, l.name, op, n)
	}
	return nil
}

// send asks the limiter's actor for n events of key.
func (l *Limiter) send(ctx context.Context, key string, n int, wait bool, waitErr error) *Future[LimitResult] {
	pid, err := l.actor()
	if err != nil {
		return failedFuture[LimitResult](err)
	}
	id, sys := l.seq.Add(1), l.c.sys
	msg := &messages.LimitAllow{ID: id, Key: key, N: n, Wait: wait}
	convert := func(m any) (LimitResult, error) {
		r, ok := m.(*messages.LimitAllowResult)
		if !ok {
			return LimitResult{}, fmt.Errorf("xsync: limiter %q: unexpected answer %T", l.name, m)
		}
		return LimitResult{Allowed: r.Allowed, Remaining: r.Remaining, RetryAfter: r.RetryAfter, ResetAfter: r.ResetAfter}, r.Err
	}
	return request(ctx, sys, pid, msg, waitErr, convert, func(f *Future[LimitResult], _ *actor.PID) {
		if wait {
			f.withdraw = func() { sys.Root.Send(pid, &messages.LimitWithdraw{ID: id}) }
		} else {
			// A one-shot call is not withdrawn: its answer comes, and
			// discard gives back what it was allowed.
			f.withdraw = func() {}
		}
		f.discard = func(r LimitResult) {
			if r.Allowed > 0 {
				sys.Root.Send(pid, &messages.LimitRefund{Key: key, N: r.Allowed})
			}
		}
		if wait {
			f.observe = l.c.metrics.limiterObserver(l.name)
		}
	})
}
