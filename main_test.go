package xsync_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redisxsync/xsync"
	"github.com/redisxsync/xsync/internal/testredis"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// redisAddr is the test server's address. The tests need a real Redis:
// without one they fail, they do not skip. `make test` starts one.
func redisAddr(t testing.TB) string {
	t.Helper()
	return testredis.Addr(t)
}

// eventually polls cond until it holds or the deadline passes. cond
// observes Redis, a future or an actor; it makes nothing happen, and the
// poll is not a wait for an effect.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(2 * time.Millisecond) // ok: polls an observation with a deadline; waits for no effect
	}
}

// testPrefix gives each test its own key namespace on the shared server.
func testPrefix(t testing.TB) string {
	return "xsynctest-" + strings.NewReplacer("/", "-", " ", "_").Replace(t.Name()) + fmt.Sprintf("-%d", time.Now().UnixNano())
}

// newClient returns an unregistered client of the test server, closed at
// the end of the test.
func newClient(t testing.TB, opts ...func(*xsync.Options)) *xsync.Client {
	t.Helper()
	o := xsync.Options{Addr: redisAddr(t), KeyPrefix: testPrefix(t)}
	for _, f := range opts {
		f(&o)
	}
	c, err := xsync.New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// withPrefix makes newClient use prefix, so that several clients share
// their locks as several processes of one application would.
func withPrefix(prefix string) func(*xsync.Options) {
	return func(o *xsync.Options) { o.KeyPrefix = prefix }
}

// rawDB is a plain go-redis client of DB n of the test server, to look at
// what xsync wrote without going through it.
func rawDB(t testing.TB, n int) *redis.Client {
	t.Helper()
	r := redis.NewClient(&redis.Options{Addr: redisAddr(t), DB: n})
	t.Cleanup(func() { _ = r.Close() })
	return r
}
