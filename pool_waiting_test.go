package xsync_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/redisxsync/xsync"
)

// coolingPool returns pool name of c holding one container that cools for
// an hour: its waiters wait.
func coolingPool(t *testing.T, c *xsync.Client, name string) *xsync.Pool {
	t.Helper()
	p := c.Pool(name)
	put(t, p, xsync.Container{ID: "a", Interval: time.Hour})
	if err := p.Cooldown(t.Context(), "a", time.Hour); err != nil {
		t.Fatal(err)
	}
	return p
}

// The waiters of one client are seen by every other: each client writes
// its waiting count to Redis, and takes it back when they end.
func TestPool_WaitingIsSeenByEveryClient(t *testing.T) {
	prefix := testPrefix(t)
	a, b := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))
	pa := coolingPool(t, a, "accounts")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	timed, cancelTimed := context.WithTimeout(ctx, time.Minute)
	defer cancelTimed()
	var fs []*xsync.Future[xsync.Container]
	for i := range 5 {
		wctx := ctx // no deadline
		if i%2 == 0 {
			wctx = timed
		}
		fs = append(fs, pa.WaitAskOneAsync(wctx))
	}
	poolSettled(t, pa)

	pb := b.Pool("accounts")
	if s := stats(t, pb); s.WaitingAll != 5 || s.Waiting != 0 {
		t.Fatalf("another client's stats: WaitingAll %d, Waiting %d; want 5 and 0", s.WaitingAll, s.Waiting)
	}
	// b waits too: both see 6 in all, each its own in Waiting.
	bctx, cancelB := context.WithCancel(ctx)
	fb := pb.WaitAskOneAsync(bctx)
	poolSettled(t, pb)
	if s := stats(t, pa); s.WaitingAll != 6 || s.Waiting != 5 {
		t.Fatalf("a's stats: WaitingAll %d, Waiting %d; want 6 and 5", s.WaitingAll, s.Waiting)
	}
	if s := stats(t, pb); s.WaitingAll != 6 || s.Waiting != 1 {
		t.Fatalf("b's stats: WaitingAll %d, Waiting %d; want 6 and 1", s.WaitingAll, s.Waiting)
	}

	cancel()
	cancelB()
	for _, f := range append(fs, fb) {
		if _, err := f.Wait(t.Context()); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled waiter: %v", err)
		}
	}
	poolIdle(t, pa)
	poolIdle(t, pb)
	if s := stats(t, pb); s.WaitingAll != 0 {
		t.Fatalf("after the waiters were cancelled: WaitingAll %d, want 0", s.WaitingAll)
	}
	if n, err := rawDB(t, 0).Exists(t.Context(), poolKey(prefix, "accounts", "waiting")).Result(); err != nil || n != 0 {
		t.Fatalf("the waiting counts are still in Redis (%d, %v) with nobody waiting", n, err)
	}
}

// A burst of waiters is one write of the count, not one per waiter; and a
// client that closes takes its count with it.
func TestPool_WaitingCountIsWrittenOncePerBurstAndLeavesOnClose(t *testing.T) {
	prefix := testPrefix(t)
	a, b := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))
	pa := coolingPool(t, a, "accounts")
	db := rawDB(t, 0)
	before := commandCounts(t, db)
	for range 30 {
		pa.WaitAskOneAsync(t.Context())
	}
	poolSettled(t, pa)
	// The waiters are tried as they arrive, in a few calls (the first one
	// alone, while the pool subscribes; the others together, or in more
	// calls on a loaded machine, where they arrive one by one), and the
	// count is written once per call at most, one write at a time: not
	// once per waiter. Each write is a script call with one HSET; the other
	// script calls are the takes.
	ran := commandsSince(t, db, before)
	writes := ran["hset"]
	takes := ran["evalsha"] + ran["eval"] - writes
	if writes < 1 || writes > takes {
		t.Fatalf("30 waiters tried in %d calls wrote the count %d times, want 1 to %d", takes, writes, takes)
	}
	if s := stats(t, b.Pool("accounts")); s.WaitingAll != 30 {
		t.Fatalf("WaitingAll %d, want 30", s.WaitingAll)
	}
	if err := a.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s := stats(t, b.Pool("accounts")); s.WaitingAll != 0 {
		t.Fatalf("WaitingAll %d after the waiting client closed, want 0", s.WaitingAll)
	}
}

// The count of a client that is gone (it crashed) is not counted once its
// waiters' time has passed, and the next write drops it from Redis.
func TestPool_WaitingCountOfAGoneClientEnds(t *testing.T) {
	prefix := testPrefix(t)
	a, b := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))
	pa := coolingPool(t, a, "accounts")
	key := poolKey(prefix, "accounts", "waiting")
	db := rawDB(t, 0)
	now := serverNow(t).UnixMilli()
	// A crashed client whose waiters gave up a second ago, and one whose
	// waiters wait one more minute.
	if err := db.HSet(t.Context(), key, "crashed", "7:"+strconv.FormatInt(now-1000, 10),
		"alive", "2:"+strconv.FormatInt(now+60_000, 10)).Err(); err != nil {
		t.Fatal(err)
	}
	pb := b.Pool("accounts")
	if s := stats(t, pb); s.WaitingAll != 2 {
		t.Fatalf("WaitingAll %d, want the 2 of the live entry", s.WaitingAll)
	}
	f := pa.WaitAskOneAsync(t.Context())
	poolSettled(t, pa)
	if s := stats(t, pb); s.WaitingAll != 3 {
		t.Fatalf("WaitingAll %d, want 3", s.WaitingAll)
	}
	fields, err := db.HKeys(t.Context(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(fields) != 2 || fields[0] == "crashed" || fields[1] == "crashed" {
		t.Fatalf("entries %q: the write should have dropped the ended one", fields)
	}
	f.Cancel()
	if _, err := f.Wait(t.Context()); err == nil {
		t.Fatal("cancelled waiter served")
	}
}

// Bad data under the waiting key is ErrCorrupt for Stats, not a panic or a
// silent zero.
func TestPool_StatsOverACorruptWaitingKeyIsErrCorrupt(t *testing.T) {
	prefix := testPrefix(t)
	c := newClient(t, withPrefix(prefix))
	p := coolingPool(t, c, "accounts")
	if err := rawDB(t, 0).Set(t.Context(), poolKey(prefix, "accounts", "waiting"), "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Stats(t.Context()); !errors.Is(err, xsync.ErrCorrupt) {
		t.Fatalf("Stats: %v, want ErrCorrupt", err)
	}
}
