package actors

import (
	"fmt"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/redisxsync/xsync/internal/xerr"
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
// PoolConfig.MaxBypass is not set.
const DefaultMaxBypass = 16

// PoolConfig configures a Pool actor.
type PoolConfig struct {
	// ID names this actor's entry in the pool's waiting count in Redis:
	// unique per client and pool.
	ID     string
	Name   string
	DB     int
	Keys   redisx.Keys
	Client redis.Scripter // DB's client for scripts (go-redis retries off)
	Conn   *actor.PID     // the connection actor, for pub/sub
	// Ack: a take counts once Ack.Replicas replicas confirmed it; one they
	// did not confirm is handed back and fails with ErrNotReplicated.
	Ack redisx.Ack
	Log *zap.Logger
	// MaxBypass is how many later requests may be served before a waiting
	// request that cannot be served yet, before it holds them back. 0 means
	// DefaultMaxBypass; negative means strict FIFO (no bypass at all).
	MaxBypass int
}

// poolActor is the actor of one pool of one client. It serves the pool's
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
// Fairness is package xsync's bypass rule, with MaxBypass as its limit:
// each waiting request carries a budget of bypasses (-1 for one that never
// holds others back: a one-shot request), which pool_take spends.
//
// Cancellation: a withdrawn request is dropped; a grant that raced the
// withdrawal is handed back (pool_handback restores NextAvailable and
// UsageCount), never lost, and so is a grant whose answer a failed call
// lost (the request is dropped before a new call finds it). A withdrawn
// request that held others back has them tried again at once.
type poolActor struct {
	worker
	cfg  PoolConfig
	keys poolKeys
	log  *zap.Logger

	queue   waitQueue[*poolWaiter] // arrival order; answered ones until compacted
	byToken map[string]*poolWaiter

	subscribing, subscribed bool
	attempting              bool // a take call is under way
	dirty                   bool // something changed: try every waiter again

	timer    *time.Timer
	timerAt  time.Time
	timerGen uint64
	backoff  time.Duration

	waiting waitingWriter // this actor's entry in the pool's waiting count
}

type poolWaiter struct {
	token  string
	n      int
	random bool
	wait   bool
	sender *actor.PID
	budget int // bypasses left; -1: never holds others back
	// deadline of the request (zero for none), and waited: a try did not
	// serve it, so it counts in the pool's waiting entry in Redis.
	until  time.Time
	waited bool

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

func (w *poolWaiter) gone() bool { return w.done }

// Messages the Pool sends itself.
type (
	takeDone struct {
		callResult
		batch []*poolWaiter
		start time.Time // local time just before the call
		now   int64     // server time of the call (µs)
		outs  []takeOutcome
		// unreplicated: fewer replicas than Ack.Replicas confirmed the
		// call: its grants are handed back.
		unreplicated bool
		err          error
	}
	opDone struct {
		callResult
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
		return &poolActor{
			cfg:     cfg,
			keys:    newPoolKeys(cfg.Keys, cfg.Name, cfg.DB),
			log:     cfg.Log,
			byToken: map[string]*poolWaiter{},
		}
	}
}

// Receive implements actor.Actor.
func (p *poolActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		p.started(ctx)
	case *messages.PoolTake:
		p.onTake(ctx, m)
	case *messages.PoolWithdrawTake:
		p.onWithdraw(ctx, m)
	case *messages.PoolReturn:
		p.onReturn(ctx, m)
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
	case *messages.PoolReadStats:
		p.onStats(ctx)
	case *messages.PoolReadState:
		ctx.Respond(&messages.PoolReadStateResult{State: p.state()})
	case *messages.SubscribeResult:
		p.onSubscribed(ctx, m)
	case *messages.Published:
		if m.Channel == p.keys.channel.Channel && m.Payload == p.cfg.Name {
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
	case *waitingDone:
		p.onWaitingDone(m)
	case *waitingTick:
		p.waiting.timer = nil
		p.syncWaiting()
	case *opDone:
		if m.to != nil {
			ctx.Send(m.to, m.answer)
		}
		p.callDone()
	case *messages.Shutdown:
		p.onShutdown(ctx, m)
	case *actor.Stopping:
		p.stopTimer()
		p.stopWaitingTimer()
		if p.closedErr == nil {
			for _, w := range p.queue.ws {
				if !w.done {
					p.answer(ctx, w, &messages.PoolTakeResult{Err: xerr.ErrClosed})
				}
			}
			p.queue = waitQueue[*poolWaiter]{}
		}
	}
}

func (p *poolActor) onShutdown(ctx actor.Context, m *messages.Shutdown) {
	if !p.beginShutdown(ctx, m, xerr.ErrClosed) {
		return
	}
	p.stopTimer()
	var handBack []string
	for _, w := range p.queue.ws {
		if !w.done {
			// One in flight stays in its batch: a grant is handed back.
			p.answer(ctx, w, &messages.PoolTakeResult{Err: p.closedErr})
			if w.unsure && !w.inFlight {
				handBack = append(handBack, w.token)
			}
		}
	}
	p.queue = waitQueue[*poolWaiter]{}
	if len(handBack) > 0 {
		p.handBack(ctx, handBack) // before maybeFinish: Shutdown waits for it
	}
	p.stopWaitingTimer()
	p.syncWaiting() // the entry goes; Shutdown waits for it too
	if p.subscribed || p.subscribing {
		ctx.Send(p.cfg.Conn, &messages.Unsubscribe{Channel: p.keys.channel.Channel, Subscriber: p.self})
		p.subscribed = false
	}
	p.maybeFinish()
}

// state is a one-line account of the take machinery, times relative to
// now: what a failing test reports when a waiter was never served.
func (p *poolActor) state() string {
	now := time.Now()
	var b strings.Builder
	fmt.Fprintf(&b, "attempting=%v dirty=%v subscribed=%v busy=%d backoff=%v timer=%v",
		p.attempting, p.dirty, p.subscribed, p.busy, p.backoff, p.timer != nil)
	if p.timer != nil {
		fmt.Fprintf(&b, " (in %v)", p.timerAt.Sub(now).Round(time.Millisecond))
	}
	for _, w := range p.queue.ws {
		fmt.Fprintf(&b, "; waiter wait=%v done=%v tried=%v short=%v deadline=%v budget=%d inFlight=%v unsure=%v",
			w.wait, w.done, w.tried, w.short, w.deadline.Sub(now).Round(time.Millisecond), w.budget, w.inFlight, w.unsure)
	}
	return b.String()
}
