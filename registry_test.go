package xsync_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redisxsync/xsync"
)

func closeAll(t testing.TB) {
	t.Helper()
	if err := xsync.CloseAll(t.Context()); err != nil {
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
	if err := crawler.Close(t.Context()); err != nil {
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
	// What is checked is the registry under concurrent Registers, not how
	// fast one connects: 100 clients that each build their actor system at
	// once, under the race detector, on a loaded machine, starve the
	// goroutines still waiting for their first PING for longer than the
	// default 5s at times (an i/o timeout). A minute keeps a server that
	// does not answer a failure.
	opts := xsync.Options{Addr: redisAddr(t), ConnectTimeout: time.Minute}
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
			c, err := xsync.Register(fmt.Sprintf("worker-%d", i), opts)
			if err != nil {
				t.Errorf("Register %d: %v", i, err)
				return
			}
			clients[i] = c
			defaults[i] = xsync.Default()
			// Everybody also races for one shared label: one must win.
			_, dupWins[i] = xsync.Register("shared", opts)
		}()
	}
	close(start)
	wg.Wait()

	def := xsync.Default()
	if def == nil {
		t.Fatal("Default is nil after 100 Registers")
	}
	for i, d := range defaults {
		if clients[i] != nil && d != def { // a failed Register was reported above
			t.Fatalf("goroutine %d saw Default %v, later Default is %v: Default changed", i, d.Label(), def.Label())
		}
	}
	for i, c := range clients {
		if c == nil {
			continue
		}
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
