package actors

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/redisxsync/xsync/messages"
	"github.com/redisxsync/xsync/redisx"
)

// Sharded pub/sub, on a Redis Cluster that has it: each shard channel is
// subscribed (SSUBSCRIBE) on the master that owns its slot, through one
// pub/sub connection per master, shared by every channel of that master.
//
// go-redis alone does not do it: its cluster PubSub picks one node, by its
// first channel, and resubscribes every channel in one SSUBSCRIBE after a
// reconnection, which Redis refuses when they span slots. So the
// Connection keeps a go-redis PubSub per master (a plain client's, which
// never moves), reads it itself, and sends one SSUBSCRIBE per channel,
// one command at a time per master. A channel leaves its master when:
//
//   - the master sends SUNSUBSCRIBE for it unasked (its slot moved away);
//   - an SSUBSCRIBE is answered MOVED or ASK (the client's map of the slots
//     is out of date);
//   - the connection fails, or does not answer a PING after shardPingAfter
//     of silence (every channel of the master leaves it: a failover).
//
// It is then routed again by the slot map (read again first) and
// subscribed on the new owner, with a back-off between failed tries. Its
// subscribers learn it as after a classic reconnection: *Resubscribed,
// once the new subscription is confirmed, so that they retry what waits.
// A subscriber waits for its first confirmation however long the routing
// takes (a failover): it is not failed, as a wait must survive one.

// Timings of sharded pub/sub.
const (
	// shardPingAfter is the silence after which a master's pub/sub
	// connection is sent a PING; one more such silence fails it.
	shardPingAfter = 3 * time.Second
	// shardCmdTimeout bounds one routing or one (S)SUBSCRIBE write.
	shardCmdTimeout = 5 * time.Second
	// shardRetryMin and shardRetryMax bound the back-off between the tries
	// of a channel whose subscription failed.
	shardRetryMin = 50 * time.Millisecond
	shardRetryMax = time.Second
)

// shardNode is the pub/sub connection to one master.
type shardNode struct {
	addr   string
	gen    uint64 // tells this connection's events from an earlier one's
	ps     *redis.PubSub
	queue  []shardCmd // commands waiting for the one in flight
	busy   bool       // a command is in flight
	unsubs map[string]int
}

// shardCmd is an SSUBSCRIBE, or an SUNSUBSCRIBE when unsub is set.
type shardCmd struct {
	channel string
	unsub   bool
}

// Messages of sharded pub/sub, from the Connection's goroutines.
type (
	// shardRouted: the master of channel's slot, or why it is unknown.
	shardRouted struct {
		channel string
		node    *redis.Client
		err     error
	}
	// shardRetry: time to route channel again.
	shardRetry struct {
		channel string
	}
	// shardCmdDone: a command to a master was written, or failed.
	shardCmdDone struct {
		addr string
		gen  uint64
		err  error
	}
	// shardEvent: what a master's connection received. kind is
	// "ssubscribe", "sunsubscribe", "moved" (slot set) or "failed" (err
	// set).
	shardEvent struct {
		addr    string
		gen     uint64
		kind    string
		channel string
		slot    int
		err     error
	}
)

// shardState is the sharded part of the Connection.
type shardState struct {
	on      bool
	cluster *redis.ClusterClient
	nodes   map[string]*shardNode // by master address
	gen     uint64
	// goroutines counts the goroutines of sharded pub/sub (routings,
	// commands, readers, closes); the Connection's shutdown waits for them.
	goroutines *sync.WaitGroup
}

func (c *connActor) receiveShard(ctx actor.Context) bool {
	switch m := ctx.Message().(type) {
	case *shardRouted:
		c.onShardRouted(ctx, m)
	case *shardRetry:
		if st := c.channels[m.channel]; st != nil {
			st.retry = nil
			c.routeShard(ctx, m.channel)
		}
	case *shardCmdDone:
		c.onShardCmdDone(ctx, m)
	case *shardEvent:
		c.onShardEvent(ctx, m)
	default:
		return false
	}
	return true
}

// goShard runs f in a goroutine that the shutdown waits for.
func (c *connActor) goShard(f func()) {
	c.shard.goroutines.Add(1)
	go func() {
		defer c.shard.goroutines.Done()
		f()
	}()
}

// routeShard finds the master of channel's slot, off the mailbox.
func (c *connActor) routeShard(ctx actor.Context, channel string) {
	st := c.channels[channel]
	if st == nil || c.closedErr != nil || st.node != "" || st.routing || st.retry != nil {
		return
	}
	st.routing = true
	cl, self, sys := c.shard.cluster, ctx.Self(), ctx.ActorSystem()
	c.goShard(func() {
		rctx, cancel := context.WithTimeout(context.Background(), shardCmdTimeout)
		node, err := cl.MasterForKey(rctx, channel)
		cancel()
		sys.Root.Send(self, &shardRouted{channel: channel, node: node, err: err})
	})
}

func (c *connActor) onShardRouted(ctx actor.Context, m *shardRouted) {
	st := c.channels[m.channel]
	if st == nil || c.closedErr != nil {
		return
	}
	st.routing = false
	if m.err != nil {
		c.retryShard(ctx, m.channel, st, m.err)
		return
	}
	addr := m.node.Options().Addr
	n := c.shard.nodes[addr]
	if n == nil {
		n = c.openShardNode(ctx, addr, m.node)
	}
	st.node = addr
	c.shardCommand(ctx, n, shardCmd{channel: m.channel})
}

// retryShard routes channel again after a back-off that grows with its
// failures in a row; the first is logged, the others are not, so that a
// long outage does not fill the log.
func (c *connActor) retryShard(ctx actor.Context, channel string, st *channelState, err error) {
	if st.retry != nil || c.closedErr != nil {
		return
	}
	if st.failures == 0 {
		c.log.Warn("shard channel subscription failed: retrying", zap.String("channel", channel), zap.Error(err))
	}
	d := min(shardRetryMin<<min(st.failures, 10), shardRetryMax)
	st.failures++
	self, sys := ctx.Self(), ctx.ActorSystem()
	st.retry = time.AfterFunc(d, func() { sys.Root.Send(self, &shardRetry{channel: channel}) })
}

// openShardNode opens the pub/sub connection to the master at addr, whose
// client is cl, and starts its reader.
func (c *connActor) openShardNode(ctx actor.Context, addr string, cl *redis.Client) *shardNode {
	c.shard.gen++
	n := &shardNode{addr: addr, gen: c.shard.gen, ps: cl.SSubscribe(context.Background()), unsubs: map[string]int{}}
	c.shard.nodes[addr] = n
	self, sys, ps, gen := ctx.Self(), ctx.ActorSystem(), n.ps, n.gen
	c.goShard(func() {
		readShard(ps, func(ev *shardEvent) {
			ev.addr, ev.gen = addr, gen
			sys.Root.Send(self, ev)
		}, func(m *messages.Published) { sys.Root.Send(self, m) })
	})
	return n
}

// readShard reads a master's pub/sub connection until it fails or is
// closed, and reports what it reads.
func readShard(ps *redis.PubSub, report func(*shardEvent), publish func(*messages.Published)) {
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(context.Background(), shardPingAfter)
		if err != nil {
			if errors.Is(err, redis.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pinged {
				pinged = true
				if err = ps.Ping(context.Background()); err == nil {
					continue
				}
			} else if ne != nil && ne.Timeout() {
				err = fmt.Errorf("no answer to PING within %v", shardPingAfter)
			}
			if slot, ok := redisx.MovedSlot(err); ok {
				report(&shardEvent{kind: "moved", slot: slot, err: err})
				continue
			}
			// The connection failed, or was closed by the Connection (which
			// ignores this report then).
			report(&shardEvent{kind: "failed", err: err})
			return
		}
		pinged = false
		switch msg := msg.(type) {
		case *redis.Subscription:
			if msg.Kind == "ssubscribe" || msg.Kind == "sunsubscribe" {
				report(&shardEvent{kind: msg.Kind, channel: msg.Channel})
			}
		case *redis.Message:
			publish(&messages.Published{Channel: msg.Channel, Payload: msg.Payload})
		}
	}
}

// shardCommand sends cmd to n's master after the commands before it: so
// that an SSUBSCRIBE and the SUNSUBSCRIBE of the same channel keep their
// order.
func (c *connActor) shardCommand(ctx actor.Context, n *shardNode, cmd shardCmd) {
	n.queue = append(n.queue, cmd)
	c.nextShardCommand(ctx, n)
}

func (c *connActor) nextShardCommand(ctx actor.Context, n *shardNode) {
	if n.busy || len(n.queue) == 0 || c.closedErr != nil {
		return
	}
	cmd := n.queue[0]
	n.queue = n.queue[1:]
	n.busy = true
	ps, addr, gen, self, sys := n.ps, n.addr, n.gen, ctx.Self(), ctx.ActorSystem()
	c.goShard(func() {
		wctx, cancel := context.WithTimeout(context.Background(), shardCmdTimeout)
		var err error
		if cmd.unsub {
			err = ps.SUnsubscribe(wctx, cmd.channel)
		} else {
			err = ps.SSubscribe(wctx, cmd.channel)
		}
		cancel()
		sys.Root.Send(self, &shardCmdDone{addr: addr, gen: gen, err: err})
	})
}

func (c *connActor) onShardCmdDone(ctx actor.Context, m *shardCmdDone) {
	n := c.shard.nodes[m.addr]
	if n == nil || n.gen != m.gen {
		return
	}
	n.busy = false
	if m.err != nil {
		c.failShardNode(ctx, n, m.err)
		return
	}
	c.nextShardCommand(ctx, n)
}

func (c *connActor) onShardEvent(ctx actor.Context, ev *shardEvent) {
	n := c.shard.nodes[ev.addr]
	if n == nil || n.gen != ev.gen {
		return // an earlier connection's
	}
	switch ev.kind {
	case "ssubscribe":
		if st := c.channels[ev.channel]; st != nil && st.node == n.addr {
			st.failures = 0
			c.onSubscribed(ctx, ev.channel)
		}
	case "sunsubscribe":
		if k := n.unsubs[ev.channel]; k > 0 {
			if k == 1 {
				delete(n.unsubs, ev.channel)
			} else {
				n.unsubs[ev.channel] = k - 1
			}
			return // asked for
		}
		if st := c.channels[ev.channel]; st != nil && st.node == n.addr {
			// Unasked: the channel's slot left this master.
			c.log.Info("shard channel unsubscribed by the server: its slot moved", zap.String("channel", ev.channel), zap.String("node", n.addr))
			st.node = ""
			c.shard.cluster.ReloadState(context.Background())
			c.routeShard(ctx, ev.channel)
		}
	case "moved":
		c.shard.cluster.ReloadState(context.Background())
		for ch, st := range c.channels {
			if st.node == n.addr && redisx.Slot(ch) == ev.slot {
				st.node = ""
				c.retryShard(ctx, ch, st, ev.err)
			}
		}
	case "failed":
		c.failShardNode(ctx, n, ev.err)
	}
}

// failShardNode closes n's connection and routes its channels again.
func (c *connActor) failShardNode(ctx actor.Context, n *shardNode, err error) {
	if c.shard.nodes[n.addr] != n {
		return
	}
	delete(c.shard.nodes, n.addr)
	c.log.Warn("shard pub/sub connection failed: subscribing its channels again", zap.String("node", n.addr), zap.Error(err))
	ps := n.ps
	c.goShard(func() { _ = ps.Close() })
	c.shard.cluster.ReloadState(context.Background())
	for ch, st := range c.channels {
		if st.node == n.addr {
			st.node = ""
			c.retryShard(ctx, ch, st, err)
		}
	}
}

// unsubscribeShard drops channel, which nobody wants any more.
func (c *connActor) unsubscribeShard(ctx actor.Context, channel string, st *channelState) {
	if st.retry != nil {
		st.retry.Stop()
		st.retry = nil
	}
	if n := c.shard.nodes[st.node]; n != nil {
		n.unsubs[channel]++
		c.shardCommand(ctx, n, shardCmd{channel: channel, unsub: true})
	}
}

// closeShards stops the retries and hands over the masters' connections,
// for the shutdown to close.
func (c *connActor) closeShards() []*redis.PubSub {
	var all []*redis.PubSub
	for _, st := range c.channels {
		if st.retry != nil {
			st.retry.Stop()
			st.retry = nil
		}
	}
	for _, n := range c.shard.nodes {
		all = append(all, n.ps)
	}
	c.shard.nodes = map[string]*shardNode{}
	return all
}
