package xsync_test

import (
	"errors"
	"testing"
	"time"

	"github.com/redisxsync/xsync"
)

// These tests check the actors working together, the way a program uses
// them: a client's connection actor, its lock manager and its pool actors
// share one pub/sub connection, and are woken by what other clients do.

// One client waits at once for a lock and for containers of two pools on
// two DBs; another client's Put and Release wake each waiter, and only the
// waiter concerned.
func TestActors_WaitersOfOneClientAreWokenByAnother(t *testing.T) {
	prefix := testPrefix(t)
	a := newClient(t, withPrefix(prefix))
	b := newClient(t, withPrefix(prefix))
	ctx := t.Context()

	held, err := a.Lock(ctx, []string{"report"})
	if err != nil {
		t.Fatal(err)
	}
	lockF := b.LockAsync(ctx, []string{"report"})
	take0 := b.Pool("accounts").WaitAskOneAsync(ctx)
	take1 := b.Pool("accounts", xsync.OnDB(1)).WaitAskOneAsync(ctx)
	eventually(t, 10*time.Second, "b's lock waiter queued", func() bool {
		waiters, _, _, err := xsync.LockStats(ctx, b)
		return err == nil && waiters == 1
	})

	// A Put on DB 1 serves the waiter of DB 1's pool, not that of DB 0.
	if err := a.Pool("accounts", xsync.OnDB(1)).Put(ctx, xsync.Container{ID: "on-db1"}); err != nil {
		t.Fatal(err)
	}
	if c, err := take1.Wait(ctx); err != nil || c.ID != "on-db1" {
		t.Fatalf("DB 1 waiter: %+v, %v; want on-db1", c, err)
	}
	select {
	case <-take0.Done():
		t.Fatal("DB 0's waiter was answered by a Put on DB 1")
	case <-lockF.Done():
		t.Fatal("the lock waiter was answered while the lock is held")
	default:
	}

	if err := a.Pool("accounts").Put(ctx, xsync.Container{ID: "on-db0"}); err != nil {
		t.Fatal(err)
	}
	if c, err := take0.Wait(ctx); err != nil || c.ID != "on-db0" {
		t.Fatalf("DB 0 waiter: %+v, %v; want on-db0", c, err)
	}

	// A's release hands the lock to b's waiter, with a later fence.
	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := lockF.Wait(ctx)
	if err != nil {
		t.Fatalf("b's Lock after a's release: %v", err)
	}
	if got.Fence("report") <= held.Fence("report") {
		t.Fatalf("fence %d after %d: want it to rise", got.Fence("report"), held.Fence("report"))
	}
	if err := got.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// Close ends the waiters of every actor of the client with ErrClosed and
// gives back its leases, which another client can then take at once;
// goleak (TestMain) checks that no goroutine of any actor is left.
func TestActors_CloseEndsEveryActorOfTheClient(t *testing.T) {
	prefix := testPrefix(t)
	a := newClient(t, withPrefix(prefix))
	b, err := xsync.New(xsync.Options{Addr: redisAddr(t), KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	blocker, err := a.Lock(ctx, []string{"taken"})
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Release(ctx)
	own, err := b.Lock(ctx, []string{"own"})
	if err != nil {
		t.Fatal(err)
	}
	lockF := b.LockAsync(ctx, []string{"taken"})
	takeF := b.Pool("empty").WaitAskOneAsync(ctx)
	eventually(t, 10*time.Second, "b's lock waiter queued", func() bool {
		waiters, _, _, err := xsync.LockStats(ctx, b)
		return err == nil && waiters == 1
	})

	if err := b.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := lockF.Wait(ctx); !errors.Is(err, xsync.ErrClosed) {
		t.Fatalf("lock waiter after Close: %v, want ErrClosed", err)
	}
	if _, err := takeF.Wait(ctx); !errors.Is(err, xsync.ErrClosed) {
		t.Fatalf("pool waiter after Close: %v, want ErrClosed", err)
	}
	select {
	case <-own.Lost():
	default:
		t.Fatal("the closed client's lease is not marked lost")
	}
	l, err := a.TryLock(ctx, []string{"own"})
	if err != nil {
		t.Fatalf("TryLock of the closed client's key: %v, want it free", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DB(0); !errors.Is(err, xsync.ErrClosed) {
		t.Fatalf("DB after Close: %v, want ErrClosed", err)
	}
}
