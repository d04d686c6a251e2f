package xsync_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync"
	"github.com/redisxsync/xsync/redisx"
)

// The Redis commands each path of the lock scripts runs, counted by INFO
// commandstats (the commands inside a script included): every command
// there costs Redis time on the critical path. Each count is a
// specification: one more command on a path fails its test.

// scriptCommands is what the deployment ran since before, by command, a
// shard channel's SPUBLISH counted as PUBLISH, the handshake of a new
// connection (the counts' own) left out.
func scriptCommands(t *testing.T, before map[string]int64) map[string]int64 {
	t.Helper()
	diff := commandsSince(t, rawDB(t, 0), before)
	delete(diff, "hello")
	if n := diff["spublish"]; n > 0 {
		diff["publish"] += n
		delete(diff, "spublish")
	}
	return diff
}

// wantCommands fails t unless got is want.
func wantCommands(t *testing.T, what string, got map[string]int64, want map[string]int64) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Errorf("%s ran %s, want %s", what, countsString(got), countsString(want))
	}
}

func countsString(m map[string]int64) string {
	var n int64
	for _, c := range m {
		n += c
	}
	return fmt.Sprintf("%d commands %v", n, m)
}

// warmClients loads the lock scripts on the node of key, from each client,
// and subscribes each to the key's release channel. Each warm-up release
// is published to the clients subscribed by then; warmClients waits until
// they heard it, so that no late message wakes a waiter while a test
// counts.
func warmClients(t *testing.T, key string, cs ...*xsync.Client) {
	t.Helper()
	for _, c := range cs {
		l, err := c.Lock(t.Context(), []string{key})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range cs {
		// c heard its own release and those of the clients after it.
		waitHeard(t, c, len(cs)-i)
	}
}

// heard is how many messages c's lock manager heard on its release
// channels.
func heard(t *testing.T, c *xsync.Client) int {
	t.Helper()
	n, err := xsync.LockMessagesHeard(t.Context(), c)
	if err != nil {
		t.Fatalf("LockMessagesHeard: %v", err)
	}
	return n
}

// waitHeard waits until c heard n messages on its release channels.
func waitHeard(t *testing.T, c *xsync.Client, n int) {
	t.Helper()
	eventually(t, 5*time.Second, fmt.Sprintf("%d messages heard", n), func() bool {
		return heard(t, c) >= n
	})
}

// confirmed waits until the transferred lease of key under prefix holds
// its full TTL: its confirmation (a renewal) is done, and runs no more.
func confirmed(t *testing.T, prefix, key string) {
	t.Helper()
	raw := rawDB(t, 0)
	eventually(t, 5*time.Second, "the transferred lease confirmed", func() bool {
		return raw.PTTL(t.Context(), redisx.Keys{Prefix: prefix}.Lock(key)).Val() > 10*time.Second
	})
}

// A free key nobody queues for: the acquisition runs 6 commands (the
// script, GET of the key, ZRANGE of the queue, HDEL of a ticket the client
// may have left, which checks the ticket hash's type too, the fence's
// INCR, SET), the release 5 (the script, GET, ZPOPMIN of the queue, DEL,
// PUBLISH): no TIME, no other write to the queue or the tickets.
func TestLock_UncontendedLockRunsSixCommandsAndReleaseFive(t *testing.T) {
	prefix := testPrefix(t)
	c := newClient(t, withPrefix(prefix))
	warmClients(t, "k", c)
	raw := rawDB(t, 0)
	before := commandCounts(t, raw)
	l, err := c.Lock(t.Context(), []string{"k"})
	if err != nil {
		t.Fatal(err)
	}
	wantCommands(t, "Lock", scriptCommands(t, before),
		map[string]int64{"evalsha": 1, "get": 1, "zrange": 1, "hdel": 1, "incr": 1, "set": 1})
	before = commandCounts(t, raw)
	if err := l.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	wantCommands(t, "Release", scriptCommands(t, before),
		map[string]int64{"evalsha": 1, "get": 1, "zpopmin": 1, "del": 1, "publish": 1})
	if left := lockKeysLeft(t, prefix, 0); len(left) != 0 {
		t.Fatalf("lock keys left: %v", left)
	}
}

// A release that hands the key to the next waiter of its own client,
// nobody else queued, runs 5 commands: the script, GET, ZPOPMIN, the
// fence's INCR, SET. No TIME: the waiter dates its lease from the call.
func TestLock_SameClientHandOffRunsFiveCommands(t *testing.T) {
	prefix := testPrefix(t)
	ctx := t.Context()
	c := newClient(t, withPrefix(prefix))
	warmClients(t, "k", c)
	holder, err := c.Lock(ctx, []string{"k"}, xsync.TTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	// A lease no longer than a transfer's needs no confirmation.
	f := c.LockAsync(ctx, []string{"k"}, xsync.TTL(transferLease))
	settled(t, c, 1)
	before := commandCounts(t, rawDB(t, 0))
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	next, err := f.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantCommands(t, "the release to the same client's waiter", scriptCommands(t, before),
		map[string]int64{"evalsha": 1, "get": 1, "zpopmin": 1, "incr": 1, "set": 1})
	if next.Fence("k") != holder.Fence("k")+1 {
		t.Errorf("fences %d then %d, want one more", holder.Fence("k"), next.Fence("k"))
	}
	_ = next.Release(ctx)
}

// A waiter that finds the key held files its ticket: 10 commands (the
// script, TIME, GET and PTTL of the key, GET of the fence counter that
// checks it, ZADD to the queue and HSET of the ticket, HLEN, and the
// queue's and the new ticket hash's PEXPIRE). The release that transfers
// the key to it, when its own client has no more waiters, runs 9: the
// script, TIME (the date of the published transfer), GET, ZPOPMIN, HGET of
// the ticket, INCR, SET, HDEL of the ticket, PUBLISH.
func TestLock_CrossClientHandOffRunsNineCommandsAfterABlockedAttemptOfTen(t *testing.T) {
	prefix := testPrefix(t)
	ctx := t.Context()
	a, b := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))
	warmClients(t, "k", a, b)
	raw := rawDB(t, 0)
	holder, err := a.Lock(ctx, []string{"k"}, xsync.TTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	before := commandCounts(t, raw)
	f := b.LockAsync(ctx, []string{"k"}, xsync.TTL(transferLease))
	settled(t, b, 1)
	wantCommands(t, "the blocked attempt", scriptCommands(t, before),
		map[string]int64{"evalsha": 1, "time": 1, "get": 2, "pttl": 1, "zadd": 1, "hset": 1, "hlen": 1, "pexpire": 2})
	before = commandCounts(t, raw)
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	wantCommands(t, "the release to another client's waiter", scriptCommands(t, before),
		map[string]int64{"evalsha": 1, "time": 1, "get": 1, "zpopmin": 1, "hget": 1, "incr": 1, "set": 1, "hdel": 1, "publish": 1})
	lease, err := f.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if lease.Fence("k") != holder.Fence("k")+1 {
		t.Errorf("fences %d then %d, want one more", holder.Fence("k"), lease.Fence("k"))
	}
	_ = lease.Release(ctx)
}

// Two clients that each have more waiters pass the key back and forth.
// A release of a key that came from the other client, with a waiter of its
// own to queue, runs 10 commands: the script, TIME (the arrival), GET,
// ZADD of the releasing client (first, so that the queue is never empty
// and keeps its life), ZPOPMIN of the other, HGET of its ticket, INCR,
// SET, HSET of the new ticket, PUBLISH. The ticket of the new holder is
// left (its client replaces or deletes it), and the queue's life is not
// renewed again within the minute in which the popped client queued.
// With the workload's GET and SET, 12 per acquisition.
func TestLock_CrossClientHandOffWithMoreWaitersRunsTenCommands(t *testing.T) {
	for attempt := 1; ; attempt++ {
		ran, sameMinute := crossClientRoundTrip(t)
		if !sameMinute && attempt < 3 {
			// The queue's life may have been renewed at the minute's turn:
			// the count is not this path's alone. Again, in one minute.
			continue
		}
		wantCommands(t, "the release that queues its client first", ran,
			map[string]int64{"evalsha": 1, "time": 1, "get": 1, "zadd": 1, "zpopmin": 1, "hget": 1, "incr": 1, "set": 1, "hset": 1, "publish": 1})
		return
	}
}

// crossed is two clients a and b: a's release transferred the key to b's
// first waiter (lease), and queued a with its next waiter (fa); b has one
// more waiter (fb). lease's release is the path of a key that came from
// another client, with a waiter of its own to queue.
type crossed struct {
	prefix string
	raw    redis.UniversalClient
	a, b   *xsync.Client
	lease  *xsync.Lease
	fa, fb *xsync.Future[*xsync.Lease]
}

func newCrossed(t *testing.T) *crossed {
	t.Helper()
	prefix := testPrefix(t)
	ctx := t.Context()
	// Turns of one acquisition: b's release goes to a's waiter, although
	// b's own second waiter was waiting when b's turn began.
	x := &crossed{prefix: prefix, raw: rawDB(t, 0), a: newClient(t, withPrefix(prefix), withLockTurn(-1)), b: newClient(t, withPrefix(prefix), withLockTurn(-1))}
	warmClients(t, "k", x.a, x.b)
	first, err := x.a.Lock(ctx, []string{"k"}, xsync.TTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	fb1 := x.b.LockAsync(ctx, []string{"k"}, xsync.TTL(time.Minute))
	settled(t, x.b, 1)
	// A waiter no longer than a transfer's lease needs no confirmation:
	// nothing of a's runs while b's release is counted.
	x.fa = x.a.LockAsync(ctx, []string{"k"}, xsync.TTL(transferLease))
	x.fb = x.b.LockAsync(ctx, []string{"k"}, xsync.TTL(time.Minute))
	settled(t, x.a, 1)
	settled(t, x.b, 2)
	heardByA := heard(t, x.a)
	if err := first.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if x.lease, err = fb1.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	confirmed(t, prefix, "k")
	settled(t, x.b, 1)
	// a hears its own release's transfer too, and tries nothing on it.
	waitHeard(t, x.a, heardByA+1)
	settled(t, x.a, 1)
	return x
}

// finish releases the leases of the waiters, once granted.
func (x *crossed) finish(t *testing.T) {
	t.Helper()
	for _, f := range []*xsync.Future[*xsync.Lease]{x.fa, x.fb} {
		l, err := f.Wait(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		_ = l.Release(t.Context())
	}
}

// crossClientRoundTrip returns the commands run by the release of a key
// that came from the other client (see crossed), and whether the popped
// client's arrival and the end of that release fell within one minute.
func crossClientRoundTrip(t *testing.T) (map[string]int64, bool) {
	t.Helper()
	x := newCrossed(t)
	ctx := t.Context()
	keys := redisx.Keys{Prefix: x.prefix}
	arrived := x.raw.ZScore(ctx, keys.LockQueue("k"), queuedClient(t, x.prefix, "k")).Val()
	before := commandCounts(t, x.raw)
	if err := x.lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
	ran := scriptCommands(t, before)
	end, err := x.raw.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	next, err := x.fa.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if next.Fence("k") != x.lease.Fence("k")+1 {
		t.Errorf("fences %d then %d, want one more", x.lease.Fence("k"), next.Fence("k"))
	}
	x.finish(t)
	return ran, int64(arrived)/60e6 == end.UnixMicro()/60e6
}

// Once both clients are done, neither a queue nor a ticket is left: each
// client deletes the ticket a transfer left it when it releases without
// queueing again. Meanwhile the queue and the tickets always expire.
func TestLock_HandOffsBackAndForthLeaveNoTicket(t *testing.T) {
	prefix := testPrefix(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	a, b := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))
	raw := rawDB(t, 0)
	queue, tickets := redisx.Keys{Prefix: prefix}.LockQueue("k"), redisx.Keys{Prefix: prefix}.LockTickets("k")
	done := make(chan error, 8)
	var mu sync.Mutex
	var peak int64
	for i := 0; i < 8; i++ {
		c := a
		if i%2 == 1 {
			c = b
		}
		go func() {
			for j := 0; j < 20; j++ {
				l, err := c.Lock(ctx, []string{"k"})
				if err != nil {
					done <- err
					return
				}
				n := raw.HLen(ctx, tickets).Val()
				mu.Lock()
				peak = max(peak, n)
				mu.Unlock()
				for _, k := range []string{queue, tickets} {
					if ttl := raw.PTTL(ctx, k).Val(); ttl == -1 {
						t.Errorf("%s never expires", k)
					}
				}
				if err := l.Release(ctx); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if peak > 2 {
		t.Errorf("%d tickets filed at once by two clients, want 2 at most", peak)
	}
	if left := lockKeysLeft(t, prefix, 0); len(left) != 0 {
		t.Fatalf("lock keys left: %v", left)
	}
}

// The queue's life is renewed by the first arrival of each minute: a
// release that queues its client behind one that arrived in the same
// minute leaves it, one behind an arrival of an earlier minute renews it
// (to 11 minutes: at least 10 after any arrival).
func TestLock_QueueLifeIsRenewedOncePerMinute(t *testing.T) {
	for _, tc := range []struct {
		name    string
		shift   time.Duration // of the popped client's arrival from now
		renewed bool
	}{
		{"arrival in this minute", 0, false},
		{"arrival a minute ago", -time.Minute, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for attempt := 1; ; attempt++ {
				x := newCrossed(t)
				ctx := t.Context()
				queue := redisx.Keys{Prefix: x.prefix}.LockQueue("k")
				now, err := x.raw.Time(ctx).Result()
				if err != nil {
					t.Fatal(err)
				}
				arrival := now.Add(tc.shift).UnixMicro()
				x.raw.ZAddXX(ctx, queue, redis.Z{Score: float64(arrival), Member: queuedClient(t, x.prefix, "k")})
				x.raw.PExpire(ctx, queue, 30*time.Second)
				if err := x.lease.Release(ctx); err != nil {
					t.Fatal(err)
				}
				end, err := x.raw.Time(ctx).Result()
				if err != nil {
					t.Fatal(err)
				}
				ttl := x.raw.PTTL(ctx, queue).Val()
				x.finish(t)
				if !tc.renewed && arrival/60e6 != end.UnixMicro()/60e6 && attempt < 3 {
					continue // the release ran in the next minute
				}
				if renewed := ttl > 10*time.Minute; renewed != tc.renewed || ttl > 11*time.Minute {
					t.Fatalf("the queue lives %v after the release, renewed=%v, want renewed=%v (11m at most)", ttl, renewed, tc.renewed)
				}
				return
			}
		})
	}
}

// A ticket hash is never extended once made: a ticket left by a client
// that is gone goes with it, while other clients keep filing theirs (and
// the lock keeps changing hands when the hash goes).
func TestLock_TicketOfAGoneClientGoesWithItsHash(t *testing.T) {
	prefix := testPrefix(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	a, b := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))
	raw := rawDB(t, 0)
	tickets := redisx.Keys{Prefix: prefix}.LockTickets("k")
	// As left by a client that got the key by a transfer and died: its
	// hash made ten minutes less 1.5s ago.
	raw.HSet(ctx, tickets, "gone-client", "60000:gone-token")
	raw.PExpire(ctx, tickets, 1500*time.Millisecond)
	stop := make(chan struct{})
	done := make(chan error, 4)
	for i := 0; i < 4; i++ {
		c := a
		if i%2 == 1 {
			c = b
		}
		go func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					if n == 0 {
						done <- fmt.Errorf("no lock taken")
						return
					}
					done <- nil
					return
				default:
				}
				l, err := c.Lock(ctx, []string{"k"})
				if err != nil {
					done <- err
					return
				}
				if err := l.Release(ctx); err != nil {
					done <- err
					return
				}
			}
		}()
	}
	eventually(t, 10*time.Second, "the gone client's ticket gone", func() bool {
		return !raw.HExists(ctx, tickets, "gone-client").Val()
	})
	close(stop)
	for i := 0; i < 4; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// A release of a key that came from another client, which queues its
// client before it pops the head, fails on a fence counter or a ticket
// hash that holds garbage with ErrCorrupt, and changes nothing: its own
// place in the queue and the popped client's are undone.
func TestLease_ReleaseOnCorruptDataAfterATransferIsErrCorruptAndChangesNothing(t *testing.T) {
	for _, tc := range corruptReleaseCases("k") {
		t.Run(tc.name, func(t *testing.T) {
			x := newCrossed(t)
			ctx := t.Context()
			if err := tc.put(ctx, x.raw, redisx.Keys{Prefix: x.prefix}); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, x.raw, x.prefix)
			ttl := x.raw.PTTL(ctx, redisx.Keys{Prefix: x.prefix}.LockQueue("k")).Val()
			if err := x.lease.Release(ctx); !errors.Is(err, xsync.ErrCorrupt) {
				t.Fatalf("Release: %v, want ErrCorrupt", err)
			}
			if after := snapshot(t, x.raw, x.prefix); !maps.Equal(before, after) {
				t.Fatalf("a Release on corrupt data changed Redis: %v, was %v", after, before)
			}
			if got := x.raw.PTTL(ctx, redisx.Keys{Prefix: x.prefix}.LockQueue("k")).Val(); got <= 0 || got > ttl {
				t.Fatalf("the queue lives %v after the failed release, %v before", got, ttl)
			}
		})
	}
}

// The last release of a key that came from another client, when nobody
// waits any more, deletes the ticket the transfer left: 6 commands (the
// script, GET, ZPOPMIN, DEL, PUBLISH, HDEL), and no lock key is left.
func TestLock_LastReleaseOfATransferredKeyDeletesItsTicket(t *testing.T) {
	ctx := t.Context()
	x := newCrossed(t)
	// Both other waiters withdraw: a leaves the queue, b was not in it.
	for _, f := range []*xsync.Future[*xsync.Lease]{x.fa, x.fb} {
		f.Cancel()
		if _, err := f.Wait(ctx); err == nil {
			t.Fatal("a withdrawn waiter got the lock")
		}
	}
	settled(t, x.a, 0)
	settled(t, x.b, 0)
	before := commandCounts(t, x.raw)
	if err := x.lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
	wantCommands(t, "the last release", scriptCommands(t, before),
		map[string]int64{"evalsha": 1, "get": 1, "zpopmin": 1, "del": 1, "publish": 1, "hdel": 1})
	if left := lockKeysLeft(t, x.prefix, 0); len(left) != 0 {
		t.Fatalf("lock keys left: %v", left)
	}
}
