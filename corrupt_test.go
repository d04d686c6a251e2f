package xsync_test

import (
	"context"
	"errors"
	"io"
	"maps"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync"
	"github.com/redisxsync/xsync/internal/testredis"
	"github.com/redisxsync/xsync/redisx"
)

// snapshot is every key under prefix with its serialized value.
func snapshot(t testing.TB, db redis.UniversalClient, prefix string) map[string]string {
	t.Helper()
	ctx := t.Context()
	keys := keysMatching(t, db, prefix+":*")
	out := map[string]string{}
	for _, k := range keys {
		v, err := db.Dump(ctx, k).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		out[k] = v
	}
	return out
}

// Garbage of the wrong type or value under any key a pool uses fails every
// operation with ErrCorrupt, and changes nothing in Redis.
func TestPool_CorruptDataFailsWithErrCorruptAndChangesNothing(t *testing.T) {
	type op struct {
		name string
		run  func(ctx context.Context, p *xsync.Pool) error
	}
	ops := []op{
		{"AskOne", func(ctx context.Context, p *xsync.Pool) error { _, err := p.AskOne(ctx); return err }},
		{"Ask(2)", func(ctx context.Context, p *xsync.Pool) error { _, err := p.Ask(ctx, 2); return err }},
		{"AcquireRandomOne", func(ctx context.Context, p *xsync.Pool) error { _, err := p.AcquireRandomOne(ctx); return err }},
		{"WaitAskOne", func(ctx context.Context, p *xsync.Pool) error { _, err := p.WaitAskOne(ctx); return err }},
		{"Get(a)", func(ctx context.Context, p *xsync.Pool) error { _, err := p.Get(ctx, "a"); return err }},
		{"Stats", func(ctx context.Context, p *xsync.Pool) error { _, err := p.Stats(ctx); return err }},
		{"Put(new)", func(ctx context.Context, p *xsync.Pool) error { return p.Put(ctx, xsync.Container{ID: "new"}) }},
		{"Put(a)", func(ctx context.Context, p *xsync.Pool) error { return p.Put(ctx, xsync.Container{ID: "a"}) }},
		{"Cooldown(a)", func(ctx context.Context, p *xsync.Pool) error { return p.Cooldown(ctx, "a", time.Second) }},
		{"Report(a)", func(ctx context.Context, p *xsync.Pool) error { return p.Report(ctx, "a", xsync.Blocked) }},
		{"Remove(b)", func(ctx context.Context, p *xsync.Pool) error { _, err := p.Remove(ctx, "b"); return err }},
	}
	// touchesA: the operations that read container "a" (the others may
	// succeed when only a's record is garbage).
	touchesA := map[string]bool{"AskOne": true, "Ask(2)": true, "WaitAskOne": true, "Get(a)": true, "Put(a)": true, "Cooldown(a)": true, "Report(a)": true}
	cases := []struct {
		name    string
		garbage func(ctx context.Context, db redis.UniversalClient, key func(string) string) error
		onlyA   bool
	}{
		{"ready is a string", func(ctx context.Context, db redis.UniversalClient, key func(string) string) error {
			return db.Set(ctx, key("ready"), "x", 0).Err() // SET replaces a key of any type
		}, false},
		{"expiry is a hash", func(ctx context.Context, db redis.UniversalClient, key func(string) string) error {
			db.Del(ctx, key("expiry"))
			return db.HSet(ctx, key("expiry"), "a", "1").Err()
		}, false},
		{"meta is a string", func(ctx context.Context, db redis.UniversalClient, key func(string) string) error {
			return db.Set(ctx, key("meta"), "x", 0).Err()
		}, false},
		{"data is a list", func(ctx context.Context, db redis.UniversalClient, key func(string) string) error {
			db.Del(ctx, key("data"))
			return db.RPush(ctx, key("data"), "x").Err()
		}, false},
		{"the purge counter is a hash", func(ctx context.Context, db redis.UniversalClient, key func(string) string) error {
			return db.HSet(ctx, key("expired"), "n", "1").Err()
		}, false},
		{"the purge counter is not an integer", func(ctx context.Context, db redis.UniversalClient, key func(string) string) error {
			return db.Set(ctx, key("expired"), "many", 0).Err()
		}, false},
		{"a's record does not decode", func(ctx context.Context, db redis.UniversalClient, key func(string) string) error {
			return db.HSet(ctx, key("meta"), "a", "1:2:3").Err()
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			prefix := testPrefix(t)
			p := newClient(t, withPrefix(prefix)).Pool("accounts")
			db := rawDB(t, 0)
			// a expires in an hour (so it has an expiry entry), and an
			// expired container waits to be purged.
			put(t, p, xsync.Container{ID: "a", TTL: time.Hour}, xsync.Container{ID: "b"},
				xsync.Container{ID: "old", TTL: time.Millisecond})
			eventually(t, 5*time.Second, "old expired", func() bool { return serverNow(t).After(get(t, p, "a").CreatedAt.Add(2 * time.Millisecond)) })
			key := func(part string) string { return redisx.Keys{Prefix: prefix}.Pool("accounts", part) }
			ctx := t.Context()
			if tc.onlyA {
				// A take purges expired containers before it meets a's
				// record, as housekeeping of its own: done first here, so
				// that the snapshot shows what the failing request did.
				stats(t, p)
			}
			if err := tc.garbage(ctx, db, key); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, db, prefix)
			for _, o := range ops {
				if tc.onlyA && !touchesA[o.name] {
					continue
				}
				octx, cancel := context.WithTimeout(ctx, 2*time.Second)
				err := o.run(octx, p)
				cancel()
				if !errors.Is(err, xsync.ErrCorrupt) || errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("%s: %v, want ErrCorrupt at once", o.name, err)
				}
				if after := snapshot(t, db, prefix); !maps.Equal(before, after) {
					t.Fatalf("%s changed Redis on corrupt data", o.name)
				}
			}
		})
	}
}

// Garbage under a lock key, a fencing counter or a turn queue fails Lock
// and TryLock at once with ErrCorrupt (Lock does not retry until its
// context ends), and changes nothing: the other key of a multi-key lock is
// not taken.
func TestLock_CorruptDataFailsWithErrCorruptAndChangesNothing(t *testing.T) {
	cases := []struct {
		name    string
		garbage func(ctx context.Context, db redis.UniversalClient, k redisx.Keys) error
	}{
		{"the lock key is a hash", func(ctx context.Context, db redis.UniversalClient, k redisx.Keys) error {
			return db.HSet(ctx, k.Lock("{job}b"), "x", "y").Err()
		}},
		{"the fencing counter is not an integer", func(ctx context.Context, db redis.UniversalClient, k redisx.Keys) error {
			return db.Set(ctx, k.Fence("{job}b"), "seven", 0).Err()
		}},
		{"the fencing counter is a list", func(ctx context.Context, db redis.UniversalClient, k redisx.Keys) error {
			return db.RPush(ctx, k.Fence("{job}b"), "7").Err()
		}},
		{"the turn queue is a string", func(ctx context.Context, db redis.UniversalClient, k redisx.Keys) error {
			return db.Set(ctx, k.LockQueue("{job}b"), "x", 0).Err()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			prefix := testPrefix(t)
			c := newClient(t, withPrefix(prefix))
			db := rawDB(t, 0)
			ctx := t.Context()
			if err := tc.garbage(ctx, db, redisx.Keys{Prefix: prefix}); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, db, prefix)
			if _, err := c.TryLock(ctx, []string{"{job}a", "{job}b"}); !errors.Is(err, xsync.ErrCorrupt) {
				t.Errorf("TryLock: %v, want ErrCorrupt", err)
			}
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if _, err := c.Lock(lctx, []string{"{job}a", "{job}b"}); !errors.Is(err, xsync.ErrCorrupt) || lctx.Err() != nil {
				t.Errorf("Lock: %v, want ErrCorrupt at once", err)
			}
			if after := snapshot(t, db, prefix); !maps.Equal(before, after) {
				t.Fatalf("Redis changed: %v, was %v", after, before)
			}
		})
	}
}

// The same for a lock of one key, which lock_acquire checks as it reads
// rather than all at once: free with nobody queued, free with another
// client queued for its turn, and held (the waiter queues).
func TestLock_CorruptDataOfOneKeyFailsWithErrCorruptAndChangesNothing(t *testing.T) {
	garbage := []struct {
		name string
		put  func(ctx context.Context, db redis.UniversalClient, k redisx.Keys) error
	}{
		{"the lock key is a hash", func(ctx context.Context, db redis.UniversalClient, k redisx.Keys) error {
			return db.HSet(ctx, k.Lock("job"), "x", "y").Err()
		}},
		{"the fencing counter is not an integer", func(ctx context.Context, db redis.UniversalClient, k redisx.Keys) error {
			return db.Set(ctx, k.Fence("job"), "seven", 0).Err()
		}},
		{"the fencing counter is a list", func(ctx context.Context, db redis.UniversalClient, k redisx.Keys) error {
			return db.RPush(ctx, k.Fence("job"), "7").Err()
		}},
		{"the turn queue is a string", func(ctx context.Context, db redis.UniversalClient, k redisx.Keys) error {
			return db.Set(ctx, k.LockQueue("job"), "x", 0).Err()
		}},
		{"the ticket hash is a string", func(ctx context.Context, db redis.UniversalClient, k redisx.Keys) error {
			return db.Set(ctx, k.LockTickets("job"), "x", 0).Err()
		}},
	}
	states := []struct {
		name string
		set  func(ctx context.Context, db redis.UniversalClient, k redisx.Keys) error
	}{
		{"free", func(context.Context, redis.UniversalClient, redisx.Keys) error { return nil }},
		{"another client's turn", func(ctx context.Context, db redis.UniversalClient, k redisx.Keys) error {
			return db.ZAdd(ctx, k.LockQueue("job"), redis.Z{Score: 1, Member: "someone"}).Err()
		}},
		{"held", func(ctx context.Context, db redis.UniversalClient, k redisx.Keys) error {
			return db.Set(ctx, k.Lock("job"), "someone", time.Minute).Err()
		}},
	}
	for _, st := range states {
		for _, g := range garbage {
			if st.name == "held" && g.name == "the lock key is a hash" {
				continue // held is a string
			}
			t.Run(st.name+"/"+g.name, func(t *testing.T) {
				prefix := testPrefix(t)
				c := newClient(t, withPrefix(prefix))
				db := rawDB(t, 0)
				ctx := t.Context()
				k := redisx.Keys{Prefix: prefix}
				// The state first: the garbage may replace a key it wrote.
				if err := st.set(ctx, db, k); err != nil {
					t.Fatal(err)
				}
				if err := g.put(ctx, db, k); err != nil {
					t.Fatal(err)
				}
				before := snapshot(t, db, prefix)
				if _, err := c.TryLock(ctx, []string{"job"}); !errors.Is(err, xsync.ErrCorrupt) {
					t.Errorf("TryLock: %v, want ErrCorrupt", err)
				}
				lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				if _, err := c.Lock(lctx, []string{"job"}); !errors.Is(err, xsync.ErrCorrupt) || lctx.Err() != nil {
					t.Errorf("Lock: %v, want ErrCorrupt at once", err)
				}
				if after := snapshot(t, db, prefix); !maps.Equal(before, after) {
					t.Fatalf("Redis changed: %v, was %v", after, before)
				}
			})
		}
	}
}

// Release on a turn queue that holds garbage fails with ErrCorrupt and
// leaves the key as it was.
func TestLease_ReleaseOnCorruptQueueIsErrCorrupt(t *testing.T) {
	prefix := testPrefix(t)
	c := newClient(t, withPrefix(prefix))
	db := rawDB(t, 0)
	ctx := t.Context()
	lease, err := c.Lock(ctx, []string{"job"}, xsync.TTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set(ctx, redisx.Keys{Prefix: prefix}.LockQueue("job"), "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, db, prefix)
	if err := lease.Release(ctx); !errors.Is(err, xsync.ErrCorrupt) {
		t.Fatalf("Release: %v, want ErrCorrupt", err)
	}
	if after := snapshot(t, db, prefix); !maps.Equal(before, after) {
		t.Fatal("a Release on corrupt data changed Redis")
	}
}

// Release with another client's waiter queued for the key, on a fence
// counter or a ticket hash that holds garbage: ErrCorrupt, and nothing
// changed (the waiter's place in the queue included).
func TestLease_ReleaseOnCorruptDataWithAWaiterIsErrCorruptAndChangesNothing(t *testing.T) {
	for _, tc := range corruptReleaseCases("job") {
		t.Run(tc.name, func(t *testing.T) {
			prefix := testPrefix(t)
			c, other := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))
			db := rawDB(t, 0)
			ctx := t.Context()
			lease, err := c.Lock(ctx, []string{"job"}, xsync.TTL(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			waiting := other.LockAsync(ctx, []string{"job"}, xsync.TTL(time.Minute))
			defer waiting.Cancel()
			settled(t, other, 1)
			if err := tc.put(ctx, db, redisx.Keys{Prefix: prefix}); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, db, prefix)
			if err := lease.Release(ctx); !errors.Is(err, xsync.ErrCorrupt) {
				t.Fatalf("Release: %v, want ErrCorrupt", err)
			}
			if after := snapshot(t, db, prefix); !maps.Equal(before, after) {
				t.Fatalf("a Release on corrupt data changed Redis: %v, was %v", after, before)
			}
		})
	}
}

// A Release whose answer is lost with the connection fails with
// ErrUnavailable, and the cause stays reachable with errors.As.
func TestLease_ReleaseUnderAConnectionCutIsErrUnavailable(t *testing.T) {
	proxy := startFaultProxy(t, redisAddr(t))
	c := newClient(t, func(o *xsync.Options) { o.Addr = proxy.addr() })
	ctx := t.Context()
	lease, err := c.Lock(ctx, []string{"job"}, xsync.TTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	proxy.cut.Store(true)
	err = lease.Release(ctx)
	proxy.cut.Store(false)
	if !errors.Is(err, xsync.ErrUnavailable) {
		t.Fatalf("Release with its answer lost: %v, want ErrUnavailable", err)
	}
	var opErr *net.OpError
	if !errors.Is(err, io.EOF) && !errors.As(err, &opErr) {
		t.Fatalf("Release: %v: the transport error is not reachable", err)
	}
}

// corruptReleaseCase puts garbage where a release that hands key on writes
// without reading first.
type corruptReleaseCase struct {
	name string
	put  func(ctx context.Context, db redis.UniversalClient, k redisx.Keys) error
}

// corruptReleaseCases are the garbage a release that hands key on must
// refuse before it writes: a fencing counter that is not an integer, a
// ticket hash of another type.
func corruptReleaseCases(key string) []corruptReleaseCase {
	return []corruptReleaseCase{
		{"the fencing counter is not an integer", func(ctx context.Context, db redis.UniversalClient, k redisx.Keys) error {
			return db.Set(ctx, k.Fence(key), "seven", 0).Err()
		}},
		{"the ticket hash is a string", func(ctx context.Context, db redis.UniversalClient, k redisx.Keys) error {
			return db.Set(ctx, k.LockTickets(key), "x", 0).Err()
		}},
	}
}

// A lock script that meets a server refusing writes (a master turned
// replica by a failover, here by REPLICAOF of a server that is not there)
// fails with ErrUnavailable, which a waiting Lock retries, not with
// ErrCorrupt, which would end it: the refusal is the server's, not the
// data's.
func TestLock_OnAServerThatRefusesWritesIsUnavailableNotCorrupt(t *testing.T) {
	requireTopology(t, testredis.Single)
	ctx := t.Context()
	c := newClient(t)
	warm, err := c.Lock(ctx, []string{"k"}) // scripts loaded, connections made
	if err != nil {
		t.Fatal(err)
	}
	if err := warm.Release(ctx); err != nil {
		t.Fatal(err)
	}
	defer demote(t, rawDB(t, 0))()
	_, err = c.TryLock(ctx, []string{"k"})
	if !errors.Is(err, xsync.ErrUnavailable) || errors.Is(err, xsync.ErrCorrupt) {
		t.Fatalf("TryLock on a server refusing writes: %v, want ErrUnavailable and not ErrCorrupt", err)
	}
}
