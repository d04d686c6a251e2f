package actors

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/redisxsync/xsync/internal/testredis"
	"github.com/redisxsync/xsync/messages"
	"github.com/redisxsync/xsync/redisx"
)

// How many goroutine hand-offs xsync's actors cost, counted by their
// mailboxes against a real Redis: a run on the dispatcher is a hand-off to
// a pooled goroutine, an inline run is none.

// hopSystem is an actor system whose actors are spawned as client.go
// spawns them, with their mailboxes kept for counting.
type hopSystem struct {
	sys *actor.ActorSystem
	mu  sync.Mutex
	mbs map[*actor.PID]*mailbox
}

func newHopSystem(t *testing.T) *hopSystem {
	t.Helper()
	h := &hopSystem{
		sys: actor.NewActorSystem(
			actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }),
			actor.WithDeadLetterThrottleInterval(10*time.Millisecond)),
		mbs: map[*actor.PID]*mailbox{},
	}
	t.Cleanup(h.sys.Shutdown)
	return h
}

func (h *hopSystem) spawn(t *testing.T, p actor.Producer) (*actor.PID, *mailbox) {
	t.Helper()
	var mb *mailbox
	pid := h.sys.Root.Spawn(actor.PropsFromProducer(p, actor.WithDispatcher(Dispatcher()),
		actor.WithMailbox(func() actor.Mailbox {
			mb = NewMailbox().(*mailbox)
			return mb
		})))
	t.Cleanup(func() { _ = h.sys.Root.StopFuture(pid).Wait() })
	return pid, mb
}

// connection spawns a Connection actor of the test server (classic
// pub/sub), and opens a plain client of it to publish with, closed when t
// ends. The caller shuts the actor down.
func (h *hopSystem) connection(t *testing.T) (raw *redis.Client, conn *actor.PID, mb *mailbox) {
	t.Helper()
	target, err := redisx.Config{Addr: testredis.Addr(t)}.Target()
	if err != nil {
		t.Fatal(err)
	}
	raw = redis.NewClient(&redis.Options{Addr: testredis.Addr(t)})
	t.Cleanup(func() { _ = raw.Close() })
	conn, mb = h.spawn(t, NewConnection(target, target.Client(target.DB(), false), false, zap.NewNop()))
	return raw, conn, mb
}

func (h *hopSystem) ask(t *testing.T, pid *actor.PID, msg any) any {
	t.Helper()
	res, err := h.sys.Root.RequestFuture(pid, msg, 10*time.Second).Result()
	if err != nil {
		t.Fatalf("%T: %v", msg, err)
	}
	return res
}

// waitIdle waits until mb has no run under way nor scheduled: the next
// message finds it idle.
func waitIdle(t *testing.T, mb *mailbox) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mb.mu.Lock()
		idle := !mb.running
		mb.mu.Unlock()
		if idle {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the mailbox stays busy")
		}
		time.Sleep(time.Millisecond) // ok: polls a condition with a deadline
	}
}

// pinger answers *pingReq with a PING made off the mailbox (goRedis), and
// records the goroutines that handled the request, made the call and
// handled its result.
type pinger struct {
	worker
	cl      redis.UniversalClient
	proceed chan struct{} // each call waits for it: the test lets it go once the mailbox is idle
	mu      sync.Mutex
	gids    []string
}

func (p *pinger) record() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gids = append(p.gids, goroutineID())
}

// goroutineID is the id of the calling goroutine, from its stack's header
// ("goroutine 7 [running]:").
func goroutineID() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	f := strings.Fields(string(buf))
	return f[1]
}

type (
	pingReq  struct{}
	pingDone struct {
		callResult
		to  *actor.PID
		err error
	}
)

func (p *pinger) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		p.started(ctx)
	case *pingReq:
		p.record()
		to, cl, proceed := ctx.Sender(), p.cl, p.proceed
		p.goRedis(time.Now().Add(5*time.Second), func(c context.Context) inlineMessage {
			<-proceed
			p.record()
			return &pingDone{to: to, err: cl.Ping(c).Err()}
		})
	case *pingDone:
		p.record()
		p.callDone()
		ctx.Send(m.to, m.err == nil)
	case *actor.Stopping:
		p.endIdle()
	}
}

// TestWorker_RunsARequestItsCallAndItsResultOnOneGoroutine: the request
// runs on a goroutine of the dispatcher, which makes the Redis call once
// the run is over and handles its result: the caller's goroutine hands off
// to it and it hands back, nothing else.
func TestWorker_RunsARequestItsCallAndItsResultOnOneGoroutine(t *testing.T) {
	h := newHopSystem(t)
	cl := redis.NewClient(&redis.Options{Addr: testredis.Addr(t)})
	defer func() { _ = cl.Close() }()
	p := &pinger{cl: cl, proceed: make(chan struct{})}
	pid, mb := h.spawn(t, func() actor.Actor { return p })
	waitIdle(t, mb)
	in0, sch0 := mb.runCounts()
	const n = 5
	for range n {
		f := h.sys.Root.RequestFuture(pid, &pingReq{}, 10*time.Second)
		waitIdle(t, mb) // the request's run is over: the result finds the mailbox idle
		p.proceed <- struct{}{}
		if res, err := f.Result(); err != nil || res != true {
			t.Fatalf("ping: %v, %v", res, err)
		}
	}
	// Each result ran on its call's goroutine. A request may join the run of
	// the result before it (the caller's next request arrives while that
	// run ends): a hand-off saved, not one more.
	p.mu.Lock()
	gids := p.gids
	p.mu.Unlock()
	for i := 0; i+2 < len(gids); i += 3 {
		if gids[i] != gids[i+1] || gids[i] != gids[i+2] {
			t.Fatalf("request %d: handled on goroutine %s, called Redis on %s, handled the result on %s; want one goroutine",
				i/3, gids[i], gids[i+1], gids[i+2])
		}
	}
	if len(gids) != 3*n {
		t.Fatalf("recorded %d goroutines, want %d", len(gids), 3*n)
	}
	in, sch := mb.runCounts()
	if in-in0 != n || sch-sch0 > n {
		t.Fatalf("%d requests took %d dispatcher runs and %d inline runs; want at most %d and %d: the results must run on the calls' goroutines",
			n, sch-sch0, in-in0, n, n)
	}
}

// subscriber records the *messages.Published it receives.
type subscriber struct{ got chan *messages.Published }

func (s *subscriber) Receive(ctx actor.Context) {
	if m, ok := ctx.Message().(*messages.Published); ok {
		s.got <- m
	}
}

func TestConnection_RunsTheSubscriberOnThePubSubForwarder(t *testing.T) {
	h := newHopSystem(t)
	raw, conn, connMB := h.connection(t)
	defer func() { _ = h.ask(t, conn, &messages.Shutdown{}) }()
	s := &subscriber{got: make(chan *messages.Published, 1)}
	sub, subMB := h.spawn(t, func() actor.Actor { return s })
	channel := fmt.Sprintf("xsync-mailbox-test-%d", time.Now().UnixNano())
	if r := h.ask(t, conn, &messages.Subscribe{Channel: channel, Subscriber: sub}).(*messages.SubscribeResult); r.Err != nil {
		t.Fatal(r.Err)
	}
	const n = 5
	var inSub, inConn int
	for i := range n {
		waitIdle(t, connMB)
		waitIdle(t, subMB)
		in0, sch0 := subMB.runCounts()
		cin0, _ := connMB.runCounts()
		if err := raw.Publish(context.Background(), channel, strconv.Itoa(i)).Err(); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-s.got:
			if m.Payload != strconv.Itoa(i) {
				t.Fatalf("got %q, want %q", m.Payload, strconv.Itoa(i))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("publish %d not delivered", i)
		}
		waitIdle(t, subMB)
		in, sch := subMB.runCounts()
		if sch != sch0 {
			t.Fatalf("publish %d: the subscriber ran on the dispatcher", i)
		}
		cin, _ := connMB.runCounts()
		inSub, inConn = inSub+in-in0, inConn+cin-cin0
	}
	if inSub != n || inConn != n {
		t.Fatalf("%d publishes ran the connection inline %d times and the subscriber %d times; want %d each", n, inConn, inSub, n)
	}
}

func TestLockManager_LockAndReleaseHandOffToTheDispatcherOnceEach(t *testing.T) {
	h := newHopSystem(t)
	target, err := redisx.Config{Addr: testredis.Addr(t)}.Target()
	if err != nil {
		t.Fatal(err)
	}
	cl := target.Client(target.DB(), false)
	conn, _ := h.spawn(t, NewConnection(target, cl, false, zap.NewNop()))
	keys := redisx.Keys{Prefix: fmt.Sprintf("xsync-mailbox-test-%d", time.Now().UnixNano())}
	mgr, mb := h.spawn(t, NewLockManager("test-client", keys, conn, redisx.Ack{}, 0, zap.NewNop(), LockEvents{}))
	defer func() {
		_ = h.ask(t, mgr, &messages.Shutdown{})
		_ = h.ask(t, conn, &messages.Shutdown{})
		raw := redis.NewClient(&redis.Options{Addr: testredis.Addr(t)})
		defer func() { _ = raw.Close() }()
		if ks, err := raw.Keys(context.Background(), keys.Prefix+":*").Result(); err == nil && len(ks) > 0 {
			raw.Del(context.Background(), ks...)
		}
	}()
	lockRelease := func() {
		t.Helper()
		k := "orders"
		r := h.ask(t, mgr, &messages.Acquire{
			Token: fmt.Sprintf("token-%d", time.Now().UnixNano()), DB: 0, Client: cl,
			Keys: []string{keys.Lock(k)}, FenceKeys: []string{keys.Fence(k)},
			QueueKeys: []string{keys.LockQueue(k)}, TicketKeys: []string{keys.LockTickets(k)},
			TTL: 10 * time.Second,
		}).(*messages.AcquireResult)
		if r.Err != nil || r.Lease == nil {
			t.Fatalf("acquire: %+v", r)
		}
		if rr := h.ask(t, mgr, &messages.ReleaseLease{ID: r.Lease.ID}).(*messages.ReleaseLeaseResult); rr.Err != nil {
			t.Fatalf("release: %v", rr.Err)
		}
	}
	lockRelease() // subscribes to the releases' channel
	waitIdle(t, mb)
	in0, sch0 := mb.runCounts()
	const n = 10
	for range n {
		lockRelease()
	}
	waitIdle(t, mb)
	in, sch := mb.runCounts()
	t.Logf("%d Lock+Release: %d dispatcher runs, %d inline runs of the lock manager", n, sch-sch0, in-in0)
	// The Acquire and the ReleaseLease come from the caller: a run on the
	// dispatcher each (or they join a run still under way). Their scripts'
	// results, and the releases published, run on the goroutines that
	// received them, or join a run under way: never one more hand-off.
	if sch-sch0 > 2*n {
		t.Fatalf("%d Lock+Release took %d dispatcher runs of the lock manager, want at most %d", n, sch-sch0, 2*n)
	}
	if in-in0 == 0 {
		t.Fatal("no script result ran on its call's goroutine")
	}
}

// slowSubscriber is a worker that starts a Redis call on every
// *messages.Published, which waits for proceed.
type slowSubscriber struct {
	worker
	calling chan struct{}
	proceed chan struct{}
}

type slowDone struct{ callResult }

func (s *slowSubscriber) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		s.started(ctx)
	case *messages.Published:
		calling, proceed := s.calling, s.proceed
		s.goRedis(time.Now().Add(time.Minute), func(context.Context) inlineMessage {
			calling <- struct{}{}
			<-proceed
			return &slowDone{}
		})
	case *slowDone:
		s.callDone()
	case *actor.Stopping:
		s.endIdle()
	}
}

// TestConnection_SubscriberNestedInItsRunDoesNotMakeItWaitForRedis: a
// subscriber runs nested in the connection's run, on the pub/sub
// forwarder; the Redis call it starts there must go to a call goroutine,
// or the connection would wait for Redis.
func TestConnection_SubscriberNestedInItsRunDoesNotMakeItWaitForRedis(t *testing.T) {
	h := newHopSystem(t)
	raw, conn, _ := h.connection(t)
	defer func() { _ = h.ask(t, conn, &messages.Shutdown{}) }()
	s := &slowSubscriber{calling: make(chan struct{}), proceed: make(chan struct{})}
	sub, subMB := h.spawn(t, func() actor.Actor { return s })
	channel := fmt.Sprintf("xsync-mailbox-test-%d", time.Now().UnixNano())
	if r := h.ask(t, conn, &messages.Subscribe{Channel: channel, Subscriber: sub}).(*messages.SubscribeResult); r.Err != nil {
		t.Fatal(r.Err)
	}
	waitIdle(t, subMB)
	in0, _ := subMB.runCounts()
	if err := raw.Publish(context.Background(), channel, "x").Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.calling:
	case <-time.After(10 * time.Second):
		t.Fatal("the subscriber's call did not start")
	}
	// The call waits; the connection must answer meanwhile.
	if r := h.ask(t, conn, &messages.GetDB{DB: 0, Internal: true}).(*messages.GetDBResult); r.Err != nil {
		t.Fatal(r.Err)
	}
	if in, _ := subMB.runCounts(); in != in0+1 {
		t.Fatalf("the subscriber ran inline %d times on the publish, want once", in-in0)
	}
	close(s.proceed)
	waitIdle(t, subMB)
}
