// Package testredis gives xsync's tests the address of the real Redis they
// run against. `make test` starts a private redis-server and sets
// REDIS_ADDR; without it the tests fail, they do not skip.
package testredis

import (
	"os"
	"testing"
)

// Addr is the test server's address; it fails t when REDIS_ADDR is not set.
func Addr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		t.Fatal("REDIS_ADDR is not set: run the tests with `make test`, which starts a private redis-server")
	}
	return addr
}
