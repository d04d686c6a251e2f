package xsync_test

import (
	"testing"
	"time"

	"go.uber.org/goleak"

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
