package xsync_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redisxsync/xsync"
	"github.com/redisxsync/xsync/internal/testredis"
)

// TestMain fails the package if any test leaves a goroutine behind. It
// first waits out the DNS lookups that go-redis starts, and does not wait
// for, when it builds a Sentinel client (of its placeholder address
// "FailoverClient"): they end when the resolver gives up.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(20 * time.Second)
		for resolving() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond) // ok: polls the goroutines with a deadline
		}
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: Errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// resolving: a DNS lookup is under way in this process.
func resolving() bool {
	buf := make([]byte, 1<<20)
	return strings.Contains(string(buf[:runtime.Stack(buf, true)]), "net.(*Resolver).lookupIPAddr")
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
	o := testOptions(t)
	o.KeyPrefix = testPrefix(t)
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

// withOptions returns o changed by each of fs.
func withOptions(o xsync.Options, fs ...func(*xsync.Options)) xsync.Options {
	for _, f := range fs {
		f(&o)
	}
	return o
}

// testOptions connects to the deployment the tests run against: one
// server, a Sentinel set or a Redis Cluster (see internal/testredis).
func testOptions(t testing.TB) xsync.Options {
	t.Helper()
	d := testredis.Current(t)
	switch d.Topology {
	case testredis.Sentinel:
		return xsync.Options{Addrs: d.Addrs, MasterName: d.MasterName}
	case testredis.Cluster:
		return xsync.Options{Addrs: d.Addrs, Cluster: true}
	default:
		return xsync.Options{Addr: d.Addr}
	}
}

// rawDB is a plain go-redis client of DB n of the test deployment, to look
// at what xsync wrote without going through it.
func rawDB(t testing.TB, n int) redis.UniversalClient {
	t.Helper()
	return testredis.Current(t).Client(t, n)
}
