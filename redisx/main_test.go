package redisx_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// redisAddr is the test server's address. The tests need a real Redis:
// without one they fail, they do not skip. `make test` starts one.
func redisAddr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		t.Fatal("REDIS_ADDR is not set: run the tests with `make test`, which starts a private redis-server")
	}
	return addr
}
