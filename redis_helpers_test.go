package xsync_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync/internal/testredis"
	"github.com/redisxsync/xsync/redisx"
)

// Helpers that read what the test server did, shared by the lock and pool
// tests.

// commandCounts reads INFO commandstats: calls per command, summed over
// every master (one on a single server or Sentinel, three on the test
// Cluster). On Sentinel it also notes, under keys that name no command, what
// commandsSince needs to tell the Sentinels' own commands from xsync's (see
// sentinelTraffic).
func commandCounts(t testing.TB, r redis.UniversalClient) map[string]int64 {
	t.Helper()
	counts := map[string]int64{}
	sentinel := testredis.Current(t).Topology == testredis.Sentinel
	if sentinel {
		noteSentinelTraffic(t, r, counts, "pre")
	}
	if err := sumCommandStats(counts, testredis.EachMaster, r); err != nil {
		t.Fatal(err)
	}
	if sentinel {
		noteSentinelTraffic(t, r, counts, "post")
	}
	return counts
}

// keysMatching is KEYS pattern over every master.
func keysMatching(t testing.TB, r redis.UniversalClient, pattern string) []string {
	t.Helper()
	var mu sync.Mutex
	var all []string
	err := testredis.EachMaster(context.Background(), r, func(m *redis.Client) error {
		keys, err := m.Keys(context.Background(), pattern).Result()
		mu.Lock()
		all = append(all, keys...)
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// commandsSince is what the deployment has processed since before (from
// commandCounts), by command, but for what neither xsync nor its waiters
// send (see noise and sentinelTraffic).
func commandsSince(t testing.TB, db redis.UniversalClient, before map[string]int64) map[string]int64 {
	t.Helper()
	after := commandCounts(t, db)
	diff := map[string]int64{}
	for name, n := range after {
		if d := n - before[name]; d != 0 && !strings.HasPrefix(name, sentinelKey) {
			diff[name] = d
		}
	}
	for name := range noise(diff) {
		delete(diff, name)
	}
	for name, n := range sentinelTraffic(before, after) {
		if diff[name] -= n; diff[name] <= 0 {
			delete(diff, name)
		}
	}
	return diff
}

// noise is the part of diff (commands by name) that is not xsync's: the
// test's own INFO and CLIENT LIST calls, go-redis's pub/sub health-check
// PINGs, the replicas' REPLCONF ACKs and the test's cluster client asking
// for the slots (CLUSTER ...). xsync sends none of them.
func noise(diff map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for name, n := range diff {
		if name == "info" || name == "ping" || name == "replconf" || name == "client|list" || strings.HasPrefix(name, "cluster|") {
			out[name] = n
		}
	}
	return out
}

// wakeKeys names the keys and channels under prefix as the test
// deployment's clients do: on Cluster (Redis 7), with shard channels.
func wakeKeys(t testing.TB, prefix string) redisx.Keys {
	return redisx.Keys{Prefix: prefix, Sharded: testredis.Current(t).Topology == testredis.Cluster}
}

// subscribeWake subscribes to w as xsync's clients do (SSUBSCRIBE for a
// shard channel), closed when t ends, and returns once Redis confirmed it.
func subscribeWake(t testing.TB, w redisx.Wake) *redis.PubSub {
	t.Helper()
	raw := rawDB(t, 0)
	var ps *redis.PubSub
	if w.Sharded {
		ps = raw.SSubscribe(context.Background(), w.Channel)
	} else {
		ps = raw.Subscribe(context.Background(), w.Channel)
	}
	t.Cleanup(func() { _ = ps.Close() })
	if _, err := ps.Receive(context.Background()); err != nil { // the subscription's confirmation
		t.Fatal(err)
	}
	return ps
}

// killPubSub closes every pub/sub connection of every node, as a network
// cut would.
// Not the Sentinels' own (a cut between xsync and Redis leaves them be):
// while a Sentinel's link is down, the master is soon subjectively down to
// it (down-after-milliseconds is 1s in the tests), and two of them make a
// failover. Nor the tests' hello subscriber (see helloCount).
func killPubSub(t testing.TB, r redis.UniversalClient) {
	t.Helper()
	err := testredis.EachNode(context.Background(), r, func(m *redis.Client) error {
		list, err := m.ClientList(context.Background()).Result()
		if err != nil {
			return err
		}
		for _, c := range parseClientList(list) {
			if c.pubsub && !strings.HasPrefix(c.name, "sentinel-") && c.name != helloClientName {
				if err := m.ClientKillByFilter(context.Background(), "ID", c.id).Err(); err != nil && !strings.Contains(err.Error(), "No such client") {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// client is a line of CLIENT LIST: what the helpers need of it.
type client struct {
	id, name string
	pubsub   bool // subscribed to a channel or pattern (of any kind)
}

func parseClientList(list string) []client {
	var out []client
	for _, line := range strings.Split(list, "\n") {
		var c client
		for _, field := range strings.Fields(line) {
			k, v, _ := strings.Cut(field, "=")
			switch k {
			case "id":
				c.id = v
			case "name":
				c.name = v
			case "sub", "psub", "ssub":
				c.pubsub = c.pubsub || (v != "" && v != "0")
			case "flags":
				c.pubsub = c.pubsub || strings.Contains(v, "P")
			}
		}
		if c.id != "" {
			out = append(out, c)
		}
	}
	return out
}

// publishedEverywhere returns once every node of a Redis Cluster has
// delivered what the master of key has published so far. A PUBLISH reaches
// the subscribers on the other nodes over the cluster bus, after the script
// that sent it has answered: tens of milliseconds later at times. A test
// whose window must not see the wake-ups of its own set-up waits for them
// here: it publishes once more on that master, and the bus keeps the order
// of one node's messages to another. One server (or a Sentinel master)
// delivers before it answers: nothing to wait for.
func publishedEverywhere(t testing.TB, r redis.UniversalClient, key string) {
	t.Helper()
	cc, ok := r.(*redis.ClusterClient)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	master, err := cc.MasterForKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	channel := fmt.Sprintf("xsynctest-bus-%d", time.Now().UnixNano())
	var (
		mu   sync.Mutex
		subs []*redis.PubSub
	)
	defer func() {
		for _, ps := range subs {
			_ = ps.Close()
		}
	}()
	err = cc.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error {
		ps := n.Subscribe(ctx, channel)
		mu.Lock()
		subs = append(subs, ps)
		mu.Unlock()
		_, err := ps.ReceiveTimeout(ctx, 10*time.Second) // the confirmation
		return err
	})
	if err != nil {
		t.Fatalf("subscribe %s on every node: %v", channel, err)
	}
	if err := master.Publish(ctx, channel, "flush").Err(); err != nil {
		t.Fatal(err)
	}
	for _, ps := range subs {
		if _, err := ps.ReceiveMessage(ctx); err != nil {
			t.Fatalf("the cluster bus did not deliver: %v", err)
		}
	}
}

// The Sentinels talk to the master on their own connections, named
// "sentinel-<id>-cmd" and "sentinel-<id>-pubsub": every 2s each PUBLISHes
// a hello on __sentinel__:hello (three Sentinels: 1.5 a second), and each
// time a link reconnects (after a test cut the pub/sub connections, a
// failover, or a PING left unanswered for half of down-after-milliseconds
// on a loaded machine) it sends CLIENT SETNAME, and on its pub/sub link
// SUBSCRIBE __sentinel__:hello. INFO commandstats cannot tell these from
// xsync's own PUBLISH (from its scripts) and SUBSCRIBE, so commandCounts
// notes, before and after its INFO, how many hellos a subscriber of the
// test has received and which connections bear a Sentinel's name; and
// sentinelTraffic counts from that what the Sentinels sent in between.
const (
	sentinelKey     = "~sentinel "
	sentinelHello   = "__sentinel__:hello"
	helloClientName = "xsynctest-hello"
)

var helloSubscribers sync.Map // testing.TB -> *redis.PubSub

// noteSentinelTraffic writes into counts, under keys that start with
// sentinelKey and end with when ("pre" or "post" its INFO): the hellos
// received so far, and the ids of the master's connections named by a
// Sentinel.
func noteSentinelTraffic(t testing.TB, r redis.UniversalClient, counts map[string]int64, when string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	counts[sentinelKey+"hellos "+when] = helloCount(ctx, t, r)
	list, err := r.ClientList(ctx).Result()
	if err != nil {
		t.Fatalf("CLIENT LIST: %v", err)
	}
	for _, c := range parseClientList(list) {
		if strings.HasPrefix(c.name, "sentinel-") {
			counts[sentinelKey+"conn "+when+" "+c.id+" "+c.name] = 1
		}
	}
}

// helloCount is how many hellos of the Sentinels t's subscriber (on the
// master, subscribed on first use and closed when t ends) has received.
// It reads until the answer to a PING: every hello the master sent before
// it is counted. The subscriber's connection is named helloClientName, so
// that killPubSub spares it.
func helloCount(ctx context.Context, t testing.TB, r redis.UniversalClient) int64 {
	t.Helper()
	type subscriber struct {
		ps    *redis.PubSub
		count int64
	}
	v, loaded := helloSubscribers.Load(t)
	if !loaded {
		addr, err := testredis.MasterAddr(ctx, r, sentinelHello)
		if err != nil {
			t.Fatal(err)
		}
		cl := redis.NewClient(&redis.Options{Addr: addr, ClientName: helloClientName})
		ps := cl.Subscribe(ctx, sentinelHello)
		t.Cleanup(func() {
			helloSubscribers.Delete(t)
			_ = ps.Close()
			_ = cl.Close()
		})
		if _, err := ps.ReceiveTimeout(ctx, 10*time.Second); err != nil {
			t.Fatalf("subscribe %s: %v", sentinelHello, err)
		}
		v = &subscriber{ps: ps}
		helloSubscribers.Store(t, v)
	}
	s := v.(*subscriber)
	token := fmt.Sprintf("hello-count-%d", time.Now().UnixNano())
	if err := s.ps.Ping(ctx, token); err != nil {
		t.Fatalf("PING on the hello subscriber: %v", err)
	}
	for {
		msg, err := s.ps.ReceiveTimeout(ctx, 10*time.Second)
		if err != nil {
			t.Fatalf("hello subscriber: %v", err)
		}
		switch msg := msg.(type) {
		case *redis.Message:
			if msg.Channel == sentinelHello {
				s.count++
			}
		case *redis.Pong:
			if msg.Payload == token {
				return s.count
			}
		}
	}
}

// sentinelTraffic is what the Sentinels sent the master between two
// commandCounts, by command: the hellos received (publish), and for each
// connection a Sentinel named meanwhile its CLIENT SETNAME and, on a pub/sub
// link, its SUBSCRIBE. Both are noted just outside the INFO calls, so that
// the span they cover holds the window of the counts: a Sentinel command in
// the window is always excused; one in the moment between an INFO and its
// notes may be too. Empty when not on Sentinel.
func sentinelTraffic(before, after map[string]int64) map[string]int64 {
	out := map[string]int64{}
	if h := after[sentinelKey+"hellos post"] - before[sentinelKey+"hellos pre"]; h > 0 {
		out["publish"] = h
	}
	for key := range after {
		rest, ok := strings.CutPrefix(key, sentinelKey+"conn post ")
		if !ok || before[sentinelKey+"conn pre "+rest] != 0 {
			continue
		}
		out["client|setname"]++
		if strings.HasSuffix(rest, "-pubsub") {
			out["subscribe"]++
		}
	}
	return out
}

// sumCommandStats adds to counts the INFO commandstats of every node that
// each (testredis.EachMaster or EachNode) visits on r, at once.
func sumCommandStats(counts map[string]int64, each func(context.Context, redis.UniversalClient, func(*redis.Client) error) error, r redis.UniversalClient) error {
	var mu sync.Mutex
	return each(context.Background(), r, func(n *redis.Client) error {
		info, err := n.Info(context.Background(), "commandstats").Result()
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		return addCommandStats(counts, info)
	})
}

// addCommandStats adds the calls of each command in info, the text of
// INFO commandstats, to counts.
func addCommandStats(counts map[string]int64, info string) error {
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		v, err := strconv.ParseInt(calls, 10, 64)
		if err != nil {
			return fmt.Errorf("commandstats line %q: %w", line, err)
		}
		counts[strings.TrimPrefix(name, "cmdstat_")] += v
	}
	return nil
}

// demote makes the server of raw (one plain server) a replica of a port
// nothing answers on: it keeps its data and refuses writes, as a master
// demoted by a failover does. The function it returns makes it a master
// again; calling it twice is harmless.
func demote(t testing.TB, raw redis.UniversalClient) (promote func()) {
	t.Helper()
	nowhere, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(nowhere.Addr().String())
	_ = nowhere.Close()
	if err := raw.Do(context.Background(), "REPLICAOF", host, port).Err(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			if err := raw.Do(context.Background(), "REPLICAOF", "NO", "ONE").Err(); err != nil {
				t.Errorf("REPLICAOF NO ONE: %v", err)
			}
		})
	}
}
