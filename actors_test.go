package xsync_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/redisxsync/xsync"
	"github.com/redisxsync/xsync/internal/testredis"
)

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

// withOptions returns o changed by each of fs.
func withOptions(o xsync.Options, fs ...func(*xsync.Options)) xsync.Options {
	for _, f := range fs {
		f(&o)
	}
	return o
}

// withPrefix makes newClient use prefix, so that several clients share
// their locks as several processes of one application would.
func withPrefix(prefix string) func(*xsync.Options) {
	return func(o *xsync.Options) { o.KeyPrefix = prefix }
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

func closeAll(t testing.TB) {
	t.Helper()
	if err := xsync.CloseAll(context.Background()); err != nil {
		t.Errorf("CloseAll: %v", err)
	}
}

func TestRegistry_RegisterResolveDefault(t *testing.T) {
	t.Cleanup(func() { closeAll(t) })
	if d := xsync.Default(); d != nil {
		t.Fatalf("Default before any Register = %v, want nil", d)
	}
	crawler, err := xsync.Register("crawler", xsync.Options{Addr: redisAddr(t)})
	if err != nil {
		t.Fatalf("Register crawler: %v", err)
	}
	cache, err := xsync.Register("cache", xsync.Options{URL: "redis://" + redisAddr(t) + "/5"})
	if err != nil {
		t.Fatalf("Register cache: %v", err)
	}
	if crawler.Label() != "crawler" || cache.Label() != "cache" {
		t.Fatalf("labels = %q, %q", crawler.Label(), cache.Label())
	}
	if got, err := xsync.Resolve("cache"); err != nil || got != cache {
		t.Fatalf("Resolve(cache) = %p, %v; want %p", got, err, cache)
	}
	if got := xsync.Default(); got != crawler {
		t.Fatalf("Default = %v, want the first registered (crawler)", got.Label())
	}
	if _, err := xsync.Register("crawler", xsync.Options{Addr: redisAddr(t)}); !errors.Is(err, xsync.ErrDuplicateLabel) {
		t.Fatalf("Register duplicate: err = %v, want ErrDuplicateLabel", err)
	}
	if _, err := xsync.Resolve("nope"); !errors.Is(err, xsync.ErrUnknownLabel) {
		t.Fatalf("Resolve unknown: err = %v, want ErrUnknownLabel", err)
	}
	if _, err := xsync.Register("", xsync.Options{Addr: redisAddr(t)}); !errors.Is(err, xsync.ErrInvalidOptions) {
		t.Fatalf("Register empty label: err = %v, want ErrInvalidOptions", err)
	}

	// Closing a registered client takes it out of the registry.
	if err := crawler.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := xsync.Resolve("crawler"); !errors.Is(err, xsync.ErrUnknownLabel) {
		t.Fatalf("Resolve closed: err = %v, want ErrUnknownLabel", err)
	}
	if got := xsync.Default(); got != cache {
		t.Fatalf("Default after closing the first = %v, want cache", got)
	}
	closeAll(t)
	if d := xsync.Default(); d != nil {
		t.Fatalf("Default after CloseAll = %v, want nil", d.Label())
	}
	if _, err := xsync.Resolve("cache"); !errors.Is(err, xsync.ErrUnknownLabel) {
		t.Fatalf("Resolve after CloseAll: err = %v, want ErrUnknownLabel", err)
	}
	// The label is free again.
	again, err := xsync.Register("cache", xsync.Options{Addr: redisAddr(t)})
	if err != nil {
		t.Fatalf("Register after CloseAll: %v", err)
	}
	if xsync.Default() != again {
		t.Fatal("Default is not the client registered after CloseAll")
	}
}

func TestRegistry_ConcurrentRegisterHasOneDefault(t *testing.T) {
	t.Cleanup(func() { closeAll(t) })
	const n = 100
	var (
		wg       sync.WaitGroup
		start    = make(chan struct{})
		clients  = make([]*xsync.Client, n)
		defaults = make([]*xsync.Client, n)
		dupWins  = make([]error, n)
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			c, err := xsync.Register(fmt.Sprintf("worker-%d", i), xsync.Options{Addr: redisAddr(t)})
			if err != nil {
				t.Errorf("Register %d: %v", i, err)
				return
			}
			clients[i] = c
			defaults[i] = xsync.Default()
			// Everybody also races for one shared label: one must win.
			_, dupWins[i] = xsync.Register("shared", xsync.Options{Addr: redisAddr(t)})
		}()
	}
	close(start)
	wg.Wait()

	def := xsync.Default()
	if def == nil {
		t.Fatal("Default is nil after 100 Registers")
	}
	for i, d := range defaults {
		if d != def {
			t.Fatalf("goroutine %d saw Default %v, later Default is %v: Default changed", i, d.Label(), def.Label())
		}
	}
	for i, c := range clients {
		if got, err := xsync.Resolve(fmt.Sprintf("worker-%d", i)); err != nil || got != c {
			t.Fatalf("Resolve(worker-%d) = %v, %v", i, got, err)
		}
	}
	won := 0
	for _, err := range dupWins {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, xsync.ErrDuplicateLabel):
			t.Fatalf("Register shared: %v, want nil or ErrDuplicateLabel", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d goroutines registered label \"shared\", want exactly 1", won)
	}
}

func TestClient_DBIsIsolated(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	key := testPrefix(t) + ":greeting"

	db3, err := c.DB(3)
	if err != nil {
		t.Fatalf("DB(3): %v", err)
	}
	if err := db3.Set(ctx, key, "hello", time.Minute).Err(); err != nil {
		t.Fatalf("SET via DB(3): %v", err)
	}
	if again, _ := c.DB(3); again != db3 {
		t.Fatal("DB(3) twice returned two clients: it must be cached")
	}
	if got, err := rawDB(t, 3).Get(ctx, key).Result(); err != nil || got != "hello" {
		t.Fatalf("raw GET on DB 3 = %q, %v; want hello", got, err)
	}
	if err := rawDB(t, 4).Get(ctx, key).Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("raw GET on DB 4: err = %v, want redis.Nil (the key must not be there)", err)
	}
	db4, err := c.DB(4)
	if err != nil {
		t.Fatal(err)
	}
	if err := db4.Get(ctx, key).Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET via DB(4): err = %v, want redis.Nil", err)
	}
	if _, err := c.DB(-1); !errors.Is(err, xsync.ErrInvalidOptions) {
		t.Fatalf("DB(-1): err = %v, want ErrInvalidOptions", err)
	}
}

func TestNew_BadOptions(t *testing.T) {
	const secret = "s3cr3t-pa55"
	cases := []struct {
		name string
		opts xsync.Options
		want error
	}{
		{"http url", xsync.Options{URL: "http://127.0.0.1:6379"}, xsync.ErrInvalidOptions},
		{"broken url", xsync.Options{URL: "redis://:" + secret + "@[::1"}, xsync.ErrInvalidOptions},
		{"bad url db", xsync.Options{URL: "redis://127.0.0.1:6379/notadb"}, xsync.ErrInvalidOptions},
		{"negative db", xsync.Options{Addr: redisAddr(t), DB: -2}, xsync.ErrInvalidOptions},
		{"addr and url", xsync.Options{Addr: redisAddr(t), URL: "redis://" + redisAddr(t)}, xsync.ErrInvalidOptions},
		{"addr without port", xsync.Options{Addr: "localhost"}, xsync.ErrInvalidOptions},
		{"brace in prefix", xsync.Options{Addr: redisAddr(t), KeyPrefix: "a{b}"}, xsync.ErrInvalidOptions},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := xsync.New(tc.opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("New: err = %v, want %v", err, tc.want)
			}
			if c != nil {
				t.Fatal("New returned a client with its error")
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error shows the password: %v", err)
			}
		})
	}

	t.Run("unreachable server names the address", func(t *testing.T) {
		_, err := xsync.New(xsync.Options{Addr: "127.0.0.1:1"})
		if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
			t.Fatalf("New: err = %v, want an error naming 127.0.0.1:1", err)
		}
		if errors.Is(err, xsync.ErrInvalidOptions) {
			t.Fatalf("unreachable server is not an options error: %v", err)
		}
	})
	t.Run("refused password is not shown", func(t *testing.T) {
		// A user with a known password; the client gives another one.
		admin := rawDB(t, 0)
		if err := admin.Do(context.Background(), "ACL", "SETUSER", "xsync-test", "on", ">right-password", "~*", "&*", "+@all").Err(); err != nil {
			t.Fatalf("ACL SETUSER: %v", err)
		}
		t.Cleanup(func() { admin.Do(context.Background(), "ACL", "DELUSER", "xsync-test") })

		_, err := xsync.New(xsync.Options{Addr: redisAddr(t), Username: "xsync-test", Password: secret})
		if err == nil {
			t.Fatal("New with a password the server refuses: no error")
		}
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("error shows the password: %v", err)
		}
		if !strings.Contains(err.Error(), redisAddr(t)) {
			t.Fatalf("error does not name the address: %v", err)
		}
		_, err = xsync.New(xsync.Options{URL: "redis://xsync-test:" + secret + "@" + redisAddr(t)})
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Fatalf("New with a refused URL password: err = %v (want an error without the password)", err)
		}
		c, err := xsync.New(xsync.Options{Addr: redisAddr(t), Username: "xsync-test", Password: "right-password"})
		if err != nil {
			t.Fatalf("New with the right password: %v", err)
		}
		if err := c.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("failed Register leaves the label free", func(t *testing.T) {
		if _, err := xsync.Register("flaky", xsync.Options{Addr: "127.0.0.1:1"}); err == nil {
			t.Fatal("Register to an unreachable server: no error")
		}
		c, err := xsync.Register("flaky", xsync.Options{Addr: redisAddr(t)})
		if err != nil {
			t.Fatalf("Register after a failed one: %v", err)
		}
		if err := c.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestClient_CloseIsIdempotentAndLeakFree(t *testing.T) {
	defer goleak.VerifyNone(t)
	c, err := xsync.New(xsync.Options{Addr: redisAddr(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DB(2); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Close(ctx); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := c.DB(2); !errors.Is(err, xsync.ErrClosed) {
		t.Fatalf("DB after Close: err = %v, want ErrClosed", err)
	}
	if _, err := c.DB(9); !errors.Is(err, xsync.ErrClosed) {
		t.Fatalf("DB of a new number after Close: err = %v, want ErrClosed", err)
	}
}

func TestClient_CloseConcurrentCallsAllReturn(t *testing.T) {
	c, err := xsync.New(xsync.Options{Addr: redisAddr(t)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Close(context.Background()); err != nil {
				t.Errorf("Close: %v", err)
			}
		}()
	}
	wg.Wait()
}

func TestClient_CallersActorSystemIsNotShutDown(t *testing.T) {
	sys := actor.NewActorSystem(actor.WithLoggerFactory(xsyncTestLogger), actor.WithDeadLetterThrottleInterval(10*time.Millisecond))
	defer sys.Shutdown()
	c, err := xsync.New(xsync.Options{Addr: redisAddr(t), System: sys})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sys.IsStopped() {
		t.Fatal("Close shut down the caller's actor system")
	}
	// The caller's system still works.
	pid := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if s, ok := ctx.Message().(string); ok {
			ctx.Respond(s + "!")
		}
	}))
	got, err := sys.Root.RequestFuture(pid, "hi", time.Second).Result()
	if err != nil || got != "hi!" {
		t.Fatalf("caller's actor answered %v, %v", got, err)
	}
	sys.Root.StopFuture(pid).Wait()
}

// TestClient_PrintsNothingByDefault runs a client's whole life, a dead
// letter included, with default options and checks that nothing reached
// stdout or stderr.
func TestClient_PrintsNothingByDefault(t *testing.T) {
	out := captureOutput(t, func() {
		c, err := xsync.New(xsync.Options{Addr: redisAddr(t)})
		if err != nil {
			t.Error(err)
			return
		}
		db, err := c.DB(1)
		if err != nil {
			t.Error(err)
		}
		_ = db.Ping(context.Background()).Err()
		if err := c.Close(context.Background()); err != nil {
			t.Error(err)
		}
		// Calls after Close, which reach stopped actors, print nothing either.
		_, _ = c.DB(1)
		_, _ = c.DB(7)
	})
	if out != "" {
		t.Fatalf("the library printed %q with default options", out)
	}
}

// TestClient_LogsGoThroughTheCallersLogger shows that the actor system's own
// lines reach Options.Logger.
func TestClient_LogsGoThroughTheCallersLogger(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	var c *xsync.Client
	out := captureOutput(t, func() {
		var err error
		c, err = xsync.New(xsync.Options{Addr: redisAddr(t), Logger: zap.New(core)})
		if err != nil {
			t.Error(err)
			return
		}
		if err := c.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	if out != "" {
		t.Fatalf("printed %q instead of logging through the Logger", out)
	}
	if logs.FilterMessage("actor system started").Len() != 1 {
		t.Fatalf("protoactor's start line did not reach the Logger; got %v", logs.All())
	}
}

// captureOutput runs f with os.Stdout and os.Stderr sent to a pipe and
// returns what was written.
func captureOutput(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = w, w
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() { _, _ = io.Copy(&buf, r); close(done) }()
	func() {
		defer func() { os.Stdout, os.Stderr = stdout, stderr }()
		f()
	}()
	_ = w.Close()
	<-done
	_ = r.Close()
	return buf.String()
}
