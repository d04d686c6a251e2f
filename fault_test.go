package xsync_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/redisxsync/xsync"
	"github.com/redisxsync/xsync/internal/testredis"
	"github.com/redisxsync/xsync/redisx"
)

// faultProxy passes TCP connections through to Redis. While replies are
// cut, a connection that gets a reply from Redis is closed instead of
// passing it on: the command ran, its answer is lost, as when the network
// fails between the two.
type faultProxy struct {
	ln     net.Listener
	target string
	cut    atomic.Bool

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

// startFaultProxy listens on a free local port; it is stopped, with every
// connection closed and its goroutines ended, when the test ends.
func startFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

func (p *faultProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { // requests: passed on as they are
			defer p.wg.Done()
			_, _ = io.Copy(server, client)
			_ = server.Close()
		}()
		go func() { // replies: dropped, with the connection, while cut
			defer p.wg.Done()
			defer client.Close()
			defer server.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := server.Read(buf)
				if n > 0 && p.cut.Load() {
					return
				}
				if n > 0 {
					if _, werr := client.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// A take call that ran in Redis but whose answer was lost leaves a grant
// behind; the waiter is tried again with the same token, which finds it.
// If the waiter is cancelled before that, the grant is handed back: the
// container is not kept from everyone for its interval.
func TestPool_GrantWhoseAnswerWasLostIsHandedBackWhenTheWaiterLeaves(t *testing.T) {
	proxy := startFaultProxy(t, redisAddr(t))
	core, logs := observer.New(zap.WarnLevel)
	prefix := testPrefix(t)
	c := newClient(t, withPrefix(prefix), func(o *xsync.Options) { o.Addr, o.Logger = proxy.addr(), zap.New(core) })
	p := c.Pool("accounts")
	direct := newClient(t, withPrefix(prefix)).Pool("accounts")
	ctx := t.Context()
	poolSettled(t, p) // the take script is loaded: EVALSHA runs it
	put(t, p, xsync.Container{ID: "a", Interval: time.Hour})
	before := get(t, direct, "a")

	proxy.cut.Store(true)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f := p.WaitAskOneAsync(wctx)
	eventually(t, 10*time.Second, "a take that ran and whose answer was lost", func() bool {
		return get(t, direct, "a").UsageCount == before.UsageCount+1 &&
			logs.FilterMessage("pool take failed").Len() > 0
	})
	proxy.cut.Store(false)
	cancel()
	if _, err := f.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait: %v, want context.Canceled", err)
	}
	eventually(t, 10*time.Second, "the lost grant handed back", func() bool {
		return get(t, direct, "a") == before
	})
}

// The same when the client closes while the waiter waits to be tried again.
func TestPool_CloseHandsBackAGrantWhoseAnswerWasLost(t *testing.T) {
	proxy := startFaultProxy(t, redisAddr(t))
	core, logs := observer.New(zap.WarnLevel)
	prefix := testPrefix(t)
	c, err := xsync.New(xsync.Options{Addr: proxy.addr(), KeyPrefix: prefix, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	p := c.Pool("accounts")
	direct := newClient(t, withPrefix(prefix)).Pool("accounts")
	ctx := t.Context()
	poolSettled(t, p)
	put(t, p, xsync.Container{ID: "a", Interval: time.Hour})
	before := get(t, direct, "a")

	proxy.cut.Store(true)
	f := p.WaitAskOneAsync(ctx)
	eventually(t, 10*time.Second, "a take that ran and whose answer was lost", func() bool {
		return get(t, direct, "a").UsageCount == before.UsageCount+1 &&
			logs.FilterMessage("pool take failed").Len() > 0
	})
	proxy.cut.Store(false)
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Wait(ctx); !errors.Is(err, xsync.ErrClosed) {
		t.Fatalf("Wait: %v, want ErrClosed", err)
	}
	// Close waits for the hand-back: it is done when Close returns.
	if got := get(t, direct, "a"); got != before {
		t.Fatalf("after Close: %+v, want %+v: the lost grant was not handed back", got, before)
	}
}

// A lock attempt that ran in Redis but whose answer was lost leaves the keys
// held by the waiter's token; the waiter tries again with that token, which
// finds them. If the waiter gives up before that, the keys are released: they
// are not kept from everyone for the lease's TTL.
func TestLock_KeysWhoseGrantWasLostAreReleasedWhenTheWaiterLeaves(t *testing.T) {
	proxy := startFaultProxy(t, redisAddr(t))
	core, logs := observer.New(zap.WarnLevel)
	prefix := testPrefix(t)
	c := newClient(t, withPrefix(prefix), func(o *xsync.Options) { o.Addr, o.Logger = proxy.addr(), zap.New(core) })
	ctx := t.Context()
	// The scripts are loaded, so that EVALSHA runs them while replies are cut.
	warm, err := c.Lock(ctx, []string{"job"})
	if err != nil {
		t.Fatal(err)
	}
	if err := warm.Release(ctx); err != nil {
		t.Fatal(err)
	}

	proxy.cut.Store(true)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f := c.LockAsync(wctx, []string{"job"}, xsync.TTL(time.Minute))
	eventually(t, 10*time.Second, "an attempt that took the key and whose answer was lost", func() bool {
		return len(lockKeysLeft(t, prefix, 0)) == 1 && logs.FilterMessage("lock attempt failed; retrying").Len() > 0
	})
	cancel()
	proxy.cut.Store(false)
	if _, err := f.Wait(ctx); !errors.Is(err, context.Canceled) || !errors.Is(err, xsync.ErrNotObtained) {
		t.Fatalf("Wait: %v, want ErrNotObtained and context.Canceled", err)
	}
	eventually(t, 10*time.Second, "the key released, long before its 1m TTL", func() bool {
		return len(lockKeysLeft(t, prefix, 0)) == 0
	})
}

// A waiter whose earlier attempt failed (its answer lost, as to a master
// that died) may hold the key by that attempt, and gives it back when it
// leaves. A waiter granted the key by a transfer leaves the wait too, but
// the key it holds now is its lease's: it must not give it back. It did
// after a Sentinel failover: every waiter had failed attempts, and each
// transfer was released at once by its new holder's client, handed to the
// next client and released again, while each holder went on believing it
// held the key (Lost stayed open; only Release said ErrLockNotHeld).
func TestLock_TransferToAWaiterWhoseAnswerWasLostKeepsTheKey(t *testing.T) {
	proxy := startFaultProxy(t, redisAddr(t))
	core, logs := observer.New(zap.WarnLevel)
	prefix := testPrefix(t)
	holder := newClient(t, withPrefix(prefix))
	c := newClient(t, withPrefix(prefix), func(o *xsync.Options) { o.Addr, o.Logger = proxy.addr(), zap.New(core) })
	ctx := t.Context()
	// The scripts are loaded, so that EVALSHA runs them while replies are cut.
	warm, err := c.Lock(ctx, []string{"job"})
	if err != nil {
		t.Fatal(err)
	}
	if err := warm.Release(ctx); err != nil {
		t.Fatal(err)
	}
	first, err := holder.Lock(ctx, []string{"job"}, xsync.TTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}

	// The waiter's attempt queues it, with its ticket, but its answer is
	// lost: the waiter is unsure whether it took the key.
	proxy.cut.Store(true)
	f := c.LockAsync(ctx, []string{"job"}, xsync.TTL(time.Minute))
	eventually(t, 10*time.Second, "a lock attempt whose answer was lost", func() bool {
		return logs.FilterMessage("lock attempt failed; retrying").Len() > 0
	})
	proxy.cut.Store(false)
	settled(t, c, 1) // tried again: blocked by the holder, still queued

	// The release transfers the key to the waiter's ticket.
	if err := first.Release(ctx); err != nil {
		t.Fatal(err)
	}
	lease, err := f.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if lease.Fence("job") != first.Fence("job")+1 {
		t.Fatalf("fence %d after %d: the key was not handed straight to the waiter", lease.Fence("job"), first.Fence("job"))
	}
	settled(t, c, 0) // every call of the waiter's client answered
	raw := rawDB(t, 0)
	if got, err := raw.Get(ctx, redisx.Keys{Prefix: prefix}.Lock("job")).Result(); err != nil || got != lease.Token() {
		t.Fatalf("lock key holds %q (%v) while the lease is held; want its token %q", got, err, lease.Token())
	}
	select {
	case <-lease.Lost():
		t.Fatal("the transferred lease reported lost")
	default:
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatalf("Release of the transferred lease: %v", err)
	}
}

// A take that reaches a replica (a client still pointed at a master just
// demoted, which came back empty) fails as Redis unavailable and is tried
// again: it does not read the replica's empty pool as "no container" and
// leave its waiter waiting for a Put. Here the single test server is made
// a replica of nothing without the pool's keys, then a master again with
// them, restored without a word published.
func TestPool_TakeThatReachesAReplicaIsTriedAgain(t *testing.T) {
	requireTopology(t, testredis.Single)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	prefix := testPrefix(t)
	p := newClient(t, withPrefix(prefix)).Pool("accounts")
	put(t, p, xsync.Container{ID: "a"})
	raw := rawDB(t, 0)
	dumps := map[string]string{}
	for _, k := range keysMatching(t, raw, prefix+":pool*") {
		d, err := raw.Dump(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		dumps[k] = d
		if err := raw.Del(ctx, k).Err(); err != nil {
			t.Fatal(err)
		}
	}
	promote := demote(t, raw)
	defer promote()
	f := p.WaitAskOneAsync(ctx)
	eventually(t, 10*time.Second, "the take tried on the replica", func() bool {
		state, err := xsync.PoolState(ctx, p)
		return err == nil && strings.Contains(state, "tried=true") && strings.Contains(state, "attempting=false")
	})
	promote()
	for k, d := range dumps {
		if err := raw.RestoreReplace(ctx, k, 0, d).Err(); err != nil {
			t.Fatal(err)
		}
	}
	got, err := f.Wait(ctx)
	if err != nil {
		t.Fatalf("the waiter, once the master holds the container again: %v", err)
	}
	if got.ID != "a" {
		t.Fatalf("got %q, want a", got.ID)
	}
}
