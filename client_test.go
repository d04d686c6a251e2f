package xsync_test

import (
	"bytes"
	"context"
	"errors"
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
)

func TestClient_DBIsIsolated(t *testing.T) {
	c := newClient(t)
	ctx := t.Context()
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
			if strings.Contains(err.Error(), "redisx") {
				t.Fatalf("error names an engine-room package the caller does not know: %v", err)
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
		if err := admin.Do(t.Context(), "ACL", "SETUSER", "xsync-test", "on", ">right-password", "~*", "&*", "+@all").Err(); err != nil {
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
		if err := c.Close(t.Context()); err != nil {
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
		if err := c.Close(t.Context()); err != nil {
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
	ctx := t.Context()
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
			if err := c.Close(t.Context()); err != nil {
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
	if err := c.Close(t.Context()); err != nil {
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
		_ = db.Ping(t.Context()).Err()
		if err := c.Close(t.Context()); err != nil {
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
		if err := c.Close(t.Context()); err != nil {
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
