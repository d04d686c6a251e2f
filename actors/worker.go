package actors

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/redisxsync/xsync/messages"
)

// worker is what the lock manager and the pool actors share: the Redis
// calls they run off the mailbox, their timers, and a Shutdown that waits
// for the calls under way. An actor embeds it and calls started on
// *actor.Started.
type worker struct {
	self *actor.PID
	root *actor.RootContext

	busy       int        // Redis calls under way
	closedErr  error      // set by Shutdown: the answer to every later request
	shutdownTo *actor.PID // who asked for Shutdown
	finished   bool       // Shutdown answered: no call is under way, none starts

	// calls hands a call to a goroutine of an earlier call that waits for
	// another (see callLoop); idle is closed when the actor is finished or
	// stopped, and ends those goroutines.
	calls     chan func()
	idle      chan struct{}
	idleEnded bool

	// deadlines hands out the contexts of goRedisFor.
	deadlines *sharedDeadlines

	// holding: the mailbox takes the calls that the message it is handling
	// starts (mailbox.go); held is the last of them, the others are started.
	holding bool
	held    callJob
}

// callIdle is how long the goroutine of a finished Redis call waits for
// the next call before it ends. Under load the next call comes within it,
// and runs on a goroutine whose stack has grown already: a fresh goroutine
// for every call spent a tenth of the client's CPU growing its stack
// through go-redis's call path.
const callIdle = 250 * time.Millisecond

func (w *worker) started(ctx actor.Context) {
	w.self, w.root = ctx.Self(), ctx.ActorSystem().Root
	w.calls, w.idle = make(chan func()), make(chan struct{})
	w.deadlines = &sharedDeadlines{}
}

// goRedis runs call, a Redis call, off the mailbox with a context that ends
// at deadline, and sends its result to the actor as a message. The actor
// calls callDone when that message arrives. The result is an inlineMessage
// (it embeds callResult): the actor's mailbox, when idle, runs it on the
// call's goroutine (mailbox.go). While the mailbox holds calls (holdCalls),
// the call waits for the end of the message, and the mailbox runs it on
// its own goroutine once the run is over, or starts it (startCall).
func (w *worker) goRedis(deadline time.Time, call func(ctx context.Context) inlineMessage) {
	self, root := w.self, w.root
	w.goCall(func() callJob {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		msg := call(ctx)
		cancel()
		root.Send(self, msg)
		return takeNextCall(msg)
	})
}

// goRedisFor is goRedis with a context that ends timeout after the call
// starts, or up to callGrain later: the calls that start within callGrain
// of each other share one context (sharedDeadlines), which saves each
// call a context and its timer. For the calls whose deadline is only a
// bound on a stuck connection (seconds); a deadline that means something
// (a lease's expiry) goes to goRedis.
func (w *worker) goRedisFor(timeout time.Duration, call func(ctx context.Context) inlineMessage) {
	self, root, deadlines := w.self, w.root, w.deadlines
	w.goCall(func() callJob {
		msg := call(deadlines.context(timeout))
		root.Send(self, msg)
		return takeNextCall(msg)
	})
}

// goCall starts job, a Redis call, as goRedis describes.
func (w *worker) goCall(job callJob) {
	w.busy++
	if w.holding {
		if w.held != nil {
			w.startCall(w.held) // the earlier one need not wait
		}
		w.held = job
		return
	}
	w.startCall(job)
}

// callGrain is how much later than asked a context of goRedisFor may end.
const callGrain = 50 * time.Millisecond

// sharedDeadlines hands the calls of one actor that start within callGrain
// of each other, with one timeout, one context. A context is never
// cancelled before its deadline: it ends by its timer, or by release.
type sharedDeadlines struct {
	last atomic.Pointer[sharedDeadline]
}

type sharedDeadline struct {
	ctx     context.Context
	cancel  context.CancelFunc
	timeout time.Duration
	at      time.Time
}

// context returns a context that ends between timeout and timeout +
// callGrain from now. The calls' goroutines ask for it concurrently.
func (d *sharedDeadlines) context(timeout time.Duration) context.Context {
	want := time.Now().Add(timeout)
	if s := d.last.Load(); s != nil && s.timeout == timeout && !s.at.Before(want) {
		return s.ctx
	}
	s := &sharedDeadline{timeout: timeout, at: want.Add(callGrain)}
	s.ctx, s.cancel = context.WithDeadline(context.Background(), s.at)
	d.last.Store(s)
	return s.ctx
}

// release stops the timer of the last context, once no call uses it.
func (d *sharedDeadlines) release() {
	if s := d.last.Swap(nil); s != nil {
		s.cancel()
	}
}

// A callJob runs a Redis call and sends its result; it returns the next
// call that the actor's mailbox handed to its goroutine meanwhile, if any.
type callJob func() callJob

// runCalls runs job and the calls handed on to its goroutine, one after the
// other: a loop, so that a chain of calls does not grow the stack.
func runCalls(job callJob) {
	for job != nil {
		job = job()
	}
}

// startCall runs job on a goroutine of an earlier call that waits for
// another, or on a new one.
func (w *worker) startCall(job callJob) {
	run := func() { runCalls(job) }
	select {
	case w.calls <- run: // a goroutine of an earlier call was waiting
	default:
		go callLoop(run, w.calls, w.idle)
	}
}

// holdCalls implements callHolder.
func (w *worker) holdCalls(on bool) { w.holding = on }

// heldCall implements callHolder.
func (w *worker) heldCall() callJob {
	job := w.held
	w.held = nil
	return job
}

// callLoop runs job, then the calls handed to it, until it has waited
// callIdle for one or the actor's calls ended.
func callLoop(job func(), calls <-chan func(), idle <-chan struct{}) {
	job()
	t := time.NewTimer(callIdle)
	defer t.Stop()
	for {
		select {
		case job = <-calls:
			job()
			t.Reset(callIdle)
		case <-t.C:
			return
		case <-idle:
			return
		}
	}
}

// endIdle ends the goroutines that wait for calls: the actor is finished or
// stopped. A call started later runs on a goroutine of its own.
func (w *worker) endIdle() {
	if w.idle != nil && !w.idleEnded {
		w.idleEnded = true
		close(w.idle)
	}
}

// callDone counts the call whose result arrived as finished.
func (w *worker) callDone() {
	w.busy--
	w.maybeFinish()
}

// sendAfter sends msg to the actor after d.
func (w *worker) sendAfter(d time.Duration, msg any) *time.Timer {
	self, root := w.self, w.root
	return time.AfterFunc(d, func() { root.Send(self, msg) })
}

// beginShutdown handles the start of a Shutdown: closedErr becomes s.Err
// (fallback when that is nil), and maybeFinish answers once no call is
// under way. It reports false, having answered, when the actor was shut
// down already.
func (w *worker) beginShutdown(ctx actor.Context, s *messages.Shutdown, fallback error) bool {
	if w.closedErr != nil {
		ctx.Respond(&messages.ShutdownResult{})
		return false
	}
	w.closedErr = s.Err
	if w.closedErr == nil {
		w.closedErr = fallback
	}
	w.shutdownTo = ctx.Sender()
	return true
}

// maybeFinish answers Shutdown once no Redis call is under way.
func (w *worker) maybeFinish() {
	if w.closedErr == nil || w.finished || w.busy > 0 {
		return
	}
	w.finished = true
	w.endIdle()
	if w.deadlines != nil {
		w.deadlines.release() // no call is under way
	}
	if w.shutdownTo != nil {
		w.root.Send(w.shutdownTo, &messages.ShutdownResult{})
	}
}
