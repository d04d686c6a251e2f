package actors

import (
	"runtime"
	"sync"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/redisxsync/xsync/messages"
)

// NewMailbox returns the mailbox of xsync's actors (an actor.MailboxProducer).
//
// It behaves as protoactor's default mailbox (system messages first,
// Suspend and Resume, a panic escalated through the invoker), except that
// it saves goroutine hand-offs, which cost a synchronous Lock more than its
// own work did (caller -> dispatcher -> call goroutine -> dispatcher ->
// caller, for one Redis round trip):
//
//   - the messages that only xsync's own goroutines post, the result of a
//     Redis call (goRedis) and a *messages.Published from a pub/sub reader
//     or forwarded by the connection actor, are handled on the posting
//     goroutine when the mailbox is idle, instead of waking another;
//   - the Redis call that a message of a worker starts last is made by the
//     goroutine of the run once the run is over (see callHolder).
//
// A Lock is then caller -> one goroutine -> caller, and a release
// published by another client reaches the waiter on the goroutine that
// read it.
//
// Other messages, from callers' goroutines and timers, go through the
// dispatcher as before: a caller's goroutine, which may hold its own
// mutexes, never runs an actor. An inline run is bounded, so that no call
// goroutine or forwarder is kept serving a stream: it handles at most
// inlineBudget messages and no system message (a Stop may wait for the
// very goroutine that would run it: the connection's forwarder), then
// hands what is left to the dispatcher. It never waits for a mailbox that
// is running elsewhere: the message is queued for that run.
//
// Nesting is bounded by what posts inline messages: a Redis call's
// goroutine and a pub/sub reader post outside any actor; the connection
// actor forwards a *messages.Published from its handler, so a subscriber
// may run nested in it; no subscriber posts an inline message from its
// handler. A message an actor sends to a mailbox that is running (itself
// included) is queued, never run nested.
func NewMailbox() actor.Mailbox { return &mailbox{} }

// inlineBudget is how many messages an inline run handles at most before
// it hands the mailbox to the dispatcher.
const inlineBudget = 16

// inlineMessage is the result of a Redis call (goRedis), which embeds
// callResult: only a call's goroutine posts it, outside any lock and any
// actor's run, so the mailbox may run it there.
type inlineMessage interface{ result() *callResult }

// callResult, embedded in the result of a Redis call, makes it an
// inlineMessage. next is the actor's next call, which the run of this
// result handed to the call's goroutine (runCalls).
type callResult struct{ next callJob }

func (r *callResult) result() *callResult { return r }

// takeNextCall returns the call that the run of msg handed on, which only
// the goroutine that posted msg set, during the post.
func takeNextCall(msg inlineMessage) callJob {
	r := msg.result()
	if r.next == nil {
		return nil
	}
	next := r.next
	r.next = nil
	return next
}

// runsInline reports whether msg may run on the goroutine that posts it.
func runsInline(msg any) bool {
	switch actor.UnwrapEnvelopeMessage(msg).(type) {
	case inlineMessage, *messages.Published:
		return true
	}
	return false
}

// callHolder is an actor whose Redis calls a run may take over (worker):
// the last call that a message starts waits for the end of the message;
// when nothing else is left to handle, the goroutine of the run makes the
// call itself instead of waking a call goroutine, and handles its result.
// Only runs on goroutines that do nothing else do so: those of the
// dispatcher, and those that a Redis call's result started (a nested run,
// as a subscriber's in the connection's, must not wait for Redis).
type callHolder interface {
	holdCalls(on bool)
	heldCall() callJob
	startCall(job callJob)
}

type mailbox struct {
	invoker    actor.MessageInvoker
	dispatcher actor.Dispatcher

	mu        sync.Mutex
	system    fifo
	user      fifo
	running   bool // a run is under way, or scheduled
	suspended bool // by a failure, until Resume: system messages only
	// inlineRuns and scheduledRuns count the runs started, for the tests.
	inlineRuns, scheduledRuns int
}

var _ actor.Mailbox = (*mailbox)(nil)

// PostUserMessage implements actor.Mailbox.
func (m *mailbox) PostUserMessage(msg any) {
	inline := runsInline(msg)
	m.mu.Lock()
	m.user.push(msg)
	start := !m.running && !m.suspended
	if start {
		m.running = true
		if inline {
			m.inlineRuns++
		} else {
			m.scheduledRuns++
		}
	}
	m.mu.Unlock()
	switch {
	case !start:
	case inline:
		m.runInline(msg)
	default:
		m.dispatcher.Schedule(m.runScheduled)
	}
}

// PostSystemMessage implements actor.Mailbox. System messages always go
// through the dispatcher.
func (m *mailbox) PostSystemMessage(msg any) {
	m.mu.Lock()
	m.system.push(msg)
	start := !m.running
	if start {
		m.running = true
		m.scheduledRuns++
	}
	m.mu.Unlock()
	if start {
		m.dispatcher.Schedule(m.runScheduled)
	}
}

// RegisterHandlers implements actor.Mailbox.
func (m *mailbox) RegisterHandlers(invoker actor.MessageInvoker, dispatcher actor.Dispatcher) {
	m.invoker, m.dispatcher = invoker, dispatcher
}

// Start implements actor.Mailbox.
func (m *mailbox) Start() {}

// UserMessageCount implements actor.Mailbox.
func (m *mailbox) UserMessageCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.user.len()
}

// runScheduled is a run on the dispatcher: until nothing is left to do,
// system messages first, yielding the processor every Throughput messages
// as protoactor's default mailbox does. The call held last runs here once
// the run is over.
func (m *mailbox) runScheduled() {
	holder := m.holder()
	var held callJob
	throughput := m.dispatcher.Throughput()
	for i := 1; ; i++ {
		msg, system := m.next()
		if msg == nil {
			break
		}
		if held != nil {
			holder.startCall(held) // more to do: it need not wait
			held = nil
		}
		held = m.invoke(msg, system, holder)
		if i%throughput == 0 {
			runtime.Gosched()
		}
	}
	if held != nil {
		runCalls(held)
	}
}

// holder is the actor as a callHolder; nil for others.
func (m *mailbox) holder() callHolder {
	if a, ok := m.invoker.(interface{ Actor() actor.Actor }); ok {
		h, _ := a.Actor().(callHolder)
		return h
	}
	return nil
}

// next pops the next message to handle: a system message, else a user
// message unless suspended. When there is none it ends the run (under the
// lock, so that a post after it starts a new one) and returns nil.
func (m *mailbox) next() (msg any, system bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		if msg = m.system.pop(); msg != nil {
			switch msg.(type) {
			case *actor.SuspendMailbox:
				m.suspended = true
				continue
			case *actor.ResumeMailbox:
				m.suspended = false
				continue
			}
			return msg, true
		}
		if !m.suspended {
			if msg = m.user.pop(); msg != nil {
				return msg, false
			}
		}
		m.running = false
		return nil, false
	}
}

// runInline is a run on the goroutine that posted first, an inline
// message, to the idle mailbox: user messages only, inlineBudget at most;
// whatever is left then, a system message included, goes to the
// dispatcher. When first is a call's result, the call held last is handed
// to the call's goroutine (first's next).
func (m *mailbox) runInline(first any) {
	var holder callHolder
	res, fromCall := actor.UnwrapEnvelopeMessage(first).(inlineMessage)
	if fromCall {
		holder = m.holder()
	}
	var held callJob
	defer func() {
		if held != nil {
			res.result().next = held
		}
	}()
	for range inlineBudget {
		m.mu.Lock()
		if m.system.len() > 0 {
			m.scheduledRuns++
			m.mu.Unlock()
			m.dispatcher.Schedule(m.runScheduled)
			return
		}
		var msg any
		if !m.suspended {
			msg = m.user.pop()
		}
		if msg == nil {
			m.running = false
			m.mu.Unlock()
			return
		}
		m.mu.Unlock()
		if held != nil {
			holder.startCall(held)
			held = nil
		}
		held = m.invoke(msg, false, holder)
	}
	m.mu.Lock()
	if m.system.len() == 0 && m.user.len() == 0 {
		m.running = false
		m.mu.Unlock()
		return
	}
	m.scheduledRuns++
	m.mu.Unlock()
	m.dispatcher.Schedule(m.runScheduled)
}

// invoke hands msg to the actor; a panic is escalated to its supervisor,
// which suspends the mailbox until it decides (xsync's resumes it). With a
// holder, the call a user message starts last is held and returned.
func (m *mailbox) invoke(msg any, system bool, holder callHolder) callJob {
	if holder == nil || system {
		m.invokeRecovered(msg, system)
		return nil
	}
	holder.holdCalls(true)
	m.invokeRecovered(msg, false)
	holder.holdCalls(false)
	return holder.heldCall()
}

func (m *mailbox) invokeRecovered(msg any, system bool) {
	defer func() {
		if r := recover(); r != nil {
			m.invoker.EscalateFailure(r, msg)
		}
	}()
	if system {
		m.invoker.InvokeSystemMessage(msg)
	} else {
		m.invoker.InvokeUserMessage(msg)
	}
}

// fifo is a queue of messages; its owner locks it.
type fifo struct {
	items []any
	head  int
}

func (q *fifo) len() int { return len(q.items) - q.head }

func (q *fifo) push(msg any) {
	if len(q.items) == cap(q.items) && q.head > 0 {
		// Full: move the live messages to the front rather than grow.
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, msg)
}

// pop returns the oldest message, nil when there is none.
func (q *fifo) pop() any {
	if q.head == len(q.items) {
		return nil
	}
	msg := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	return msg
}
