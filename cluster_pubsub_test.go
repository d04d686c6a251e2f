package xsync_test

import (
	"context"
	"fmt"
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
