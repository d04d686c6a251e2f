package actors

import (
	"context"
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
}

func (w *worker) started(ctx actor.Context) {
	w.self, w.root = ctx.Self(), ctx.ActorSystem().Root
}

// goRedis runs call, a Redis call, in a goroutine with a context that ends
// at deadline, and sends its result to the actor as a message. The actor
// calls callDone when that message arrives.
func (w *worker) goRedis(deadline time.Time, call func(ctx context.Context) any) {
	w.busy++
	self, root := w.self, w.root
	go func() {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		msg := call(ctx)
		cancel()
		root.Send(self, msg)
	}()
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
	if w.shutdownTo != nil {
		w.root.Send(w.shutdownTo, &messages.ShutdownResult{})
	}
}
