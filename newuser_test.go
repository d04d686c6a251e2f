package xsync_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redisxsync/xsync"
)

// What new users tripped over, each point as a specification.

// The URL's DB is the default DB of locks and pools, as Options.DB is: two
// labels on two URL DBs share no lock and no pool.
func TestClient_URLDBIsTheDefaultDBOfLocksAndPools(t *testing.T) {
	defer closeAll(t)
	prefix := testPrefix(t)
	one, err := xsync.Register("db1", xsync.Options{URL: "redis://" + redisAddr(t) + "/1", KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	two, err := xsync.Register("db2", xsync.Options{URL: "redis://" + redisAddr(t) + "/2", KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	put(t, one.Pool("accounts"), xsync.Container{ID: "on-1"})
	if _, err := two.Pool("accounts").Get(ctx, "on-1"); !errors.Is(err, xsync.ErrNotFound) {
		t.Fatalf("DB 2 sees DB 1's container: %v", err)
	}
	if n := rawDB(t, 1).Exists(ctx, poolKey(prefix, "accounts", "meta")).Val(); n != 1 {
		t.Fatal("the pool of the /1 URL is not on DB 1")
	}
	lease, err := one.TryLock(ctx, []string{"job"})
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Release(ctx)
	other, err := two.TryLock(ctx, []string{"job"})
	if err != nil {
		t.Fatalf("a lock on DB 1 blocks the same key on DB 2: %v", err)
	}
	if err := other.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// A call whose context is done already sends nothing to Redis: no write
// lands moments later.
func TestPool_CallWithADoneContextSendsNothing(t *testing.T) {
	p := newClient(t).Pool("accounts")
	put(t, p, xsync.Container{ID: "a"})
	db := rawDB(t, 0)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	before := commandCounts(t, db)
	for range 200 {
		if err := p.Put(ctx, xsync.Container{ID: "b"}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Put: %v, want context.Canceled", err)
		}
		if err := p.Cooldown(ctx, "a", time.Hour); !errors.Is(err, context.Canceled) {
			t.Fatalf("Cooldown: %v, want context.Canceled", err)
		}
		if _, err := p.Remove(ctx, "a"); !errors.Is(err, context.Canceled) {
			t.Fatalf("Remove: %v, want context.Canceled", err)
		}
		if _, err := p.AskOne(ctx); !errors.Is(err, context.Canceled) || !errors.Is(err, xsync.ErrNotAvailable) {
			t.Fatalf("AskOne: %v, want ErrNotAvailable and context.Canceled", err)
		}
	}
	if got := commandsSince(t, db, before); len(got) != 0 {
		t.Fatalf("calls with a cancelled context sent %v", got)
	}
	if _, err := p.Get(t.Context(), "b"); !errors.Is(err, xsync.ErrNotFound) {
		t.Fatalf("a cancelled Put landed: %v", err)
	}
	if got := get(t, p, "a"); got.UsageCount != 0 || got.NextAvailable.After(time.Now().Add(time.Minute)) {
		t.Fatalf("a cancelled Cooldown or Remove landed: %+v", got)
	}
}

// Connection failures match ErrUnavailable and keep their cause; a DB the
// server does not have is ErrInvalidOptions; ConnectTimeout bounds a server
// that accepts and never answers.
func TestNew_ConnectionErrorsAreTyped(t *testing.T) {
	// A port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := ln.Addr().String()
	_ = ln.Close()
	_, err = xsync.New(xsync.Options{Addr: closedAddr})
	var opErr *net.OpError
	if !errors.Is(err, xsync.ErrUnavailable) || !errors.As(err, &opErr) || !strings.Contains(err.Error(), closedAddr) {
		t.Fatalf("New on a closed port: %v, want ErrUnavailable wrapping a *net.OpError, naming %s", err, closedAddr)
	}

	// A password the server refuses.
	refused, err := xsync.New(xsync.Options{Addr: redisAddr(t), Username: "nobody", Password: "s3cret-pw"})
	if err == nil {
		_ = refused.Close(t.Context())
		t.Fatal("New with a refused password succeeded")
	}
	if !errors.Is(err, xsync.ErrUnavailable) || strings.Contains(err.Error(), "s3cret-pw") {
		t.Fatalf("New with a refused password: %v, want ErrUnavailable without the password", err)
	}

	// A DB the server does not have (the test server has 16).
	_, err = xsync.New(xsync.Options{Addr: redisAddr(t), DB: 99})
	if !errors.Is(err, xsync.ErrInvalidOptions) {
		t.Fatalf("New on DB 99: %v, want ErrInvalidOptions", err)
	}
	if _, err := xsync.New(xsync.Options{Addr: redisAddr(t), ConnectTimeout: -time.Second}); !errors.Is(err, xsync.ErrInvalidOptions) {
		t.Fatalf("negative ConnectTimeout: %v, want ErrInvalidOptions", err)
	}

	// A server that accepts and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := silent.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	t.Cleanup(func() {
		_ = silent.Close()
		for c := range accepted {
			_ = c.Close()
		}
	})
	_, err = xsync.New(xsync.Options{Addr: silent.Addr().String(), ConnectTimeout: 100 * time.Millisecond})
	var netErr net.Error
	timedOut := errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout())
	if !errors.Is(err, xsync.ErrUnavailable) || !timedOut {
		t.Fatalf("New on a silent server: %v, want ErrUnavailable and a timeout", err)
	}
}

// MaxWait bounds the wait for the keys, not the work done under them; a
// wait that runs out is ErrNotObtained and not a context deadline.
// MaxWait(0) is one attempt. LeaseFrom gives fn its lease.
func TestWithLock_MaxWaitBoundsTheWaitNotTheJob(t *testing.T) {
	c := newClient(t)
	ctx := t.Context()
	const maxWait = 50 * time.Millisecond

	held, err := c.Lock(ctx, []string{"tick"})
	if err != nil {
		t.Fatal(err)
	}
	ran := false
	err = c.WithLock(ctx, []string{"tick"}, func(context.Context) error { ran = true; return nil }, xsync.MaxWait(maxWait))
	if !errors.Is(err, xsync.ErrNotObtained) || errors.Is(err, context.DeadlineExceeded) || ran {
		t.Fatalf("WithLock on a held key with MaxWait: %v (ran %v), want ErrNotObtained only", err, ran)
	}
	if _, err := c.Lock(ctx, []string{"tick"}, xsync.MaxWait(0)); !errors.Is(err, xsync.ErrNotObtained) {
		t.Fatalf("Lock with MaxWait(0) on a held key: %v, want ErrNotObtained", err)
	}
	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}

	err = c.WithLock(ctx, []string{"tick"}, func(fnCtx context.Context) error {
		lease, ok := xsync.LeaseFrom(fnCtx)
		if !ok || lease.Fence("tick") < 2 {
			t.Errorf("LeaseFrom in fn: %v, %v; want the lease with the key's second fence", lease, ok)
		}
		// The job outlives MaxWait: its context is not ended by it.
		select {
		case <-fnCtx.Done():
			t.Errorf("fn's context ended after MaxWait: %v", context.Cause(fnCtx))
		case <-time.After(4 * maxWait): // the job's own work, not a wait for an effect
		}
		return nil
	}, xsync.MaxWait(maxWait))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := xsync.LeaseFrom(ctx); ok {
		t.Fatal("LeaseFrom outside WithLock found a lease")
	}
	if _, err := c.Lock(ctx, []string{"tick"}, xsync.MaxWait(-time.Second)); !errors.Is(err, xsync.ErrInvalidOptions) {
		t.Fatalf("negative MaxWait: %v, want ErrInvalidOptions", err)
	}
}

// An error that matches two sentinels prints on one line.
func TestErrors_PrintOnOneLine(t *testing.T) {
	c := newClient(t)
	held, err := c.Lock(t.Context(), []string{"job"})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release(t.Context())
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	_, err = c.Lock(ctx, []string{"job"})
	if !errors.Is(err, xsync.ErrNotObtained) || !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("%q: want one line matching ErrNotObtained and context.DeadlineExceeded", err)
	}
	if want := "xsync: lock not obtained: context deadline exceeded"; err.Error() != want {
		t.Fatalf("%q, want %q", err, want)
	}
}

// Braces in a pool name are refused, as in KeyPrefix: the name is the
// pool's hash tag, and "{x}" would be the same pool as "x".
func TestPool_NameWithABraceIsInvalid(t *testing.T) {
	c := newClient(t)
	for _, name := range []string{"{x}", "a{b", "c}"} {
		if _, err := c.Pool(name).Stats(t.Context()); !errors.Is(err, xsync.ErrInvalidOptions) {
			t.Errorf("Pool(%q): %v, want ErrInvalidOptions", name, err)
		}
	}
}

// A lease used after its client was closed answers ErrClosed without a
// message to the gone lock manager (which would be a dead letter in the
// caller's logs, in the caller's own actor system).
func TestLease_AfterCloseIsErrClosed(t *testing.T) {
	c, err := xsync.New(xsync.Options{Addr: redisAddr(t), KeyPrefix: testPrefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	lease, err := c.Lock(t.Context(), []string{"job"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := lease.Release(t.Context()); !errors.Is(err, xsync.ErrClosed) {
		t.Fatalf("Release after Close: %v, want ErrClosed", err)
	}
	if err := lease.Refresh(t.Context(), time.Second); !errors.Is(err, xsync.ErrClosed) {
		t.Fatalf("Refresh after Close: %v, want ErrClosed", err)
	}
}
