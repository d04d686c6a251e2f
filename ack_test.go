package xsync_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync"
	"github.com/redisxsync/xsync/internal/testredis"
)

// withAck makes newClient's client wait for n replicas (Options.AckReplicas).
func withAck(n int) func(*xsync.Options) {
	return func(o *xsync.Options) { o.AckReplicas = n }
}

// dumpAll is DUMP of every key matching pattern, by name: what a test
// compares before and after a call that must leave Redis as it was.
func dumpAll(t testing.TB, raw redis.UniversalClient, pattern string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, k := range keysMatching(t, raw, pattern) {
		v, err := raw.Dump(context.Background(), k).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		out[k] = v
	}
	return out
}

// poolMeta is the records of a pool's meta hash, "id=record" sorted, with
// the record's revision (its fifth field) left out.
func poolMeta(t testing.TB, raw redis.UniversalClient, key string) []string {
	t.Helper()
	m, err := raw.HGetAll(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for id, rec := range m {
		f := strings.Split(rec, ":")
		if len(f) > 4 {
			f[4] = "rev"
		}
		out = append(out, id+"="+strings.Join(f, ":"))
	}
	slices.Sort(out)
	return out
}

func sameDump(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// A negative AckReplicas is refused; a positive one is accepted.
func TestOptions_AckReplicasNegativeIsInvalidPositiveIsAccepted(t *testing.T) {
	if _, err := xsync.New(withOptions(testOptions(t), withAck(-1))); !errors.Is(err, xsync.ErrInvalidOptions) {
		t.Fatalf("AckReplicas -1: err = %v, want ErrInvalidOptions", err)
	}
	c := newClient(t, withAck(1))
	if c == nil {
		t.Fatal("AckReplicas 1 refused")
	}
}

// One server has no replica to confirm a write: with AckReplicas 1 every
// acquisition and take fails with ErrNotReplicated, and is undone. The
// lock keys are free for the next client at once, the pool's keys are as
// they were (the container is ready again, its use not counted); only the
// key's fencing counter keeps the numbers the undone grants drew.
func TestAckReplicas_WithoutAReplicaEveryGrantFailsAndIsUndone(t *testing.T) {
	requireTopology(t, testredis.Single)
	prefix := testPrefix(t)
	ctx := t.Context()
	acked := newClient(t, withPrefix(prefix), withAck(1))
	plain := newClient(t, withPrefix(prefix))
	raw := rawDB(t, 0)

	if _, err := acked.TryLock(ctx, []string{"k"}); !errors.Is(err, xsync.ErrNotReplicated) || errors.Is(err, xsync.ErrNotObtained) {
		t.Fatalf("TryLock without a replica: err = %v, want ErrNotReplicated only", err)
	}
	if _, err := acked.Lock(ctx, []string{"k"}, xsync.TTL(time.Minute)); !errors.Is(err, xsync.ErrNotReplicated) {
		t.Fatalf("Lock without a replica: err = %v, want ErrNotReplicated", err)
	}
	fenceKey := prefix + ":fence:{k}"
	eventually(t, 5*time.Second, "the undone grants released the key", func() bool {
		return slices.Equal(keysMatching(t, raw, prefix+"*"), []string{fenceKey})
	})
	if n, err := raw.Get(ctx, fenceKey).Int64(); err != nil || n != 2 {
		t.Fatalf("fence counter = %d, %v; want 2 (two undone grants)", n, err)
	}
	lease, err := plain.TryLock(ctx, []string{"k"})
	if err != nil {
		t.Fatalf("TryLock by a client without AckReplicas after the undone grants: %v", err)
	}
	if lease.Fence("k") != 3 {
		t.Fatalf("fence %d after two undone grants, want 3", lease.Fence("k"))
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}

	if err := plain.Pool("p").Put(ctx, xsync.Container{ID: "a", Interval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	poolKeys := prefix + ":pool*"
	// The containers' records count their revisions (a take and its hand-
	// back are two); the rest of them, and every other key, is compared
	// byte for byte.
	metaKey := prefix + ":pool:{p}:meta"
	metaBefore := poolMeta(t, raw, metaKey)
	dumpPool := func() map[string]string {
		d := dumpAll(t, raw, poolKeys)
		delete(d, metaKey)
		return d
	}
	before := dumpPool()
	if len(before) == 0 || len(metaBefore) == 0 {
		t.Fatal("the pool wrote no key")
	}
	if _, err := acked.Pool("p").AskOne(ctx); !errors.Is(err, xsync.ErrNotReplicated) || errors.Is(err, xsync.ErrNotAvailable) {
		t.Fatalf("AskOne without a replica: err = %v, want ErrNotReplicated only", err)
	}
	if _, err := acked.Pool("p").WaitAskOne(ctx); !errors.Is(err, xsync.ErrNotReplicated) {
		t.Fatalf("WaitAskOne without a replica: err = %v, want ErrNotReplicated", err)
	}
	if _, err := acked.Pool("p").AcquireRandom(ctx, 1); !errors.Is(err, xsync.ErrNotReplicated) {
		t.Fatalf("AcquireRandom without a replica: err = %v, want ErrNotReplicated", err)
	}
	eventually(t, 5*time.Second, "the pool's keys as they were before the takes", func() bool {
		return sameDump(before, dumpPool()) && slices.Equal(metaBefore, poolMeta(t, raw, metaKey))
	})
	got, err := plain.Pool("p").AskOne(ctx)
	if err != nil {
		t.Fatalf("AskOne by a client without AckReplicas after the undone takes: %v", err)
	}
	if got.UsageCount != 1 {
		t.Fatalf("UsageCount %d after three undone takes and one take, want 1", got.UsageCount)
	}
}

// With AckReplicas 1 where every master has a replica, locks (waiting,
// with a transfer to a waiter of another client), renewals, Refresh and
// takes succeed, each confirmed by WAIT. On Cluster the keys fall on
// every master.
func testAckReplicasConfirmsGrants(t *testing.T) {
	prefix := testPrefix(t)
	ctx := t.Context()
	a := newClient(t, withPrefix(prefix), withAck(1))
	b := newClient(t, withPrefix(prefix), withAck(1))
	raw := rawDB(t, 0)
	before := commandCounts(t, raw)

	// "a", "b" and "c" hash to slots 15495, 3300 and 7365: one per master
	// of the test Cluster.
	for _, key := range []string{"a", "b", "c"} {
		lease, err := a.Lock(ctx, []string{key}, xsync.TTL(300*time.Millisecond), xsync.AutoRenew(true))
		if err != nil {
			t.Fatalf("Lock %s: %v", key, err)
		}
		next := b.LockAsync(ctx, []string{key}, xsync.TTL(time.Second))
		settled(t, b, 1)
		// Renewed every 100ms, each renewal confirmed: the lease outlives
		// its TTL several times.
		select {
		case <-lease.Lost():
			t.Fatalf("lease of %s lost while renewed with AckReplicas 1", key)
		case <-time.After(time.Second): // an observation window
		}
		if err := lease.Refresh(ctx, 300*time.Millisecond); err != nil {
			t.Fatalf("Refresh %s: %v", key, err)
		}
		if err := lease.Release(ctx); err != nil {
			t.Fatalf("Release %s: %v", key, err)
		}
		got, err := next.Wait(ctx)
		if err != nil {
			t.Fatalf("the waiter of %s after the release: %v", key, err)
		}
		if got.Fence(key) != lease.Fence(key)+1 {
			t.Fatalf("fence of %s: %d after %d", key, got.Fence(key), lease.Fence(key))
		}
		if err := got.Release(ctx); err != nil {
			t.Fatalf("Release %s by the waiter: %v", key, err)
		}
	}

	if testredis.Current(t).Topology == testredis.Cluster {
		// A lock across the three masters: a slot group after the other,
		// each confirmed.
		all, err := a.Lock(ctx, []string{"a", "b", "c"}, xsync.TTL(time.Second))
		if err != nil {
			t.Fatalf("Lock across slots: %v", err)
		}
		if err := all.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}

	pool := a.Pool("p")
	if err := pool.Put(ctx, xsync.Container{ID: "1", Interval: time.Hour}, xsync.Container{ID: "2", Interval: time.Hour}, xsync.Container{ID: "3"}); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.AskOne(ctx); err != nil {
		t.Fatalf("AskOne: %v", err)
	}
	if _, err := b.Pool("p").WaitAskOne(ctx); err != nil {
		t.Fatalf("WaitAskOne: %v", err)
	}
	if _, err := b.Pool("p").AcquireRandom(ctx, 1); err != nil {
		t.Fatalf("AcquireRandom: %v", err)
	}
	// 3 keys × (an acquisition or two, a transfer confirmed, several
	// renewals and a Refresh) and 3 takes: each with its WAIT.
	if n := commandsSince(t, raw, before)["wait"]; n < 3*5+3 {
		t.Fatalf("%d WAIT commands, want one per acquisition, renewal and take (at least %d)", n, 3*5+3)
	}
}

// Sentinel (a master and a replica): acquisitions, renewals and takes
// with AckReplicas 1 succeed.
func TestSentinel_AckReplicasConfirmsLocksRenewalsAndTakes(t *testing.T) {
	requireTopology(t, testredis.Sentinel)
	testAckReplicasConfirmsGrants(t)
}

// Cluster (three masters, a replica each): the same, on every master.
func TestCluster_AckReplicasConfirmsLocksRenewalsAndTakes(t *testing.T) {
	requireTopology(t, testredis.Cluster)
	testAckReplicasConfirmsGrants(t)
}

// WAIT must run on the connection of the write, on the master of the
// keys: there it counts the replicas that have the write (on another
// node it would count those that have nothing pending, and pass). With
// the replica of one master stopped, an acquisition and a take on that
// master fail with ErrNotReplicated, while a lock on another master is
// confirmed; once the replica is back, the first key is granted again.
// A lease held there is not extended by the renewals and the Refresh the
// replica does not confirm: it is lost at the expiry confirmed last, and
// its key released (the Refresh had set a minute on the master).
func TestCluster_AckReplicasWaitsOnTheMasterOfTheKeys(t *testing.T) {
	d := requireTopology(t, testredis.Cluster)
	ctx := t.Context()
	raw := rawDB(t, 0).(*redis.ClusterClient)
	replica, master := testredis.ReplicaOf(ctx, t, raw, "{a}")
	other := ""
	for _, k := range []string{"b", "c", "d", "e"} {
		if _, m := testredis.ReplicaOf(ctx, t, raw, "{"+k+"}"); m != master {
			other = k
			break
		}
	}
	if other == "" {
		t.Fatalf("no key of b..e on another master than %s", master)
	}
	c := newClient(t, withAck(1))
	if err := c.Pool("a").Put(ctx, xsync.Container{ID: "x"}); err != nil {
		t.Fatal(err)
	}

	held, err := c.Lock(ctx, []string{"{a}:held"}, xsync.TTL(3*time.Second), xsync.AutoRenew(true))
	if err != nil {
		t.Fatal(err)
	}

	resume := d.Pause(t, replica)
	if err := held.Refresh(ctx, time.Minute); !errors.Is(err, xsync.ErrNotReplicated) {
		resume()
		t.Fatalf("Refresh on the master whose replica is stopped: err = %v, want ErrNotReplicated", err)
	}
	if _, err := c.TryLock(ctx, []string{"a"}); !errors.Is(err, xsync.ErrNotReplicated) {
		resume()
		t.Fatalf("TryLock on the master whose replica is stopped: err = %v, want ErrNotReplicated", err)
	}
	if _, err := c.Pool("a").AskOne(ctx); !errors.Is(err, xsync.ErrNotReplicated) {
		resume()
		t.Fatalf("AskOne on the master whose replica is stopped: err = %v, want ErrNotReplicated", err)
	}
	// A lock across both masters: the group of the other master is taken
	// first (its slot is lower), then given back with the failed one.
	if _, err := c.TryLock(ctx, []string{other, "a"}); !errors.Is(err, xsync.ErrNotReplicated) {
		resume()
		t.Fatalf("TryLock across %q and \"a\": err = %v, want ErrNotReplicated", other, err)
	}
	lease, err := c.TryLock(ctx, []string{other})
	if err == nil {
		select {
		case <-held.Lost():
		case <-time.After(5 * time.Second):
			resume()
			t.Fatal("a lease whose renewals no replica confirmed was not lost at its expiry")
		}
	}
	resume()
	if err != nil {
		t.Fatalf("TryLock %q on another master, whose replica runs: %v", other, err)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}

	for _, key := range []string{"a", "{a}:held"} {
		var again *xsync.Lease
		eventually(t, 10*time.Second, key+" granted once its replica is back", func() bool {
			again, err = c.TryLock(ctx, []string{key})
			return err == nil
		})
		if err := again.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
