package xsync_test

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/redisxsync/xsync"
)

// A Redis that cannot be reached, or that refuses the credentials, is
// ErrUnavailable, which keeps its cause: a caller can still look for the
// network error underneath.
func TestErrUnavailable_WhenRedisCannotBeReached(t *testing.T) {
	_, err := xsync.New(xsync.Options{Addr: "127.0.0.1:1"})
	if !errors.Is(err, xsync.ErrUnavailable) {
		t.Fatalf("New to a closed port: err = %v, want ErrUnavailable", err)
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Fatalf("New to a closed port: err = %v, want it to wrap a *net.OpError", err)
	}
	if errors.Is(err, xsync.ErrInvalidOptions) {
		t.Fatalf("an unreachable server is not an options error: %v", err)
	}

	admin := rawDB(t, 0)
	if err := admin.Do(t.Context(), "ACL", "SETUSER", "xsync-unavailable", "on", ">right", "~*", "&*", "+@all").Err(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	t.Cleanup(func() { admin.Do(context.Background(), "ACL", "DELUSER", "xsync-unavailable") })
	_, err = xsync.New(xsync.Options{Addr: redisAddr(t), Username: "xsync-unavailable", Password: "wrong"})
	if !errors.Is(err, xsync.ErrUnavailable) {
		t.Fatalf("New with refused credentials: err = %v, want ErrUnavailable", err)
	}
}

// Once the client is up, an operation whose Redis call fails in transit
// (here every reply is lost with its connection) is ErrUnavailable too, for
// locks and pools alike, and not the operation's own sentinel: the caller
// can tell "taken" from "could not ask".
func TestErrUnavailable_WhenRepliesAreLost(t *testing.T) {
	proxy := startFaultProxy(t, redisAddr(t))
	c := newClient(t, func(o *xsync.Options) { o.Addr = proxy.addr() })
	ctx := t.Context()
	pool := c.Pool("unavailable")
	if err := pool.Put(ctx, xsync.Container{ID: "a"}); err != nil {
		t.Fatal(err)
	}

	proxy.cut.Store(true)
	_, err := c.TryLock(ctx, []string{"unavailable"})
	if !errors.Is(err, xsync.ErrUnavailable) || errors.Is(err, xsync.ErrNotObtained) {
		t.Fatalf("TryLock while replies are lost: err = %v, want ErrUnavailable only", err)
	}
	_, err = pool.AskOne(ctx)
	if !errors.Is(err, xsync.ErrUnavailable) || errors.Is(err, xsync.ErrNotAvailable) {
		t.Fatalf("AskOne while replies are lost: err = %v, want ErrUnavailable only", err)
	}
	if err := pool.Put(ctx, xsync.Container{ID: "b"}); !errors.Is(err, xsync.ErrUnavailable) {
		t.Fatalf("Put while replies are lost: err = %v, want ErrUnavailable", err)
	}
	if _, err := pool.Stats(ctx); !errors.Is(err, xsync.ErrUnavailable) {
		t.Fatalf("Stats while replies are lost: err = %v, want ErrUnavailable", err)
	}
	proxy.cut.Store(false)
}
