package xsync_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync"
)

// semSettled waits until the actor behind s has waiters pending requests,
// and no Redis call under way.
func semSettled(t testing.TB, s *xsync.Semaphore, waiters int) {
	t.Helper()
	eventually(t, 5*time.Second, fmt.Sprintf("%d semaphore waiters settled", waiters), func() bool {
		w, _, busy, err := xsync.SemaphoreStats(context.Background(), s)
		return err == nil && w == waiters && busy == 0
	})
}

func available(t testing.TB, s *xsync.Semaphore) int {
	t.Helper()
	n, err := s.Available(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func isDone[T any](f *xsync.Future[T]) bool {
	select {
	case <-f.Done():
		return true
	default:
		return false
	}
}

// 16 goroutines of two clients take 1 to 3 of 4 permits at a time: never
// more than 4 are held at once, and every request is served.
func TestSemaphore_NeverMorePermitsHeldThanItHas(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prefix := testPrefix(t)
	const permits = 4
	var held, most atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		c := newClient(t, withPrefix(prefix))
		s := c.Semaphore("jobs", permits)
		db, err := c.DB(0)
		if err != nil {
			t.Fatal(err)
		}
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := range 10 {
					n := 1 + (g+r)%3
					lease, err := s.Acquire(ctx, n)
					if err != nil {
						t.Errorf("Acquire(%d): %v", n, err)
						return
					}
					now := held.Add(int64(n))
					for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
					}
					db.Incr(ctx, prefix+":work") // the work under the permits
					held.Add(-int64(n))
					if err := lease.Release(ctx); err != nil {
						t.Errorf("Release: %v", err)
					}
				}
			}()
		}
	}
	wg.Wait()
	if m := most.Load(); m > permits || m == 0 {
		t.Fatalf("%d permits held at once, of %d", m, permits)
	}
	if got, _ := rawDB(t, 0).Get(ctx, prefix+":work").Int(); got != 160 {
		t.Fatalf("%d acquisitions did their work, want 160", got)
	}
	if n := available(t, newClient(t, withPrefix(prefix)).Semaphore("jobs", permits)); n != permits {
		t.Fatalf("%d permits free at the end, want %d", n, permits)
	}
}

func TestSemaphore_TryAcquireAndAvailable(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	a := newClient(t, withPrefix(prefix)).Semaphore("jobs", 3)
	b := newClient(t, withPrefix(prefix)).Semaphore("jobs", 3)
	if n := available(t, a); n != 3 {
		t.Fatalf("Available of a new semaphore = %d, want 3", n)
	}
	two, err := a.TryAcquire(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if keys := two.Keys(); len(keys) != 1 || keys[0] != "jobs" || two.Fence("jobs") != 0 || two.Token() == "" {
		t.Fatalf("lease of permits: keys %v, fence %d, token %q", keys, two.Fence("jobs"), two.Token())
	}
	if _, err := b.TryAcquire(ctx, 2); !errors.Is(err, xsync.ErrNotObtained) {
		t.Fatalf("TryAcquire(2) with 1 free: err = %v, want ErrNotObtained", err)
	}
	if n := available(t, b); n != 1 {
		t.Fatalf("Available = %d, want 1", n)
	}
	one, err := b.TryAcquire(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := two.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := two.Release(ctx); !errors.Is(err, xsync.ErrLockNotHeld) {
		t.Fatalf("second Release: err = %v, want ErrLockNotHeld", err)
	}
	if n := available(t, a); n != 2 {
		t.Fatalf("Available after a release = %d, want 2", n)
	}
	if err := one.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestSemaphore_RefusesBadInputWithTypedErrors(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	c := newClient(t, withPrefix(prefix))
	for _, tc := range []struct {
		what string
		s    *xsync.Semaphore
		want error
	}{
		{"empty name", c.Semaphore("", 1), xsync.ErrInvalidOptions},
		{"no permits", c.Semaphore("jobs", 0), xsync.ErrInvalidOptions},
		{"negative DB", c.Semaphore("jobs", 1, xsync.OnDB(-1)), xsync.ErrInvalidOptions},
		{"TTL under 1ms", c.Semaphore("jobs", 1, xsync.TTL(time.Microsecond)), xsync.ErrInvalidTTL},
	} {
		if _, err := tc.s.Acquire(ctx, 1); !errors.Is(err, tc.want) {
			t.Errorf("%s: Acquire: err = %v, want %v", tc.what, err, tc.want)
		}
		if _, err := tc.s.Available(ctx); !errors.Is(err, tc.want) {
			t.Errorf("%s: Available: err = %v, want %v", tc.what, err, tc.want)
		}
	}
	s := c.Semaphore("jobs", 2)
	for _, n := range []int{0, -1, 3} {
		if _, err := s.Acquire(ctx, n); !errors.Is(err, xsync.ErrInvalidQuantity) {
			t.Errorf("Acquire(%d) of 2 permits: err = %v, want ErrInvalidQuantity", n, err)
		}
		if _, err := s.TryAcquire(ctx, n); !errors.Is(err, xsync.ErrInvalidQuantity) {
			t.Errorf("TryAcquire(%d) of 2 permits: err = %v, want ErrInvalidQuantity", n, err)
		}
	}
	if _, err := s.Available(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Semaphore("jobs", 3).Available(ctx); !errors.Is(err, xsync.ErrInvalidOptions) {
		t.Errorf("the name again with other permits: err = %v, want ErrInvalidOptions", err)
	}
	if keys, _ := rawDB(t, 0).Keys(ctx, prefix+":*").Result(); len(keys) != 0 {
		t.Errorf("bad requests wrote %v", keys)
	}
}

// Waiters are served in order across clients: a request for every permit,
// queued first, is not overtaken by a small one that would fit, and a try
// does not jump the queue either.
func TestSemaphore_BigRequestIsNotStarvedBySmallOnes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	prefix := testPrefix(t)
	a := newClient(t, withPrefix(prefix)).Semaphore("jobs", 4)
	b := newClient(t, withPrefix(prefix)).Semaphore("jobs", 4)
	three, err := a.Acquire(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	big := b.AcquireAsync(ctx, 4)
	semSettled(t, b, 1)
	small := a.AcquireAsync(ctx, 1)
	semSettled(t, a, 1)
	if isDone(small) || isDone(big) {
		t.Fatal("a waiter was served while the big one waits for permits held")
	}
	if _, err := a.TryAcquire(ctx, 1); !errors.Is(err, xsync.ErrNotObtained) {
		t.Fatalf("TryAcquire(1) with a waiter queued: err = %v, want ErrNotObtained", err)
	}
	if err := three.Release(ctx); err != nil {
		t.Fatal(err)
	}
	all, err := big.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	semSettled(t, a, 1)
	if isDone(small) {
		t.Fatal("the small waiter was served while the big one holds every permit")
	}
	if err := all.Release(ctx); err != nil {
		t.Fatal(err)
	}
	one, err := small.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = one.Release(ctx)
}

// A holder that dies gives its permits back when its lease runs out: the
// waiter is woken then by its timer, and sends nothing before.
func TestSemaphore_DeadHoldersPermitsComeBackAtExpiry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	prefix := testPrefix(t)
	dead := newClient(t, withPrefix(prefix)).Semaphore("jobs", 2, xsync.TTL(400*time.Millisecond))
	s := newClient(t, withPrefix(prefix)).Semaphore("jobs", 2)
	// Before the acquire: its lease runs 400ms from when Redis ran it, which
	// is later. Measured after it, a slow start (a loaded machine) would
	// count against the wait.
	start := time.Now()
	gone, err := dead.Acquire(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	f := s.AcquireAsync(ctx, 2)
	semSettled(t, s, 1)
	db := rawDB(t, 0)
	before := commandCounts(t, db)
	lease, err := f.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Fatalf("served after %v, before the holder's lease ran out", waited)
	}
	diff := commandsSince(t, db, before)
	if diff["evalsha"]+diff["eval"] != 1 {
		t.Fatalf("commands while waiting for the expiry: %v, want one script call, at the expiry", diff)
	}
	select {
	case <-gone.Lost():
	default:
		t.Fatal("the holder's lease ran out and its Lost is open")
	}
	if err := gone.Release(ctx); !errors.Is(err, xsync.ErrLockNotHeld) {
		t.Fatalf("Release of the expired lease: err = %v, want ErrLockNotHeld", err)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// While nothing changes, 20 waiters on two clients send nothing.
func TestSemaphore_WaitersCostNoCommandsWhileNothingChanges(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	prefix := testPrefix(t)
	a := newClient(t, withPrefix(prefix)).Semaphore("jobs", 2)
	b := newClient(t, withPrefix(prefix)).Semaphore("jobs", 2)
	holder, err := a.Acquire(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	var fs []*xsync.Future[*xsync.Lease]
	for i := range 20 {
		s := a
		if i%2 == 1 {
			s = b
		}
		fs = append(fs, s.AcquireAsync(ctx, 1+i%2))
	}
	semSettled(t, a, 10)
	semSettled(t, b, 10)
	db := rawDB(t, 0)
	before := commandCounts(t, db)
	// An observation window: what is checked is that nothing happens in it.
	<-time.After(300 * time.Millisecond)
	if diff := commandsSince(t, db, before); len(diff) != 0 {
		t.Fatalf("20 waiters sent commands while nothing changed: %v", diff)
	}
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// Then every one is served, in turn (the order in which they reached
	// Redis).
	var wg sync.WaitGroup
	for _, f := range fs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lease, err := f.Wait(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			if err := lease.Release(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

// A cancelled or timed-out Acquire leaves nothing behind: not its place in
// the queue, not permits granted as it was cancelled.
func TestSemaphore_CancelledAcquireLeavesNothing(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	s := newClient(t, withPrefix(prefix)).Semaphore("jobs", 2)
	holder, err := s.Acquire(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := s.Acquire(short, 1); !errors.Is(err, xsync.ErrNotObtained) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire past its deadline: err = %v, want ErrNotObtained and DeadlineExceeded", err)
	}
	semSettled(t, s, 0)
	db := rawDB(t, 0)
	if n, _ := db.ZCard(ctx, prefix+":sem:{jobs}:queue").Result(); n != 0 {
		t.Fatalf("%d requests left in the queue", n)
	}
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// Cancelled at once, while its call is under way or after.
	for range 20 {
		// A try whose context ends while it is under way.
		tctx, tcancel := context.WithCancel(ctx)
		go tcancel()
		if lease, err := s.TryAcquire(tctx, 1+rand.IntN(2)); err == nil {
			_ = lease.Release(ctx) // it won the race: it is the caller's
		}
		tcancel()

		f := s.AcquireAsync(ctx, 1+rand.IntN(2))
		f.Cancel()
		if _, err := f.Wait(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Acquire: err = %v, want Canceled", err)
		}
	}
	semSettled(t, s, 0)
	if n := available(t, s); n != 2 {
		t.Fatalf("%d permits free after 20 cancelled acquires, want 2", n)
	}
	if n, _ := db.ZCard(ctx, prefix+":sem:{jobs}:queue").Result(); n != 0 {
		t.Fatalf("%d requests left in the queue", n)
	}
}

// A lease of permits renews itself as a lock's does, and Refresh extends
// one without renewal.
func TestSemaphore_LeasesRenewAndRefresh(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	const ttl = 150 * time.Millisecond
	renewed := newClient(t, withPrefix(prefix)).Semaphore("jobs", 2, xsync.TTL(ttl), xsync.AutoRenew(true))
	other := newClient(t, withPrefix(prefix)).Semaphore("jobs", 2)
	lease, err := renewed.Acquire(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	// An observation window of four TTLs: the lease must not be lost in it.
	select {
	case <-lease.Lost():
		t.Fatal("an auto-renewed lease of permits was lost")
	case <-time.After(4 * ttl):
	}
	if _, err := other.TryAcquire(ctx, 1); !errors.Is(err, xsync.ErrNotObtained) {
		t.Fatalf("TryAcquire while the renewed lease holds every permit: err = %v", err)
	}
	if err := lease.Refresh(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lease.Refresh(ctx, time.Minute); !errors.Is(err, xsync.ErrLockNotHeld) {
		t.Fatalf("Refresh after Release: err = %v, want ErrLockNotHeld", err)
	}
}

// Close releases the client's permits and fails its waiters with ErrClosed.
func TestSemaphore_CloseReleasesPermitsAndFailsWaiters(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	c, err := xsync.New(withOptions(testOptions(t), withPrefix(prefix)))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Semaphore("jobs", 2)
	lease, err := s.Acquire(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	f := s.AcquireAsync(ctx, 1)
	semSettled(t, s, 1)
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Wait(ctx); !errors.Is(err, xsync.ErrClosed) {
		t.Fatalf("waiter at Close: err = %v, want ErrClosed", err)
	}
	select {
	case <-lease.Lost():
	default:
		t.Fatal("Close left the lease's Lost open")
	}
	if _, err := s.Acquire(ctx, 1); !errors.Is(err, xsync.ErrClosed) {
		t.Fatalf("Acquire after Close: err = %v, want ErrClosed", err)
	}
	if n := available(t, newClient(t, withPrefix(prefix)).Semaphore("jobs", 2)); n != 2 {
		t.Fatalf("%d permits free after Close, want 2", n)
	}
	if n, _ := rawDB(t, 0).ZCard(ctx, prefix+":sem:{jobs}:queue").Result(); n != 0 {
		t.Fatalf("%d requests left in the queue after Close", n)
	}
}

// Two OS processes share one semaphore: together they never hold more than
// its permits. Each child records +n when it gets permits and -n before it
// gives them back, in one Redis list; the running sum never passes 3.
const semChildEnv = "XSYNC_SEM_CHILD_PREFIX"

func TestSemaphore_ProcessesTogetherKeepThePermits(t *testing.T) {
	prefix := testPrefix(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	runChildren(t, ctx, 2, "TestSemaphore_ChildProcess", semChildEnv+"="+prefix)
	log, err := rawDB(t, 0).LRange(ctx, prefix+":log", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 2*2*4*8 {
		t.Fatalf("%d log entries, want %d", len(log), 2*2*4*8)
	}
	sum, most := 0, 0
	for _, e := range log {
		d, _ := strconv.Atoi(e)
		sum += d
		most = max(most, sum)
		if sum > 3 {
			t.Fatalf("%d permits held at once, of 3", sum)
		}
	}
	if sum != 0 || most == 0 {
		t.Fatalf("log sums to %d (most %d): want 0 at the end", sum, most)
	}
}

// TestSemaphore_ChildProcess is the body of the children of
// TestSemaphore_ProcessesTogetherKeepThePermits; alone, it does nothing.
func TestSemaphore_ChildProcess(t *testing.T) {
	prefix := os.Getenv(semChildEnv)
	if prefix == "" {
		return // not a child
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := newClient(t, withPrefix(prefix))
	s := c.Semaphore("jobs", 3)
	db, err := c.DB(0)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range 8 {
				n := 1 + (g+r)%2
				lease, err := s.Acquire(ctx, n)
				if err != nil {
					t.Error(err)
					return
				}
				// Logged while held: +n after the grant, -n before the
				// release, so a sum over 3 means an overlap.
				db.RPush(ctx, prefix+":log", n)
				db.RPush(ctx, prefix+":log", -n)
				if err := lease.Release(ctx); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
}

// A lease whose permits were taken from it (here deleted behind xsync's
// back) is known lost at its next renewal.
func TestSemaphore_LeaseLostWhenItsPermitsAreGone(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	s := newClient(t, withPrefix(prefix)).Semaphore("jobs", 2, xsync.TTL(150*time.Millisecond), xsync.AutoRenew(true))
	lease, err := s.Acquire(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := rawDB(t, 0).ZRem(ctx, prefix+":sem:{jobs}:holders", lease.Token()).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lease.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("the renewal did not find the permits gone")
	}
	if err := lease.Refresh(ctx, time.Second); !errors.Is(err, xsync.ErrLockNotHeld) {
		t.Fatalf("Refresh of a lost lease: err = %v, want ErrLockNotHeld", err)
	}
}

// A client that died at the head of the queue (its entry is left in
// Redis) holds the others up for the head's turn only, 100ms: a waiter
// behind it is served when that turn ends, woken by its timer.
func TestSemaphore_DeadHeadOfTheQueueLosesItsTurn(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	prefix := testPrefix(t)
	db := rawDB(t, 0)
	// What a dead client leaves: a request for 2 permits, queued first.
	if err := db.ZAdd(ctx, prefix+":sem:{jobs}:queue", redis.Z{Score: 1, Member: "dead"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := db.HSet(ctx, prefix+":sem:{jobs}:wanted", "dead", 2).Err(); err != nil {
		t.Fatal(err)
	}
	if err := db.HSet(ctx, prefix+":sem:{jobs}:meta", "seq", 1).Err(); err != nil {
		t.Fatal(err)
	}
	s := newClient(t, withPrefix(prefix)).Semaphore("jobs", 2)
	start := time.Now()
	lease, err := s.Acquire(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 90*time.Millisecond {
		t.Fatalf("served after %v, within the dead head's turn", waited)
	}
	if n, _ := db.ZCard(ctx, prefix+":sem:{jobs}:queue").Result(); n != 0 {
		t.Fatalf("%d entries left in the queue; the dead head's must be gone", n)
	}
	_ = lease.Release(ctx)
}
