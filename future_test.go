package xsync

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// echo is a stand-in for xsync's actors: it answers "ask" when told to
// ("grant"), answers with an error when the request is withdrawn, and
// answers "ping" and "pending?" (whether an "ask" waits) at once.
type echo struct{ pending *actor.PID }

func (e *echo) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case string:
		switch m {
		case "ask":
			e.pending = ctx.Sender()
		case "ping":
			ctx.Respond("pong")
		case "pending?":
			ctx.Respond(e.pending != nil)
		case "grant":
			if e.pending != nil {
				ctx.Send(e.pending, "granted")
				e.pending = nil
			}
		case "withdraw":
			if e.pending != nil {
				ctx.Send(e.pending, errors.New("withdrawn"))
				e.pending = nil
			}
		}
	}
}

type futureHarness struct {
	sys       *actor.ActorSystem
	pid       *actor.PID
	discarded chan string
}

func newFutureHarness(t *testing.T) *futureHarness {
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }),
		actor.WithDeadLetterThrottleInterval(10*time.Millisecond))
	routeReplies(sys)
	h := &futureHarness{sys: sys, discarded: make(chan string, 1)}
	h.pid = sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &echo{} }))
	t.Cleanup(func() {
		_ = sys.Root.StopFuture(h.pid).Wait()
		sys.Shutdown()
	})
	return h
}

var errTestSentinel = errors.New("test: not obtained")

func (h *futureHarness) ask(ctx context.Context) *Future[string] {
	return request(ctx, h.sys, h.pid, "ask", errTestSentinel,
		func(msg any) (string, error) {
			if err, ok := msg.(error); ok {
				return "", err
			}
			return msg.(string), nil
		},
		func(f *Future[string], _ *actor.PID) {
			f.withdraw = func() { h.sys.Root.Send(h.pid, "withdraw") }
			f.discard = func(v string) { h.discarded <- v }
		})
}

// sync returns once the actor has handled everything sent before: its
// mailbox is FIFO, and it answers "ping" at once.
func (h *futureHarness) sync(t *testing.T) {
	t.Helper()
	if _, err := h.sys.Root.RequestFuture(h.pid, "ping", time.Minute).Result(); err != nil {
		t.Fatalf("ping: %v", err)
	}
}

func TestFuture_WaitReturnsTheAnswer(t *testing.T) {
	h := newFutureHarness(t)
	f := h.ask(t.Context())
	select {
	case <-f.Done():
		t.Fatal("done before the answer")
	default:
	}
	h.sys.Root.Send(h.pid, "grant")
	got, err := f.Wait(t.Context())
	if err != nil || got != "granted" {
		t.Fatalf("Wait = %q, %v", got, err)
	}
	<-f.Done()
	f.Cancel() // after delivery: nothing to hand back
	select {
	case v := <-h.discarded:
		t.Fatalf("Cancel after Wait discarded %q", v)
	default:
	}
}

func TestFuture_WaitEndingOnItsContextMatchesSentinelAndContext(t *testing.T) {
	h := newFutureHarness(t)
	f := h.ask(t.Context())
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	_, err := f.Wait(ctx)
	if !errors.Is(err, errTestSentinel) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v, want sentinel joined with DeadlineExceeded", err)
	}
	// The operation goes on: a later grant is still received.
	h.sys.Root.Send(h.pid, "grant")
	if got, err := f.Wait(t.Context()); err != nil || got != "granted" {
		t.Fatalf("second Wait = %q, %v", got, err)
	}
}

func TestFuture_CancelWithdrawsAPendingRequest(t *testing.T) {
	h := newFutureHarness(t)
	f := h.ask(t.Context())
	f.Cancel()
	_, err := f.Wait(t.Context())
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errTestSentinel) {
		t.Fatalf("Wait after Cancel = %v, want sentinel joined with context.Canceled", err)
	}
	h.sys.Root.Send(h.pid, "grant") // nobody is waiting any more
	h.sync(t)
	select {
	case v := <-h.discarded:
		t.Fatalf("discarded %q although nothing was granted", v)
	default:
	}
}

func TestFuture_CancelHandsBackAnUnreceivedGrant(t *testing.T) {
	h := newFutureHarness(t)
	f := h.ask(t.Context())
	h.sys.Root.Send(h.pid, "grant")
	<-f.Done() // granted, but nobody called Wait
	f.Cancel()
	if v := <-h.discarded; v != "granted" {
		t.Fatalf("discarded %q", v)
	}
	if _, err := f.Wait(t.Context()); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait after Cancel = %v, want context.Canceled", err)
	}
}

func TestFuture_ContextEndWithdrawsTheRequest(t *testing.T) {
	h := newFutureHarness(t)
	ctx, cancel := context.WithCancel(t.Context())
	f := h.ask(ctx)
	cancel()
	<-f.Done()
	if _, err := f.Wait(t.Context()); !errors.Is(err, context.Canceled) || !errors.Is(err, errTestSentinel) {
		t.Fatalf("Wait = %v", err)
	}
	// Already-cancelled context: the request is still withdrawn, never stuck.
	f = h.ask(ctx)
	<-f.Done()
	if _, err := f.Wait(t.Context()); !errors.Is(err, context.Canceled) || !errors.Is(err, errTestSentinel) {
		t.Fatalf("Wait of a request made with a cancelled context = %v, want sentinel joined with context.Canceled", err)
	}
}

// A synchronous call (waitSync) whose context ends withdraws its request
// as the …Async call's context would: the actor holds nothing for it.
func TestFuture_SyncWaitEndingOnItsContextWithdrawsTheRequest(t *testing.T) {
	h := newFutureHarness(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	_, err := waitSync(ctx, h.ask)
	if !errors.Is(err, errTestSentinel) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waitSync = %v, want the sentinel joined with DeadlineExceeded", err)
	}
	// The withdrawal was sent before waitSync returned: the mailbox has it
	// before this question.
	pending, err := h.sys.Root.RequestFuture(h.pid, "pending?", time.Minute).Result()
	if err != nil {
		t.Fatal(err)
	}
	if pending.(bool) {
		t.Fatal("the request is still pending at the actor after the wait ended on its context")
	}
	// And the answer comes back when it comes first.
	f := func(ctx context.Context) *Future[string] {
		got := h.ask(ctx)
		h.sys.Root.Send(h.pid, "grant")
		return got
	}
	if got, err := waitSync(t.Context(), f); err != nil || got != "granted" {
		t.Fatalf("waitSync = %q, %v", got, err)
	}
}

func TestFuture_DeadActorFailsWithErrClosed(t *testing.T) {
	h := newFutureHarness(t)
	dead := h.sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	_ = h.sys.Root.StopFuture(dead).Wait()
	f := request(t.Context(), h.sys, dead, "ask", nil, func(msg any) (string, error) { return "", nil }, nil)
	if _, err := f.Wait(t.Context()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait = %v, want ErrClosed", err)
	}
}

// A grant that arrives after the operation's context ended is handed back
// even when the context's AfterFunc has not run: Wait may already have
// returned the context's error.
func TestFuture_GrantAfterTheContextEndedIsHandedBack(t *testing.T) {
	h := newFutureHarness(t)
	ctx, cancel := context.WithCancel(t.Context())
	f := h.ask(ctx)
	f.mu.Lock()
	f.stopAfter() // as if complete had beaten the AfterFunc to it
	f.stopAfter = nil
	f.mu.Unlock()
	cancel()
	if _, err := f.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want context.Canceled", err)
	}
	h.sys.Root.Send(h.pid, "grant")
	if v := <-h.discarded; v != "granted" {
		t.Fatalf("discarded %q", v)
	}
	if _, err := f.Wait(t.Context()); !errors.Is(err, context.Canceled) {
		t.Fatalf("second Wait = %v, want the cancellation", err)
	}
}

// Answers reach the futures through one resolver per actor system, added
// first and once, whatever other resolvers the system has.
func TestFuture_RepliesAreResolvedOncePerSystemBeforeOtherResolvers(t *testing.T) {
	h := newFutureHarness(t)
	other := h.sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	defer func() { _ = h.sys.Root.StopFuture(other).Wait() }()
	otherProcess, _ := h.sys.ProcessRegistry.Get(other)
	h.sys.ProcessRegistry.RegisterAddressResolver(func(pid *actor.PID) (actor.Process, bool) {
		return otherProcess, true // claims every address it is asked for
	})
	routeReplies(h.sys)
	routeReplies(h.sys)
	ours := 0
	for _, r := range h.sys.ProcessRegistry.RemoteHandlers {
		if p, ok := r(&actor.PID{Address: replyAddress}); ok && p == replies {
			ours++
		}
	}
	if ours != 1 {
		t.Fatalf("%d resolvers of xsync's futures answer, want 1", ours)
	}
	if p, _ := h.sys.ProcessRegistry.Get(&actor.PID{Address: "elsewhere", Id: "x"}); p != otherProcess {
		t.Fatal("another address no longer reaches the other resolver")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	f := h.ask(ctx)
	h.sys.Root.Send(h.pid, "grant")
	if got, err := f.Wait(ctx); err != nil || got != "granted" {
		t.Fatalf("Wait = %q, %v (an answer that another resolver took never comes)", got, err)
	}
}

// A future's PID that is stopped fails the future with ErrClosed; an
// answer after that is dropped.
func TestFuture_StoppedReplyFailsWithErrClosed(t *testing.T) {
	h := newFutureHarness(t)
	var pid *actor.PID
	f := request(t.Context(), h.sys, h.pid, "ask", nil, func(msg any) (string, error) { return msg.(string), nil },
		func(_ *Future[string], reply *actor.PID) { pid = reply })
	h.sync(t) // the echo holds the request
	h.sys.Root.Stop(pid)
	if _, err := f.Wait(t.Context()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait = %v, want ErrClosed", err)
	}
	h.sys.Root.Send(h.pid, "grant")
	h.sync(t)
	if _, err := f.Wait(t.Context()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait after a late answer = %v, want ErrClosed still", err)
	}
}

// BenchmarkFuture_RequestReply: one request answered at once by an actor,
// from one goroutine: the cost of a future and its answer's way back.
func BenchmarkFuture_RequestReply(b *testing.B) {
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	routeReplies(sys)
	pid := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &echo{} }))
	defer func() {
		_ = sys.Root.StopFuture(pid).Wait()
		sys.Shutdown()
	}()
	ctx := context.Background()
	convert := func(msg any) (string, error) { return msg.(string), nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := request(ctx, sys, pid, "ping", nil, convert, nil).Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// abandon fails the futures waiting for the stopped actors of one system,
// and only those: another actor's, or another system's actor of the same
// id, still get their answers.
func TestFuture_AbandonFailsOnlyTheFuturesOfTheStoppedActors(t *testing.T) {
	h, other := newFutureHarness(t), newFutureHarness(t)
	second := &futureHarness{sys: h.sys, discarded: make(chan string, 1)}
	second.pid = h.sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &echo{} }))
	defer func() { _ = h.sys.Root.StopFuture(second.pid).Wait() }()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	gone, kept, elsewhere := h.ask(ctx), second.ask(ctx), other.ask(ctx)
	h.sync(t)
	second.sync(t)
	other.sync(t)
	replies.abandon(h.sys, map[string]bool{h.pid.GetId(): true})
	if _, err := gone.Wait(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("the stopped actor's future: %v, want ErrClosed", err)
	}
	for _, w := range []*futureHarness{second, other} {
		w.sys.Root.Send(w.pid, "grant")
	}
	for name, f := range map[string]*Future[string]{"another actor's": kept, "another system's": elsewhere} {
		if got, err := f.Wait(ctx); err != nil || got != "granted" {
			t.Fatalf("%s future: %q, %v, want its answer", name, got, err)
		}
	}
}

// A synchronous call's request sees its context's deadline and values (a
// pool's waiter files its deadline with the pool), but not its Done: no
// AfterFunc is registered for it.
func TestFuture_SyncWaitKeepsTheDeadlineAndValuesOfItsContext(t *testing.T) {
	h := newFutureHarness(t)
	type key struct{}
	deadline := time.Now().Add(time.Minute)
	ctx, cancel := context.WithDeadline(context.WithValue(t.Context(), key{}, "v"), deadline)
	defer cancel()
	var seen context.Context
	_, err := waitSync(ctx, func(ctx context.Context) *Future[string] {
		seen = ctx
		f := h.ask(ctx)
		h.sys.Root.Send(h.pid, "grant")
		return f
	})
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := seen.Deadline(); !ok || !d.Equal(deadline) {
		t.Fatalf("the request's deadline: %v, %v, want %v", d, ok, deadline)
	}
	if seen.Value(key{}) != "v" {
		t.Fatal("the request lost its context's values")
	}
	if seen.Done() != nil {
		t.Fatal("the request's context can be done: an AfterFunc is registered for it")
	}
}

// A timed wait (Release's) ends at its timeout with DeadlineExceeded and
// leaves the operation going: its result is still delivered to a later
// wait, which the old timer does not end early.
func TestFuture_TimedWaitEndsAtItsTimeoutAndALaterWaitGetsTheResult(t *testing.T) {
	f := newFuture[string](ErrNotObtained)
	if _, err := f.waitTimeout(time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a wait that timed out returned %v, want context.DeadlineExceeded", err)
	}
	later := time.AfterFunc(20*time.Millisecond, func() { f.complete("done", nil) })
	defer later.Stop()
	v, err := f.waitTimeout(time.Minute)
	if err != nil || v != "done" {
		t.Fatalf("the next wait returned %q, %v; want the result", v, err)
	}
}

// A timer that fired goes back to the pool empty even with the timers of
// Go before 1.23 (a buffered channel that keeps the value of a timer that
// fired unread): the next wait that takes it from the pool is not ended at
// once. The check runs in a child process with GODEBUG=asynctimerchan=1.
func TestFuture_PooledTimerThatFiredDoesNotEndTheNextWait(t *testing.T) {
	if os.Getenv("XSYNC_TIMER_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFuture_PooledTimerThatFiredDoesNotEndTheNextWait$", "-test.count=1")
		cmd.Env = append(os.Environ(), "XSYNC_TIMER_CHILD=1", "GODEBUG=asynctimerchan=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("with asynctimerchan=1: %v\n%s", err, out)
		}
		return
	}
	tm := newTimer(time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for len(tm.C) == 0 { // the old timers buffer the value when they fire
		if time.Now().After(deadline) {
			t.Fatal("the timer did not fire within 10s")
		}
		runtime.Gosched()
	}
	putTimer(tm)
	next := newTimer(time.Hour)
	defer putTimer(next)
	select {
	case <-next.C:
		t.Fatal("a timer from the pool fired at once: it kept the value of its last use")
	default:
	}
}
