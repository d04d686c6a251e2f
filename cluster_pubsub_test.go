package xsync_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync"
	"github.com/redisxsync/xsync/internal/testredis"
	"github.com/redisxsync/xsync/redisx"
)

// Sharded pub/sub on Redis Cluster: the scripts SPUBLISH their wake-ups on
// channels in their keys' slots, and each client subscribes (SSUBSCRIBE)
// through at most one pub/sub connection per master.

// withClientName names the client's connections (CLIENT LIST name=...).
func withClientName(name string) func(*xsync.Options) {
	return func(o *xsync.Options) {
		o.Redis = func(u *redis.UniversalOptions) { u.ClientName = name }
	}
}

// pubSubConns counts, by master address, the pub/sub connections named
// name.
func pubSubConns(t *testing.T, raw redis.UniversalClient, name string) map[string]int {
	t.Helper()
	var mu sync.Mutex
	n := map[string]int{}
	err := testredis.EachMaster(context.Background(), raw, func(m *redis.Client) error {
		list, err := m.Do(context.Background(), "CLIENT", "LIST", "TYPE", "pubsub").Text()
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, line := range strings.Split(list, "\n") {
			if strings.Contains(line, " name="+name+" ") {
				n[m.Options().Addr]++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// keysOnEveryMaster returns one lock key per master of the cluster.
func keysOnEveryMaster(t *testing.T, raw redis.UniversalClient, prefix string) []string {
	t.Helper()
	masters := map[string]bool{}
	var keys []string
	for i := 0; i < 100 && len(keys) < 3; i++ {
		k := fmt.Sprintf("spread-%d", i)
		addr, err := testredis.MasterAddr(context.Background(), raw, prefix+":lock:{"+k+"}")
		if err != nil {
			t.Fatal(err)
		}
		if !masters[addr] {
			masters[addr] = true
			keys = append(keys, k)
		}
	}
	if len(keys) != 3 {
		t.Fatalf("keys on %d masters, want 3", len(keys))
	}
	return keys
}

func commandDiff(after, before map[string]int64) map[string]int64 {
	d := map[string]int64{}
	for name, n := range after {
		if n != before[name] {
			d[name] = n - before[name]
		}
	}
	return d
}

func TestCluster_WakeUpsUseShardedPubSubWithOneConnectionPerNode(t *testing.T) {
	requireTopology(t, testredis.Cluster)
	prefix := testPrefix(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	raw := rawDB(t, 0)
	keys := keysOnEveryMaster(t, raw, prefix)
	nameA, nameB := strings.ToLower(prefix)+"-a", strings.ToLower(prefix)+"-b"
	a := newClient(t, withPrefix(prefix), withClientName(nameA))
	b := newClient(t, withPrefix(prefix), withClientName(nameB))
	before := commandCounts(t, raw)

	// a holds a key on every master, b waits for each; b holds a
	// semaphore's permit and a waits for it; a waits on a pool that b
	// fills.
	var held []*xsync.Lease
	for _, k := range keys {
		l, err := a.Lock(ctx, []string{k}, xsync.TTL(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, l)
	}
	var waiting []*xsync.Future[*xsync.Lease]
	for _, k := range keys {
		waiting = append(waiting, b.LockAsync(ctx, []string{k}))
	}
	permit, err := b.Semaphore("sem", 1).Acquire(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	semWaiter := a.Semaphore("sem", 1).AcquireAsync(ctx, 1)
	poolWaiter := a.Pool("accounts").WaitAskOneAsync(ctx)
	settled(t, b, len(keys))

	// b waits on every master through one connection each; a on the
	// masters of the semaphore and the pool.
	eventually(t, 5*time.Second, "b subscribed on every master", func() bool {
		return len(pubSubConns(t, raw, nameB)) == 3
	})
	for _, name := range []string{nameA, nameB} {
		for addr, n := range pubSubConns(t, raw, name) {
			if n > 1 {
				t.Fatalf("client %s has %d pub/sub connections to %s, want at most 1", name, n, addr)
			}
		}
	}

	for _, l := range held {
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for i, f := range waiting {
		l, err := f.Wait(ctx)
		if err != nil {
			t.Fatalf("b's waiter for %s: %v", keys[i], err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := permit.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if l, err := semWaiter.Wait(ctx); err != nil {
		t.Fatalf("a's semaphore waiter: %v", err)
	} else if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Pool("accounts").Put(ctx, xsync.Container{ID: "acct-1"}); err != nil {
		t.Fatal(err)
	}
	if c, err := poolWaiter.Wait(ctx); err != nil || c.ID != "acct-1" {
		t.Fatalf("a's pool waiter: %v, %v", c, err)
	}

	diff := commandDiff(commandCounts(t, raw), before)
	if diff["ssubscribe"] < 5 || diff["spublish"] < 5 {
		t.Fatalf("ssubscribe %d, spublish %d: want at least 5 of each (3 lock slots, a semaphore, a pool)", diff["ssubscribe"], diff["spublish"])
	}
	if diff["publish"] != 0 || diff["subscribe"] != 0 {
		t.Fatalf("classic pub/sub on Cluster: publish %d, subscribe %d; want none", diff["publish"], diff["subscribe"])
	}
}

// moveSlot moves slot from its master to another master, its keys
// included, as `redis-cli --cluster reshard` does, and returns the new
// master's address.
func moveSlot(t *testing.T, raw *redis.ClusterClient, slot int, key string) string {
	t.Helper()
	ctx := context.Background()
	src, err := raw.MasterForKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var masters []*redis.Client
	err = raw.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		masters = append(masters, m)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var dst *redis.Client
	for _, m := range masters {
		if m.Options().Addr != src.Options().Addr {
			dst = m
			break
		}
	}
	srcID := src.Do(ctx, "CLUSTER", "MYID").Val()
	dstID := dst.Do(ctx, "CLUSTER", "MYID").Val()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err())
	must(src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err())
	host, port, _ := strings.Cut(dst.Options().Addr, ":")
	for {
		keys, err := src.Do(ctx, "CLUSTER", "GETKEYSINSLOT", slot, 100).StringSlice()
		must(err)
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		must(src.Do(ctx, args...).Err())
	}
	must(dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err())
	must(src.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err())
	for _, m := range masters {
		if m != src && m != dst {
			must(m.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err())
		}
	}
	return dst.Options().Addr
}

func TestCluster_WaitersAreServedAfterTheirSlotMoves(t *testing.T) {
	d := requireTopology(t, testredis.Cluster)
	prefix := testPrefix(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	raw := d.Open(t, 0).(*redis.ClusterClient)
	defer raw.Close()
	name := strings.ToLower(prefix) + "-b"
	a := newClient(t, withPrefix(prefix))
	b := newClient(t, withPrefix(prefix), withClientName(name))

	// Two keys of one slot, held by a for a minute; b waits for both.
	k1, k2 := "{moving}:1", "{moving}:2"
	l1, err := a.Lock(ctx, []string{k1}, xsync.TTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	l2, err := a.Lock(ctx, []string{k2}, xsync.TTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	w1, w2 := b.LockAsync(ctx, []string{k1}), b.LockAsync(ctx, []string{k2})
	settled(t, b, 2)
	lockKey := prefix + ":lock:{moving}:1"
	from, err := testredis.MasterAddr(ctx, raw, lockKey)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "b subscribed on the slot's master", func() bool {
		return pubSubConns(t, raw, name)[from] == 1
	})

	// The slot moves to another master: its old master unsubscribes b
	// (SUNSUBSCRIBE), and b subscribes on the new one.
	to := moveSlot(t, raw, redisx.Slot(lockKey), lockKey)

	// A release at once, while b may not be subscribed again yet: its
	// hand-off may be published to nobody, and b's waiter tries again once
	// subscribed, so it is served all the same.
	if err := l1.Release(ctx); err != nil {
		t.Fatal(err)
	}
	got1, err := w1.Wait(ctx)
	if err != nil {
		t.Fatalf("waiter of the key released during the move: %v", err)
	}

	eventually(t, 10*time.Second, "b subscribed on the slot's new master", func() bool {
		return pubSubConns(t, raw, name)[to] == 1
	})
	// A release after the move reaches b through its new subscription.
	if err := l2.Release(ctx); err != nil {
		t.Fatal(err)
	}
	got2, err := w2.Wait(ctx)
	if err != nil {
		t.Fatalf("waiter of the key released after the move: %v", err)
	}
	for _, l := range []*xsync.Lease{got1, got2} {
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for addr, n := range pubSubConns(t, raw, name) {
		if n > 1 {
			t.Fatalf("b has %d pub/sub connections to %s, want at most 1", n, addr)
		}
	}
}

// shardSubscribers is PUBSUB SHARDNUMSUB of channel on its master.
func shardSubscribers(t *testing.T, raw *redis.ClusterClient, channel string) int64 {
	t.Helper()
	m, err := raw.MasterForKey(context.Background(), channel)
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Do(context.Background(), "PUBSUB", "SHARDNUMSUB", channel).Slice()
	if err != nil || len(res) != 2 {
		t.Fatalf("PUBSUB SHARDNUMSUB: %v, %v", res, err)
	}
	n, _ := res[1].(int64)
	return n
}

// A slot's channel is dropped some time after its last waiter (10s), and
// subscribed again by the next.
func TestCluster_IdleSlotChannelsAreUnsubscribed(t *testing.T) {
	d := requireTopology(t, testredis.Cluster)
	prefix := testPrefix(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	raw := d.Open(t, 0).(*redis.ClusterClient)
	defer raw.Close()
	a, b := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))
	keys := redisx.Keys{Prefix: prefix, Sharded: true}
	channel := keys.LockWake(0, keys.Lock("idle")).Channel

	wait := func() {
		t.Helper()
		held, err := a.Lock(ctx, []string{"idle"}, xsync.TTL(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		f := b.LockAsync(ctx, []string{"idle"})
		settled(t, b, 1)
		// a subscribed for its own Lock, b for its wait.
		if n := shardSubscribers(t, raw, channel); n != 2 {
			t.Fatalf("%d subscribers of the slot's channel while b waits, want 2", n)
		}
		if err := held.Release(ctx); err != nil {
			t.Fatal(err)
		}
		l, err := f.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wait()
	eventually(t, 20*time.Second, "the idle channel unsubscribed", func() bool {
		return shardSubscribers(t, raw, channel) == 0
	})
	wait()
}

// nodeCommandCounts is INFO commandstats summed over every node of the
// cluster, replicas included: a classic PUBLISH or SUBSCRIBE may be served
// by any node.
func nodeCommandCounts(t *testing.T, raw redis.UniversalClient) map[string]int64 {
	t.Helper()
	counts := map[string]int64{}
	if err := sumCommandStats(counts, testredis.EachNode, raw); err != nil {
		t.Fatal(err)
	}
	return counts
}

// pubSubCounts sums, over every node, the classic (sub=) and shard (ssub=)
// channels of the pub/sub connections named name.
func pubSubCounts(t *testing.T, raw redis.UniversalClient, name string) (sub, ssub int64) {
	t.Helper()
	var mu sync.Mutex
	err := testredis.EachNode(context.Background(), raw, func(n *redis.Client) error {
		list, err := n.Do(context.Background(), "CLIENT", "LIST", "TYPE", "pubsub").Text()
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, line := range strings.Split(list, "\n") {
			if !strings.Contains(line, " name="+name+" ") {
				continue
			}
			for _, field := range strings.Fields(line) {
				k, v, _ := strings.Cut(field, "=")
				if k != "sub" && k != "ssub" {
					continue
				}
				c, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return fmt.Errorf("CLIENT LIST field %q: %w", field, err)
				}
				if k == "sub" {
					sub += c
				} else {
					ssub += c
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sub, ssub
}

// A cluster whose servers do not tell their commands (here an ACL user
// that may run everything but COMMAND, as a server without sharded pub/sub
// or with COMMAND renamed away would) gets classic PUBLISH and SUBSCRIBE
// wake-ups, and its waiters are woken all the same.
func TestCluster_WithoutShardedPubSubWakeUpsUseClassicPubSub(t *testing.T) {
	requireTopology(t, testredis.Cluster)
	prefix := testPrefix(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	raw := rawDB(t, 0)

	// ACL users are per node: the user is created on every node, masters
	// and replicas, and deleted after the clients are closed (cleanups run
	// last registered first).
	user, password := strings.ToLower(prefix)+"-nocommand", "pw-"+prefix
	t.Cleanup(func() {
		err := testredis.EachNode(context.Background(), raw, func(n *redis.Client) error {
			return n.Do(context.Background(), "ACL", "DELUSER", user).Err()
		})
		if err != nil {
			t.Errorf("ACL DELUSER: %v", err)
		}
	})
	err := testredis.EachNode(ctx, raw, func(n *redis.Client) error {
		return n.Do(ctx, "ACL", "SETUSER", user, "on", ">"+password, "~*", "&*", "+@all", "-command").Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	asUser := func(o *xsync.Options) { o.Username, o.Password = user, password }

	// The detection fails for real: as that user, COMMAND INFO is refused
	// by the server.
	probe := redis.NewClusterClient(&redis.ClusterOptions{Addrs: testredis.Current(t).Addrs, Username: user, Password: password})
	defer probe.Close()
	if ok, err := redisx.ShardedPubSub(ctx, probe); ok || err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("ShardedPubSub as %s = %v, %v; want a NOPERM error", user, ok, err)
	}

	nameB := strings.ToLower(prefix) + "-b"
	a := newClient(t, withPrefix(prefix), asUser)
	b := newClient(t, withPrefix(prefix), asUser, withClientName(nameB))
	before := nodeCommandCounts(t, raw)

	// a holds a lock that b waits for; b waits on a pool that a fills.
	held, err := a.Lock(ctx, []string{"k"}, xsync.TTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	lockWaiter := b.LockAsync(ctx, []string{"k"})
	poolWaiter := b.Pool("accounts").WaitAskOneAsync(ctx)
	settled(t, b, 1)
	eventually(t, 5*time.Second, "b's pool waiter queued", func() bool {
		st, err := b.Pool("accounts").Stats(ctx)
		if err != nil {
			t.Fatalf("pool Stats: %v", err)
		}
		return st.Waiting == 1
	})
	// b waits through classic channels: its pub/sub connection has the
	// lock's and the pool's channels, and no shard channel.
	eventually(t, 5*time.Second, "b subscribed to 2 classic channels", func() bool {
		sub, ssub := pubSubCounts(t, raw, nameB)
		if ssub != 0 {
			t.Fatalf("b has %d shard channels, want none", ssub)
		}
		return sub == 2
	})

	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := lockWaiter.Wait(ctx)
	if err != nil {
		t.Fatalf("b's lock waiter: %v", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Pool("accounts").Put(ctx, xsync.Container{ID: "acct-1"}); err != nil {
		t.Fatal(err)
	}
	if c, err := poolWaiter.Wait(ctx); err != nil || c.ID != "acct-1" {
		t.Fatalf("b's pool waiter: %v, %v", c, err)
	}

	diff := commandDiff(nodeCommandCounts(t, raw), before)
	if diff["ssubscribe"] != 0 || diff["spublish"] != 0 {
		t.Fatalf("sharded pub/sub without COMMAND: ssubscribe %d, spublish %d; want none", diff["ssubscribe"], diff["spublish"])
	}
	// A release and a Put publish at least once each; b subscribes to the
	// lock and the pool channels (a's own Lock may have subscribed before).
	if diff["publish"] < 2 || diff["subscribe"] < 1 {
		t.Fatalf("classic pub/sub: publish %d, subscribe %d; want at least 2 and 1", diff["publish"], diff["subscribe"])
	}
}
