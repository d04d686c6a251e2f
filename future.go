package xsync

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

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
		return f.deliver()
	default:
	}
	return waitOn(f, ctx.Done(), ctx.Err)
}

// waitOn waits for f's result until stop delivers, then returns end's
// error, joined with the operation's sentinel if it has one.
func waitOn[T, S any](f *Future[T], stop <-chan S, end func() error) (T, error) {
	select {
	case <-f.done:
	case <-stop:
		select {
		case <-f.done:
			// Complete already: the result wins. Returning the error
			// would strand a value that complete has kept from the
			// context's cancellation (and so from discard).
		default:
			var zero T
			if f.waitErr != nil {
				return zero, joinErr(f.waitErr, end())
			}
			return zero, end()
		}
	}
	return f.deliver()
}

// deliver returns the result of a complete future, which is the caller's
// from now on.
func (f *Future[T]) deliver() (T, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delivered = true
	return f.val, f.err
}

// waitSync is the synchronous form of an …Async call, X(ctx) for
// XAsync(ctx).Wait(ctx): start sends the request with a context that is
// never done (detached: it keeps ctx's values and deadline), so that no
// context.AfterFunc is registered for it, and when ctx ends before the
// result the request is cancelled here, with ctx's cause, as the
// AfterFunc would have. A ctx that is done already goes to start as it
// is: the request is not sent.
func waitSync[T any](ctx context.Context, start func(ctx context.Context) *Future[T]) (T, error) {
	if ctx.Done() == nil || ctx.Err() != nil {
		return start(ctx).Wait(ctx)
	}
	f := start(detached{Context: context.WithoutCancel(ctx), parent: ctx})
	v, err := f.Wait(ctx)
	if err != nil {
		// Nothing when Wait returned the result (an error of the
		// operation): cancel after delivery does nothing.
		f.cancel(context.Cause(ctx))
	}
	return v, err
}

// detached is a context without its parent's cancellation but with its
// values and its deadline: what an …Async call reads of its context (a
// pool's waiter files its deadline) stays, and no AfterFunc is registered.
type detached struct {
	context.Context // context.WithoutCancel(parent)
	parent          context.Context
}

// Deadline implements context.Context: the parent's.
func (d detached) Deadline() (time.Time, bool) { return d.parent.Deadline() }

// waitTimeout waits for the result for d at most, and then returns
// context.DeadlineExceeded; the operation goes on. It is Wait with a
// timer instead of a context.
func (f *Future[T]) waitTimeout(d time.Duration) (T, error) {
	select {
	case <-f.done:
		return f.deliver()
	default:
	}
	t := newTimer(d)
	defer putTimer(t)
	return waitOn(f, t.C, func() error { return context.DeadlineExceeded })
}

// timers keeps the stopped timers of waitTimeout for the next wait: a
// Release would otherwise make one and throw it away.
var timers sync.Pool

// newTimer is time.NewTimer(d), from timers when one is there.
func newTimer(d time.Duration) *time.Timer {
	if t, ok := timers.Get().(*time.Timer); ok {
		t.Reset(d) // stopped and drained by putTimer
		return t
	}
	return time.NewTimer(d)
}

// putTimer stops t and keeps it for newTimer. A timer that fired may hold
// its value in its channel when the main module asks for the timers of Go
// before 1.23 (asynctimerchan=1): it is drained, or it would end the next
// wait at once.
func putTimer(t *time.Timer) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	timers.Put(t)
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

// reply is what an answer to a request completes: the request's future,
// with the conversion of the actor's answer into its result.
type reply[T any] struct {
	f       *Future[T]
	convert func(msg any) (T, error)
}

// deliver completes the future with the actor's answer; a dead letter
// (the actor is gone) or a stop fails it with ErrClosed.
func (r *reply[T]) deliver(msg any) {
	switch msg.(type) {
	case *actor.DeadLetterResponse, replyStopped:
		r.f.complete(*new(T), ErrClosed)
		return
	}
	v, err := r.convert(msg)
	r.f.complete(v, err)
}

// replyStopped is what a reply process that is stopped delivers.
type replyStopped struct{}

// Answers reach the futures through one actor.Process, replies, at an
// address of their own (replyAddress) that a resolver on the actor system
// maps to it; the PID's RequestId picks the future. protoactor's own
// futures register a process per request in the system's process registry
// instead: an id string made, hashed twice and a lock taken to add the
// process, find it and remove it, about 5% of a contended Lock's client
// CPU.

// replyAddress is the address of the PIDs of xsync's futures.
const replyAddress = "xsync-futures"

// replyShards spreads the futures under way over this many locks.
const replyShards = 64

type replyTarget interface{ deliver(msg any) }

// replyEntry is a future under way: its target, and the actor its request
// went to (its system and id), for abandon.
type replyEntry struct {
	target replyTarget
	sys    *actor.ActorSystem
	to     string
}

type replyShard struct {
	mu sync.Mutex
	m  map[uint32]replyEntry
}

type replyRouter struct {
	next   atomic.Uint32
	shards [replyShards]replyShard
}

// replies holds every xsync future under way, whatever its actor system.
var replies = func() *replyRouter {
	r := &replyRouter{}
	for i := range r.shards {
		r.shards[i].m = map[uint32]replyEntry{}
	}
	return r
}()

var _ actor.Process = replies

// add files t, the future of a request to the actor to of sys, under a
// fresh id and returns the PID that reaches it. An id still under way
// after the counter wrapped (2^32 requests later) is skipped.
func (r *replyRouter) add(t replyTarget, sys *actor.ActorSystem, to *actor.PID) *actor.PID {
	for {
		id := r.next.Add(1)
		s := &r.shards[id%replyShards]
		s.mu.Lock()
		if _, taken := s.m[id]; !taken {
			s.m[id] = replyEntry{target: t, sys: sys, to: to.GetId()}
			s.mu.Unlock()
			return &actor.PID{Address: replyAddress, Id: replyAddress, RequestId: id}
		}
		s.mu.Unlock()
	}
}

// take removes the target of pid and returns it; nil when it was taken
// already (an answer after the first is dropped).
func (r *replyRouter) take(pid *actor.PID) replyTarget {
	s := &r.shards[pid.RequestId%replyShards]
	s.mu.Lock()
	e := s.m[pid.RequestId]
	delete(s.m, pid.RequestId)
	s.mu.Unlock()
	return e.target
}

// abandon fails with ErrClosed every future still waiting for an answer of
// the actors ids of sys, which are stopped: a request left in the mailbox
// of an actor stopped at once (Close with a done context) is never
// answered, and its future would wait, and be kept here, for ever.
func (r *replyRouter) abandon(sys *actor.ActorSystem, ids map[string]bool) {
	var gone []replyTarget
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		for id, e := range s.m {
			if e.sys == sys && ids[e.to] {
				gone = append(gone, e.target)
				delete(s.m, id)
			}
		}
		s.mu.Unlock()
	}
	for _, t := range gone {
		t.deliver(replyStopped{})
	}
}

// SendUserMessage implements actor.Process: the answer completes the
// future, in the sender's goroutine.
func (r *replyRouter) SendUserMessage(pid *actor.PID, message any) {
	if t := r.take(pid); t != nil {
		t.deliver(actor.UnwrapEnvelopeMessage(message))
	}
}

// SendSystemMessage implements actor.Process: a system message is taken
// as an answer.
func (r *replyRouter) SendSystemMessage(pid *actor.PID, message any) {
	r.SendUserMessage(pid, message)
}

// Stop implements actor.Process: the future fails with ErrClosed, as
// nobody will answer it.
func (r *replyRouter) Stop(pid *actor.PID) {
	if t := r.take(pid); t != nil {
		t.deliver(replyStopped{})
	}
}

// resolveReply is the address resolver that routeReplies adds to an actor
// system: it maps replyAddress to replies, and leaves every other address
// to the resolvers after it.
func resolveReply(pid *actor.PID) (actor.Process, bool) {
	if pid.Address == replyAddress {
		return replies, true
	}
	return nil, false
}

var routeMu sync.Mutex

// routeReplies adds resolveReply to sys, first, unless it has it already.
// A client calls it once, when it is made, before it sends a request.
func routeReplies(sys *actor.ActorSystem) {
	routeMu.Lock()
	defer routeMu.Unlock()
	ours := reflect.ValueOf(resolveReply).Pointer()
	for _, h := range sys.ProcessRegistry.RemoteHandlers {
		if reflect.ValueOf(h).Pointer() == ours {
			return
		}
	}
	sys.ProcessRegistry.RemoteHandlers = append([]actor.AddressResolver{resolveReply}, sys.ProcessRegistry.RemoteHandlers...)
}

// request sends msg to pid with a fresh future as its sender, and returns
// the future. convert turns the actor's answer into the future's result.
// When ctx ends before the answer, withdraw (if any) is called, then the
// future completes with the cancellation error.
func request[T any](ctx context.Context, sys *actor.ActorSystem, pid *actor.PID, msg any,
	waitErr error, convert func(msg any) (T, error), setup func(f *Future[T], reply *actor.PID)) *Future[T] {
	f := newFuture[T](waitErr)
	replyPID := replies.add(&reply[T]{f: f, convert: convert}, sys, pid)
	if setup != nil {
		setup(f, replyPID)
	}
	if ctx.Err() != nil {
		// A call whose context is done already sends nothing.
		replies.take(replyPID)
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
