package actors_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/redisxsync/xsync/actors"
	"github.com/redisxsync/xsync/internal/testredis"
	"github.com/redisxsync/xsync/messages"
	"github.com/redisxsync/xsync/redisx"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// harness is one Connection actor in an actor system of its own, and a
// subscriber actor whose messages land on a channel.
type harness struct {
	sys    *actor.ActorSystem
	conn   *actor.PID
	sub    *actor.PID
	events chan any
	raw    *redis.Client
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	sys := actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }),
		actor.WithDeadLetterThrottleInterval(10*time.Millisecond))
	target, err := redisx.Config{Addr: testredis.Addr(t)}.Target()
	if err != nil {
		t.Fatal(err)
	}
	first := target.Client(target.DB(), false)
	h := &harness{sys: sys, events: make(chan any, 16), raw: redis.NewClient(&redis.Options{Addr: testredis.Addr(t)})}
	h.conn = sys.Root.Spawn(actor.PropsFromProducer(actors.NewConnection(target, first, false, zap.NewNop())))
	h.sub = sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *messages.Published, *messages.Resubscribed:
			h.events <- m
		}
	}))
	t.Cleanup(func() {
		_ = sys.Root.StopFuture(h.sub).Wait()
		_ = sys.Root.StopFuture(h.conn).Wait()
		_ = h.raw.Close()
		sys.Shutdown()
	})
	return h
}

func (h *harness) ask(t *testing.T, msg any) any {
	t.Helper()
	res, err := h.sys.Root.RequestFuture(h.conn, msg, 5*time.Second).Result()
	if err != nil {
		t.Fatalf("ask %T: %v", msg, err)
	}
	return res
}

func (h *harness) next(t *testing.T) any {
	t.Helper()
	select {
	case ev := <-h.events:
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
		return nil
	}
}

func TestConnection_DeliversWhatIsPublishedAfterTheSubscribeAnswer(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	res := h.ask(t, &messages.Subscribe{Channel: "xsynctest:conn:a", Subscriber: h.sub}).(*messages.SubscribeResult)
	if res.Err != nil {
		t.Fatalf("subscribe: %v", res.Err)
	}
	// The answer came after Redis confirmed: a publish now must be seen.
	if n, err := h.raw.Publish(ctx, "xsynctest:conn:a", "hello").Result(); err != nil || n != 1 {
		t.Fatalf("PUBLISH reached %d subscribers, %v; want 1", n, err)
	}
	ev, ok := h.next(t).(*messages.Published)
	if !ok || ev.Channel != "xsynctest:conn:a" || ev.Payload != "hello" {
		t.Fatalf("got %#v, want Published{xsynctest:conn:a hello}", ev)
	}

	// A second subscriber of the same channel shares the one subscription.
	res = h.ask(t, &messages.Subscribe{Channel: "xsynctest:conn:a", Subscriber: h.sub}).(*messages.SubscribeResult)
	if res.Err != nil {
		t.Fatalf("second subscribe: %v", res.Err)
	}
	if n, _ := h.raw.PubSubNumSub(ctx, "xsynctest:conn:a").Result(); n["xsynctest:conn:a"] != 1 {
		t.Fatalf("server sees %d subscriptions, want 1 shared connection", n["xsynctest:conn:a"])
	}

	h.sys.Root.Send(h.conn, &messages.Unsubscribe{Channel: "xsynctest:conn:a", Subscriber: h.sub})
	waitFor(t, func() bool {
		n, _ := h.raw.PubSubNumSub(ctx, "xsynctest:conn:a").Result()
		return n["xsynctest:conn:a"] == 0
	})
}

func TestConnection_ReportsAPubSubReconnect(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	res := h.ask(t, &messages.Subscribe{Channel: "xsynctest:conn:b", Subscriber: h.sub}).(*messages.SubscribeResult)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	// Kill the pub/sub connection behind go-redis's back.
	if err := h.raw.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatalf("CLIENT KILL: %v", err)
	}
	if ev, ok := h.next(t).(*messages.Resubscribed); !ok || ev.Channel != "xsynctest:conn:b" {
		t.Fatalf("got %#v, want Resubscribed{xsynctest:conn:b}", ev)
	}
	// And the subscription works again.
	if err := h.raw.Publish(ctx, "xsynctest:conn:b", "again").Err(); err != nil {
		t.Fatal(err)
	}
	if ev, ok := h.next(t).(*messages.Published); !ok || ev.Payload != "again" {
		t.Fatalf("got %#v after the reconnect, want Published{again}", ev)
	}
}

func TestConnection_CachesOneClientPerDBAndRefusesAfterShutdown(t *testing.T) {
	h := newHarness(t)
	a := h.ask(t, &messages.GetDB{DB: 6}).(*messages.GetDBResult)
	b := h.ask(t, &messages.GetDB{DB: 6}).(*messages.GetDBResult)
	in := h.ask(t, &messages.GetDB{DB: 6, Internal: true}).(*messages.GetDBResult)
	if a.Err != nil || b.Err != nil || in.Err != nil {
		t.Fatal(a.Err, b.Err, in.Err)
	}
	if a.Client != b.Client {
		t.Fatal("two clients for DB 6")
	}
	if in.Client == a.Client {
		t.Fatal("the scripts' client of DB 6 is the callers' one: it must have retries off")
	}
	// go-redis reads MaxRetries -1 as "none" and stores it as 0.
	ao, io := a.Client.(*redis.Client).Options(), in.Client.(*redis.Client).Options()
	if ao.DB != 6 || io.MaxRetries != 0 || ao.MaxRetries == 0 {
		t.Fatalf("DB %d, MaxRetries internal %d, callers' %d", ao.DB, io.MaxRetries, ao.MaxRetries)
	}
	if neg := h.ask(t, &messages.GetDB{DB: -1}).(*messages.GetDBResult); neg.Err == nil {
		t.Fatal("GetDB{-1}: no error")
	}
	if res := h.ask(t, &messages.Subscribe{Channel: "xsynctest:conn:c", Subscriber: h.sub}).(*messages.SubscribeResult); res.Err != nil {
		t.Fatal(res.Err)
	}

	if r := h.ask(t, &messages.Shutdown{}).(*messages.ShutdownResult); r.Err != nil {
		t.Fatalf("shutdown: %v", r.Err)
	}
	if err := a.Client.Ping(t.Context()).Err(); err == nil {
		t.Fatal("a DB client still works after Shutdown")
	}
	if r := h.ask(t, &messages.GetDB{DB: 6}).(*messages.GetDBResult); r.Err == nil {
		t.Fatal("GetDB after Shutdown: no error")
	}
	if r := h.ask(t, &messages.Subscribe{Channel: "x", Subscriber: h.sub}).(*messages.SubscribeResult); r.Err == nil {
		t.Fatal("Subscribe after Shutdown: no error")
	}
}

// waitFor polls cond, which observes state outside the test's control,
// until it holds or 5s pass.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond) // ok: polls an observation with a deadline; waits for no effect
	}
}
