package xsync_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redisxsync/xsync"
	"github.com/redisxsync/xsync/actors"
)

// readOnly fails t if the server ran a command, other than the reads of the
// inspection calls, since before.
func readOnly(t *testing.T, before map[string]int64) {
	t.Helper()
	reads := []string{"scan", "get", "pttl", "zcard", "multi", "exec", "exists", // the calls
		"evalsha", "time", "type", "hscan", "zscore", "hget", // pool_list's
		"hello", "client"} // a new connection's
	for name := range commandsSince(t, rawDB(t, 0), before) {
		if !slices.Contains(reads, name) {
			t.Errorf("an inspection call ran %s", name)
		}
	}
}

func TestLockInfo_DescribesFreeHeldAndReleasedKeys(t *testing.T) {
	prefix := testPrefix(t)
	ctx := context.Background()
	a, b := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))

	info, err := a.LockInfo(ctx, "report")
	if err != nil {
		t.Fatal(err)
	}
	if want := (xsync.LockInfo{Key: "report"}); info != want {
		t.Fatalf("never locked: %+v, want %+v", info, want)
	}

	lease, err := a.Lock(ctx, []string{"report"}, xsync.TTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	waiting := b.LockAsync(wctx, []string{"report"})
	settled(t, b, 1)

	info, err = b.LockInfo(ctx, "report")
	if err != nil {
		t.Fatal(err)
	}
	if !info.Held || info.Token != lease.Token() || info.Fence != lease.Fence("report") || info.Waiting != 1 {
		t.Fatalf("held with one client waiting: %+v; lease token %s fence %d", info, lease.Token(), lease.Fence("report"))
	}
	if info.TTL <= 50*time.Second || info.TTL > time.Minute {
		t.Fatalf("TTL %v of a one-minute lease just taken", info.TTL)
	}

	cancel()
	if _, err := waiting.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	// The withdrawal has left the turn queue (its ticket with it): the
	// release hands the key to nobody.
	settled(t, b, 0)
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the waiter's client has left the turn queue", func() bool {
		info, err = a.LockInfo(ctx, "{report}") // the same lock
		return err == nil && info.Waiting == 0
	})
	if want := (xsync.LockInfo{Key: "{report}", Fence: lease.Fence("report")}); info != want {
		t.Fatalf("released: %+v, want %+v (the fence stays)", info, want)
	}
}

func TestLockInfo_KeyWithoutExpiryHasTTLMinusOne(t *testing.T) {
	prefix := testPrefix(t)
	c := newClient(t, withPrefix(prefix))
	ctx := context.Background()
	// Written by hand: xsync itself always sets a TTL.
	if err := rawDB(t, 0).Set(ctx, prefix+":lock:{legacy}", "tok", 0).Err(); err != nil {
		t.Fatal(err)
	}
	info, err := c.LockInfo(ctx, "legacy")
	if err != nil {
		t.Fatal(err)
	}
	if !info.Held || info.TTL != -1 || info.Token != "tok" {
		t.Fatalf("key without expiry: %+v", info)
	}
}

func TestLocks_ListsHeldLocksUnderThePrefixOnly(t *testing.T) {
	prefix := testPrefix(t)
	ctx := context.Background()
	c := newClient(t, withPrefix(prefix))
	other := newClient(t) // another prefix: not listed
	keys := []string{"orders", "user:{42}:profile", "a*b"}
	var leases []*xsync.Lease
	for _, k := range keys {
		l, err := c.Lock(ctx, []string{k})
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, l)
	}
	if _, err := other.Lock(ctx, []string{"orders"}); err != nil {
		t.Fatal(err)
	}
	released, err := c.Lock(ctx, []string{"gone"})
	if err != nil {
		t.Fatal(err)
	}
	if err := released.Release(ctx); err != nil {
		t.Fatal(err)
	}

	before := commandCounts(t, rawDB(t, 0))
	got, err := c.Locks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	readOnly(t, before)
	var gotKeys []string
	for _, info := range got {
		gotKeys = append(gotKeys, info.Key)
		if !info.Held || info.TTL <= 0 || info.Fence != 1 {
			t.Errorf("%+v: want held, with a TTL, fence 1", info)
		}
	}
	want := []string{"a*b", "orders", "user:{42}:profile"} // sorted; "gone" is free
	if !slices.Equal(gotKeys, want) {
		t.Fatalf("Locks = %q, want %q", gotKeys, want)
	}
	for i, l := range leases {
		if got[slices.Index(gotKeys, keys[i])].Token != l.Token() {
			t.Errorf("%s: token %s, want %s", keys[i], got[i].Token, l.Token())
		}
	}
}

func TestForceUnlock_HandsTheLockToTheNextWaiterAndTheHolderLearnsItLost(t *testing.T) {
	prefix := testPrefix(t)
	ctx := context.Background()
	holderC, waiterC, admin := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))

	// A renewed lease of a minute: only the break can end it within the
	// waiter's 10s.
	held, err := holderC.Lock(ctx, []string{"job"}, xsync.TTL(time.Minute), xsync.AutoRenew(true))
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	waiting := waiterC.LockAsync(wctx, []string{"job"})
	settled(t, waiterC, 1)

	broke, err := admin.ForceUnlock(ctx, "job")
	if err != nil || !broke {
		t.Fatalf("ForceUnlock of a held key = %v, %v; want true", broke, err)
	}
	next, err := waiting.Wait(wctx)
	if err != nil {
		t.Fatalf("the waiter after the break: %v", err)
	}
	if next.Fence("job") != held.Fence("job")+1 {
		t.Fatalf("fence %d after %d", next.Fence("job"), held.Fence("job"))
	}

	// The holder learns it at its next Refresh (or renewal).
	if err := held.Refresh(ctx, time.Minute); !errors.Is(err, xsync.ErrLockNotHeld) {
		t.Fatalf("the broken holder's Refresh: %v, want ErrLockNotHeld", err)
	}
	select {
	case <-held.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("the broken lease's Lost did not close")
	}
	if err := held.Release(ctx); !errors.Is(err, xsync.ErrLockNotHeld) {
		t.Fatalf("the broken holder's Release: %v, want ErrLockNotHeld", err)
	}
	if info, err := admin.LockInfo(ctx, "job"); err != nil || info.Token != next.Token() {
		t.Fatalf("after the holder's Release: %+v, %v; want still held by the waiter", info, err)
	}
	if err := next.Release(ctx); err != nil {
		t.Fatal(err)
	}

	broke, err = admin.ForceUnlock(ctx, "job")
	if err != nil || broke {
		t.Fatalf("ForceUnlock of a free key = %v, %v; want false", broke, err)
	}
}

func TestInspection_BadInput(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	if _, err := c.LockInfo(ctx, ""); !errors.Is(err, xsync.ErrInvalidKey) {
		t.Errorf("LockInfo empty key: %v", err)
	}
	if _, err := c.ForceUnlock(ctx, ""); !errors.Is(err, xsync.ErrInvalidKey) {
		t.Errorf("ForceUnlock empty key: %v", err)
	}
	if _, err := c.Locks(ctx, xsync.OnDB(-1)); !errors.Is(err, xsync.ErrInvalidOptions) {
		t.Errorf("Locks on DB -1: %v", err)
	}
	if _, err := c.Pools(ctx, xsync.OnDB(-1)); !errors.Is(err, xsync.ErrInvalidOptions) {
		t.Errorf("Pools on DB -1: %v", err)
	}
	if _, err := c.Pool("").List(ctx); !errors.Is(err, xsync.ErrInvalidOptions) {
		t.Errorf("List of an unnamed pool: %v", err)
	}
	closed := newClient(t)
	if err := closed.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := closed.Locks(ctx); !errors.Is(err, xsync.ErrClosed) {
		t.Errorf("Locks on a closed client: %v", err)
	}
	if _, err := closed.Pool("p").List(ctx); !errors.Is(err, xsync.ErrClosed) {
		t.Errorf("List on a closed client: %v", err)
	}
}

func TestPools_NamesThePoolsUnderThePrefix(t *testing.T) {
	prefix := testPrefix(t)
	ctx := context.Background()
	c := newClient(t, withPrefix(prefix))
	for _, name := range []string{"proxies", "accounts", "a:b", "a:ready"} {
		put(t, c.Pool(name), xsync.Container{ID: "1"})
	}
	put(t, c.Pool("elsewhere", xsync.OnDB(3)), xsync.Container{ID: "1"})
	put(t, newClient(t).Pool("other-prefix"), xsync.Container{ID: "1"})
	emptied := c.Pool("emptied")
	put(t, emptied, xsync.Container{ID: "1"})
	if _, err := emptied.Remove(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	// A grant record ("<pool>:grant:<token>") names no pool of its own.
	if _, err := c.Pool("proxies").AskOne(ctx); err != nil {
		t.Fatal(err)
	}

	before := commandCounts(t, rawDB(t, 0))
	got, err := c.Pools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	readOnly(t, before)
	if want := []string{"a:b", "a:ready", "accounts", "proxies"}; !slices.Equal(got, want) {
		t.Fatalf("Pools = %q, want %q", got, want)
	}
	if got, err := c.Pools(ctx, xsync.OnDB(3)); err != nil || !slices.Equal(got, []string{"elsewhere"}) {
		t.Fatalf("Pools on DB 3 = %q, %v", got, err)
	}
	for name, want := range map[string]bool{"accounts": true, "emptied": false, "never": false} {
		if ok, err := c.Pool(name).Exists(ctx); err != nil || ok != want {
			t.Errorf("Exists(%s) = %v, %v; want %v", name, ok, err, want)
		}
	}
}

func TestPoolList_ReturnsEveryLiveContainerAsGetDoesAndChangesNothing(t *testing.T) {
	prefix := testPrefix(t)
	ctx := context.Background()
	c := newClient(t, withPrefix(prefix))
	p := c.Pool("accounts")
	put(t, p,
		xsync.Container{ID: "b", Interval: time.Hour, Data: "cookie-b"},
		xsync.Container{ID: "a", Interval: time.Minute, TTL: time.Hour},
		xsync.Container{ID: "c"},
		xsync.Container{ID: "dying", TTL: 50 * time.Millisecond},
	)
	if _, err := p.AskOne(ctx); err != nil { // a or b or c: used once
		t.Fatal(err)
	}
	if err := p.Cooldown(ctx, "c", time.Minute); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "dying expires", func() bool { return expiredIn(t, p, "dying") })

	before := commandCounts(t, rawDB(t, 0))
	got, err := p.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	readOnly(t, before)
	if want := []string{"a", "b", "c"}; !slices.Equal(listIDs(got), want) {
		t.Fatalf("List = %q, want %q (sorted, without the expired one)", listIDs(got), want)
	}
	for _, lc := range got {
		if gc := get(t, p, lc.ID); !sameContainer(lc, gc) {
			t.Errorf("List has %+v, Get has %+v", lc, gc)
		}
	}
	// The expired container was left for the pool's own purge.
	if n, err := rawDB(t, 0).HExists(ctx, poolKey(prefix, "accounts", "meta"), "dying").Result(); err != nil || !n {
		t.Errorf("List purged the expired container: HEXISTS = %v, %v", n, err)
	}
	if empty, err := c.Pool("none").List(ctx); err != nil || len(empty) != 0 {
		t.Errorf("List of a pool that does not exist = %v, %v", empty, err)
	}
}

// expiredIn reports whether List leaves container id out: its TTL has
// passed.
func expiredIn(t *testing.T, p *xsync.Pool, id string) bool {
	t.Helper()
	cs, err := p.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return !slices.Contains(listIDs(cs), id)
}

func listIDs(cs []xsync.Container) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func sameContainer(a, b xsync.Container) bool {
	return a.ID == b.ID && a.CreatedAt.Equal(b.CreatedAt) && a.TTL == b.TTL && a.Interval == b.Interval &&
		a.NextAvailable.Equal(b.NextAvailable) && a.Data == b.Data && a.UsageCount == b.UsageCount &&
		a.Failures == b.Failures && a.Retired == b.Retired
}

func TestPoolList_ReportsACorruptRecord(t *testing.T) {
	prefix := testPrefix(t)
	ctx := context.Background()
	p := newClient(t, withPrefix(prefix)).Pool("accounts")
	put(t, p, xsync.Container{ID: "good"}, xsync.Container{ID: "bad"})
	if err := rawDB(t, 0).HSet(ctx, poolKey(prefix, "accounts", "meta"), "bad", "not a record").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.List(ctx); !errors.Is(err, xsync.ErrCorrupt) {
		t.Fatalf("List over a corrupt record: %v, want ErrCorrupt", err)
	}
}

// A pool of 100k containers is listed in pages: hundreds of short script
// calls, none with a reply of more than a few hundred containers; Stats and
// Exists stay single O(log N) calls.
func TestPoolList_HundredThousandContainersInBoundedPages(t *testing.T) {
	const total = 100_000
	prefix := testPrefix(t)
	ctx := context.Background()
	c := newClient(t, withPrefix(prefix))
	p := c.Pool("big")
	batch := make([]xsync.Container, 0, 1000)
	for i := range total {
		batch = append(batch, xsync.Container{ID: fmt.Sprintf("c%06d", i), Interval: time.Minute})
		if len(batch) == cap(batch) {
			put(t, p, batch...)
			batch = batch[:0]
		}
	}
	if _, err := p.Ask(ctx, 10); err != nil {
		t.Fatal(err)
	}

	raw := rawDB(t, 0)
	before := commandCounts(t, raw)
	got, err := p.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	calls := commandsSince(t, raw, before)["evalsha"]
	if len(got) != total {
		t.Fatalf("List returned %d containers, want %d", len(got), total)
	}
	for i, ct := range got {
		if want := fmt.Sprintf("c%06d", i); ct.ID != want {
			t.Fatalf("List[%d] = %s, want %s: sorted, each once", i, ct.ID, want)
		}
	}
	// ZSCAN's COUNT is a hint: a page holds about ScanBatch containers.
	if minCalls := int64(total / (4 * actors.ScanBatch)); calls < minCalls {
		t.Fatalf("List made %d script calls for %d containers: pages of over %d, want about %d", calls, total, total/int(calls), actors.ScanBatch)
	}
	t.Logf("List of %d containers: %d script calls", total, calls)
	used := 0
	for _, ct := range got {
		if ct.UsageCount == 1 {
			used++
		}
	}
	if used != 10 {
		t.Fatalf("%d containers listed as used once, want 10", used)
	}

	before = commandCounts(t, raw)
	s := stats(t, p)
	if ok, err := p.Exists(ctx); err != nil || !ok {
		t.Fatalf("Exists = %v, %v", ok, err)
	}
	if s.Total != total || s.Ready != total-10 {
		t.Fatalf("Stats = %+v, want %d total, %d ready", s, total, total-10)
	}
	if n := commandsSince(t, raw, before); n["evalsha"] != 1 || n["exists"] != 1 {
		t.Fatalf("Stats and Exists ran %v, want one script call and one EXISTS", n)
	}
}

func TestLockInfo_ReportsDataXsyncDidNotWrite(t *testing.T) {
	prefix := testPrefix(t)
	ctx := context.Background()
	c := newClient(t, withPrefix(prefix))
	raw := rawDB(t, 0)
	if err := raw.Set(ctx, prefix+":fence:{f}", "many", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := raw.HSet(ctx, prefix+":lock:{h}", "a", "b").Err(); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"f", "h"} {
		if _, err := c.LockInfo(ctx, key); !errors.Is(err, xsync.ErrCorrupt) {
			t.Errorf("LockInfo(%s): %v, want ErrCorrupt", key, err)
		}
	}
	if _, err := c.Locks(ctx); !errors.Is(err, xsync.ErrCorrupt) {
		t.Errorf("Locks over a hash lock key: %v, want ErrCorrupt", err)
	}
}

// More locks than one SCAN page: every one is listed, once.
func TestLocks_ListsManyLocksPageByPage(t *testing.T) {
	const n = 3*actors.ScanBatch + 10
	prefix := testPrefix(t)
	ctx := context.Background()
	c := newClient(t, withPrefix(prefix))
	for i := range n {
		if _, err := c.TryLock(ctx, []string{fmt.Sprintf("k%04d", i)}, xsync.TTL(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	raw := rawDB(t, 0)
	before := commandCounts(t, raw)
	got, err := c.Locks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	scans := commandsSince(t, raw, before)["scan"]
	if len(got) != n {
		t.Fatalf("Locks listed %d locks, want %d", len(got), n)
	}
	for i, info := range got {
		if want := fmt.Sprintf("k%04d", i); info.Key != want || !info.Held {
			t.Fatalf("Locks[%d] = %+v, want %s held", i, info, want)
		}
	}
	if scans < 2 {
		t.Fatalf("%d SCAN calls for %d lock keys (and their fences): want pages", scans, n)
	}
}
