package xsync_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redisxsync/xsync"
	"github.com/redisxsync/xsync/internal/testredis"
)

// settled waits until c's lock manager has n waiters and no Redis call
// under way.
func settled(t testing.TB, c *xsync.Client, n int) {
	t.Helper()
	eventually(t, 5*time.Second, fmt.Sprintf("%d settled waiters", n), func() bool {
		w, _, busy, err := xsync.LockStats(t.Context(), c)
		if err != nil {
			t.Fatalf("LockStats: %v", err)
		}
		return w == n && busy == 0
	})
}

func lockKeysLeft(t testing.TB, prefix string, db int) []string {
	t.Helper()
	raw := testredis.Current(t).Open(t, db)
	defer raw.Close()
	return keysMatching(t, raw, prefix+":lock*")
}

// criticalSection is what the mutual-exclusion tests run under the lock:
// GET then SET of a counter (lost updates show any overlap), a check that
// nobody else is inside, and the fence recorded in the order of entry.
type criticalSection struct {
	db      redis.UniversalClient
	counter string
	inside  atomic.Int32
	mu      sync.Mutex
	fences  []int64
}

func (cs *criticalSection) run(ctx context.Context, t testing.TB, fence int64) {
	if n := cs.inside.Add(1); n != 1 {
		t.Errorf("%d holders inside the critical section", n)
	}
	cs.mu.Lock()
	cs.fences = append(cs.fences, fence)
	cs.mu.Unlock()
	v, err := cs.db.Get(ctx, cs.counter).Int()
	if err != nil && !errors.Is(err, redis.Nil) {
		t.Error(err)
	}
	if err := cs.db.Set(ctx, cs.counter, v+1, 0).Err(); err != nil {
		t.Error(err)
	}
	cs.inside.Add(-1)
}

func assertRising(t testing.TB, fences []int64) {
	t.Helper()
	for i := 1; i < len(fences); i++ {
		if fences[i] <= fences[i-1] {
			t.Fatalf("fence %d came after %d (at %d of %d): fences must only rise", fences[i], fences[i-1], i, len(fences))
		}
	}
}

func TestLock_MutualExclusionAcrossClients(t *testing.T) {
	const clients, goroutines, rounds = 3, 8, 5
	prefix := testPrefix(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cs := &criticalSection{db: rawDB(t, 0), counter: prefix + ":counter"}

	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		c := newClient(t, withPrefix(prefix))
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := 0; r < rounds; r++ {
					lease, err := c.Lock(ctx, []string{"counter"})
					if err != nil {
						t.Errorf("Lock: %v", err)
						return
					}
					cs.run(ctx, t, lease.Fence("counter"))
					if err := lease.Release(ctx); err != nil {
						t.Errorf("Release: %v", err)
					}
				}
			}()
		}
	}
	wg.Wait()
	want := clients * goroutines * rounds
	if got, _ := cs.db.Get(ctx, cs.counter).Int(); got != want {
		t.Fatalf("counter = %d, want %d: some GET-then-SET overlapped", got, want)
	}
	if len(cs.fences) != want {
		t.Fatalf("%d fences recorded, want %d", len(cs.fences), want)
	}
	assertRising(t, cs.fences)
	if left := lockKeysLeft(t, prefix, 0); len(left) != 0 {
		t.Fatalf("lock keys left behind: %v", left)
	}
}

// The same exclusion between real OS processes: the test binary runs
// itself as children that execute TestLock_ChildProcess.
const (
	childEnv       = "XSYNC_LOCK_CHILD_PREFIX"
	childRounds    = 6
	childWorkers   = 4
	childProcesses = 3
)

func TestLock_MutualExclusionAcrossProcesses(t *testing.T) {
	prefix := testPrefix(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	outs := make([][]byte, childProcesses)
	errs := make([]error, childProcesses)
	for i := 0; i < childProcesses; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.CommandContext(ctx, exe, "-test.run=^TestLock_ChildProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), childEnv+"="+prefix)
			outs[i], errs[i] = cmd.CombinedOutput()
		}()
	}
	wg.Wait()
	for i := range errs {
		if errs[i] != nil {
			t.Fatalf("child %d: %v\n%s", i, errs[i], outs[i])
		}
		if !strings.Contains(string(outs[i]), "PASS") {
			t.Fatalf("child %d did not run the helper:\n%s", i, outs[i])
		}
	}
	raw := rawDB(t, 0)
	want := childProcesses * childWorkers * childRounds
	if got, _ := raw.Get(ctx, prefix+":counter").Int(); got != want {
		t.Fatalf("counter = %d, want %d: critical sections of two processes overlapped", got, want)
	}
	fences, err := raw.LRange(ctx, prefix+":fences", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(fences) != want {
		t.Fatalf("%d fences recorded, want %d", len(fences), want)
	}
	ints := make([]int64, len(fences))
	for i, f := range fences {
		ints[i], _ = strconv.ParseInt(f, 10, 64)
	}
	assertRising(t, ints)
}

// TestLock_ChildProcess is the body of the children of
// TestLock_MutualExclusionAcrossProcesses; run on its own, it skips.
func TestLock_ChildProcess(t *testing.T) {
	prefix := os.Getenv(childEnv)
	if prefix == "" {
		t.Skip("runs only as a child of TestLock_MutualExclusionAcrossProcesses")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	c := newClient(t, withPrefix(prefix))
	db, err := c.DB(0)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < childWorkers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < childRounds; r++ {
				lease, err := c.Lock(ctx, []string{"counter"})
				if err != nil {
					t.Errorf("Lock: %v", err)
					return
				}
				// Under the lock: GET then SET, and the fence appended in
				// the order of the critical sections.
				v, err := db.Get(ctx, prefix+":counter").Int()
				if err != nil && !errors.Is(err, redis.Nil) {
					t.Error(err)
				}
				if err := db.Set(ctx, prefix+":counter", v+1, 0).Err(); err != nil {
					t.Error(err)
				}
				if err := db.RPush(ctx, prefix+":fences", lease.Fence("counter")).Err(); err != nil {
					t.Error(err)
				}
				if err := lease.Release(ctx); err != nil {
					t.Errorf("Release: %v", err)
				}
			}
		}()
	}
	wg.Wait()
}

func TestTryLock_TakesFreeKeysAndRefusesHeldOnes(t *testing.T) {
	prefix := testPrefix(t)
	ctx := t.Context()
	a, b := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))

	first, err := a.TryLock(ctx, []string{"orders"})
	if err != nil {
		t.Fatalf("TryLock of a free key: %v", err)
	}
	if got := first.Keys(); len(got) != 1 || got[0] != "orders" {
		t.Fatalf("Keys = %v", got)
	}
	if owner, _ := rawDB(t, 0).Get(ctx, prefix+":lock:{orders}").Result(); owner != first.Token() || owner == "" {
		t.Fatalf("Redis holds owner %q, lease token %q", owner, first.Token())
	}
	if _, err := b.TryLock(ctx, []string{"orders"}); !errors.Is(err, xsync.ErrNotObtained) {
		t.Fatalf("TryLock of a held key from another client: err = %v, want ErrNotObtained", err)
	}
	if _, err := a.TryLock(ctx, []string{"{orders}"}); !errors.Is(err, xsync.ErrNotObtained) {
		t.Fatalf("TryLock of {orders} while orders is held: err = %v, want ErrNotObtained (same lock)", err)
	}
	if err := first.Release(ctx); err != nil {
		t.Fatal(err)
	}
	second, err := b.TryLock(ctx, []string{"orders"})
	if err != nil {
		t.Fatalf("TryLock after the release: %v", err)
	}
	if second.Fence("orders") <= first.Fence("orders") {
		t.Fatalf("fences %d then %d: must rise", first.Fence("orders"), second.Fence("orders"))
	}
	if second.Token() == first.Token() {
		t.Fatal("two acquisitions share a token")
	}
	if second.Fence("other") != 0 {
		t.Fatal("Fence of a key not in the lease is not 0")
	}
	if err := second.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := second.Release(ctx); !errors.Is(err, xsync.ErrLockNotHeld) {
		t.Fatalf("second Release: err = %v, want ErrLockNotHeld", err)
	}
}

// A client that died in its turn (it queued for a key, then vanished
// without leaving the queue) keeps the free key from a TryLock for the
// turn grace (100ms), not for the ten minutes the queue lives.
func TestTryLock_GetsAKeyWhoseTurnWentToADeadClient(t *testing.T) {
	for _, freed := range []string{"released", "expired"} {
		t.Run(freed, func(t *testing.T) {
			prefix := testPrefix(t)
			ctx := t.Context()
			a, b := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))
			raw := rawDB(t, 0)
			queue := prefix + ":lockq:{k}"
			ttl := time.Minute // released long before
			if freed == "expired" {
				ttl = 100 * time.Millisecond
			}
			holder, err := a.Lock(ctx, []string{"k"}, xsync.TTL(ttl))
			if err != nil {
				t.Fatal(err)
			}
			if err := raw.ZAdd(ctx, queue, redis.Z{Score: 1, Member: "dead-client"}).Err(); err != nil {
				t.Fatal(err)
			}
			if freed == "released" {
				if err := holder.Release(ctx); err != nil {
					t.Fatal(err)
				}
				// The release handed the turn to the queued client.
				if head, _ := raw.ZRangeWithScores(ctx, queue, 0, 0).Result(); len(head) != 1 || head[0].Member != "dead-client" || head[0].Score >= 0 {
					t.Fatalf("queue head after the release: %v, want dead-client with its turn begun", head)
				}
			} else {
				<-holder.Lost()
			}
			var lease *xsync.Lease
			eventually(t, 5*time.Second, "a TryLock gets the key once the dead client's turn is over", func() bool {
				l, err := b.TryLock(ctx, []string{"k"})
				if err != nil && !errors.Is(err, xsync.ErrNotObtained) {
					t.Fatalf("TryLock: %v", err)
				}
				lease = l
				return err == nil
			})
			if err := raw.ZScore(ctx, queue, "dead-client").Err(); !errors.Is(err, redis.Nil) {
				t.Fatalf("the dead client is still queued: %v", err)
			}
			if err := lease.Release(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLock_FenceNeverGoesBackAfterExpiry(t *testing.T) {
	c := newClient(t)
	ctx := t.Context()
	var last int64
	for i := 0; i < 3; i++ {
		lease, err := c.Lock(ctx, []string{"job"}, xsync.TTL(20*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if lease.Fence("job") <= last {
			t.Fatalf("fence %d after %d", lease.Fence("job"), last)
		}
		last = lease.Fence("job")
		// Not released: the next Lock waits for the expiry.
	}
}

// On Cluster, "a", "b" and "c" fall in three slots (15495, 3300, 7365):
// the lock is taken slot by slot, and is all-or-nothing all the same.
func TestLock_MultiKeyIsAllOrNothing(t *testing.T) {
	prefix := testPrefix(t)
	ctx := t.Context()
	a, b := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))
	raw := rawDB(t, 0)

	holder, err := a.Lock(ctx, []string{"b"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.TryLock(ctx, []string{"a", "b", "c"}); !errors.Is(err, xsync.ErrNotObtained) {
		t.Fatalf("TryLock a,b,c with b held: err = %v, want ErrNotObtained", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = b.Lock(wctx, []string{"a", "b", "c"})
	cancel()
	if !errors.Is(err, xsync.ErrNotObtained) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock a,b,c until a deadline: err = %v, want ErrNotObtained and DeadlineExceeded", err)
	}
	// The failed attempts left nothing: no lock, no fence bumped on a or c.
	for _, k := range []string{"a", "c"} {
		if n, _ := raw.Exists(ctx, prefix+":lock:{"+k+"}", prefix+":fence:{"+k+"}").Result(); n != 0 {
			t.Fatalf("a failed attempt left keys of %q behind", k)
		}
	}
	settled(t, b, 0)

	waiting := b.LockAsync(ctx, []string{"a", "b", "c"})
	settled(t, b, 1)
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	lease, err := waiting.Wait(ctx)
	if err != nil {
		t.Fatalf("Lock a,b,c after b's release: %v", err)
	}
	if lease.Fence("a") != 1 || lease.Fence("b") != 2 || lease.Fence("c") != 1 {
		t.Fatalf("fences a,b,c = %d,%d,%d; want 1,2,1", lease.Fence("a"), lease.Fence("b"), lease.Fence("c"))
	}
	for _, k := range []string{"a", "b", "c"} { // one by one: on Cluster, each in its own slot
		if v, err := raw.Get(ctx, prefix+":lock:{"+k+"}").Result(); err != nil || v != lease.Token() {
			t.Fatalf("lock key of %q = %q, %v while the lease holds it; want its token", k, v, err)
		}
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if left := lockKeysLeft(t, prefix, 0); len(left) != 0 {
		t.Fatalf("lock keys left after the release: %v", left)
	}
}

// On Cluster, each key is in a slot of its own, so that every set is taken
// slot by slot.
func TestLock_OverlappingKeySetsDoNotDeadlock(t *testing.T) {
	prefix := testPrefix(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	sets := [][]string{{"a", "b"}, {"b", "c"}, {"c", "a"}}
	inside := map[string]*atomic.Int32{"a": {}, "b": {}, "c": {}}
	var done atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		c := newClient(t, withPrefix(prefix))
		for g := 0; g < 6; g++ {
			keys := sets[(i+g)%3]
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := 0; r < 5; r++ {
					err := c.WithLock(ctx, keys, func(context.Context) error {
						for _, k := range keys {
							if n := inside[k].Add(1); n != 1 {
								t.Errorf("%d holders of %q", n, k)
							}
						}
						for _, k := range keys {
							inside[k].Add(-1)
						}
						return nil
					})
					if err != nil {
						t.Errorf("WithLock %v: %v", keys, err)
						return
					}
					done.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	if done.Load() != 3*6*5 {
		t.Fatalf("%d of %d critical sections ran", done.Load(), 3*6*5)
	}
}

func TestLock_WaiterWakesOnRelease(t *testing.T) {
	prefix := testPrefix(t)
	ctx := t.Context()
	a, b := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))
	// The holder's lease would last a minute: only the published release
	// can wake the waiter within the 10s it is given.
	holder, err := a.Lock(ctx, []string{"report"}, xsync.TTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	waiting := b.LockAsync(wctx, []string{"report"})
	settled(t, b, 1)
	select {
	case <-waiting.Done():
		t.Fatal("the waiter got the lock while it was held")
	default:
	}
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	lease, err := waiting.Wait(wctx)
	if err != nil {
		t.Fatalf("waiter after the release: %v", err)
	}
	if lease.Fence("report") != holder.Fence("report")+1 {
		t.Fatalf("fence %d after %d", lease.Fence("report"), holder.Fence("report"))
	}
	_ = lease.Release(ctx)
}

func TestLock_WaiterWakesAtBlockerExpiry(t *testing.T) {
	prefix := testPrefix(t)
	ctx := t.Context()
	c := newClient(t, withPrefix(prefix))
	raw := rawDB(t, 0)
	// A holder that died without releasing: its key just expires, and
	// nothing is published.
	const ttl = 300 * time.Millisecond
	if err := raw.Set(ctx, prefix+":lock:{report}", "dead-owner", ttl).Err(); err != nil {
		t.Fatal(err)
	}
	before := commandCounts(t, raw)
	start := time.Now()
	lease, err := c.Lock(ctx, []string{"report"})
	if err != nil {
		t.Fatal(err)
	}
	waited := time.Since(start)
	after := commandCounts(t, raw)
	if waited < ttl-50*time.Millisecond {
		t.Fatalf("got the lock after %v, before the dead holder's key expired (%v)", waited, ttl)
	}
	// One attempt that finds the key taken, one at its expiry: no polling.
	if n := after["evalsha"] + after["eval"] - before["evalsha"] - before["eval"]; n > 2 {
		t.Fatalf("%d script calls to get a lock that was free after one expiry, want 2", n)
	}
	_ = lease.Release(ctx)
}

func TestLock_WaitersCostNoRedisCommands(t *testing.T) {
	prefix := testPrefix(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	a, b := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))
	holder, err := a.Lock(ctx, []string{"busy"}, xsync.TTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var waiting []*xsync.Future[*xsync.Lease]
	for i := 0; i < 20; i++ {
		waiting = append(waiting, a.LockAsync(ctx, []string{"busy"}), b.LockAsync(ctx, []string{"busy"}))
	}
	settled(t, a, 20)
	settled(t, b, 20)

	// While nothing changes, the 40 waiters send nothing: the only
	// commands are the test's own INFO calls, the pub/sub health-check
	// PINGs of go-redis, and the other noise of the deployment.
	raw := rawDB(t, 0)
	counts0 := commandCounts(t, raw)
	// An observation window: what is checked is that nothing happens in it.
	<-time.After(500 * time.Millisecond)
	for _, f := range waiting {
		select {
		case <-f.Done():
			t.Fatal("a waiter completed while the lock was held")
		default:
		}
	}
	if diff := commandsSince(t, raw, counts0); len(diff) != 0 {
		t.Fatalf("40 waiters sent Redis commands in 500ms while nothing changed: %v; want none", diff)
	}

	// Then each gets the lock in turn.
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, f := range waiting {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lease, err := f.Wait(ctx)
			if err != nil {
				t.Errorf("waiter: %v", err)
				return
			}
			if err := lease.Release(ctx); err != nil {
				t.Errorf("Release: %v", err)
			}
		}()
	}
	wg.Wait()
}

func TestLease_AutoRenewKeepsItPastSeveralTTLs(t *testing.T) {
	prefix := testPrefix(t)
	ctx := t.Context()
	a, b := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))
	const ttl = 150 * time.Millisecond
	lease, err := a.Lock(ctx, []string{"long-job"}, xsync.TTL(ttl), xsync.AutoRenew(true))
	if err != nil {
		t.Fatal(err)
	}
	// An observation window of four TTLs: the lease must not be lost in it.
	select {
	case <-lease.Lost():
		t.Fatal("an auto-renewed lease was lost")
	case <-time.After(4 * ttl):
	}
	if owner, _ := rawDB(t, 0).Get(ctx, prefix+":lock:{long-job}").Result(); owner != lease.Token() {
		t.Fatalf("after 4 TTLs the key holds %q, want the lease's token", owner)
	}
	if _, err := b.TryLock(ctx, []string{"long-job"}); !errors.Is(err, xsync.ErrNotObtained) {
		t.Fatalf("TryLock from another client: err = %v, want ErrNotObtained", err)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatalf("Release after 4 TTLs: %v", err)
	}
}

func TestLease_WithoutRenewalExpires(t *testing.T) {
	prefix := testPrefix(t)
	ctx := t.Context()
	a, b := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))
	lease, err := a.Lock(ctx, []string{"short"}, xsync.TTL(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-lease.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("a lease with TTL and no renewal was not lost when it ran out")
	}
	next, err := b.Lock(ctx, []string{"short"})
	if err != nil {
		t.Fatal(err)
	}
	if err := lease.Release(ctx); !errors.Is(err, xsync.ErrLockNotHeld) {
		t.Fatalf("Release of the expired lease: err = %v, want ErrLockNotHeld", err)
	}
	if owner, _ := rawDB(t, 0).Get(ctx, prefix+":lock:{short}").Result(); owner != next.Token() {
		t.Fatal("releasing the expired lease touched the new owner's key")
	}
	_ = next.Release(ctx)
}

func TestLease_LostWhenKeyIsDeletedBehindItsBack(t *testing.T) {
	prefix := testPrefix(t)
	ctx := t.Context()
	c := newClient(t, withPrefix(prefix))
	lease, err := c.Lock(ctx, []string{"k1", "k2"}, xsync.TTL(300*time.Millisecond), xsync.AutoRenew(true))
	if err != nil {
		t.Fatal(err)
	}
	raw := rawDB(t, 0)
	if err := raw.Del(ctx, prefix+":lock:{k1}").Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lease.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("Lost did not fire after the key was deleted")
	}
	// The key the lease still held is given back at once.
	eventually(t, 5*time.Second, "k2 released", func() bool {
		n, _ := raw.Exists(ctx, prefix+":lock:{k2}").Result()
		return n == 0
	})
	if err := lease.Release(ctx); !errors.Is(err, xsync.ErrLockNotHeld) {
		t.Fatalf("Release after the loss: err = %v, want ErrLockNotHeld", err)
	}
}

// pauseWrites makes the test server hold every script for up to 10s
// (CLIENT PAUSE WRITE), while it still answers TIME and reads. It returns
// the server's time then, and the function that ends the pause (the test's
// end does too).
func pauseWrites(t *testing.T) (pausedAt time.Time, unpause func()) {
	t.Helper()
	raw := rawDB(t, 0)
	pausedAt = serverNow(t)
	if err := raw.Do(t.Context(), "CLIENT", "PAUSE", "10000", "WRITE").Err(); err != nil {
		t.Fatalf("CLIENT PAUSE: %v", err)
	}
	unpause = func() { // also a cleanup: t.Context() is done by then
		if err := raw.Do(context.Background(), "CLIENT", "UNPAUSE").Err(); err != nil {
			t.Errorf("CLIENT UNPAUSE: %v", err)
		}
	}
	t.Cleanup(unpause)
	return pausedAt, unpause
}

// While Redis does not answer, a renewed lease cannot be known to be held:
// it is lost when its TTL runs out, not when Redis answers again.
func TestLease_LostWhenRedisIsUnreachablePastTheTTL(t *testing.T) {
	prefix := testPrefix(t)
	ctx := t.Context()
	c := newClient(t, withPrefix(prefix))
	lease, err := c.Lock(ctx, []string{"job"}, xsync.TTL(200*time.Millisecond), xsync.AutoRenew(true))
	if err != nil {
		t.Fatal(err)
	}
	// Redis holds the renewals for up to 10s, fifty TTLs.
	pausedAt, unpause := pauseWrites(t)
	<-lease.Lost()
	// Lost closes when the TTL runs out without a confirmed renewal: by the
	// server's clock, well within five TTLs, not when a read times out
	// (go-redis's default: 3s), nor when Redis answers again (10s).
	if lostAt := serverNow(t); lostAt.Sub(pausedAt) > 5*200*time.Millisecond {
		t.Fatalf("lease declared lost %v after Redis stopped answering, its TTL is 200ms", lostAt.Sub(pausedAt))
	}
	unpause()
	if err := lease.Release(ctx); !errors.Is(err, xsync.ErrLockNotHeld) {
		t.Fatalf("Release after the loss: err = %v, want ErrLockNotHeld", err)
	}
	// The renewal that was held may have run after all: the key it may
	// have kept is released, not left locked for a TTL.
	eventually(t, 5*time.Second, "the key freed", func() bool { return len(lockKeysLeft(t, prefix, 0)) == 0 })
}

// A Refresh that Redis does not answer before the lease's expiry reports
// the lease lost then, rather than waiting for Redis.
func TestLease_RefreshUnansweredByTheExpiryLosesTheLease(t *testing.T) {
	prefix := testPrefix(t)
	ctx := t.Context()
	c := newClient(t, withPrefix(prefix))
	lease, err := c.Lock(ctx, []string{"job"}, xsync.TTL(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	pausedAt, unpause := pauseWrites(t)
	if err := lease.Refresh(ctx, time.Minute); !errors.Is(err, xsync.ErrLockNotHeld) {
		t.Fatalf("Refresh while Redis does not answer: %v, want ErrLockNotHeld", err)
	}
	if took := serverNow(t).Sub(pausedAt); took > 5*200*time.Millisecond {
		t.Fatalf("Refresh returned %v after Redis stopped answering, the lease's TTL is 200ms", took)
	}
	select {
	case <-lease.Lost():
	default:
		t.Fatal("Lost not closed")
	}
	unpause()
	// Whether the held Refresh ran or not, the key is released.
	eventually(t, 5*time.Second, "the key freed", func() bool { return len(lockKeysLeft(t, prefix, 0)) == 0 })
}

func TestWithLock_CancelsFnWhenTheLeaseIsLost(t *testing.T) {
	prefix := testPrefix(t)
	ctx := t.Context()
	c := newClient(t, withPrefix(prefix))
	raw := rawDB(t, 0)
	var cause error
	err := c.WithLock(ctx, []string{"guarded"}, func(ctx context.Context) error {
		if err := raw.Del(t.Context(), prefix+":lock:{guarded}").Err(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			cause = context.Cause(ctx)
			return ctx.Err()
		case <-time.After(10 * time.Second):
			return errors.New("fn's context was not cancelled")
		}
	}, xsync.TTL(150*time.Millisecond), xsync.AutoRenew(true))
	if !errors.Is(cause, xsync.ErrLockNotHeld) {
		t.Fatalf("fn's context cause = %v, want ErrLockNotHeld", cause)
	}
	if !errors.Is(err, xsync.ErrLockNotHeld) || !errors.Is(err, context.Canceled) {
		t.Fatalf("WithLock: err = %v, want fn's context.Canceled joined with ErrLockNotHeld", err)
	}
}

func TestWithLock_ReleasesWhenFnReturns(t *testing.T) {
	prefix := testPrefix(t)
	ctx := t.Context()
	c := newClient(t, withPrefix(prefix))
	boom := errors.New("boom")
	var held bool
	err := c.WithLock(ctx, []string{"w"}, func(context.Context) error {
		n, _ := rawDB(t, 0).Exists(ctx, prefix+":lock:{w}").Result()
		held = n == 1
		return boom
	})
	if !held {
		t.Fatal("the key was not held while fn ran")
	}
	if !errors.Is(err, boom) {
		t.Fatalf("WithLock: err = %v, want fn's error", err)
	}
	if left := lockKeysLeft(t, prefix, 0); len(left) != 0 {
		t.Fatalf("keys left after WithLock: %v", left)
	}
}

func TestWithLock_ReleasesWhenFnPanics(t *testing.T) {
	prefix := testPrefix(t)
	ctx := t.Context()
	c := newClient(t, withPrefix(prefix))
	recovered := func() (r any) {
		defer func() { r = recover() }()
		_ = c.WithLock(ctx, []string{"p"}, func(context.Context) error { panic("boom") })
		return nil
	}()
	if recovered != "boom" {
		t.Fatalf("recovered %v, want fn's panic to go on up", recovered)
	}
	if left := lockKeysLeft(t, prefix, 0); len(left) != 0 {
		t.Fatalf("keys left after a panicking fn: %v", left)
	}
	// The key is free at once for anyone else, not after the TTL.
	lease, err := c.TryLock(ctx, []string{"p"})
	if err != nil {
		t.Fatalf("TryLock after the panic: %v", err)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestLease_Refresh(t *testing.T) {
	prefix := testPrefix(t)
	ctx := t.Context()
	c := newClient(t, withPrefix(prefix))
	raw := rawDB(t, 0)
	lease, err := c.Lock(ctx, []string{"r"}, xsync.TTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := lease.Refresh(ctx, time.Minute); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if pttl, _ := raw.PTTL(ctx, prefix+":lock:{r}").Result(); pttl < 50*time.Second {
		t.Fatalf("PTTL after Refresh(1m) = %v", pttl)
	}
	if err := lease.Refresh(ctx, 0); !errors.Is(err, xsync.ErrInvalidTTL) {
		t.Fatalf("Refresh(0): err = %v, want ErrInvalidTTL", err)
	}
	// Taken over behind its back: Refresh says so and the lease is lost.
	if err := raw.Set(ctx, prefix+":lock:{r}", "somebody-else", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := lease.Refresh(ctx, time.Minute); !errors.Is(err, xsync.ErrLockNotHeld) {
		t.Fatalf("Refresh of a taken-over lease: err = %v, want ErrLockNotHeld", err)
	}
	select {
	case <-lease.Lost():
	default:
		t.Fatal("Lost not closed after Refresh found the lease taken over")
	}
	if owner, _ := raw.Get(ctx, prefix+":lock:{r}").Result(); owner != "somebody-else" {
		t.Fatal("the lost lease touched the new owner's key")
	}
}

// Refresh changes the TTL of a lease that renews itself: the TTL it sets is
// the key's when it returns, and the renewals after it renew for that TTL.
// (The lock manager never has a Refresh and a renewal of one lease under
// way at once, so that a renewal sent before a Refresh cannot run after it.)
func TestLease_RefreshAmidRenewalsSetsItsTTL(t *testing.T) {
	prefix := testPrefix(t)
	ctx := t.Context()
	c := newClient(t, withPrefix(prefix))
	raw := rawDB(t, 0)
	lease, err := c.Lock(ctx, []string{"r"}, xsync.TTL(60*time.Millisecond), xsync.AutoRenew(true))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := lease.Refresh(ctx, time.Minute); err != nil {
			t.Fatalf("round %d: Refresh(1m): %v", i, err)
		}
		if pttl, _ := raw.PTTL(ctx, prefix+":lock:{r}").Result(); pttl < 50*time.Second {
			t.Fatalf("round %d: PTTL after Refresh(1m) = %v", i, pttl)
		}
		// Back to renewals every 20ms.
		if err := lease.Refresh(ctx, 60*time.Millisecond); err != nil {
			t.Fatalf("round %d: Refresh(60ms): %v", i, err)
		}
	}
	select {
	case <-lease.Lost():
		t.Fatal("the lease was lost")
	default:
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestLease_ReleaseWorksWithACancelledContext(t *testing.T) {
	prefix := testPrefix(t)
	c := newClient(t, withPrefix(prefix))
	ctx, cancel := context.WithCancel(t.Context())
	lease, err := c.Lock(ctx, []string{"x"})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := lease.Release(ctx); err != nil {
		t.Fatalf("Release with a cancelled context: %v", err)
	}
	if left := lockKeysLeft(t, prefix, 0); len(left) != 0 {
		t.Fatalf("keys left: %v", left)
	}
}

func TestLock_CancelWhileWaitingLeaksNothing(t *testing.T) {
	prefix := testPrefix(t)
	ctx := t.Context()
	a, err := xsync.New(withOptions(testOptions(t), withPrefix(prefix)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := xsync.New(withOptions(testOptions(t), withPrefix(prefix)))
	if err != nil {
		t.Fatal(err)
	}
	holder, err := a.Lock(ctx, []string{"c"}, xsync.TTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	// Half are cancelled through the future, half through their context.
	var futures []*xsync.Future[*xsync.Lease]
	var cancels []context.CancelFunc
	for i := 0; i < 10; i++ {
		wctx, cancel := context.WithCancel(ctx)
		cancels = append(cancels, cancel)
		futures = append(futures, b.LockAsync(wctx, []string{"c"}))
	}
	settled(t, b, 10)
	for i, f := range futures {
		if i%2 == 0 {
			f.Cancel()
		} else {
			cancels[i]()
		}
	}
	for i, f := range futures {
		_, err := f.Wait(ctx)
		if !errors.Is(err, xsync.ErrNotObtained) || !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled waiter %d: err = %v, want ErrNotObtained and context.Canceled", i, err)
		}
	}
	settled(t, b, 0)

	// A grant racing the cancel: cancelled the moment the lock is freed.
	for i := 0; i < 10; i++ {
		f := b.LockAsync(ctx, []string{"c"})
		settled(t, b, 1)
		go func() { _ = holder.Release(ctx) }()
		f.Cancel()
		if _, err := f.Wait(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("race %d: err = %v, want context.Canceled", i, err)
		}
		eventually(t, 5*time.Second, "the raced lease released", func() bool {
			_, leases, busy, err := xsync.LockStats(ctx, b)
			if err != nil {
				t.Fatal(err)
			}
			return leases == 0 && busy == 0 && len(lockKeysLeft(t, prefix, 0)) == 0
		})
		if holder, err = a.Lock(ctx, []string{"c"}, xsync.TTL(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if left := lockKeysLeft(t, prefix, 0); len(left) != 0 {
		t.Fatalf("lock keys left: %v", left)
	}
	for _, c := range []*xsync.Client{a, b} {
		if err := c.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	goleak.VerifyNone(t)
}

func TestLock_BadInput(t *testing.T) {
	prefix := testPrefix(t)
	ctx := t.Context()
	c := newClient(t, withPrefix(prefix))
	cases := []struct {
		name string
		keys []string
		opts []xsync.LockOption
		want error
	}{
		{"no key", nil, nil, xsync.ErrInvalidKey},
		{"empty list", []string{}, nil, xsync.ErrInvalidKey},
		{"empty key", []string{"a", ""}, nil, xsync.ErrInvalidKey},
		{"duplicate key", []string{"a", "b", "a"}, nil, xsync.ErrInvalidKey},
		{"same key with its tag", []string{"a", "{a}"}, nil, xsync.ErrInvalidKey},
		{"zero ttl", []string{"a"}, []xsync.LockOption{xsync.TTL(0)}, xsync.ErrInvalidTTL},
		{"negative ttl", []string{"a"}, []xsync.LockOption{xsync.TTL(-time.Second)}, xsync.ErrInvalidTTL},
		{"ttl under 1ms", []string{"a"}, []xsync.LockOption{xsync.TTL(999 * time.Microsecond)}, xsync.ErrInvalidTTL},
		{"negative db", []string{"a"}, []xsync.LockOption{xsync.OnDB(-1)}, xsync.ErrInvalidOptions},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.Lock(ctx, tc.keys, tc.opts...); !errors.Is(err, tc.want) {
				t.Errorf("Lock: err = %v, want %v", err, tc.want)
			}
			if _, err := c.TryLock(ctx, tc.keys, tc.opts...); !errors.Is(err, tc.want) {
				t.Errorf("TryLock: err = %v, want %v", err, tc.want)
			}
			if _, err := c.LockAsync(ctx, tc.keys, tc.opts...).Wait(ctx); !errors.Is(err, tc.want) {
				t.Errorf("LockAsync: err = %v, want %v", err, tc.want)
			}
			called := false
			if err := c.WithLock(ctx, tc.keys, func(context.Context) error { called = true; return nil }, tc.opts...); !errors.Is(err, tc.want) || called {
				t.Errorf("WithLock: err = %v, fn called %v; want %v and no call", err, called, tc.want)
			}
		})
	}
	if n, _ := rawDB(t, 0).Keys(ctx, prefix+":*").Result(); len(n) != 0 {
		t.Fatalf("bad input wrote keys: %v", n)
	}
}

func TestLock_OnDBLocksThere(t *testing.T) {
	prefix := testPrefix(t)
	ctx := t.Context()
	c := newClient(t, withPrefix(prefix))
	on5, err := c.Lock(ctx, []string{"shared"}, xsync.OnDB(5))
	if err != nil {
		t.Fatal(err)
	}
	// The same key on another DB is another lock.
	on0, err := c.TryLock(ctx, []string{"shared"})
	if err != nil {
		t.Fatalf("TryLock on DB 0 while DB 5 holds the key: %v", err)
	}
	if len(lockKeysLeft(t, prefix, 5)) != 1 || len(lockKeysLeft(t, prefix, 0)) != 1 {
		t.Fatal("want one lock key on DB 5 and one on DB 0")
	}
	// Waiters on DB 5 are woken by DB 5's releases.
	waiting := c.LockAsync(ctx, []string{"shared"}, xsync.OnDB(5))
	settled(t, c, 1)
	if err := on5.Release(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := waiting.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = again.Release(ctx)
	_ = on0.Release(ctx)
}

func TestLock_RetriesEveryWaiterAfterAPubSubReconnect(t *testing.T) {
	prefix := testPrefix(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	a, b := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))
	holder, err := a.Lock(ctx, []string{"p"}, xsync.TTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	waiting := b.LockAsync(ctx, []string{"p"})
	settled(t, b, 1)
	// Cut every pub/sub connection, then release at once: the published
	// release may be lost, the reconnection must make up for it (the
	// holder's lease would last a minute).
	killPubSub(t, rawDB(t, 0))
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	lease, err := waiting.Wait(ctx)
	if err != nil {
		t.Fatalf("waiter after a pub/sub reconnect: %v", err)
	}
	_ = lease.Release(ctx)
}

// closeRound is a client that the test closes itself (c) and another of
// the same locks (other, closed at the end of the test) that holds
// "theirs" for a minute (blocker).
type closeRound struct {
	prefix   string
	c, other *xsync.Client
	blocker  *xsync.Lease
}

func newCloseRound(t *testing.T) *closeRound {
	t.Helper()
	r := &closeRound{prefix: testPrefix(t)}
	r.other = newClient(t, withPrefix(r.prefix))
	var err error
	if r.c, err = xsync.New(withOptions(testOptions(t), withPrefix(r.prefix))); err != nil {
		t.Fatal(err)
	}
	if r.blocker, err = r.other.Lock(t.Context(), []string{"theirs"}, xsync.TTL(time.Minute)); err != nil {
		t.Fatal(err)
	}
	return r
}

// Close with a context that is done already stops the actors at once,
// without their Shutdown: a Lock still waiting fails with ErrClosed all
// the same, and Close leaves no goroutine behind (goleak).
func TestClient_CloseWithADoneContextStillFailsWaiters(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	r := newCloseRound(t)
	defer func() { _ = r.blocker.Release(ctx) }()
	waiting := r.c.LockAsync(ctx, []string{"theirs"})
	settled(t, r.c, 1)
	done, stop := context.WithCancel(ctx)
	stop()
	_ = r.c.Close(done) // its error is the context's
	if _, err := waiting.Wait(ctx); !errors.Is(err, xsync.ErrClosed) {
		t.Fatalf("waiter after Close with a done context: err = %v, want ErrClosed", err)
	}
}

func TestClient_CloseFailsWaitersAndReleasesLeases(t *testing.T) {
	ctx := t.Context()
	r := newCloseRound(t)
	prefix, c, blocker := r.prefix, r.c, r.blocker
	mine, err := c.Lock(ctx, []string{"mine"})
	if err != nil {
		t.Fatal(err)
	}
	waiting := c.LockAsync(ctx, []string{"theirs"})
	settled(t, c, 1)

	if err := c.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := waiting.Wait(ctx); !errors.Is(err, xsync.ErrClosed) {
		t.Fatalf("waiter after Close: err = %v, want ErrClosed", err)
	}
	select {
	case <-mine.Lost():
	default:
		t.Fatal("Lost not closed for a lease that Close released")
	}
	if n, _ := rawDB(t, 0).Exists(ctx, prefix+":lock:{mine}").Result(); n != 0 {
		t.Fatal("Close left the client's lease in Redis")
	}
	if err := mine.Release(ctx); !errors.Is(err, xsync.ErrClosed) {
		t.Fatalf("Release after Close: err = %v, want ErrClosed", err)
	}
	if _, err := c.Lock(ctx, []string{"mine"}); !errors.Is(err, xsync.ErrClosed) {
		t.Fatalf("Lock after Close: err = %v, want ErrClosed", err)
	}
	// The other client's lease is untouched.
	if err := blocker.Release(ctx); err != nil {
		t.Fatalf("the other client's Release: %v", err)
	}
}

func TestLock_ClientsTakeTurns(t *testing.T) {
	prefix := testPrefix(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	a, b := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))
	holder, err := a.Lock(ctx, []string{"t"}, xsync.TTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	// b asks first, then a second waiter of a: when a releases, the turn is
	// b's, although a's own waiter is nearer.
	fromB := b.LockAsync(ctx, []string{"t"})
	settled(t, b, 1)
	fromA := a.LockAsync(ctx, []string{"t"})
	settled(t, a, 1)
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	leaseB, err := fromB.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-fromA.Done():
		t.Fatal("a's second waiter got the lock too")
	default:
	}
	if err := leaseB.Release(ctx); err != nil {
		t.Fatal(err)
	}
	leaseA, err := fromA.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if leaseA.Fence("t") != leaseB.Fence("t")+1 {
		t.Fatalf("fences b=%d then a=%d", leaseB.Fence("t"), leaseA.Fence("t"))
	}
	_ = leaseA.Release(ctx)
	if left := lockKeysLeft(t, prefix, 0); len(left) != 0 {
		t.Fatalf("lock or turn-queue keys left: %v", left)
	}
}
