package xsync_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync"
	"github.com/redisxsync/xsync/redisx"
)

// Transfers: a release that has a waiter hands it the key inside the
// release script; the waiter runs no attempt of its own.

// transferLease (500ms) is the longest a transferred key is held before its
// new holder confirms it.
const transferLease = 500 * time.Millisecond

// handOffs subscribes to the lock channel of DB 0 under prefix and returns
// the hand-offs published on it, decoded as "key>client:token" (token ""
// for a turn).
func handOffs(t *testing.T, prefix string) <-chan string {
	t.Helper()
	ps := rawDB(t, 0).Subscribe(context.Background(), redisx.Keys{Prefix: prefix}.LockChannel(0))
	t.Cleanup(func() { _ = ps.Close() })
	if _, err := ps.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := make(chan string, 64)
	go func() {
		for m := range ps.Channel() {
			strs := lengthPrefixed(m.Payload)
			for i := 1; i+3 < len(strs); i += 4 {
				select {
				case out <- strs[i] + ">" + strs[i+1] + ":" + strs[i+2]:
				default:
				}
			}
		}
	}()
	return out
}

func lengthPrefixed(p string) []string {
	var strs []string
	for p != "" {
		n, rest, ok := strings.Cut(p, ":")
		size, err := strconv.Atoi(n)
		if !ok || err != nil || size > len(rest) {
			break
		}
		strs = append(strs, rest[:size])
		p = rest[size:]
	}
	return strs
}

// queuedClient is the id of the one client queued for key under prefix.
func queuedClient(t *testing.T, prefix, key string) string {
	t.Helper()
	ids, err := rawDB(t, 0).ZRange(context.Background(), redisx.Keys{Prefix: prefix}.LockQueue(key), 0, -1).Result()
	if err != nil || len(ids) != 1 {
		t.Fatalf("turn queue of %s: %v, %v; want one client", key, ids, err)
	}
	return ids[0]
}

// A release hands the key to the next waiter, of the same client or of
// another, at one script call: the fence goes up by one, and the waiter
// sends nothing before it holds the lease.
func TestLock_ReleaseTransfersTheKeyToTheNextWaiter(t *testing.T) {
	for _, mode := range []string{"same client", "another client"} {
		t.Run(mode, func(t *testing.T) {
			prefix := testPrefix(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			one := newClient(t, withPrefix(prefix))
			two := one
			if mode == "another client" {
				two = newClient(t, withPrefix(prefix))
			}
			raw := rawDB(t, 0)
			for _, c := range []*xsync.Client{one, two} { // the scripts loaded
				l, err := c.Lock(ctx, []string{"warm-up"})
				if err != nil {
					t.Fatal(err)
				}
				_ = l.Release(ctx)
			}
			holder, err := one.Lock(ctx, []string{"k"}, xsync.TTL(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			// A lease no longer than the transfer's needs no confirmation:
			// nothing but the release runs between the release and the grant.
			f := two.LockAsync(ctx, []string{"k"}, xsync.TTL(transferLease))
			settled(t, two, 1)
			before := commandCounts(t, raw)
			if err := holder.Release(ctx); err != nil {
				t.Fatal(err)
			}
			lease, err := f.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			ran := commandsSince(t, raw, before)
			if ran["evalsha"]+ran["eval"] != 1 {
				t.Errorf("scripts run from the release to the grant: %v, want the release alone", ran)
			}
			if lease.Fence("k") != holder.Fence("k")+1 {
				t.Errorf("fences %d then %d, want one more", holder.Fence("k"), lease.Fence("k"))
			}
			if got := raw.Get(ctx, prefix+":lock:{k}").Val(); got != lease.Token() {
				t.Errorf("the key holds %q, want the new lease's token", got)
			}
			_ = lease.Release(ctx)
			if left := lockKeysLeft(t, prefix, 0); len(left) != 0 {
				t.Fatalf("lock keys left: %v", left)
			}
		})
	}
}

// A transferred lease lives the transfer's short lease until its holder
// confirms it; the confirmation, sent early, gives it its full TTL.
func TestLock_TransferredLeaseIsConfirmedToItsFullTTL(t *testing.T) {
	prefix := testPrefix(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))
	raw := rawDB(t, 0)
	holder, err := a.Lock(ctx, []string{"k"})
	if err != nil {
		t.Fatal(err)
	}
	f := b.LockAsync(ctx, []string{"k"}, xsync.TTL(time.Minute))
	settled(t, b, 1)
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	lease, err := f.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the transferred key confirmed for a minute", func() bool {
		return raw.PTTL(ctx, prefix+":lock:{k}").Val() > 10*time.Second
	})
	select {
	case <-lease.Lost():
		t.Fatal("the confirmed lease is lost")
	default:
	}
	if err := lease.Refresh(ctx, time.Minute); err != nil {
		t.Fatalf("Refresh of the confirmed lease: %v", err)
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// A release that transfers the key to a waiter that withdrew meanwhile
// (its client had not yet left the queue): that client releases the key at
// once, and the release hands it on to the next client's waiter.
func TestLock_TransferToAWithdrawnWaiterIsHandedOn(t *testing.T) {
	prefix := testPrefix(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b, c := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))
	raw := rawDB(t, 0)
	keys := redisx.Keys{Prefix: prefix}
	published := handOffs(t, prefix)
	holder, err := a.Lock(ctx, []string{"k"}, xsync.TTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	// b queues, learns its id, then withdraws and leaves the queue.
	wctx, withdraw := context.WithCancel(ctx)
	fb := b.LockAsync(wctx, []string{"k"})
	settled(t, b, 1)
	bID := queuedClient(t, prefix, "k")
	withdraw()
	if _, err := fb.Wait(ctx); !errors.Is(err, xsync.ErrNotObtained) {
		t.Fatalf("withdrawn waiter: %v", err)
	}
	settled(t, b, 0)
	// As if the release ran before b's leave: b is queued first, with the
	// ticket of its withdrawn waiter; c queues behind it.
	if err := raw.ZAdd(ctx, keys.LockQueue("k"), redis.Z{Score: 1, Member: bID}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := raw.HSet(ctx, keys.LockTickets("k"), bID, "60000:withdrawn-token").Err(); err != nil {
		t.Fatal(err)
	}
	fc := c.LockAsync(ctx, []string{"k"}, xsync.TTL(time.Minute))
	settled(t, c, 1)
	queued, err := raw.ZRange(ctx, keys.LockQueue("k"), 0, -1).Result()
	if err != nil || len(queued) != 2 || queued[0] != bID {
		t.Fatalf("turn queue %v, %v; want b then c", queued, err)
	}
	cID := queued[1]
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	lease, err := fc.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The key went to the withdrawn token, then b's release handed it on
	// to c's waiter: two transfers, two fences.
	want := []string{"{k}>" + bID + ":withdrawn-token", "{k}>" + cID + ":" + lease.Token()}
	for _, w := range want {
		if got := nextHandOff(t, published, prefix); got != w {
			t.Fatalf("hand-off %q, want %q", got, w)
		}
	}
	if lease.Fence("k") != holder.Fence("k")+2 {
		t.Errorf("fences %d then %d, want two more", holder.Fence("k"), lease.Fence("k"))
	}
	_ = lease.Release(ctx)
	if left := lockKeysLeft(t, prefix, 0); len(left) != 0 {
		t.Fatalf("lock keys left: %v", left)
	}
}

func nextHandOff(t *testing.T, ch <-chan string, prefix string) string {
	t.Helper()
	select {
	case s := <-ch:
		return strings.TrimPrefix(s, prefix+":lock:")
	case <-time.After(5 * time.Second):
		t.Fatal("no hand-off published")
		return ""
	}
}

// A client that died with a ticket filed gets the key transferred to a
// token nobody holds: the key lives the transfer's short lease at most,
// then the next client's waiter gets it.
func TestLock_TransferToADeadClientEndsWithinTheTransferLease(t *testing.T) {
	prefix := testPrefix(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, c := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))
	raw := rawDB(t, 0)
	keys := redisx.Keys{Prefix: prefix}
	holder, err := a.Lock(ctx, []string{"k"}, xsync.TTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.ZAdd(ctx, keys.LockQueue("k"), redis.Z{Score: 1, Member: "dead-client"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := raw.HSet(ctx, keys.LockTickets("k"), "dead-client", "60000:dead-token").Err(); err != nil {
		t.Fatal(err)
	}
	fc := c.LockAsync(ctx, []string{"k"})
	settled(t, c, 1)
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// The transfer gave the dead token the key for the transfer's lease,
	// not a minute. Nobody can take it before that: c's waiter, told of
	// the transfer, looks again when it ends.
	if v, ttl := raw.Get(ctx, keys.Lock("k")).Val(), raw.PTTL(ctx, keys.Lock("k")).Val(); v != "dead-token" || ttl <= 0 || ttl > transferLease {
		t.Fatalf("after the release the key holds %q for %v, want the dead token for %v at most", v, ttl, transferLease)
	}
	lease, err := fc.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if lease.Fence("k") != holder.Fence("k")+2 {
		t.Errorf("fences %d then %d, want two more", holder.Fence("k"), lease.Fence("k"))
	}
	if err := raw.HGet(ctx, keys.LockTickets("k"), "dead-client").Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("the dead client's ticket is still filed: %v", err)
	}
	_ = lease.Release(ctx)
	if left := lockKeysLeft(t, prefix, 0); len(left) != 0 {
		t.Fatalf("lock keys left: %v", left)
	}
}

// A waiter cancelled while the key is being transferred to it, in the same
// client and from another: whichever way the race goes (the transfer
// before or after the cancellation reaches the lock manager), the
// cancelled waiter gets nothing, the next waiter gets the key, fences go
// up, and nothing is left in Redis.
func TestLock_WaiterCancelledMidTransfer(t *testing.T) {
	for _, mode := range []string{"same client", "another client"} {
		t.Run(mode, func(t *testing.T) {
			prefix := testPrefix(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			one := newClient(t, withPrefix(prefix))
			two := one
			if mode == "another client" {
				two = newClient(t, withPrefix(prefix))
			}
			for i := range 10 {
				holder, err := one.Lock(ctx, []string{"k"}, xsync.TTL(time.Minute))
				if err != nil {
					t.Fatal(err)
				}
				first := two.LockAsync(ctx, []string{"k"}, xsync.TTL(time.Minute))
				settled(t, two, 1)
				second := two.LockAsync(ctx, []string{"k"}, xsync.TTL(time.Minute))
				settled(t, two, 2)
				if i%2 == 0 {
					first.Cancel()
					err = holder.Release(ctx)
				} else {
					err = holder.Release(ctx)
					first.Cancel()
				}
				if err != nil {
					t.Fatal(err)
				}
				if _, err := first.Wait(ctx); !errors.Is(err, context.Canceled) {
					t.Fatalf("round %d: the cancelled waiter: %v, want context.Canceled", i, err)
				}
				lease, err := second.Wait(ctx)
				if err != nil {
					t.Fatalf("round %d: the next waiter: %v", i, err)
				}
				if lease.Fence("k") <= holder.Fence("k") {
					t.Fatalf("round %d: fences %d then %d", i, holder.Fence("k"), lease.Fence("k"))
				}
				if err := lease.Release(ctx); err != nil {
					t.Fatalf("round %d: %v", i, err)
				}
				settledAll(t, one, two)
				if left := lockKeysLeft(t, prefix, 0); len(left) != 0 {
					t.Fatalf("round %d: lock keys left: %v", i, left)
				}
			}
		})
	}
}

// settledAll waits until the clients have no waiter, no lease and no Redis
// call under way.
func settledAll(t *testing.T, cs ...*xsync.Client) {
	t.Helper()
	eventually(t, 5*time.Second, "clients idle", func() bool {
		for _, c := range cs {
			w, l, busy, err := xsync.LockStats(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			if w+l+busy != 0 {
				return false
			}
		}
		return true
	})
}

// lockScriptHook steers the lock scripts of one client: each call is given
// to on with its owner token (ARGV[1]) and whether it is an acquire (its
// ARGV has 9 entries; a release of one key has 5), and on runs it with
// next. Other commands pass through.
type lockScriptHook struct {
	on func(ctx context.Context, token string, acquire bool, next func() error) error
}

func (h lockScriptHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h lockScriptHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h lockScriptHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args()
		name := strings.ToLower(cmd.Name())
		if (name != "evalsha" && name != "eval") || len(args) < 8 || args[2] != int64(4) && args[2] != 4 {
			return next(ctx, cmd)
		}
		token, _ := args[7].(string)
		argv := len(args) - 7
		return h.on(ctx, token, argv == 9, func() error { return next(ctx, cmd) })
	}
}

// A transfer to a waiter whose own attempt is under way: the attempt runs
// after the transfer at Redis, finds the key holding the waiter's token and
// answers first. The lease it grants holds the key; the transfer's answer,
// coming after, must not release it. (The cause of the Cluster failures of
// TestLock_WaiterCancelledMidTransfer, forced here in this order.)
func TestLock_TransferAnsweredAfterTheWaitersOwnAttemptKeepsTheLease(t *testing.T) {
	prefix := testPrefix(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := newClient(t, withPrefix(prefix))
	holder, err := c.Lock(ctx, []string{"k"}, xsync.TTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	first := c.LockAsync(ctx, []string{"k"}, xsync.TTL(time.Minute))
	settled(t, c, 1)
	second := c.LockAsync(ctx, []string{"k"}, xsync.TTL(time.Minute))
	settled(t, c, 2)

	cl, err := xsync.InternalDB(c, 0)
	if err != nil {
		t.Fatal(err)
	}
	var (
		attemptSent    = make(chan struct{}) // the second waiter's attempt reached the hook
		handedOn       = make(chan struct{}) // the release of the first waiter's token ran
		steps          = make(chan string, 8)
		holderReleased bool
	)
	wait := func(ch <-chan struct{}, what string) error {
		select {
		case <-ch:
			return nil
		case <-ctx.Done():
			steps <- "timed out waiting for " + what
			return ctx.Err()
		}
	}
	cl.AddHook(lockScriptHook{on: func(_ context.Context, token string, acquire bool, next func() error) error {
		switch {
		case acquire:
			// The second waiter's attempt: it runs after the transfer.
			close(attemptSent)
			if err := wait(handedOn, "the hand-on"); err != nil {
				return err
			}
			return next()
		case token == holder.Token() && !holderReleased:
			// The holder's release transfers the key to the first waiter,
			// who withdraws before the answer comes: the second waiter
			// attempts.
			holderReleased = true
			err := next()
			first.Cancel()
			if err2 := wait(attemptSent, "the second waiter's attempt"); err2 != nil {
				return err2
			}
			return err
		case token != holder.Token():
			// The withdrawn waiter's key is handed on to the second one;
			// this answer comes after the attempt's.
			err := next()
			if token != "" && !isDone(second) {
				close(handedOn)
				if err2 := wait(second.Done(), "the second waiter's grant"); err2 != nil {
					return err2
				}
			}
			return err
		}
		return next()
	}})

	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled waiter: %v, want context.Canceled", err)
	}
	lease, err := second.Wait(ctx)
	if err != nil {
		t.Fatalf("the next waiter: %v", err)
	}
	settled(t, c, 0) // every answer handled
	select {
	case s := <-steps:
		t.Fatal(s)
	default:
	}
	if w, l, _, _ := xsync.LockStats(ctx, c); w != 0 || l != 1 {
		t.Fatalf("%d waiters and %d leases, want the one lease", w, l)
	}
	got, err := rawDB(t, 0).Get(ctx, redisx.Keys{Prefix: prefix}.Lock("k")).Result()
	if err != nil || got != lease.Token() {
		t.Fatalf("the key holds %q (%v), want the lease's token %q", got, err, lease.Token())
	}
	if lease.Fence("k") != holder.Fence("k")+2 {
		t.Fatalf("fences %d then %d, want two more (the transfers to the first waiter and to the second)", holder.Fence("k"), lease.Fence("k"))
	}
	if err := lease.Release(ctx); err != nil {
		t.Fatalf("the next waiter's release: %v", err)
	}
	settledAll(t, c)
	if left := lockKeysLeft(t, prefix, 0); len(left) != 0 {
		t.Fatalf("lock keys left: %v", left)
	}
}
