package xsync_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/redisxsync/xsync"
	"github.com/redisxsync/xsync/redisx"
)

// A waiter's take runs in Redis but its answer is lost; before its retry,
// the container's interval passes and another client takes it. The retry
// must not hand the waiter that grant (the container is in the other
// client's interval now): the grant is void, and the waiter waits on for a
// fresh one, an interval after the other client's take.
func TestPool_ResentTakeNeverReturnsAnOvertakenGrant(t *testing.T) {
	proxy := startFaultProxy(t, redisAddr(t))
	core, logs := observer.New(zap.WarnLevel)
	prefix := testPrefix(t)
	w := newClient(t, withPrefix(prefix), func(o *xsync.Options) { o.Addr, o.Logger = proxy.addr(), zap.New(core) }).Pool("accounts")
	d := newClient(t, withPrefix(prefix)).Pool("accounts")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	poolSettled(t, w) // the take script is loaded: EVALSHA runs it
	const interval = 300 * time.Millisecond
	put(t, d, xsync.Container{ID: "a", Interval: interval})

	proxy.cut.Store(true)
	f := w.WaitAskOneAsync(ctx)
	eventually(t, 10*time.Second, "W's take ran and its answer was lost", func() bool {
		return get(t, d, "a").UsageCount == 1 && logs.FilterMessage("pool take failed").Len() > 0
	})
	// D waits out W's interval and takes the container, while W's retries
	// still lose their answers.
	dGot, err := d.WaitAskOne(ctx)
	if err != nil {
		t.Fatal(err)
	}
	proxy.cut.Store(false)

	wGot, err := f.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if wGot.NextAvailable.Sub(dGot.NextAvailable) < interval {
		t.Fatalf("W got the container taken at %v (NextAvailable %v), D at %v (NextAvailable %v): within D's interval",
			takenAt(wGot).Format(time.StampMicro), wGot.NextAvailable.Format(time.StampMicro),
			takenAt(dGot).Format(time.StampMicro), dGot.NextAvailable.Format(time.StampMicro))
	}
	// W's void grant is not counted as a use: D's take and W's fresh one are.
	if got := get(t, d, "a"); got.UsageCount != 2 || !got.NextAvailable.Equal(wGot.NextAvailable) {
		t.Fatalf("after both takes: %+v; want UsageCount 2 and W's NextAvailable %v", got, wGot.NextAvailable)
	}
}

// The rule at the script level, where the caller chooses the timing: a
// resent request gets its grant back exactly as it was made while nobody
// overtook it; once another take, a Cooldown or a Put overtook it, a
// one-shot request is answered "overtaken" and a waiting one is tried
// afresh. Either way the containers of the void grant that nobody overtook
// are given back, and the use it counted is not counted.
func TestPool_TakeScriptVoidsOvertakenGrants(t *testing.T) {
	prefix := testPrefix(t)
	p := newClient(t, withPrefix(prefix)).Pool("accounts")
	ctx := t.Context()
	db := rawDB(t, 0)
	keys := redisx.Keys{Prefix: prefix}
	take := func(token string, n int, wait bool) []any {
		t.Helper()
		k, args := xsync.PoolTakeArgs(keys, "accounts", token, n, false)
		if wait {
			args[5] = "aw"
		}
		res, err := xsync.Scripts.Get("pool_take").Run(ctx, db, k, args...).Slice()
		if err != nil {
			t.Fatal(err)
		}
		return res[1].([]any)
	}
	overtake := map[string]func(){
		"another take": func() { // the interval is 0: "a" is ready again, with "c"
			if got, err := p.Ask(ctx, 2); err != nil || !slices.Contains(ids(got), "a") {
				t.Fatalf("the overtaking take: %v, %v", got, err)
			}
		},
		"a cooldown": func() {
			if err := p.Cooldown(ctx, "a", 0); err != nil {
				t.Fatal(err)
			}
		},
		"a put": func() { put(t, p, xsync.Container{ID: "a"}) },
	}
	for what, overtakeA := range overtake {
		for _, wait := range []bool{false, true} {
			if err := db.Del(ctx, poolBaseKeys(prefix, "accounts")...).Err(); err != nil {
				t.Fatal(err)
			}
			// "a" is ready first; "b" and "c" after it, an hour apart.
			put(t, p, xsync.Container{ID: "a"})
			put(t, p, xsync.Container{ID: "b", Interval: time.Hour}, xsync.Container{ID: "c", Interval: time.Hour})
			aBefore := get(t, p, "a")
			token := "tok-" + what
			first := take(token, 2, wait)
			if again := take(token, 2, wait); first[0] != int64(1) || len(first) != 3 || fmt.Sprint(again) != fmt.Sprint(first) {
				t.Fatalf("%s: a resend nobody overtook: %v, then %v; want the same grant", what, first, again)
			}
			b := get(t, p, "b")
			overtakeA()
			aAfter := get(t, p, "a")
			got := take(token, 2, wait)
			switch {
			case !wait && (len(got) != 1 || got[0] != int64(4)):
				t.Fatalf("%s: a one-shot resend after %s: %v, want {4} (overtaken)", what, what, got)
			case wait && (got[0] != int64(1) || len(got) != 3):
				t.Fatalf("%s: a waiting resend after %s: %v, want a fresh grant of 2", what, what, got)
			}
			if !wait {
				// "b", which nobody overtook, is ready again as before the take.
				if gb := get(t, p, "b"); gb.UsageCount != b.UsageCount-1 || gb.NextAvailable.After(time.Now().Add(time.Minute)) {
					t.Fatalf("%s: b after the void grant: %+v, want ready with UsageCount %d", what, gb, b.UsageCount-1)
				}
				// "a" keeps what overtook it, less the use the void grant
				// counted; a Put left NextAvailable alone, so the void
				// grant's interval is given back too.
				want := aAfter.NextAvailable
				if what == "a put" {
					want = aBefore.NextAvailable
				}
				if ga := get(t, p, "a"); ga.UsageCount != aAfter.UsageCount-1 || !ga.NextAvailable.Equal(want) {
					t.Fatalf("%s: a after the void grant: %+v, want UsageCount %d and NextAvailable %v", what, ga, aAfter.UsageCount-1, want)
				}
			}
		}
	}
}

// A resent lock acquire whose keys no longer all hold its token (one was
// taken by another owner since) reports no lease, and gives back the keys
// that still held the token instead of keeping them until their TTL.
func TestLock_ResentAcquireNeverReportsALeaseItLost(t *testing.T) {
	prefix := testPrefix(t)
	c := newClient(t, withPrefix(prefix))
	ctx := t.Context()
	db := rawDB(t, 0)
	keys := redisx.Keys{Prefix: prefix}
	lockKeys := []string{keys.Lock("{job}a"), keys.Lock("{job}b")}
	all := append(append(slices.Clone(lockKeys), keys.Fence("{job}a"), keys.Fence("{job}b")),
		keys.LockQueue("{job}a"), keys.LockQueue("{job}b"), keys.LockTickets("{job}a"), keys.LockTickets("{job}b"))
	acquire := func() []any {
		t.Helper()
		res, err := xsync.Scripts.Get("lock_acquire").Run(ctx, db, all,
			"tok-1", 60000, "client-1", "1", "", keys.LockChannel(0), 100, "", 500).Slice()
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if got := acquire(); got[0] != int64(1) {
		t.Fatalf("first acquire: %v", got)
	}
	// b passes to another owner behind the first grant's back.
	if err := db.Set(ctx, lockKeys[1], "someone-else", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if got := acquire(); got[0] != int64(0) {
		t.Fatalf("resent acquire after b passed to another owner: %v, want not obtained", got)
	}
	if n := db.Exists(ctx, lockKeys[0]).Val(); n != 0 {
		t.Fatal("a still holds the token of a grant that is void")
	}
	// Through the client: the other owner's b blocks a Lock of both.
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := c.Lock(tctx, []string{"{job}a", "{job}b"}); !errors.Is(err, xsync.ErrNotObtained) {
		t.Fatalf("Lock while b is held by another owner: %v", err)
	}
}
