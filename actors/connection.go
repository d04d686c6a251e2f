package actors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

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
// scripts and for callers, and the pub/sub connections shared by all the
// client's subscribers: a single one for classic pub/sub, one per master
// for sharded pub/sub on a Redis Cluster (connection_shard.go).
// Reconnections and resubscriptions are reported to the subscribers as
// *messages.Resubscribed.
type connActor struct {
	target   *redisx.Target
	log      *zap.Logger
	internal map[int]redis.UniversalClient
	user     map[int]redis.UniversalClient

	ps        *redis.PubSub
	forwarded chan struct{} // closed when the pub/sub forwarder has exited
	channels  map[string]*channelState
	shard     shardState

	closedErr error
}

type channelState struct {
	confirmed   bool
	subscribers map[string]*actor.PID
	pending     []*actor.PID // subscribers waiting for the first confirmation

	// Sharded pub/sub only.
	node     string      // address of the master subscribed on; "" when none
	routing  bool        // looking up the master of its slot
	retry    *time.Timer // routes it again after a failure
	failures int         // failed subscriptions in a row
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

// NewConnection returns the producer of a Connection actor of the
// deployment target. first is the already-checked internal client of
// target.DB(); the actor owns it from now on. sharded: the channels are
// shard channels (SSUBSCRIBE), on a Redis Cluster whose servers have them
// (redisx.ShardedPubSub); first is then its cluster client.
func NewConnection(target *redisx.Target, first redis.UniversalClient, sharded bool, log *zap.Logger) actor.Producer {
	return func() actor.Actor {
		c := &connActor{
			target:   target,
			log:      log,
			internal: map[int]redis.UniversalClient{},
			user:     map[int]redis.UniversalClient{},
			channels: map[string]*channelState{},
			shard:    shardState{nodes: map[string]*shardNode{}, goroutines: &sync.WaitGroup{}},
		}
		if cl, ok := first.(*redis.ClusterClient); ok && sharded {
			c.shard.on, c.shard.cluster = true, cl
		}
		if first != nil {
			c.internal[target.DB()] = first
		}
		return c
	}
}

// Receive implements actor.Actor.
func (c *connActor) Receive(ctx actor.Context) {
	if c.receiveShard(ctx) {
		return
	}
	switch m := ctx.Message().(type) {
	case *messages.GetDB:
		ctx.Respond(c.getDB(m))
	case *messages.Subscribe:
		c.subscribe(ctx, m)
	case *messages.Unsubscribe:
		c.unsubscribe(ctx, m)
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
	if m.DB != 0 && c.target.Topology() == redisx.Cluster {
		return &messages.GetDBResult{Err: fmt.Errorf("%w: db %d on Redis Cluster, which has DB 0 only", redisx.ErrConfig, m.DB)}
	}
	cache := c.internal
	if !m.Internal {
		cache = c.user
	}
	cl, ok := cache[m.DB]
	if !ok {
		// Creating a client does no I/O: it connects on first use.
		cl = c.target.Client(m.DB, !m.Internal)
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
	if c.shard.on {
		c.routeShard(ctx, m.Channel)
		return
	}
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
	cl := c.getDB(&messages.GetDB{DB: c.target.DB(), Internal: true}).Client
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

func (c *connActor) unsubscribe(ctx actor.Context, m *messages.Unsubscribe) {
	st := c.channels[m.Channel]
	if st == nil {
		return
	}
	delete(st.subscribers, m.Subscriber.String())
	if len(st.subscribers) > 0 || c.closedErr != nil {
		return
	}
	delete(c.channels, m.Channel)
	if c.shard.on {
		c.unsubscribeShard(ctx, m.Channel, st)
		return
	}
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
	shards, shardsDone := c.closeShards(), c.shard.goroutines
	c.channels = map[string]*channelState{}
	sender, sys := ctx.Sender(), ctx.ActorSystem()
	ps, done := c.ps, c.forwarded
	clients := c.allClients()
	c.ps, c.internal, c.user = nil, map[int]redis.UniversalClient{}, map[int]redis.UniversalClient{}
	go func() {
		err := closeConnections(ps, done, shards, shardsDone, clients)
		sys.Root.Send(sender, &messages.ShutdownResult{Err: err})
	}()
}

func (c *connActor) closeAll() {
	_ = closeConnections(c.ps, c.forwarded, c.closeShards(), c.shard.goroutines, c.allClients())
	c.ps, c.internal, c.user = nil, map[int]redis.UniversalClient{}, map[int]redis.UniversalClient{}
}

// dbClient is a client and its DB, for the errors of closing it.
type dbClient struct {
	db int
	cl redis.UniversalClient
}

func (c *connActor) allClients() []dbClient {
	var all []dbClient
	for db, cl := range c.internal {
		all = append(all, dbClient{db, cl})
	}
	for db, cl := range c.user {
		all = append(all, dbClient{db, cl})
	}
	return all
}

// closeConnections closes the pub/sub connections, waits for the classic
// one's forwarder to exit, closes the clients, then waits for the
// goroutines of sharded pub/sub (a routing under way ends when the clients
// are closed).
func closeConnections(ps *redis.PubSub, forwarded chan struct{}, shards []*redis.PubSub, shardsDone *sync.WaitGroup, clients []dbClient) error {
	var errs []error
	if ps != nil {
		if err := ps.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close pub/sub: %w", err))
		}
		<-forwarded
	}
	for _, s := range shards {
		if err := s.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
			errs = append(errs, fmt.Errorf("close shard pub/sub: %w", err))
		}
	}
	for _, c := range clients {
		if err := c.cl.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
			errs = append(errs, fmt.Errorf("close db %d: %w", c.db, err))
		}
	}
	shardsDone.Wait()
	return errors.Join(errs...)
}
