package actors

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/redisxsync/xsync/messages"
)

// The mailbox's specification, with a recording invoker and a dispatcher
// that runs what it is given only when the test says so.

// inlineMsg is a message that may run on the posting goroutine.
type inlineMsg struct {
	callResult
	n int
}

// plainMsg is one that goes through the dispatcher.
type plainMsg struct{ n int }

type sysMsg struct{ n int }

func (m inlineMsg) String() string { return fmt.Sprintf("inline%d", m.n) }
func (m plainMsg) String() string  { return fmt.Sprintf("plain%d", m.n) }
func (m sysMsg) String() string    { return fmt.Sprintf("system%d", m.n) }

// manualDispatcher holds the runs scheduled until run is called.
type manualDispatcher struct {
	mu   sync.Mutex
	runs []func()
}

func (d *manualDispatcher) Schedule(fn func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.runs = append(d.runs, fn)
}

func (d *manualDispatcher) Throughput() int { return 300 }

func (d *manualDispatcher) scheduled() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.runs)
}

// run runs the runs scheduled so far (and those they schedule), in order.
func (d *manualDispatcher) run() {
	for {
		d.mu.Lock()
		if len(d.runs) == 0 {
			d.mu.Unlock()
			return
		}
		fn := d.runs[0]
		d.runs = d.runs[1:]
		d.mu.Unlock()
		fn()
	}
}

// recorder is an actor.MessageInvoker that records what it is handed; on
// each user message it calls onUser, when set.
type recorder struct {
	mb     *mailbox
	mu     sync.Mutex
	got    []any
	failed []any // the messages whose handling panicked
	onUser func(msg any)
}

func (r *recorder) InvokeSystemMessage(msg any) { r.add(msg) }

func (r *recorder) InvokeUserMessage(msg any) {
	r.add(msg)
	if r.onUser != nil {
		r.onUser(msg)
	}
}

// EscalateFailure does what protoactor's actor context does: suspend the
// mailbox, and let the supervisor decide (here: resume at once).
func (r *recorder) EscalateFailure(_ any, msg any) {
	r.mu.Lock()
	r.failed = append(r.failed, msg)
	r.mu.Unlock()
	r.mb.PostSystemMessage(&actor.SuspendMailbox{})
}

func (r *recorder) add(msg any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, msg)
}

func (r *recorder) handled() []any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func newTestMailbox() (*mailbox, *recorder, *manualDispatcher) {
	mb := NewMailbox().(*mailbox)
	r, d := &recorder{mb: mb}, &manualDispatcher{}
	mb.RegisterHandlers(r, d)
	mb.Start()
	return mb, r, d
}

func (m *mailbox) runCounts() (inline, scheduled int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.inlineRuns, m.scheduledRuns
}

func TestMailbox_RunsAnInlineMessageOnThePostingGoroutineWhenIdle(t *testing.T) {
	mb, r, d := newTestMailbox()
	mb.PostUserMessage(&inlineMsg{n: 1})
	// Handled before PostUserMessage returned, and nothing scheduled.
	if got := r.handled(); len(got) != 1 {
		t.Fatalf("handled %v during the post, want the message", got)
	}
	if d.scheduled() != 0 {
		t.Fatalf("%d runs scheduled, want none", d.scheduled())
	}
	mb.PostUserMessage(&messages.Published{Channel: "c"})
	if got := r.handled(); len(got) != 2 {
		t.Fatalf("a *messages.Published was not handled during its post: %v", got)
	}
	if in, sch := mb.runCounts(); in != 2 || sch != 0 {
		t.Fatalf("runs: %d inline, %d scheduled; want 2, 0", in, sch)
	}
}

func TestMailbox_SchedulesOtherMessagesOnTheDispatcher(t *testing.T) {
	mb, r, d := newTestMailbox()
	mb.PostUserMessage(&plainMsg{n: 1})
	if got := r.handled(); len(got) != 0 {
		t.Fatalf("a plain message was handled on the posting goroutine: %v", got)
	}
	if d.scheduled() != 1 {
		t.Fatalf("%d runs scheduled, want 1", d.scheduled())
	}
	// An inline message posted while that run is pending joins it.
	mb.PostUserMessage(&inlineMsg{n: 2})
	if got := r.handled(); len(got) != 0 || d.scheduled() != 1 {
		t.Fatalf("an inline message to a busy mailbox: handled %v, %d runs scheduled; want none, 1", got, d.scheduled())
	}
	d.run()
	want := []any{&plainMsg{n: 1}, &inlineMsg{n: 2}}
	if got := r.handled(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("handled %v, want %v", got, want)
	}
}

func TestMailbox_HandlesMessagesInOrderOfPosting(t *testing.T) {
	mb, r, d := newTestMailbox()
	var want []any
	for i := range 1000 {
		var msg any = &plainMsg{n: i}
		if i%3 == 0 {
			msg = &inlineMsg{n: i}
		}
		want = append(want, msg)
		mb.PostUserMessage(msg)
		if i%7 == 0 {
			d.run()
		}
	}
	d.run()
	if got := r.handled(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("handled out of order:\n got %v\nwant %v", got, want)
	}
	if n := mb.UserMessageCount(); n != 0 {
		t.Fatalf("UserMessageCount %d after all were handled, want 0", n)
	}
}

func TestMailbox_HandlesSystemMessagesFirst(t *testing.T) {
	mb, r, d := newTestMailbox()
	mb.PostUserMessage(&plainMsg{n: 1})
	mb.PostUserMessage(&plainMsg{n: 2})
	mb.PostSystemMessage(&sysMsg{n: 1})
	if n := mb.UserMessageCount(); n != 2 {
		t.Fatalf("UserMessageCount %d, want 2", n)
	}
	d.run()
	want := []any{&sysMsg{n: 1}, &plainMsg{n: 1}, &plainMsg{n: 2}}
	if got := r.handled(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("handled %v, want %v", got, want)
	}
}

func TestMailbox_InlineRunHandsTheRestToTheDispatcherAfterItsBudget(t *testing.T) {
	mb, r, d := newTestMailbox()
	const extra = 3 * inlineBudget
	r.onUser = func(msg any) {
		if m := msg.(*inlineMsg); m.n == 0 {
			// A stream arrives while the first message is handled.
			for i := 1; i <= extra; i++ {
				mb.PostUserMessage(&inlineMsg{n: i})
			}
		}
	}
	mb.PostUserMessage(&inlineMsg{n: 0})
	if got := len(r.handled()); got != inlineBudget {
		t.Fatalf("the posting goroutine handled %d messages, want the budget, %d", got, inlineBudget)
	}
	if d.scheduled() != 1 {
		t.Fatalf("%d runs scheduled for the rest, want 1", d.scheduled())
	}
	d.run()
	got := r.handled()
	if len(got) != extra+1 {
		t.Fatalf("handled %d messages in all, want %d", len(got), extra+1)
	}
	for i, msg := range got {
		if msg.(*inlineMsg).n != i {
			t.Fatalf("message %d handled at %d: out of order", msg.(*inlineMsg).n, i)
		}
	}
}

func TestMailbox_InlineRunLeavesSystemMessagesToTheDispatcher(t *testing.T) {
	mb, r, d := newTestMailbox()
	r.onUser = func(msg any) {
		if msg.(*inlineMsg).n == 1 {
			mb.PostSystemMessage(&sysMsg{n: 1}) // e.g. a Stop from a caller
			mb.PostUserMessage(&inlineMsg{n: 2})
		}
	}
	mb.PostUserMessage(&inlineMsg{n: 1})
	if got := r.handled(); len(got) != 1 {
		t.Fatalf("the inline run handled %v, want only the first message", got)
	}
	if d.scheduled() != 1 {
		t.Fatalf("%d runs scheduled, want 1", d.scheduled())
	}
	d.run()
	want := []any{&inlineMsg{n: 1}, &sysMsg{n: 1}, &inlineMsg{n: 2}}
	if got := r.handled(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("handled %v, want %v", got, want)
	}
}

func TestMailbox_EscalatesAPanicAndStaysSuspendedUntilResumed(t *testing.T) {
	for _, first := range []any{&inlineMsg{n: 1}, &plainMsg{n: 1}} {
		t.Run(fmt.Sprintf("%T", first), func(t *testing.T) {
			mb, r, d := newTestMailbox()
			r.onUser = func(msg any) {
				if fmt.Sprint(msg) == fmt.Sprint(first) {
					panic("boom")
				}
			}
			mb.PostUserMessage(first)
			mb.PostUserMessage(&plainMsg{n: 2})
			d.run()
			if fmt.Sprint(r.failed) != fmt.Sprint([]any{first}) {
				t.Fatalf("escalated %v, want %v", r.failed, first)
			}
			// Suspended: user messages wait, system messages do not.
			mb.PostUserMessage(&inlineMsg{n: 3})
			mb.PostSystemMessage(&sysMsg{n: 1})
			d.run()
			want := []any{first, &sysMsg{n: 1}}
			if got := r.handled(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("while suspended: handled %v, want %v", got, want)
			}
			mb.PostSystemMessage(&actor.ResumeMailbox{})
			d.run()
			want = append(want, &plainMsg{n: 2}, &inlineMsg{n: 3})
			if got := r.handled(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("after Resume: handled %v, want %v", got, want)
			}
		})
	}
}

func TestMailbox_InlinePostToAMailboxRunningElsewhereDoesNotWait(t *testing.T) {
	mb := NewMailbox().(*mailbox)
	r := &recorder{mb: mb}
	mb.RegisterHandlers(r, sharedDispatcher)
	entered, release, second := make(chan struct{}), make(chan struct{}), make(chan struct{})
	r.onUser = func(msg any) {
		if m, ok := msg.(*plainMsg); ok && m.n == 1 {
			close(entered)
			<-release // a long handler, on a pooled goroutine
		}
		if _, ok := msg.(*inlineMsg); ok {
			close(second)
		}
	}
	mb.PostUserMessage(&plainMsg{n: 1})
	<-entered
	posted := make(chan struct{})
	go func() {
		mb.PostUserMessage(&inlineMsg{n: 2})
		close(posted)
	}()
	select {
	case <-posted:
	case <-time.After(10 * time.Second):
		t.Fatal("an inline post waited for the run under way")
	}
	if got := r.handled(); len(got) != 1 {
		t.Fatalf("handled %v while the first was running, want only the first", got)
	}
	close(release)
	select {
	case <-second:
	case <-time.After(10 * time.Second):
		t.Fatal("the queued message was not handled by the run under way")
	}
}

// TestMailbox_ResumedAfterAPanicInARealActorSystem runs the mailbox under
// protoactor with xsync's supervision (resume): a panic on an inline
// message does not lose the messages after it, nor the actor's state.
func TestMailbox_ResumedAfterAPanicInARealActorSystem(t *testing.T) {
	sys := actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }),
		actor.WithDeadLetterThrottleInterval(10*time.Millisecond))
	defer sys.Shutdown()
	resume := actor.NewOneForOneStrategy(10, time.Second, func(any) actor.Directive { return actor.ResumeDirective })
	seen := make(chan int, 8)
	count := 0
	pid := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if m, ok := ctx.Message().(*inlineMsg); ok {
			count++
			if m.n == 1 {
				panic(errors.New("boom"))
			}
			seen <- count
		}
	}, actor.WithGuardian(resume), actor.WithDispatcher(Dispatcher()), actor.WithMailbox(NewMailbox)))
	defer func() { _ = sys.Root.StopFuture(pid).Wait() }()
	for i := 1; i <= 3; i++ {
		sys.Root.Send(pid, &inlineMsg{n: i})
	}
	for _, want := range []int{2, 3} {
		select {
		case got := <-seen:
			if got != want {
				t.Fatalf("message %d found the count at %d: state lost or message dropped", want, got)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d not handled after the panic", want)
		}
	}
}

func TestFifo_KeepsOrderWhileItWrapsAndGrows(t *testing.T) {
	var q fifo
	next, want := 0, 0
	for round := range 50 {
		for range round%7 + 1 {
			q.push(next)
			next++
		}
		for range round % 5 {
			if msg := q.pop(); msg != nil {
				if msg.(int) != want {
					t.Fatalf("popped %v, want %d", msg, want)
				}
				want++
			}
		}
	}
	for msg := q.pop(); msg != nil; msg = q.pop() {
		if msg.(int) != want {
			t.Fatalf("popped %v, want %d", msg, want)
		}
		want++
	}
	if want != next || q.len() != 0 {
		t.Fatalf("popped %d of %d, %d left", want, next, q.len())
	}
}
