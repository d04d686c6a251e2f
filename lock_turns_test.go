package xsync_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redisxsync/xsync"
	"github.com/redisxsync/xsync/redisx"
)

// Turns: the clients queued for a key take turns in the order they queued;
// a client's turn serves its waiters that were waiting when the turn began,
// for Options.LockTurn at most, each release handing the key straight to
// the next of them.

// withLockTurn sets Options.LockTurn.
func withLockTurn(d time.Duration) func(*xsync.Options) {
	return func(o *xsync.Options) { o.LockTurn = d }
}

// turnRound is a key that client b holds, client a waits for twice (a1,
// then a2) and client c once, after a's two; the waiters ask for leases of
// ttl.
type turnRound struct {
	a, b, c *xsync.Client
	holder  *xsync.Lease
	a1, a2  *xsync.Future[*xsync.Lease]
	c1      *xsync.Future[*xsync.Lease]
	prefix  string
}

func newTurnRound(t *testing.T, ttl time.Duration, opts ...func(*xsync.Options)) *turnRound {
	t.Helper()
	ctx := t.Context()
	r := &turnRound{prefix: testPrefix(t)}
	opts = append([]func(*xsync.Options){withPrefix(r.prefix)}, opts...)
	r.a, r.b, r.c = newClient(t, opts...), newClient(t, opts...), newClient(t, opts...)
	var err error
	if r.holder, err = r.b.Lock(ctx, []string{"k"}, xsync.TTL(time.Minute)); err != nil {
		t.Fatal(err)
	}
	r.a1 = r.a.LockAsync(ctx, []string{"k"}, xsync.TTL(ttl))
	settled(t, r.a, 1)
	r.a2 = r.a.LockAsync(ctx, []string{"k"}, xsync.TTL(ttl))
	settled(t, r.a, 2)
	r.c1 = r.c.LockAsync(ctx, []string{"k"}, xsync.TTL(ttl))
	settled(t, r.c, 1)
	return r
}

// finish releases last, waits until the clients are idle, and fails t if
// a lock key is left: a queue or a ticket nobody needs.
func (r *turnRound) finish(t *testing.T, last *xsync.Lease) {
	t.Helper()
	if err := last.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	settledAll(t, r.a, r.b, r.c)
	if left := lockKeysLeft(t, r.prefix, 0); len(left) != 0 {
		t.Fatalf("lock keys left: %v", left)
	}
}

// next releases l and returns the lease of f, which must come next: one
// fence after l's. The futures in notYet must still wait.
func next(t *testing.T, key string, l *xsync.Lease, f *xsync.Future[*xsync.Lease], notYet ...*xsync.Future[*xsync.Lease]) *xsync.Lease {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := f.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range notYet {
		select {
		case <-o.Done():
			t.Fatal("a waiter whose turn had not come got the lock")
		default:
		}
	}
	if got.Fence(key) != l.Fence(key)+1 {
		t.Fatalf("fences %d then %d, want one more", l.Fence(key), got.Fence(key))
	}
	return got
}

// a's turn begins with a1: a2, waiting since before, comes next although c
// queued meanwhile; a3, which asked during the turn, waits for c's.
func TestLock_ATurnServesTheWaitersItHadWhenItBegan(t *testing.T) {
	r := newTurnRound(t, time.Minute, withLockTurn(time.Minute))
	l1 := next(t, "k", r.holder, r.a1, r.a2, r.c1)
	a3 := r.a.LockAsync(t.Context(), []string{"k"}, xsync.TTL(time.Minute))
	settled(t, r.a, 2)
	l2 := next(t, "k", l1, r.a2, r.c1, a3)
	lc := next(t, "k", l2, r.c1, a3)
	l3 := next(t, "k", lc, a3)
	r.finish(t, l3)
}

// With a negative LockTurn a turn is one acquisition: the key goes from a1
// to c, then back to a2.
func TestLock_ATurnOfOneAcquisitionAlternatesTheClients(t *testing.T) {
	r := newTurnRound(t, time.Minute, withLockTurn(-1))
	l1 := next(t, "k", r.holder, r.a1, r.a2, r.c1)
	lc := next(t, "k", l1, r.c1, r.a2)
	l2 := next(t, "k", lc, r.a2)
	r.finish(t, l2)
}

// A turn older than LockTurn ends at the next release: c's comes before
// a2.
func TestLock_ATurnEndsOnceItIsOlderThanLockTurn(t *testing.T) {
	const turn = 50 * time.Millisecond
	r := newTurnRound(t, time.Minute, withLockTurn(turn))
	l1 := next(t, "k", r.holder, r.a1, r.a2, r.c1)
	// The turn began before a1's Wait returned: let it age past LockTurn.
	<-time.After(turn + 10*time.Millisecond)
	lc := next(t, "k", l1, r.c1, r.a2)
	l2 := next(t, "k", lc, r.a2)
	r.finish(t, l2)
}

// A turn that came from another client's release, which queued that client
// again, goes on, and its last release deletes the ticket the transfer
// left: once everybody is done, no lock key is left.
func TestLock_ATurnThatCameFromAnotherClientLeavesNoTicket(t *testing.T) {
	r := newTurnRound(t, time.Minute, withLockTurn(time.Minute))
	ctx := t.Context()
	c2 := r.c.LockAsync(ctx, []string{"k"}, xsync.TTL(time.Minute))
	settled(t, r.c, 2)
	l1 := next(t, "k", r.holder, r.a1, r.a2, r.c1, c2)
	a3 := r.a.LockAsync(ctx, []string{"k"}, xsync.TTL(time.Minute))
	settled(t, r.a, 2)
	l2 := next(t, "k", l1, r.a2, r.c1, c2, a3)
	lc1 := next(t, "k", l2, r.c1, c2, a3) // a queues again, with a3's ticket
	lc2 := next(t, "k", lc1, c2, a3)
	l3 := next(t, "k", lc2, a3)
	r.finish(t, l3)
}

// A release that goes on with its client's turn runs 4 commands: the
// script, GET, the fence's INCR and SET. The clients queued behind are
// left as they are, and nothing is published.
func TestLock_ATurnHandsOnInFourCommands(t *testing.T) {
	// Leases no longer than a transfer's need no confirmation: nothing of
	// a's runs but the release while it is counted. They last 500ms, and c
	// tries again when the key would expire: a round that the machine
	// stalled for half of that before the count ended (seen once under
	// the whole Sentinel suite with -race) is played again, three times at
	// most.
	const stall = transferLease / 2
	for try := 1; ; try++ {
		r := newTurnRound(t, transferLease, withLockTurn(time.Minute))
		l1 := next(t, "k", r.holder, r.a1, r.a2, r.c1)
		granted := time.Now()
		before := commandCounts(t, rawDB(t, 0))
		l2, err := release(t, l1, r.a2)
		got := scriptCommands(t, before)
		if took := time.Since(granted); took > stall && try < 3 {
			t.Logf("round %d took %v from a1's grant to the count's end: again", try, took)
			r.drop(t, l2, err)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		wantCommands(t, "the release within a turn", got,
			map[string]int64{"evalsha": 1, "get": 1, "incr": 1, "set": 1})
		if l2.Fence("k") != l1.Fence("k")+1 {
			t.Fatalf("fences %d then %d, want one more", l1.Fence("k"), l2.Fence("k"))
		}
		select {
		case <-r.c1.Done():
			t.Fatal("a waiter whose turn had not come got the lock")
		default:
		}
		lc := next(t, "k", l2, r.c1)
		r.finish(t, lc)
		return
	}
}

// release releases l and waits for f's lease, without failing t.
func release(t *testing.T, l *xsync.Lease, f *xsync.Future[*xsync.Lease]) (*xsync.Lease, error) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := l.Release(ctx); err != nil {
		return nil, err
	}
	return f.Wait(ctx)
}

// drop ends a round played too slowly: whatever holds the key is released
// and c's waiter, which gets it next, releases it too.
func (r *turnRound) drop(t *testing.T, l *xsync.Lease, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err == nil {
		_ = l.Release(ctx) // lost already, maybe
	} else {
		r.a2.Cancel()
	}
	lc, err := r.c1.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := lc.Release(ctx); err != nil && !errors.Is(err, xsync.ErrLockNotHeld) {
		t.Fatal(err)
	}
}

// A release within a turn on a fence counter that holds garbage fails
// with ErrCorrupt and changes nothing, as every other release does: the
// short path of a release within a turn gives way to the checked one.
func TestLock_ATurnOnACorruptFenceIsErrCorruptAndChangesNothing(t *testing.T) {
	r := newTurnRound(t, time.Minute, withLockTurn(time.Minute))
	defer r.a2.Cancel()
	defer r.c1.Cancel()
	ctx := t.Context()
	l1 := next(t, "k", r.holder, r.a1, r.a2, r.c1)
	db := rawDB(t, 0)
	if err := db.Set(ctx, redisx.Keys{Prefix: r.prefix}.Fence("k"), "seven", 0).Err(); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, db, r.prefix)
	if err := l1.Release(ctx); !errors.Is(err, xsync.ErrCorrupt) {
		t.Fatalf("Release within a turn: %v, want ErrCorrupt", err)
	}
	if after := snapshot(t, db, r.prefix); !maps.Equal(before, after) {
		t.Fatalf("a Release within a turn on corrupt data changed Redis: %v, was %v", after, before)
	}
	// The next waiter of the turn did not get the key: it waits, or its
	// own attempt met the garbage.
	select {
	case <-r.a2.Done():
		if _, err := r.a2.Wait(ctx); !errors.Is(err, xsync.ErrCorrupt) {
			t.Fatalf("the next waiter of the turn: %v, want ErrCorrupt or still waiting", err)
		}
	default:
	}
}

// A waiter withdrawn while the release that hands it the key within its
// client's turn is under way: the key goes on to the next client at once.
func TestLock_WaiterWithdrawnMidTurnHandsTheKeyOn(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	r := newTurnRound(t, time.Minute, withLockTurn(time.Minute))
	var (
		mu        sync.Mutex
		a1Token   string
		withdrawn = make(chan error, 1)
	)
	db, err := xsync.InternalDB(r.a, 0)
	if err != nil {
		t.Fatal(err)
	}
	db.AddHook(lockScriptHook{on: func(_ context.Context, token string, acquire bool, run func() error) error {
		mu.Lock()
		mine := !acquire && token == a1Token
		mu.Unlock()
		if mine {
			// a1's release, which hands the key to a2: a2 withdraws
			// first, and a's manager has let it go before the release
			// runs.
			r.a2.Cancel()
			withdrawn <- waitWaiters(r.a, 0)
		}
		return run()
	}})
	l1 := next(t, "k", r.holder, r.a1, r.a2, r.c1)
	mu.Lock()
	a1Token = l1.Token()
	mu.Unlock()
	if err := l1.Release(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-withdrawn:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("a1's release never ran")
	}
	if _, err := r.a2.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("the withdrawn waiter: %v, want context.Canceled", err)
	}
	lc, err := r.c1.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// a2's fence was drawn, and the key handed on from it.
	if lc.Fence("k") != l1.Fence("k")+2 {
		t.Fatalf("fences %d then %d, want two more", l1.Fence("k"), lc.Fence("k"))
	}
	r.finish(t, lc)
}

// waitWaiters waits until c has n waiters, a Redis call under way or not,
// for 5s at most.
func waitWaiters(c *xsync.Client, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		w, _, _, err := xsync.LockStats(ctx, c)
		switch {
		case err != nil:
			return err
		case w == n:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d waiters, want %d: %w", w, n, ctx.Err())
		case <-tick.C:
		}
	}
}

// Turns under churn: three clients of eight goroutines each, every Lock
// given up after a random 0–3ms about half the time, so that waiters leave
// in the middle of turns, before and while the key is handed to them.
// Exclusion holds, fences rise, and once everybody is done nothing is
// left: no waiter, no lease, no lock key.
func TestLock_TurnsHoldWhileWaitersGiveUp(t *testing.T) {
	const clients, goroutines, rounds = 3, 8, 30
	prefix := testPrefix(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cs := &criticalSection{db: rawDB(t, 0), counter: prefix + ":counter"}
	var (
		wg       sync.WaitGroup
		acquired atomic.Int64
		gaveUp   atomic.Int64
		all      []*xsync.Client
	)
	for i := range clients {
		c := newClient(t, withPrefix(prefix))
		all = append(all, c)
		for g := range goroutines {
			rng := rand.New(rand.NewPCG(uint64(i), uint64(g)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range rounds {
					lctx, lcancel := ctx, context.CancelFunc(func() {})
					if rng.IntN(2) == 0 {
						lctx, lcancel = context.WithTimeout(ctx, time.Duration(rng.IntN(3000))*time.Microsecond)
					}
					lease, err := c.Lock(lctx, []string{"counter"})
					lcancel()
					if err != nil {
						if !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
							t.Errorf("Lock: %v", err)
							return
						}
						gaveUp.Add(1)
						continue
					}
					acquired.Add(1)
					cs.run(ctx, t, lease.Fence("counter"))
					if err := lease.Release(ctx); err != nil {
						t.Errorf("Release: %v", err)
					}
				}
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if gaveUp.Load() == 0 || acquired.Load() == 0 {
		t.Fatalf("%d acquisitions and %d given up: the churn did not happen", acquired.Load(), gaveUp.Load())
	}
	if got, _ := cs.db.Get(ctx, cs.counter).Int(); int64(got) != acquired.Load() {
		t.Fatalf("counter = %d after %d acquisitions: some GET-then-SET overlapped", got, acquired.Load())
	}
	assertRising(t, cs.fences)
	settledAll(t, all...)
	if left := lockKeysLeft(t, prefix, 0); len(left) != 0 {
		t.Fatalf("lock keys left behind: %v", left)
	}
	t.Logf("%d acquisitions, %d Locks given up", acquired.Load(), gaveUp.Load())
}
