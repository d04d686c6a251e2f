package actors

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/redisxsync/xsync/internal/xerr"
	"github.com/redisxsync/xsync/messages"
	"github.com/redisxsync/xsync/redisx"
)

// Limits of a limiter actor.
const (
	// limiterMaxBatch bounds the waiters one limiter_allow call tries.
	limiterMaxBatch = 128
	// limiterCallTimeout bounds one script call.
	limiterCallTimeout = 10 * time.Second
	// A call that failed is tried again after a backoff between these.
	limiterRetryMin = 50 * time.Millisecond
	limiterRetryMax = 2 * time.Second
)

var (
	limiterAllowScript  = registry.Get("limiter_allow")
	limiterRefundScript = registry.Get("limiter_refund")
)

// LimiterClient is what a limiter actor needs of Redis: scripts, and DEL
// for a reset.
type LimiterClient interface {
	redis.Scripter
	Del(ctx context.Context, keys ...string) *redis.IntCmd
}

// LimiterConfig configures a Limiter actor.
type LimiterConfig struct {
	Name   string
	Keys   redisx.Keys
	Client LimiterClient // the DB's client for scripts (go-redis retries off)
	// Rate events per Period, Burst at once: valid (the facade checks).
	Rate   int
	Period time.Duration
	Burst  int
	Log    *zap.Logger
}

// limiterActor is the actor of one rate limiter of one client (GCRA, see
// limiter_allow.lua). A one-shot request (Allow) is one script call, sent at
// once. Waiting requests queue per key, in arrival order, and only the head
// of a queue is ever waited for:
//
//   - A key whose queue was idle is tried at once: one limiter_allow call
//     serves, in order, as many waiters of the key as the limit allows now
//     (up to limiterMaxBatch), and returns the RetryAfter of the first it
//     refuses.
//   - The actor then sets one timer for that key, at RetryAfter after the
//     answer arrived, and sends nothing for the key until it fires. Waiters
//     that arrive meanwhile queue behind: they could not be served before
//     the head anyway. So waiting costs no Redis command until RetryAfter.
//   - A withdrawn waiter that nothing was allowed to is dropped; events
//     allowed to one withdrawn while its call was under way are given back
//     (limiter_refund). A withdrawn head lets the next one try at once.
//
// Allow does not queue: it competes with this client's waiters as a call
// from another process would.
type limiterActor struct {
	worker
	cfg    LimiterConfig
	log    *zap.Logger
	period string // cfg.Period in seconds, as limiter_allow reads it

	queues map[string]*limitQueue
	byID   map[uint64]*limitWaiter

	backoff time.Duration
}

// limitQueue holds the waiters of one key.
type limitQueue struct {
	key        string
	waiters    waitQueue[*limitWaiter] // arrival order
	attempting bool
	timer      *time.Timer
	timerGen   uint64
}

type limitWaiter struct {
	id       uint64
	key      string
	n        int
	sender   *actor.PID
	inFlight bool
	done     bool // answered
}

// gone reports whether w may leave its queue: answered, and in no call
// (one in a call stays, so that events allowed to it are given back).
func (w *limitWaiter) gone() bool { return w.done && !w.inFlight }

// Messages the Limiter sends itself.
type (
	limitBatchDone struct {
		callResult
		q     *limitQueue
		batch []*limitWaiter
		outs  []LimitDecision
		err   error
	}
	limitTick struct {
		q   *limitQueue
		gen uint64
	}
	limitOpDone struct {
		callResult
		to     *actor.PID // nil: nobody waits for the answer
		answer any
		wake   string // a key whose waiters may be served sooner now
	}
)

// NewLimiter returns the producer of a limiter actor.
func NewLimiter(cfg LimiterConfig) actor.Producer {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	return func() actor.Actor {
		return &limiterActor{
			cfg:    cfg,
			log:    cfg.Log,
			period: strconv.FormatFloat(cfg.Period.Seconds(), 'f', -1, 64),
			queues: map[string]*limitQueue{},
			byID:   map[uint64]*limitWaiter{},
		}
	}
}

// Receive implements actor.Actor.
func (l *limiterActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		l.started(ctx)
	case *messages.LimitAllow:
		l.onAllow(ctx, m)
	case *messages.LimitWithdraw:
		l.onWithdraw(ctx, m)
	case *messages.LimitRefund:
		l.refund(m.Key, m.N)
	case *messages.LimitReset:
		l.onReset(ctx, m)
	case *messages.LimitReadStats:
		l.onStats(ctx)
	case *limitTick:
		if q := m.q; q.timer != nil && q.timerGen == m.gen {
			q.timer = nil
			l.attempt(q)
		}
	case *limitBatchDone:
		l.onBatchDone(ctx, m)
	case *limitOpDone:
		if m.to != nil {
			ctx.Send(m.to, m.answer)
		}
		if m.wake != "" {
			l.wake(m.wake)
		}
		l.callDone()
	case *messages.Shutdown:
		if l.beginShutdown(ctx, m, xerr.ErrClosed) {
			// Waiters in flight are answered now; events allowed to them
			// are given back when their call answers, before Shutdown is.
			l.failAll(ctx, l.closedErr)
			l.maybeFinish()
		}
	case *actor.Stopping:
		if l.closedErr == nil {
			l.failAll(ctx, xerr.ErrClosed)
		}
	}
}

func (l *limiterActor) onAllow(ctx actor.Context, m *messages.LimitAllow) {
	if l.closedErr != nil {
		ctx.Respond(&messages.LimitAllowResult{Err: l.closedErr})
		return
	}
	if _, dup := l.byID[m.ID]; dup || m.N <= 0 || m.Key == "" || (m.Wait && m.N > l.cfg.Burst) {
		ctx.Respond(&messages.LimitAllowResult{Err: fmt.Errorf("xsync: limiter %q: bad request (key %q, n=%d)", l.cfg.Name, m.Key, m.N)})
		return
	}
	if !m.Wait {
		to, key, n := ctx.Sender(), m.Key, m.N
		l.goRedisFor(limiterCallTimeout, func(c context.Context) inlineMessage {
			outs, err := l.runAllow(c, key, []int{n})
			if err != nil {
				return &limitOpDone{to: to, answer: &messages.LimitAllowResult{Err: l.wrap("allow", err)}}
			}
			d := outs[0]
			return &limitOpDone{to: to, answer: &messages.LimitAllowResult{
				Allowed: d.Allowed, Remaining: d.Remaining, RetryAfter: d.RetryAfter, ResetAfter: d.ResetAfter,
			}}
		})
		return
	}
	q := l.queues[m.Key]
	if q == nil {
		q = &limitQueue{key: m.Key}
		l.queues[m.Key] = q
	}
	w := &limitWaiter{id: m.ID, key: m.Key, n: m.N, sender: ctx.Sender()}
	q.waiters.push(w)
	l.byID[w.id] = w
	// With a timer set, the head waits for its time: the newcomer cannot go
	// before it, so it costs nothing now.
	if q.timer == nil {
		l.attempt(q)
	}
}

// attempt starts a limiter_allow call for the first waiters of q, unless
// one is under way.
func (l *limiterActor) attempt(q *limitQueue) {
	if l.closedErr != nil || q.attempting {
		return
	}
	if q.waiters.trim() {
		l.forget(q)
		return
	}
	var batch []*limitWaiter
	costs := make([]int, 0, min(len(q.waiters.ws), limiterMaxBatch))
	for _, w := range q.waiters.ws {
		if len(batch) == limiterMaxBatch {
			break
		}
		if !w.done {
			w.inFlight = true
			batch = append(batch, w)
			costs = append(costs, w.n)
		}
	}
	q.attempting = true
	l.goRedisFor(limiterCallTimeout, func(c context.Context) inlineMessage {
		outs, err := l.runAllow(c, q.key, costs)
		return &limitBatchDone{q: q, batch: batch, outs: outs, err: err}
	})
}

func (l *limiterActor) onBatchDone(ctx actor.Context, m *limitBatchDone) {
	q := m.q
	q.attempting = false
	for _, w := range m.batch {
		w.inFlight = false
	}
	refund := 0
	switch {
	case m.err != nil && errors.Is(l.wrap("wait", m.err), xerr.ErrCorrupt):
		l.log.Warn("limiter call failed", zap.String("key", q.key), zap.Error(m.err))
		for _, w := range m.batch {
			if !w.done {
				l.answer(ctx, w, &messages.LimitAllowResult{Err: l.wrap("wait", m.err)})
			}
		}
	case m.err != nil:
		l.log.Warn("limiter call failed", zap.String("key", q.key), zap.Error(m.err))
		l.backoff = min(max(2*l.backoff, limiterRetryMin), limiterRetryMax)
		l.setTimer(q, l.backoff)
	default:
		l.backoff = 0
		for i, d := range m.outs {
			w := m.batch[i]
			if d.Allowed == 0 {
				if !w.done {
					// Counted from the answer: the timer never fires
					// before the server would allow it.
					l.setTimer(q, d.RetryAfter)
				}
				break
			}
			if w.done {
				refund += w.n
				continue
			}
			l.answer(ctx, w, &messages.LimitAllowResult{
				Allowed: d.Allowed, Remaining: d.Remaining, RetryAfter: d.RetryAfter, ResetAfter: d.ResetAfter,
			})
		}
	}
	// Every waiter of the batch that is answered now leaves the queue
	// (those withdrawn in flight included).
	for _, w := range m.batch {
		if w.done {
			q.waiters.left()
		}
	}
	if refund > 0 {
		l.refund(q.key, refund)
	}
	if q.timer == nil {
		// Every waiter of the batch was served (more may be queued), or
		// the refused one was withdrawn meanwhile.
		l.attempt(q)
	}
	l.callDone()
}

func (l *limiterActor) onWithdraw(ctx actor.Context, m *messages.LimitWithdraw) {
	w := l.byID[m.ID]
	if w == nil {
		return // answered already
	}
	l.answer(ctx, w, &messages.LimitAllowResult{Err: fmt.Errorf("%w: limiter %q: key %q: withdrawn", xerr.ErrNotAvailable, l.cfg.Name, w.key)})
	q := l.queues[w.key]
	if q == nil || w.inFlight {
		return // its batch's answer deals with it
	}
	head := q.waiters.head() == w
	empty := q.waiters.leave()
	switch {
	case head && q.timer != nil:
		// The timer was the head's: the next one may need less.
		l.stopTimer(q)
		l.attempt(q)
	case empty && !q.attempting:
		l.stopTimer(q)
		l.forget(q)
	}
}

// wake tries the waiters of key at once, when they wait for a timer:
// events came back (a refund, a reset).
func (l *limiterActor) wake(key string) {
	if q := l.queues[key]; q != nil && q.timer != nil {
		l.stopTimer(q)
		l.attempt(q)
	}
}

func (l *limiterActor) refund(key string, n int) {
	if n <= 0 || key == "" {
		return
	}
	if l.finished {
		l.log.Warn("limiter refund after shutdown: dropped", zap.String("key", key), zap.Int("n", n))
		return
	}
	l.goRedisFor(limiterCallTimeout, func(c context.Context) inlineMessage {
		err := limiterRefundScript.Run(c, l.cfg.Client, []string{l.cfg.Keys.Limiter(l.cfg.Name, key)},
			l.cfg.Rate, l.period, n).Err()
		if err != nil {
			l.log.Warn("limiter refund failed", zap.String("key", key), zap.Int("n", n), zap.Error(err))
			return &limitOpDone{}
		}
		return &limitOpDone{wake: key}
	})
}

func (l *limiterActor) onReset(ctx actor.Context, m *messages.LimitReset) {
	if l.closedErr != nil {
		ctx.Respond(&messages.LimitResetResult{Err: l.closedErr})
		return
	}
	to, key := ctx.Sender(), m.Key
	l.goRedisFor(limiterCallTimeout, func(c context.Context) inlineMessage {
		if err := l.cfg.Client.Del(c, l.cfg.Keys.Limiter(l.cfg.Name, key)).Err(); err != nil {
			return &limitOpDone{to: to, answer: &messages.LimitResetResult{Err: l.wrap("reset", err)}}
		}
		return &limitOpDone{to: to, answer: &messages.LimitResetResult{}, wake: key}
	})
}

func (l *limiterActor) onStats(ctx actor.Context) {
	r := &messages.LimitReadStatsResult{Waiting: len(l.byID), Busy: l.busy}
	for _, q := range l.queues {
		if q.timer != nil {
			r.Timers++
		}
	}
	ctx.Respond(r)
}

func (l *limiterActor) answer(ctx actor.Context, w *limitWaiter, res *messages.LimitAllowResult) {
	w.done = true
	delete(l.byID, w.id)
	if w.sender != nil {
		ctx.Send(w.sender, res)
	}
}

// forget drops an idle queue, so that keys used once cost nothing.
func (l *limiterActor) forget(q *limitQueue) {
	if len(q.waiters.ws) == 0 && !q.attempting && q.timer == nil && l.queues[q.key] == q {
		delete(l.queues, q.key)
	}
}

func (l *limiterActor) setTimer(q *limitQueue, after time.Duration) {
	l.stopTimer(q)
	if l.closedErr != nil {
		return
	}
	q.timerGen++
	q.timer = l.sendAfter(max(after, 0), &limitTick{q: q, gen: q.timerGen})
}

func (l *limiterActor) stopTimer(q *limitQueue) {
	if q.timer != nil {
		q.timer.Stop()
		q.timer = nil
		q.timerGen++
	}
}

func (l *limiterActor) wrap(op string, err error) error {
	return xerr.Redis(fmt.Sprintf("limiter %q: %s", l.cfg.Name, op), err)
}

// failAll answers every waiter with err and stops the timers.
func (l *limiterActor) failAll(ctx actor.Context, err error) {
	for _, q := range l.queues {
		l.stopTimer(q)
		for _, w := range q.waiters.ws {
			if !w.done {
				l.answer(ctx, w, &messages.LimitAllowResult{Err: err})
				if !w.inFlight {
					q.waiters.left()
				}
			}
		}
		q.waiters.trim()
		l.forget(q)
	}
}
