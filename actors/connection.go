package actors

import (
	"context"
	"errors"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/redisxsync/xsync/internal/xerr"
	"github.com/redisxsync/xsync/messages"
	"github.com/redisxsync/xsync/redisx"
)

// errConnectionClosed answers requests that reach a connection actor after
// its Shutdown when the Shutdown carried no error of its own.
var errConnectionClosed = xerr.ErrClosed

// connActor is the actor that owns the Redis connections of one client:
// a go-redis client per DB (created on first use, then cached), for xsync's
// scripts and for callers, and the single pub/sub connection shared by all
// the client's subscribers. Reconnections of the pub/sub connection are
// reported to the subscribers as *messages.Resubscribed.
type connActor struct {
	base     *redis.Options
	log      *zap.Logger
	internal map[int]*redis.Client
	user     map[int]*redis.Client

	ps        *redis.PubSub
	forwarded chan struct{} // closed when the pub/sub forwarder has exited
	channels  map[string]*channelState

	closedErr error
}

type channelState struct {
	confirmed   bool
	subscribers map[string]*actor.PID
	pending     []*actor.PID // subscribers waiting for the first confirmation
}

// Messages the Connection sends itself from its pub/sub forwarder.
type (
	subscribed struct {
		channel string
	}
	subscribeFailed struct {
		channel string
		err     error
	}
)

// NewConnection returns the producer of a Connection actor. first is the
// already-checked internal client of base.DB; the actor owns it from now on.
func NewConnection(base *redis.Options, first *redis.Client, log *zap.Logger) actor.Producer {
	return func() actor.Actor {
		c := &connActor{
			base:     base,
			log:      log,
			internal: map[int]*redis.Client{},
			user:     map[int]*redis.Client{},
			channels: map[string]*channelState{},
		}
		if first != nil {
			c.internal[base.DB] = first
		}
		return c
	}
}

// Receive implements actor.Actor.
func (c *connActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *messages.GetDB:
		ctx.Respond(c.getDB(m))
	case *messages.Subscribe:
		c.subscribe(ctx, m)
	case *messages.Unsubscribe:
		c.unsubscribe(m)
	case *subscribed:
		c.onSubscribed(ctx, m.channel)
	case *subscribeFailed:
		c.onSubscribeFailed(ctx, m)
	case *messages.Published:
		if st := c.channels[m.Channel]; st != nil {
			for _, pid := range st.subscribers {
				ctx.Send(pid, m)
			}
		}
	case *messages.Shutdown:
		c.shutdown(ctx, m)
	case *actor.Stopped:
		// Shutdown is the graceful path; this one only makes sure nothing
		// stays open when the actor is stopped without it.
		if c.closedErr == nil {
			c.closeAll()
		}
	}
}

func (c *connActor) getDB(m *messages.GetDB) *messages.GetDBResult {
	if c.closedErr != nil {
		return &messages.GetDBResult{Err: c.closedErr}
	}
	if m.DB < 0 {
		return &messages.GetDBResult{Err: fmt.Errorf("%w: negative db %d", redisx.ErrConfig, m.DB)}
	}
	cache, opts := c.internal, c.base
	if !m.Internal {
		cache, opts = c.user, redisx.Retrying(c.base)
	}
	cl, ok := cache[m.DB]
	if !ok {
		// Creating a client does no I/O: it connects on first use.
		cl = redis.NewClient(redisx.OnDB(opts, m.DB))
		cache[m.DB] = cl
	}
	return &messages.GetDBResult{Client: cl}
}

func (c *connActor) subscribe(ctx actor.Context, m *messages.Subscribe) {
	if c.closedErr != nil {
		ctx.Respond(&messages.SubscribeResult{Err: c.closedErr})
		return
	}
	st := c.channels[m.Channel]
	if st != nil {
		st.subscribers[m.Subscriber.String()] = m.Subscriber
		if st.confirmed {
			ctx.Respond(&messages.SubscribeResult{})
		} else {
			st.pending = append(st.pending, ctx.Sender())
		}
		return
	}
	st = &channelState{subscribers: map[string]*actor.PID{m.Subscriber.String(): m.Subscriber}, pending: []*actor.PID{ctx.Sender()}}
	c.channels[m.Channel] = st
	c.startPubSub(ctx)
	ps, self, sys, channel := c.ps, ctx.Self(), ctx.ActorSystem(), m.Channel
	go func() {
		// The confirmation arrives through the forwarder; only a failure to
		// send the command is reported from here.
		if err := ps.Subscribe(context.Background(), channel); err != nil {
			sys.Root.Send(self, &subscribeFailed{channel: channel, err: err})
		}
	}()
}

// startPubSub opens the pub/sub connection and its forwarder on first use.
func (c *connActor) startPubSub(ctx actor.Context) {
	if c.ps != nil {
		return
	}
	cl := c.getDB(&messages.GetDB{DB: c.base.DB, Internal: true}).Client
	c.ps = cl.Subscribe(context.Background()) // no channel: no I/O yet
	c.forwarded = make(chan struct{})
	ch := c.ps.ChannelWithSubscriptions(redis.WithChannelSize(1024))
	self, sys, done := ctx.Self(), ctx.ActorSystem(), c.forwarded
	go func() {
		defer close(done)
		for msg := range ch {
			switch msg := msg.(type) {
			case *redis.Subscription:
				if msg.Kind == "subscribe" {
					sys.Root.Send(self, &subscribed{channel: msg.Channel})
				}
			case *redis.Message:
				sys.Root.Send(self, &messages.Published{Channel: msg.Channel, Payload: msg.Payload})
			}
		}
	}()
}

func (c *connActor) onSubscribed(ctx actor.Context, channel string) {
	st := c.channels[channel]
	if st == nil {
		return
	}
	if st.confirmed {
		// A second confirmation means go-redis reconnected and subscribed
		// again: whatever was published in between is lost.
		c.log.Info("pub/sub resubscribed", zap.String("channel", channel))
		for _, pid := range st.subscribers {
			ctx.Send(pid, &messages.Resubscribed{Channel: channel})
		}
		return
	}
	st.confirmed = true
	for _, pid := range st.pending {
		ctx.Send(pid, &messages.SubscribeResult{})
	}
	st.pending = nil
}

func (c *connActor) onSubscribeFailed(ctx actor.Context, m *subscribeFailed) {
	st := c.channels[m.channel]
	if st == nil || st.confirmed {
		return
	}
	c.log.Warn("pub/sub subscribe failed", zap.String("channel", m.channel), zap.Error(m.err))
	err := fmt.Errorf("subscribe %s: %w", m.channel, m.err)
	for _, pid := range st.pending {
		ctx.Send(pid, &messages.SubscribeResult{Err: err})
	}
	delete(c.channels, m.channel)
	ps := c.ps
	go func() { _ = ps.Unsubscribe(context.Background(), m.channel) }()
}

func (c *connActor) unsubscribe(m *messages.Unsubscribe) {
	st := c.channels[m.Channel]
	if st == nil {
		return
	}
	delete(st.subscribers, m.Subscriber.String())
	if len(st.subscribers) > 0 || c.closedErr != nil {
		return
	}
	delete(c.channels, m.Channel)
	ps, channel := c.ps, m.Channel
	go func() { _ = ps.Unsubscribe(context.Background(), channel) }()
}

func (c *connActor) shutdown(ctx actor.Context, m *messages.Shutdown) {
	if c.closedErr != nil {
		ctx.Respond(&messages.ShutdownResult{})
		return
	}
	c.closedErr = m.Err
	if c.closedErr == nil {
		c.closedErr = errConnectionClosed
	}
	for _, st := range c.channels {
		for _, pid := range st.pending {
			ctx.Send(pid, &messages.SubscribeResult{Err: c.closedErr})
		}
	}
	c.channels = map[string]*channelState{}
	sender, sys := ctx.Sender(), ctx.ActorSystem()
	ps, done := c.ps, c.forwarded
	clients := c.allClients()
	c.ps, c.internal, c.user = nil, map[int]*redis.Client{}, map[int]*redis.Client{}
	go func() {
		err := closeConnections(ps, done, clients)
		sys.Root.Send(sender, &messages.ShutdownResult{Err: err})
	}()
}

func (c *connActor) closeAll() {
	_ = closeConnections(c.ps, c.forwarded, c.allClients())
	c.ps, c.internal, c.user = nil, map[int]*redis.Client{}, map[int]*redis.Client{}
}

func (c *connActor) allClients() []*redis.Client {
	var all []*redis.Client
	for _, cl := range c.internal {
		all = append(all, cl)
	}
	for _, cl := range c.user {
		all = append(all, cl)
	}
	return all
}

// closeConnections closes the pub/sub connection, waits for its forwarder
// to exit, then closes the clients.
func closeConnections(ps *redis.PubSub, forwarded chan struct{}, clients []*redis.Client) error {
	var errs []error
	if ps != nil {
		if err := ps.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close pub/sub: %w", err))
		}
		<-forwarded
	}
	for _, cl := range clients {
		if err := cl.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
			errs = append(errs, fmt.Errorf("close db %d: %w", cl.Options().DB, err))
		}
	}
	return errors.Join(errs...)
}
