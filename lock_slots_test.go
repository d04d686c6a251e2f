package xsync_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redisxsync/xsync"
	"github.com/redisxsync/xsync/internal/testredis"
)

// The locks of keys in different Redis Cluster slots: taken slot by slot,
// in the order of the slots, each slot's keys by one script.
//
// "a", "b" and "c" (stored as {a}, {b} and {c}) fall in the slots 15495,
// 3300 and 7365: a lock of the three takes b, then c, then a.

// requireSlotsDiffer fails t unless the lock keys of keys fall in as many
// slots as there are keys, as the server counts them.
func requireSlotsDiffer(t *testing.T, prefix string, keys ...string) {
	t.Helper()
	raw := rawDB(t, 0)
	seen := map[int64]string{}
	for _, k := range keys {
		slot, err := raw.ClusterKeySlot(t.Context(), prefix+":lock:{"+k+"}").Result()
		if err != nil {
			t.Fatal(err)
		}
		if other, dup := seen[slot]; dup {
			t.Fatalf("%q and %q share slot %d: the test needs keys in different slots", other, k, slot)
		}
		seen[slot] = k
	}
}

// lockHolder is the token in the lock key of key ("" when free).
func lockHolder(t *testing.T, prefix, key string) string {
	t.Helper()
	v, _ := rawDB(t, 0).Get(t.Context(), prefix+":lock:{"+key+"}").Result()
	return v
}

// lockScriptCalls counts the script calls the deployment ran since before.
func lockScriptCalls(t *testing.T, before map[string]int64) int64 {
	t.Helper()
	diff := commandsSince(t, rawDB(t, 0), before)
	return diff["evalsha"] + diff["eval"]
}

// A lock across slots costs one script per slot group, one after the
// other; keys of one slot (one hash tag) stay one script. The lease holds
// every key with its token and the fence of each key.
func TestCluster_LockAcrossSlotsTakesEachSlotGroupByOneScript(t *testing.T) {
	requireTopology(t, testredis.Cluster)
	prefix := testPrefix(t)
	ctx := t.Context()
	requireSlotsDiffer(t, prefix, "a", "b", "c")
	c := newClient(t, withPrefix(prefix))
	// Once first, so that every master has loaded the scripts: a NOSCRIPT
	// answer and its EVAL would be counted too.
	warm, err := c.TryLock(ctx, []string{"a", "b", "c", "{a}:2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := warm.Release(ctx); err != nil {
		t.Fatal(err)
	}

	before := commandCounts(t, rawDB(t, 0))
	lease, err := c.TryLock(ctx, []string{"a", "b", "c", "{a}:2"})
	if err != nil {
		t.Fatalf("TryLock of keys in three slots: %v", err)
	}
	if n := lockScriptCalls(t, before); n != 3 {
		t.Fatalf("TryLock of keys in three slots ran %d scripts, want 3 (one per slot)", n)
	}
	raw := rawDB(t, 0)
	for _, k := range []string{"a", "b", "c", "{a}:2"} {
		tagged := k
		if k[0] != '{' {
			tagged = "{" + k + "}"
		}
		if owner, _ := raw.Get(ctx, prefix+":lock:"+tagged).Result(); owner != lease.Token() {
			t.Fatalf("lock key of %q holds %q, want the lease's token", k, owner)
		}
		fence, err := raw.Get(ctx, prefix+":fence:"+tagged).Int64()
		if err != nil || lease.Fence(k) != fence || fence != 2 {
			t.Fatalf("Fence(%q) = %d, counter %d (%v); want both 2 (the second lock of the key)", k, lease.Fence(k), fence, err)
		}
	}
	before = commandCounts(t, rawDB(t, 0))
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if n := lockScriptCalls(t, before); n != 3 {
		t.Fatalf("Release of keys in three slots ran %d scripts, want 3", n)
	}
	if left := lockKeysLeft(t, prefix, 0); len(left) != 0 {
		t.Fatalf("lock keys left after the release: %v", left)
	}

	// Keys of one tag: one script, as on one server.
	same := []string{"{order-7}:payment", "{order-7}:stock"}
	if _, err := c.TryLock(ctx, same); err != nil { // loads nothing new, but takes the fences to 1
		t.Fatal(err)
	}
	other := newClient(t, withPrefix(prefix))
	before = commandCounts(t, rawDB(t, 0))
	if _, err := other.TryLock(ctx, same); !errors.Is(err, xsync.ErrNotObtained) {
		t.Fatalf("TryLock of held same-tag keys: err = %v, want ErrNotObtained", err)
	}
	if n := lockScriptCalls(t, before); n != 1 {
		t.Fatalf("TryLock of two keys of one tag ran %d scripts, want 1", n)
	}
}

// A try that takes the first slot groups and finds a later one taken gives
// back what it took before it answers: the caller never sees a part.
func TestCluster_TryLockAcrossSlotsGivesBackTheGroupsItTookWhenALaterOneIsHeld(t *testing.T) {
	requireTopology(t, testredis.Cluster)
	prefix := testPrefix(t)
	ctx := t.Context()
	requireSlotsDiffer(t, prefix, "a", "b", "c")
	a, b := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))
	holder, err := a.Lock(ctx, []string{"a"}) // the last of the three slots
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := b.TryLock(ctx, []string{"a", "b", "c"}); !errors.Is(err, xsync.ErrNotObtained) {
			t.Fatalf("TryLock a,b,c with a held: err = %v, want ErrNotObtained", err)
		}
		// At once, not eventually: b and c were given back before the answer.
		for _, k := range []string{"b", "c"} {
			if owner := lockHolder(t, prefix, k); owner != "" {
				t.Fatalf("try %d: %q still holds %q after the try failed", i, k, owner)
			}
		}
		if _, leases, _, err := xsync.LockStats(ctx, b); err != nil || leases != 0 {
			t.Fatalf("the failed try left %d leases (%v)", leases, err)
		}
		if owner := lockHolder(t, prefix, "a"); owner != holder.Token() {
			t.Fatalf("a holds %q, want the holder's token", owner)
		}
	}
	// They were taken and given back three times: their fences say so.
	raw := rawDB(t, 0)
	for _, k := range []string{"b", "c"} {
		if fence, err := raw.Get(ctx, prefix+":fence:{"+k+"}").Int64(); err != nil || fence != 3 {
			t.Fatalf("fence of %q = %d (%v), want 3: each try took it before it met a", k, fence, err)
		}
	}
	// b and c are free for anybody.
	bc, err := a.TryLock(ctx, []string{"b", "c"})
	if err != nil {
		t.Fatalf("TryLock b,c after the failed tries: %v", err)
	}
	if err := bc.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	all, err := b.TryLock(ctx, []string{"a", "b", "c"})
	if err != nil {
		t.Fatalf("TryLock a,b,c once all are free: %v", err)
	}
	if err := all.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if left := lockKeysLeft(t, prefix, 0); len(left) != 0 {
		t.Fatalf("lock keys left: %v", left)
	}
}

// A wait across slots that ends (Cancel, or its context) while it holds the
// first groups gives them back, and leaves no waiter, lease or queue entry.
func TestCluster_CancelledWaitAcrossSlotsHoldsNothingAfterwards(t *testing.T) {
	requireTopology(t, testredis.Cluster)
	prefix := testPrefix(t)
	ctx := t.Context()
	requireSlotsDiffer(t, prefix, "a", "b", "c")
	a, b := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))
	holder, err := a.Lock(ctx, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	for i, how := range []string{"Cancel", "context"} {
		wctx, cancel := context.WithCancel(ctx)
		f := b.LockAsync(wctx, []string{"a", "b", "c"})
		settled(t, b, 1)
		// It holds b and c now, and waits for a.
		if _, leases, _, err := xsync.LockStats(ctx, b); err != nil || leases != 1 {
			t.Fatalf("%s: the waiter holds %d leases (%v), want its first two groups in one", how, leases, err)
		}
		for _, k := range []string{"b", "c"} {
			if lockHolder(t, prefix, k) == "" {
				t.Fatalf("%s: %q is free while the wait holds it", how, k)
			}
		}
		if i == 0 {
			f.Cancel()
		} else {
			cancel()
		}
		if _, err := f.Wait(ctx); !errors.Is(err, xsync.ErrNotObtained) || !errors.Is(err, context.Canceled) {
			t.Fatalf("%s: err = %v, want ErrNotObtained and context.Canceled", how, err)
		}
		cancel()
		eventually(t, 5*time.Second, how+": b and c given back", func() bool {
			w, leases, busy, err := xsync.LockStats(ctx, b)
			if err != nil {
				t.Fatal(err)
			}
			return w == 0 && leases == 0 && busy == 0 && lockHolder(t, prefix, "b") == "" && lockHolder(t, prefix, "c") == ""
		})
	}
	// The holder's release finds nobody in line: a is free afterwards.
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "no lock key left", func() bool { return len(lockKeysLeft(t, prefix, 0)) == 0 })
	if lease, err := a.TryLock(ctx, []string{"a", "b", "c"}); err != nil {
		t.Fatalf("TryLock a,b,c after the cancelled waits: %v", err)
	} else if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// Two clients lock overlapping key sets across slots, each set given in
// the opposite order by the other client, many goroutines at once: every
// critical section runs, never two holders of one key at once.
func TestCluster_OverlappingLocksAcrossSlotsInOppositeOrdersDoNotDeadlock(t *testing.T) {
	requireTopology(t, testredis.Cluster)
	prefix := testPrefix(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	keys := []string{"a", "b", "c", "{a}:2", "d"}
	requireSlotsDiffer(t, prefix, "a", "b", "c", "d")
	sets := [][]string{{"a", "b", "c"}, {"c", "d", "{a}:2"}, {"b", "{a}:2", "d"}, {"d", "a"}}
	inside := map[string]*atomic.Int32{}
	for _, k := range keys {
		inside[k] = &atomic.Int32{}
	}
	const goroutines, rounds = 8, 10
	var done atomic.Int32
	var wg sync.WaitGroup
	for ci := 0; ci < 2; ci++ {
		c := newClient(t, withPrefix(prefix))
		for g := 0; g < goroutines; g++ {
			set := append([]string(nil), sets[g%len(sets)]...)
			if ci == 1 { // the other client names the keys in the opposite order
				for i, j := 0, len(set)-1; i < j; i, j = i+1, j-1 {
					set[i], set[j] = set[j], set[i]
				}
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := 0; r < rounds; r++ {
					err := c.WithLock(ctx, set, func(context.Context) error {
						for _, k := range set {
							if n := inside[k].Add(1); n != 1 {
								t.Errorf("%d holders of %q", n, k)
							}
						}
						for _, k := range set {
							inside[k].Add(-1)
						}
						return nil
					}, xsync.TTL(5*time.Second), xsync.AutoRenew(true))
					if err != nil {
						t.Errorf("WithLock %v: %v", set, err)
						return
					}
					done.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	if n := done.Load(); n != 2*goroutines*rounds {
		t.Fatalf("%d of %d critical sections ran", n, 2*goroutines*rounds)
	}
	eventually(t, 5*time.Second, "no lock key left", func() bool { return len(lockKeysLeft(t, prefix, 0)) == 0 })
}

// A lease across slots is lost when the key of one group is deleted behind
// its back: Lost closes, WithLock's fn is cancelled, and the other groups
// are given back.
func TestCluster_LeaseAcrossSlotsIsLostWhenOneGroupsKeyIsDeleted(t *testing.T) {
	requireTopology(t, testredis.Cluster)
	prefix := testPrefix(t)
	ctx := t.Context()
	requireSlotsDiffer(t, prefix, "a", "b", "c")
	c := newClient(t, withPrefix(prefix))
	raw := rawDB(t, 0)
	var lease *xsync.Lease
	err := c.WithLock(ctx, []string{"a", "b", "c"}, func(fnCtx context.Context) error {
		lease, _ = xsync.LeaseFrom(fnCtx)
		if err := raw.Del(ctx, prefix+":lock:{c}").Err(); err != nil { // the middle group
			t.Error(err)
			return nil
		}
		select {
		case <-fnCtx.Done():
		case <-time.After(5 * time.Second):
			t.Error("fn's context was not cancelled after the key was deleted")
			return nil
		}
		if cause := context.Cause(fnCtx); !errors.Is(cause, xsync.ErrLockNotHeld) {
			t.Errorf("fn's context cause = %v, want ErrLockNotHeld", cause)
		}
		return nil
	}, xsync.TTL(300*time.Millisecond), xsync.AutoRenew(true))
	if !errors.Is(err, xsync.ErrLockNotHeld) {
		t.Fatalf("WithLock: err = %v, want the release's ErrLockNotHeld", err)
	}
	select {
	case <-lease.Lost():
	default:
		t.Fatal("Lost is not closed")
	}
	eventually(t, 5*time.Second, "a and b given back", func() bool {
		return lockHolder(t, prefix, "a") == "" && lockHolder(t, prefix, "b") == ""
	})
}

// Renewal and Refresh extend every group of a lease across slots.
func TestCluster_LeaseAcrossSlotsRenewsAndRefreshesEveryGroup(t *testing.T) {
	requireTopology(t, testredis.Cluster)
	prefix := testPrefix(t)
	ctx := t.Context()
	requireSlotsDiffer(t, prefix, "a", "b", "c")
	c := newClient(t, withPrefix(prefix))
	const ttl = 150 * time.Millisecond
	lease, err := c.Lock(ctx, []string{"a", "b", "c"}, xsync.TTL(ttl), xsync.AutoRenew(true))
	if err != nil {
		t.Fatal(err)
	}
	// An observation window of four TTLs: the lease must not be lost in it.
	select {
	case <-lease.Lost():
		t.Fatal("an auto-renewed lease across slots was lost")
	case <-time.After(4 * ttl):
	}
	for _, k := range []string{"a", "b", "c"} {
		if owner := lockHolder(t, prefix, k); owner != lease.Token() {
			t.Fatalf("after 4 TTLs %q holds %q, want the lease's token", k, owner)
		}
	}
	if err := lease.Refresh(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	raw := rawDB(t, 0)
	for _, k := range []string{"a", "b", "c"} {
		if pttl, err := raw.PTTL(ctx, prefix+":lock:{"+k+"}").Result(); err != nil || pttl < 30*time.Second {
			t.Fatalf("after Refresh(1m), %q lives %v (%v), want about a minute", k, pttl, err)
		}
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}

	// Without renewal too, the groups taken first are kept while a later
	// one is waited for longer than the TTL: the lease is not born lost.
	holder, err := newClient(t, withPrefix(prefix)).Lock(ctx, []string{"a"}) // the last slot
	if err != nil {
		t.Fatal(err)
	}
	f := c.LockAsync(ctx, []string{"a", "b", "c"}, xsync.TTL(4*ttl))
	settled(t, c, 1)
	<-time.After(8 * ttl) // an observation window of two TTLs: b and c must stay held in it
	for _, k := range []string{"b", "c"} {
		if lockHolder(t, prefix, k) == "" {
			t.Fatalf("%q expired while the lock waited for a", k)
		}
	}
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	fixed, err := f.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-fixed.Lost():
		t.Fatal("the lease was lost at its grant")
	default:
	}
	if err := fixed.Release(ctx); err != nil {
		t.Fatalf("Release of the lease without renewal, right after its grant: %v", err)
	}
}

// A wait across slots sends nothing while nothing changes, and keeps FIFO
// per key: a later waiter of a key it waits for is served after it.
func TestCluster_WaitAcrossSlotsIsQuietAndKeepsItsPlace(t *testing.T) {
	requireTopology(t, testredis.Cluster)
	prefix := testPrefix(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	requireSlotsDiffer(t, prefix, "a", "b", "c")
	a, b := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))
	holder, err := a.Lock(ctx, []string{"c"}) // the middle slot
	if err != nil {
		t.Fatal(err)
	}
	first := b.LockAsync(ctx, []string{"a", "b", "c"}) // holds b, waits for c
	settled(t, b, 1)
	later := a.LockAsync(ctx, []string{"c"})
	settled(t, a, 1)

	raw := rawDB(t, 0)
	counts0 := commandCounts(t, raw)
	// An observation window: what is checked is that nothing happens in it.
	<-time.After(500 * time.Millisecond)
	if diff := commandsSince(t, raw, counts0); len(diff) != 0 {
		t.Fatalf("two waiters sent Redis commands in 500ms while nothing changed: %v; want none", diff)
	}

	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	lease, err := first.Wait(ctx)
	if err != nil {
		t.Fatalf("the wait across slots after c's release: %v", err)
	}
	select {
	case <-later.Done():
		t.Fatal("a later waiter of c was served before the wait across slots released it")
	default:
	}
	if lease.Fence("c") != 2 || lease.Fence("a") != 1 || lease.Fence("b") != 1 {
		t.Fatalf("fences a,b,c = %d,%d,%d; want 1,1,2", lease.Fence("a"), lease.Fence("b"), lease.Fence("c"))
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
	next, err := later.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if next.Fence("c") != 3 {
		t.Fatalf("the later waiter's fence of c = %d, want 3", next.Fence("c"))
	}
	if err := next.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// A group taken for a wait across slots and lost while it waits for a later
// one (its key deleted) ends the wait: ErrNotObtained and ErrLockNotHeld,
// and what it still held is given back.
func TestCluster_WaitAcrossSlotsThatLosesATakenGroupFails(t *testing.T) {
	requireTopology(t, testredis.Cluster)
	prefix := testPrefix(t)
	ctx := t.Context()
	requireSlotsDiffer(t, prefix, "a", "b", "c")
	a, b := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))
	holder, err := a.Lock(ctx, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	f := b.LockAsync(ctx, []string{"a", "b", "c"}, xsync.TTL(300*time.Millisecond), xsync.AutoRenew(true))
	settled(t, b, 1)
	if err := rawDB(t, 0).Del(ctx, prefix+":lock:{b}").Err(); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := f.Wait(wctx); !errors.Is(err, xsync.ErrNotObtained) || !errors.Is(err, xsync.ErrLockNotHeld) {
		t.Fatalf("err = %v, want ErrNotObtained and ErrLockNotHeld", err)
	}
	if owner := lockHolder(t, prefix, "c"); owner != "" {
		t.Fatalf("c still holds %q after the wait failed", owner)
	}
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// Close during a wait across slots fails the wait with ErrClosed and gives
// back the groups it held.
func TestCluster_CloseDuringAWaitAcrossSlotsGivesBackItsGroups(t *testing.T) {
	requireTopology(t, testredis.Cluster)
	prefix := testPrefix(t)
	ctx := t.Context()
	requireSlotsDiffer(t, prefix, "a", "b", "c")
	other := newClient(t, withPrefix(prefix))
	c, err := xsync.New(withOptions(testOptions(t), withPrefix(prefix)))
	if err != nil {
		t.Fatal(err)
	}
	holder, err := other.Lock(ctx, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	waiting := c.LockAsync(ctx, []string{"a", "b", "c"})
	settled(t, c, 1)
	if err := c.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := waiting.Wait(ctx); !errors.Is(err, xsync.ErrClosed) {
		t.Fatalf("the wait after Close: err = %v, want ErrClosed", err)
	}
	for _, k := range []string{"b", "c"} {
		if owner := lockHolder(t, prefix, k); owner != "" {
			t.Fatalf("%q still holds %q after Close", k, owner)
		}
	}
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
}
