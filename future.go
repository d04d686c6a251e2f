package xsync

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// Future is the result of an …Async call: it completes once, with a value
// or an error. It is safe for use by several goroutines.
//
// A Future costs no goroutine while it waits: the actor that serves the
// request answers it directly.
type Future[T any] struct {
	done chan struct{}

	mu        sync.Mutex
	completed bool
	delivered bool // a Wait has returned the value: it is the caller's now
	cancelled bool
	cause     error // why it was cancelled
	val       T
	err       error

	// waitErr is the operation's sentinel (ErrNotObtained, ErrNotAvailable),
	// joined with the context's error when a wait ends on the context.
	waitErr error
	// withdraw asks the actor to drop the pending request; it must not block.
	withdraw func()
	// discard hands back a value that nobody will receive (a lease granted
	// after a cancel is released, containers are made ready again); it must
	// not block.
	discard func(T)
	// stopAfter undoes the context.AfterFunc that cancels on ctx.Done.
	stopAfter func() bool
	// opCtx is the context of the …Async call: once it is done, a result
	// that arrives is handed back, whoever is waiting.
	opCtx context.Context
	// observe, when set, is told the result when complete sets it, before
	// done closes (metrics); it runs under mu, so it must not block nor
	// call the future.
	observe func(T, error)
	// cleanup, when set, runs once the future is complete (it frees what
	// the call set up for its wait, e.g. a MaxWait timer).
	cleanup func()
}

func newFuture[T any](waitErr error) *Future[T] {
	return &Future[T]{done: make(chan struct{}), waitErr: waitErr}
}

// failedFuture returns a future that is already complete with err.
func failedFuture[T any](err error) *Future[T] {
	f := newFuture[T](nil)
	f.complete(*new(T), err)
	return f
}

// Wait waits for the result. When ctx ends first it returns an error that
// matches ctx.Err() and, for operations that can fail to obtain something,
// ErrNotObtained or ErrNotAvailable; the operation goes on (use Cancel to
// end it, or the context given to the …Async call).
func (f *Future[T]) Wait(ctx context.Context) (T, error) {
	select {
	case <-f.done:
	default:
		select {
		case <-f.done:
		case <-ctx.Done():
			select {
			case <-f.done:
				// Complete already: the result wins. Returning the error
				// would strand a value that complete has kept from the
				// context's cancellation (and so from discard).
			default:
				var zero T
				if f.waitErr != nil {
					return zero, joinErr(f.waitErr, ctx.Err())
				}
				return zero, ctx.Err()
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delivered = true
	return f.val, f.err
}

// Done is closed when the future is complete.
func (f *Future[T]) Done() <-chan struct{} { return f.done }

// Cancel ends the operation. A pending request is withdrawn and the future
// completes with an error that matches context.Canceled (and the operation's
// sentinel). A value that was granted but not yet returned by Wait is handed
// back: a lease is released, containers are made ready again. Cancel after
// Wait returned the value does nothing. Cancel is idempotent.
func (f *Future[T]) Cancel() { f.cancel(context.Canceled) }

func (f *Future[T]) cancel(cause error) {
	f.mu.Lock()
	if f.delivered || f.cancelled {
		f.mu.Unlock()
		return
	}
	f.cancelled = true
	f.cause = cause
	if !f.completed {
		withdraw := f.withdraw
		f.mu.Unlock()
		if withdraw != nil {
			// The actor answers the withdrawn request, or has answered it
			// already; complete turns either answer into the cancellation.
			withdraw()
		} else {
			f.complete(*new(T), nil)
		}
		return
	}
	if f.err == nil && f.discard != nil {
		f.discard(f.val)
	}
	var zero T
	f.val, f.err = zero, f.cancelErr(cause)
	f.mu.Unlock()
}

func (f *Future[T]) cancelErr(cause error) error {
	if f.waitErr != nil {
		return joinErr(f.waitErr, cause)
	}
	return cause
}

// joinErr is an error that matches both a and b with errors.Is, and prints
// on one line as "a: b" (errors.Join would print two lines, which breaks
// one-line logs).
func joinErr(a, b error) error { return fmt.Errorf("%w: %w", a, b) }

// complete sets the result once; later calls do nothing. It never blocks.
func (f *Future[T]) complete(v T, err error) {
	f.mu.Lock()
	if f.completed {
		f.mu.Unlock()
		return
	}
	f.completed = true
	if !f.cancelled && f.opCtx != nil && f.opCtx.Err() != nil {
		// The operation's context ended and its AfterFunc has not run yet
		// (or never will: stop below may beat it). A Wait may already have
		// returned the context's error, so nobody will receive v.
		f.cancelled, f.cause = true, context.Cause(f.opCtx)
	}
	if f.cancelled {
		if err == nil && f.discard != nil {
			f.discard(v)
		}
		var zero T
		v, err = zero, f.cancelErr(f.cause)
	}
	f.val, f.err = v, err
	if f.observe != nil {
		// Before done closes: whoever Waits on the result finds it counted.
		f.observe(v, err)
	}
	stop, cleanup := f.stopAfter, f.cleanup
	close(f.done)
	f.mu.Unlock()
	if stop != nil {
		stop()
	}
	if cleanup != nil {
		cleanup()
	}
}

// reply is the actor.Process behind a future's PID: actors answer a request
// with ctx.Respond, and the answer lands here, in the sender's goroutine.
type reply[T any] struct {
	f       *Future[T]
	sys     *actor.ActorSystem
	convert func(msg any) (T, error)
}

// SendUserMessage receives the actor's answer: it completes the future.
func (r *reply[T]) SendUserMessage(pid *actor.PID, message any) {
	r.sys.ProcessRegistry.Remove(pid)
	msg := actor.UnwrapEnvelopeMessage(message)
	if _, ok := msg.(*actor.DeadLetterResponse); ok {
		r.f.complete(*new(T), ErrClosed)
		return
	}
	v, err := r.convert(msg)
	r.f.complete(v, err)
}

// SendSystemMessage treats a system message as an answer.
func (r *reply[T]) SendSystemMessage(pid *actor.PID, message any) { r.SendUserMessage(pid, message) }

// Stop fails the future with ErrClosed: nobody will answer it.
func (r *reply[T]) Stop(pid *actor.PID) {
	r.sys.ProcessRegistry.Remove(pid)
	r.f.complete(*new(T), ErrClosed)
}

// request sends msg to pid with a fresh future as its sender, and returns
// the future. convert turns the actor's answer into the future's result.
// When ctx ends before the answer, withdraw (if any) is called, then the
// future completes with the cancellation error.
func request[T any](ctx context.Context, sys *actor.ActorSystem, pid *actor.PID, msg any,
	waitErr error, convert func(msg any) (T, error), setup func(f *Future[T], reply *actor.PID)) *Future[T] {
	f := newFuture[T](waitErr)
	r := &reply[T]{f: f, sys: sys, convert: convert}
	replyPID, ok := sys.ProcessRegistry.Add(r, "xsync-future-"+sys.ProcessRegistry.NextId())
	if !ok {
		f.complete(*new(T), errors.New("xsync: cannot register future"))
		return f
	}
	if setup != nil {
		setup(f, replyPID)
	}
	if ctx.Err() != nil {
		// A call whose context is done already sends nothing.
		sys.ProcessRegistry.Remove(replyPID)
		f.complete(*new(T), f.cancelErr(context.Cause(ctx)))
		return f
	}
	if ctx.Done() != nil {
		f.opCtx = ctx
	}
	sys.Root.RequestWithCustomSender(pid, msg, replyPID)
	// After the send: a withdrawal must never overtake its request.
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { f.cancel(context.Cause(ctx)) })
		f.mu.Lock()
		if f.completed {
			f.mu.Unlock()
			stop()
		} else {
			f.stopAfter = stop
			f.mu.Unlock()
		}
	}
	return f
}
