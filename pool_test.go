package xsync_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync"
	"github.com/redisxsync/xsync/redisx"
)

// --- helpers ---

// serverNow is the test server's clock.
func serverNow(t testing.TB) time.Time {
	t.Helper()
	now, err := rawDB(t, 0).Time(t.Context()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return now
}

func put(t testing.TB, p *xsync.Pool, cs ...xsync.Container) {
	t.Helper()
	if err := p.Put(t.Context(), cs...); err != nil {
		t.Fatalf("Put: %v", err)
	}
}

func get(t testing.TB, p *xsync.Pool, id string) xsync.Container {
	t.Helper()
	c, err := p.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return c
}

func stats(t testing.TB, p *xsync.Pool) xsync.PoolStats {
	t.Helper()
	s, err := p.Stats(t.Context())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return s
}

func ids(cs []xsync.Container) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	sort.Strings(out)
	return out
}

// takenAt is the server time of the take that returned c.
func takenAt(c xsync.Container) time.Time { return c.NextAvailable.Add(-c.Interval) }

// poolKey is the key of one part of pool name, as xsync names it.
func poolKey(prefix, name, part string) string {
	return redisx.Keys{Prefix: prefix}.Pool(name, part)
}

// poolBaseKeys are KEYS[1..5] of the pool scripts (see scripts/lib_pool.lua).
func poolBaseKeys(prefix, name string) []string {
	var keys []string
	for _, part := range []string{"ready", "expiry", "meta", "data", "expired"} {
		keys = append(keys, poolKey(prefix, name, part))
	}
	return keys
}

// poolSettled returns once every request queued in p before the call has been
// tried at least once: a one-shot AskOne, queued behind them, is answered
// only after a take call that tried them all.
func poolSettled(t testing.TB, p *xsync.Pool) {
	t.Helper()
	if c, err := p.AskOne(t.Context()); err == nil {
		t.Fatalf("settled: AskOne took %s: the test expects nothing ready", c.ID)
	} else if !errors.Is(err, xsync.ErrNotAvailable) {
		t.Fatalf("settled: AskOne: %v", err)
	}
	poolIdle(t, p)
}

// poolIdle waits until p's actor has no Redis call under way: the write of
// its waiting count to Redis, which follows a change, included.
func poolIdle(t testing.TB, p *xsync.Pool) {
	t.Helper()
	eventually(t, 10*time.Second, "the pool's Redis calls done", func() bool {
		n, err := xsync.PoolBusy(t.Context(), p)
		if err != nil {
			t.Fatalf("pool idle: %v", err)
		}
		return n == 0
	})
}

// --- the rate limit ---

// Three clients stand for three processes, each with ten goroutines taking
// containers as fast as the pool allows. No container may be handed out
// twice within its interval, by the server's clock, and the pool must
// hand out close to the ideal number of containers in a window.
func TestPool_RateLimitHoldsAcrossClients(t *testing.T) {
	const (
		containers = 10
		interval   = 100 * time.Millisecond
		window     = 2 * time.Second
		perClient  = 10
	)
	prefix := testPrefix(t)
	clients := []*xsync.Client{newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))}
	var cs []xsync.Container
	for i := range containers {
		cs = append(cs, xsync.Container{ID: fmt.Sprintf("acct-%02d", i), Interval: interval})
	}
	put(t, clients[0].Pool("accounts"), cs...)

	ctx, cancel := context.WithTimeout(t.Context(), window+300*time.Millisecond)
	defer cancel()
	var (
		mu     sync.Mutex
		grants []xsync.Container
		wg     sync.WaitGroup
	)
	for _, c := range clients {
		p := c.Pool("accounts")
		for range perClient {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					got, err := p.WaitAskOne(ctx)
					if err != nil {
						if !errors.Is(err, xsync.ErrNotAvailable) || ctx.Err() == nil {
							t.Errorf("WaitAskOne: %v", err)
						}
						return
					}
					mu.Lock()
					grants = append(grants, got)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()

	byID := map[string][]xsync.Container{}
	var first time.Time
	for _, g := range grants {
		byID[g.ID] = append(byID[g.ID], g)
		if first.IsZero() || takenAt(g).Before(first) {
			first = takenAt(g)
		}
	}
	for id, gs := range byID {
		sort.Slice(gs, func(i, j int) bool { return gs[i].UsageCount < gs[j].UsageCount })
		for i, g := range gs {
			if g.UsageCount != int64(i+1) {
				t.Fatalf("%s: grant %d has UsageCount %d: a take was lost or counted twice", id, i+1, g.UsageCount)
			}
			if i == 0 {
				continue
			}
			if gap := takenAt(g).Sub(takenAt(gs[i-1])); gap < interval {
				t.Fatalf("%s handed out twice within %v: takes %d and %d are %v apart (server time)", id, interval, i, i+1, gap)
			}
		}
	}
	inWindow := 0
	for _, g := range grants {
		if takenAt(g).Before(first.Add(window)) {
			inWindow++
		}
	}
	ideal := containers * int(window/interval)
	t.Logf("%d grants in total, %d in the first %v; ideal %d (%.1f%%)", len(grants), inWindow, window, ideal, 100*float64(inWindow)/float64(ideal))
	if inWindow > ideal {
		t.Fatalf("%d grants in %v, more than the ideal %d: the rate limit was broken", inWindow, window, ideal)
	}
	if inWindow < ideal*93/100 {
		t.Fatalf("%d grants in %v, under 93%% of the ideal %d: waiters are not served when containers are ready", inWindow, window, ideal)
	}
}

// --- taking ---

func TestPool_AskIsAllOrNothing(t *testing.T) {
	c := newClient(t)
	p := c.Pool("accounts")
	ctx := t.Context()
	put(t, p,
		xsync.Container{ID: "a", Interval: time.Hour},
		xsync.Container{ID: "b", Interval: time.Hour},
		xsync.Container{ID: "c", Interval: time.Hour})
	before := map[string]xsync.Container{"a": get(t, p, "a"), "b": get(t, p, "b"), "c": get(t, p, "c")}

	if got, err := p.Ask(ctx, 4); !errors.Is(err, xsync.ErrNotAvailable) {
		t.Fatalf("Ask(4) of 3: %v, %v; want ErrNotAvailable", ids(got), err)
	}
	for id, b := range before {
		if now := get(t, p, id); now != b {
			t.Fatalf("a failed Ask changed %s: %+v -> %+v", id, b, now)
		}
	}

	start := serverNow(t).Truncate(time.Millisecond)
	got, err := p.Ask(ctx, 3)
	if err != nil {
		t.Fatalf("Ask(3): %v", err)
	}
	if !slices.Equal(ids(got), []string{"a", "b", "c"}) {
		t.Fatalf("Ask(3) = %v", ids(got))
	}
	for _, g := range got {
		if g.UsageCount != 1 {
			t.Fatalf("%s: UsageCount %d after one take, want 1", g.ID, g.UsageCount)
		}
		if takenAt(g).Before(start) || g.Interval != time.Hour {
			t.Fatalf("%s: NextAvailable %v, want the take's server time + 1h (take began at %v)", g.ID, g.NextAvailable, start)
		}
		if stored := get(t, p, g.ID); stored != g {
			t.Fatalf("Ask returned %+v, the pool holds %+v", g, stored)
		}
	}
	if _, err := p.AskOne(ctx); !errors.Is(err, xsync.ErrNotAvailable) {
		t.Fatalf("AskOne with everything cooling: %v, want ErrNotAvailable", err)
	}
}

// Ask hands out the containers with the earliest next-available time, so
// that use rotates; with no interval a taken container goes to the back.
func TestPool_AskRotatesByNextAvailable(t *testing.T) {
	c := newClient(t)
	p := c.Pool("proxies")
	ctx := t.Context()
	put(t, p, xsync.Container{ID: "p1"}, xsync.Container{ID: "p2"}, xsync.Container{ID: "p3"})
	var order []string
	for range 6 {
		got, err := p.AskOne(ctx)
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, got.ID)
	}
	want := []string{"p1", "p2", "p3", "p1", "p2", "p3"}
	if !slices.Equal(order, want) {
		t.Fatalf("AskOne order %v, want %v", order, want)
	}

	// Cooldown(p1, 0) makes p1 the one available most recently: the two
	// others, ready longer, come first.
	if err := p.Cooldown(ctx, "p1", 0); err != nil {
		t.Fatal(err)
	}
	got, err := p.Ask(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"p2", "p3"}; !slices.Equal(ids(got), want) {
		t.Fatalf("Ask(2) = %v, want %v (the earliest next-available)", ids(got), want)
	}
}

func TestPool_AcquireRandomIgnoresIntervalAndCountsUsage(t *testing.T) {
	c := newClient(t)
	p := c.Pool("cookies")
	ctx := t.Context()
	put(t, p, xsync.Container{ID: "x", Interval: time.Hour}, xsync.Container{ID: "y", Interval: time.Hour},
		xsync.Container{ID: "z", Interval: time.Hour})
	taken, err := p.Ask(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	next := map[string]time.Time{}
	for _, c := range taken {
		next[c.ID] = c.NextAvailable
	}

	got, err := p.AcquireRandom(ctx, 3)
	if err != nil {
		t.Fatalf("AcquireRandom(3) with every container cooling: %v", err)
	}
	if !slices.Equal(ids(got), []string{"x", "y", "z"}) {
		t.Fatalf("AcquireRandom(3) = %v, want 3 distinct", ids(got))
	}
	for _, g := range got {
		if g.UsageCount != 2 {
			t.Fatalf("%s: UsageCount %d, want 2", g.ID, g.UsageCount)
		}
		if !g.NextAvailable.Equal(next[g.ID]) {
			t.Fatalf("%s: AcquireRandom moved NextAvailable %v -> %v", g.ID, next[g.ID], g.NextAvailable)
		}
	}
	if _, err := p.AcquireRandom(ctx, 4); !errors.Is(err, xsync.ErrNotAvailable) {
		t.Fatalf("AcquireRandom(4) of 3: %v, want ErrNotAvailable", err)
	}

	seen := map[string]int{}
	for range 60 {
		one, err := p.AcquireRandomOne(ctx)
		if err != nil {
			t.Fatal(err)
		}
		seen[one.ID]++
	}
	if len(seen) != 3 {
		t.Fatalf("60 random takes picked %v: not random", seen)
	}
	total := int64(0)
	for _, id := range []string{"x", "y", "z"} {
		total += get(t, p, id).UsageCount
	}
	if total != 3+3+60 {
		t.Fatalf("usage counts add up to %d, want %d", total, 3+3+60)
	}
}

// --- Put, Get, Cooldown, Remove, Stats ---

func TestPool_PutUpdatesConfigAndKeepsState(t *testing.T) {
	c := newClient(t)
	p := c.Pool("accounts")
	ctx := t.Context()
	put(t, p, xsync.Container{ID: "a", Interval: time.Hour, Data: "cookie-1"})
	first := get(t, p, "a")
	if first.UsageCount != 0 || first.NextAvailable.Sub(first.CreatedAt) >= time.Millisecond || first.CreatedAt.IsZero() {
		t.Fatalf("new container %+v: want ready at once, usage 0, CreatedAt set", first)
	}
	taken, err := p.AskOne(ctx)
	if err != nil {
		t.Fatal(err)
	}

	created := time.UnixMilli(serverNow(t).UnixMilli() - 1000)
	put(t, p, xsync.Container{ID: "a", Interval: 2 * time.Hour, TTL: time.Hour, Data: "cookie-2", CreatedAt: created,
		UsageCount: 99, NextAvailable: time.Now()}) // the last two are the pool's: ignored
	now := get(t, p, "a")
	if now.UsageCount != 1 || !now.NextAvailable.Equal(taken.NextAvailable) {
		t.Fatalf("Put of an existing id: UsageCount %d, NextAvailable %v; want 1, %v (kept)", now.UsageCount, now.NextAvailable, taken.NextAvailable)
	}
	if now.Interval != 2*time.Hour || now.TTL != time.Hour || now.Data != "cookie-2" || !now.CreatedAt.Equal(created) {
		t.Fatalf("Put of an existing id did not take the new config: %+v", now)
	}

	// Sub-millisecond durations round up: they never become "none".
	put(t, p, xsync.Container{ID: "tiny", Interval: time.Microsecond, TTL: time.Hour + time.Nanosecond})
	if tiny := get(t, p, "tiny"); tiny.Interval != time.Millisecond || tiny.TTL != time.Hour+time.Millisecond {
		t.Fatalf("tiny durations stored as %v / %v", tiny.Interval, tiny.TTL)
	}
	// Put of a batch is one write: the same id twice, the last one wins.
	put(t, p, xsync.Container{ID: "dup", Data: "first"}, xsync.Container{ID: "dup", Data: "last"})
	if d := get(t, p, "dup"); d.Data != "last" {
		t.Fatalf("duplicate id in one Put: Data %q, want the last", d.Data)
	}
	if _, err := p.Get(ctx, "nope"); !errors.Is(err, xsync.ErrNotFound) {
		t.Fatalf("Get of an unknown id: %v, want ErrNotFound", err)
	}
}

func TestPool_PayloadUpToOneMiBRoundTrips(t *testing.T) {
	c := newClient(t)
	p := c.Pool("big")
	data := strings.Repeat("\x00\xffcookie;", xsync.MaxPayload/8)[:xsync.MaxPayload]
	put(t, p, xsync.Container{ID: "big", Data: data})
	got, err := p.AskOne(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got.Data != data {
		t.Fatalf("1 MiB of binary payload came back as %d bytes, changed", len(got.Data))
	}
}

func TestPool_Cooldown(t *testing.T) {
	c := newClient(t)
	p := c.Pool("accounts")
	ctx := t.Context()
	put(t, p, xsync.Container{ID: "a"})

	before := serverNow(t)
	if err := p.Cooldown(ctx, "a", 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	cooled := get(t, p, "a")
	if cooled.NextAvailable.Before(before.Add(300 * time.Millisecond).Truncate(time.Millisecond)) {
		t.Fatalf("after Cooldown(300ms) at %v, NextAvailable is %v", before, cooled.NextAvailable)
	}
	if _, err := p.AskOne(ctx); !errors.Is(err, xsync.ErrNotAvailable) {
		t.Fatalf("AskOne during a cooldown: %v, want ErrNotAvailable", err)
	}
	got, err := p.WaitAskOne(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if takenAt(got).Before(cooled.NextAvailable) {
		t.Fatalf("taken at %v, before the end of its cooldown %v", takenAt(got), cooled.NextAvailable)
	}

	// A cooldown never brings a container forward.
	if err := p.Cooldown(ctx, "a", time.Hour); err != nil {
		t.Fatal(err)
	}
	long := get(t, p, "a").NextAvailable
	if err := p.Cooldown(ctx, "a", time.Second); err != nil {
		t.Fatal(err)
	}
	if got := get(t, p, "a").NextAvailable; got.Before(long) || got.Sub(long) > time.Microsecond {
		t.Fatalf("Cooldown(1s) after Cooldown(1h) moved NextAvailable %v -> %v, want it kept (+1µs)", long, got)
	}
	if err := p.Cooldown(ctx, "nope", time.Second); !errors.Is(err, xsync.ErrNotFound) {
		t.Fatalf("Cooldown of an unknown id: %v, want ErrNotFound", err)
	}
	if err := p.Cooldown(ctx, "a", -time.Second); !errors.Is(err, xsync.ErrInvalidContainer) {
		t.Fatalf("negative Cooldown: %v, want ErrInvalidContainer", err)
	}
}

func TestPool_Remove(t *testing.T) {
	prefix := testPrefix(t)
	c := newClient(t, withPrefix(prefix))
	p := c.Pool("accounts")
	ctx := t.Context()
	put(t, p, xsync.Container{ID: "a", Data: "x"}, xsync.Container{ID: "b"}, xsync.Container{ID: "c"})
	n, err := p.Remove(ctx, "a", "b", "never-there")
	if err != nil || n != 2 {
		t.Fatalf("Remove(a, b, never-there) = %d, %v; want 2", n, err)
	}
	for _, id := range []string{"a", "b"} {
		if _, err := p.Get(ctx, id); !errors.Is(err, xsync.ErrNotFound) {
			t.Fatalf("Get(%s) after Remove: %v, want ErrNotFound", id, err)
		}
	}
	if got, err := p.Ask(ctx, 2); !errors.Is(err, xsync.ErrNotAvailable) {
		t.Fatalf("Ask(2) with one container left: %v, %v", ids(got), err)
	}
	if s := stats(t, p); s.Total != 1 {
		t.Fatalf("Stats.Total after Remove = %d, want 1", s.Total)
	}
	if n, err := rawDB(t, 0).HLen(ctx, poolKey(prefix, "accounts", "data")).Result(); err == nil && n != 0 {
		t.Fatalf("Remove left %d payloads behind", n)
	}
	if n, err := p.Remove(ctx); err != nil || n != 0 {
		t.Fatalf("Remove() = %d, %v", n, err)
	}
}

func TestPool_Stats(t *testing.T) {
	c := newClient(t)
	p := c.Pool("accounts")
	ctx := t.Context()
	if s := stats(t, p); s.Total != 0 || s.Ready != 0 || !s.NextReadyAt.IsZero() || s.Expired != 0 || s.Waiting != 0 {
		t.Fatalf("Stats of an empty pool: %+v", s)
	}
	put(t, p, xsync.Container{ID: "a", Interval: time.Hour}, xsync.Container{ID: "b", Interval: time.Hour},
		xsync.Container{ID: "c", Interval: time.Hour})
	if err := p.Cooldown(ctx, "c", time.Minute); err != nil {
		t.Fatal(err)
	}
	s := stats(t, p)
	if s.Total != 3 || s.Ready != 2 || s.NextReadyAt.After(s.At) {
		t.Fatalf("Stats with 2 of 3 ready: %+v", s)
	}
	if _, err := p.Ask(ctx, 2); err != nil {
		t.Fatal(err)
	}
	s = stats(t, p)
	cooling := get(t, p, "c").NextAvailable
	if s.Total != 3 || s.Ready != 0 || !s.NextReadyAt.Equal(cooling) {
		t.Fatalf("Stats with none ready: %+v, want NextReadyAt %v (c's)", s, cooling)
	}

	f := p.WaitAskAsync(ctx, 2)
	defer f.Cancel()
	poolSettled(t, p)
	if s := stats(t, p); s.Waiting != 1 {
		t.Fatalf("Stats.Waiting with one waiter = %d", s.Waiting)
	}
}

// --- TTL ---

func TestPool_ExpiredContainersAreNeverHandedOutAndArePurged(t *testing.T) {
	prefix := testPrefix(t)
	c := newClient(t, withPrefix(prefix))
	p := c.Pool("cookies")
	ctx := t.Context()
	put(t, p, xsync.Container{ID: "short", TTL: 200 * time.Millisecond}, xsync.Container{ID: "forever"})
	short := get(t, p, "short")
	expiry := short.CreatedAt.Add(short.TTL)
	if got, err := p.AcquireRandom(ctx, 2); err != nil || len(got) != 2 {
		t.Fatalf("AcquireRandom(2) before expiry: %v, %v", ids(got), err)
	}
	eventually(t, 10*time.Second, "the server clock to pass the expiry", func() bool { return !serverNow(t).Before(expiry) })

	if got, err := p.Ask(ctx, 2); !errors.Is(err, xsync.ErrNotAvailable) {
		t.Fatalf("Ask(2) after expiry: %v, %v; want ErrNotAvailable", ids(got), err)
	}
	if got, err := p.AcquireRandom(ctx, 2); !errors.Is(err, xsync.ErrNotAvailable) {
		t.Fatalf("AcquireRandom(2) after expiry: %v, %v; want ErrNotAvailable", ids(got), err)
	}
	for range 10 {
		if got, err := p.AcquireRandomOne(ctx); err != nil || got.ID != "forever" {
			t.Fatalf("AcquireRandomOne after expiry: %v, %v", got.ID, err)
		}
	}
	if _, err := p.Get(ctx, "short"); !errors.Is(err, xsync.ErrNotFound) {
		t.Fatalf("Get of an expired container: %v, want ErrNotFound", err)
	}
	s := stats(t, p)
	if s.Total != 1 || s.Expired != 1 {
		t.Fatalf("Stats after one expiry: %+v, want Total 1, Expired 1", s)
	}
	db := rawDB(t, 0)
	for _, part := range []string{"ready", "expiry"} {
		if err := db.ZScore(ctx, poolKey(prefix, "cookies", part), "short").Err(); !errors.Is(err, redis.Nil) {
			t.Fatalf("expired container still in %s: %v", part, err)
		}
	}
	if ok, _ := db.HExists(ctx, poolKey(prefix, "cookies", "meta"), "short").Result(); ok {
		t.Fatal("expired container's record was not purged")
	}
}

// Expired containers are purged in bounded batches, and counted.
func TestPool_ExpiryPurgesInBoundedBatches(t *testing.T) {
	prefix := testPrefix(t)
	c := newClient(t, withPrefix(prefix))
	p := c.Pool("many")
	var cs []xsync.Container
	for i := range 300 {
		cs = append(cs, xsync.Container{ID: fmt.Sprintf("c%03d", i), TTL: 100 * time.Millisecond})
	}
	put(t, p, cs...)
	put(t, p, xsync.Container{ID: "keeper"})
	first := get(t, p, "c000")
	eventually(t, 10*time.Second, "the expiry", func() bool { return !serverNow(t).Before(first.CreatedAt.Add(first.TTL)) })

	// Each call purges at most one batch; the ones left are not live.
	s := stats(t, p)
	if s.Total != 1 || s.Expired <= 0 || s.Expired >= 300 {
		t.Fatalf("first Stats after 300 expiries: %+v; want Total 1 and a partial purge", s)
	}
	eventually(t, 10*time.Second, "every expired container purged", func() bool { return stats(t, p).Expired == 300 })
	if n, _ := rawDB(t, 0).ZCard(t.Context(), poolKey(prefix, "many", "ready")).Result(); n != 1 {
		t.Fatalf("%d containers left in the ready set, want 1", n)
	}
}

// --- waiting ---

func TestPool_WaiterOnEmptyPoolIsServedWhenAnotherClientPuts(t *testing.T) {
	prefix := testPrefix(t)
	waiter, producer := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	p := waiter.Pool("jobs")
	f := p.WaitAskOneAsync(ctx)
	random := p.WaitAcquireRandomAsync(ctx, 2)
	poolSettled(t, p) // both have been tried: the pool was empty, no timer is set

	put(t, producer.Pool("jobs"), xsync.Container{ID: "job-1", Data: "payload"})
	got, err := f.Wait(ctx)
	if err != nil || got.ID != "job-1" || got.Data != "payload" {
		t.Fatalf("waiter got %+v, %v; want job-1", got, err)
	}
	select {
	case <-random.Done():
		t.Fatal("WaitAcquireRandom(2) was served with one container in the pool")
	default:
	}
	put(t, producer.Pool("jobs"), xsync.Container{ID: "job-2"})
	if got, err := random.Wait(ctx); err != nil || !slices.Equal(ids(got), []string{"job-1", "job-2"}) {
		t.Fatalf("WaitAcquireRandom(2) got %v, %v", ids(got), err)
	}
}

func TestPool_WaiterForCoolingContainerIsServedWhenItIsReady(t *testing.T) {
	c := newClient(t)
	p := c.Pool("accounts")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	put(t, p, xsync.Container{ID: "a", Interval: 400 * time.Millisecond})
	first, err := p.AskOne(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.WaitAskOne(ctx)
	if err != nil {
		t.Fatal(err)
	}
	late := takenAt(got).Sub(first.NextAvailable)
	t.Logf("ready at %v, taken %v later (server time)", first.NextAvailable, late)
	if late < 0 {
		t.Fatalf("taken %v before it was ready", -late)
	}
	// The actor's timer fires at the ready time; a wake-up that waited for
	// anything else (a poll, a later event) would be far later.
	if late > 100*time.Millisecond {
		t.Fatalf("taken %v after it was ready: the waiter was not woken at the ready time", late)
	}
}

// While nothing changes, waiters cost no Redis command: not the 40 of them,
// not as time passes.
func TestPool_WaitersCostNoCommandsWhileNothingChanges(t *testing.T) {
	prefix := testPrefix(t)
	c := newClient(t, withPrefix(prefix))
	p := c.Pool("accounts")
	put(t, p, xsync.Container{ID: "a", Interval: time.Hour})
	if err := p.Cooldown(t.Context(), "a", time.Hour); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, 0)
	// The Put and the Cooldown are changes: had their wake-ups reached the
	// pool after its waiters (on Cluster they travel over the bus), the
	// waiters would rightly be tried again.
	publishedEverywhere(t, db, poolKey(prefix, "accounts", "meta"))
	ctx, cancel := context.WithTimeout(t.Context(), 800*time.Millisecond)
	defer cancel()
	var fs []*xsync.Future[[]xsync.Container]
	for i := range 40 {
		switch i % 4 {
		case 0:
			fs = append(fs, p.WaitAskAsync(ctx, 1))
		case 1:
			fs = append(fs, p.WaitAskAsync(ctx, 3)) // more than the pool holds
		case 2:
			fs = append(fs, p.WaitAcquireRandomAsync(ctx, 2)) // likewise
		default:
			fs = append(fs, p.WaitAskAsync(ctx, 1))
		}
	}
	poolSettled(t, p)
	if s := stats(t, p); s.Waiting != 40 {
		t.Fatalf("%d waiting, want 40", s.Waiting)
	}
	before := commandCounts(t, db)
	for _, f := range fs {
		if _, err := f.Wait(t.Context()); !errors.Is(err, xsync.ErrNotAvailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("waiter ended with %v, want ErrNotAvailable and DeadlineExceeded", err)
		}
	}
	if diff := commandsSince(t, db, before); len(diff) != 0 {
		t.Fatalf("40 waiters sent commands while nothing changed: %v", diff)
	}
}

// One script call serves many waiters at once.
func TestPool_OnePutServesManyWaitersInFewCalls(t *testing.T) {
	c := newClient(t)
	p := c.Pool("accounts")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var fs []*xsync.Future[xsync.Container]
	for range 30 {
		fs = append(fs, p.WaitAskOneAsync(ctx))
	}
	poolSettled(t, p)
	var cs []xsync.Container
	for i := range 30 {
		cs = append(cs, xsync.Container{ID: fmt.Sprintf("c%02d", i), Interval: time.Hour})
	}
	db := rawDB(t, 0)
	before := commandCounts(t, db)
	put(t, p, cs...)
	seen := map[string]bool{}
	for _, f := range fs {
		got, err := f.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if seen[got.ID] {
			t.Fatalf("%s handed out twice", got.ID)
		}
		seen[got.ID] = true
	}
	diff := commandsSince(t, db, before)
	scripts := diff["evalsha"] + diff["eval"]
	t.Logf("commands for one Put and 30 grants: %v", diff)
	if scripts > 3 {
		t.Fatalf("%d script calls to serve 30 waiters after one Put: not batched", scripts)
	}
}

// Fairness: a waiter for 3 containers at the head of the queue lets the
// small waiters behind it be served while it cannot be, PoolBypassLimit
// times; then it holds them back until it is served.
// holdBackBehindBigWaiter queues a waiter for 3 containers, then
// PoolBypassLimit+4 waiters for one, and serves the small ones until the
// big waiter's bypass budget is spent: small[PoolBypassLimit:] still wait,
// held back, and nothing is ready.
func holdBackBehindBigWaiter(t *testing.T, ctx context.Context, p *xsync.Pool) (big *xsync.Future[[]xsync.Container], small []*xsync.Future[xsync.Container]) {
	t.Helper()
	// 3 live containers, one of them cooling for an hour: the big waiter
	// could be served in an hour, so it may hold others back.
	put(t, p, xsync.Container{ID: "seed-1", Interval: time.Hour}, xsync.Container{ID: "seed-2", Interval: time.Hour},
		xsync.Container{ID: "seed-3", Interval: time.Hour})
	if err := p.Cooldown(ctx, "seed-3", time.Hour); err != nil {
		t.Fatal(err)
	}
	big = p.WaitAskAsync(ctx, 3) // first in the queue
	small = make([]*xsync.Future[xsync.Container], xsync.PoolBypassLimit+4)
	for i := range small {
		small[i] = p.WaitAskOneAsync(ctx)
	}
	// The two ready seeds go to the first two small waiters.
	for i := range 2 {
		if got, err := small[i].Wait(ctx); err != nil || !strings.HasPrefix(got.ID, "seed-") {
			t.Fatalf("small waiter %d: %+v, %v", i, got, err)
		}
	}
	// Every small waiter tried once before the next Put: a waiter's first
	// try may bypass the waiters ahead of it within their budgets, so one
	// still untried when a Put lands (its try in flight) could take the
	// new container ahead of small[2] (seen under load).
	poolSettled(t, p)
	// Each new container goes to the next small waiter, while the big one's
	// bypass budget lasts.
	for i := 2; i < xsync.PoolBypassLimit; i++ {
		id := fmt.Sprintf("new-%02d", i)
		put(t, p, xsync.Container{ID: id, Interval: time.Hour})
		if got, err := small[i].Wait(ctx); err != nil || got.ID != id {
			t.Fatalf("small waiter %d: %+v, %v; want %s", i, got, err, id)
		}
	}
	return big, small
}

func TestPool_LargeWaiterIsNotStarvedAndDoesNotBlockForever(t *testing.T) {
	c := newClient(t)
	p := c.Pool("accounts")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	big, small := holdBackBehindBigWaiter(t, ctx, p)
	// Budget spent: a ready container is now kept for the big waiter, even
	// from a one-shot AskOne.
	for i := range 2 {
		put(t, p, xsync.Container{ID: fmt.Sprintf("held-%d", i), Interval: time.Hour})
		if got, err := p.AskOne(ctx); !errors.Is(err, xsync.ErrNotAvailable) {
			t.Fatalf("AskOne behind a big waiter whose budget is spent: %+v, %v; want ErrNotAvailable", got, err)
		}
		if s := stats(t, p); s.Ready != i+1 || s.Waiting != 1+4 {
			t.Fatalf("held back: %+v; want %d ready, 5 waiting", s, i+1)
		}
	}
	put(t, p, xsync.Container{ID: "held-2", Interval: time.Hour})
	got, err := big.Wait(ctx)
	if err != nil || !slices.Equal(ids(got), []string{"held-0", "held-1", "held-2"}) {
		t.Fatalf("big waiter: %v, %v; want the three held containers", ids(got), err)
	}
	// And the small ones go on.
	put(t, p, xsync.Container{ID: "after", Interval: time.Hour})
	if got, err := small[xsync.PoolBypassLimit].Wait(ctx); err != nil || got.ID != "after" {
		t.Fatalf("first small waiter after the big one: %+v, %v", got, err)
	}
	for _, f := range small[xsync.PoolBypassLimit+1:] {
		f.Cancel()
	}
}

// When the waiter that holds the others back gives up, the containers it
// kept go to the waiters behind it at once, not at the next Put.
func TestPool_WithdrawnBigWaiterReleasesThoseItHeldBack(t *testing.T) {
	c := newClient(t)
	p := c.Pool("accounts")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	big, small := holdBackBehindBigWaiter(t, ctx, p)
	put(t, p, xsync.Container{ID: "held-0", Interval: time.Hour}, xsync.Container{ID: "held-1", Interval: time.Hour})
	if s := stats(t, p); s.Ready != 2 || s.Waiting != 1+4 {
		t.Fatalf("held back: %+v; want 2 ready, 5 waiting", s)
	}
	big.Cancel()
	for i, want := range []string{"held-0", "held-1"} {
		if got, err := small[xsync.PoolBypassLimit+i].Wait(ctx); err != nil || got.ID != want {
			t.Fatalf("small waiter %d after the big one left: %+v, %v; want %s", xsync.PoolBypassLimit+i, got, err, want)
		}
	}
	for _, f := range small[xsync.PoolBypassLimit+2:] {
		f.Cancel()
	}
}

// A waiter for more containers than the pool holds never holds others back.
func TestPool_ImpossibleWaiterDoesNotBlockOthers(t *testing.T) {
	c := newClient(t)
	p := c.Pool("accounts")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	huge := p.WaitAskAsync(ctx, 1000)
	defer huge.Cancel()
	poolSettled(t, p)
	for i := range xsync.PoolBypassLimit + 5 {
		f := p.WaitAskOneAsync(ctx)
		put(t, p, xsync.Container{ID: fmt.Sprintf("c%02d", i), Interval: time.Hour})
		if _, err := f.Wait(ctx); err != nil {
			t.Fatalf("waiter %d behind an impossible request: %v", i, err)
		}
	}
}

// --- cancellation ---

func TestPool_CancelledWaitIsWithdrawn(t *testing.T) {
	c := newClient(t)
	p := c.Pool("accounts")
	ctx := t.Context()
	f := p.WaitAskOneAsync(ctx)
	poolSettled(t, p)
	f.Cancel()
	if _, err := f.Wait(ctx); !errors.Is(err, context.Canceled) || !errors.Is(err, xsync.ErrNotAvailable) {
		t.Fatalf("cancelled wait: %v, want context.Canceled and ErrNotAvailable", err)
	}
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := p.WaitAskOne(tctx); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, xsync.ErrNotAvailable) {
		t.Fatalf("wait past its deadline: %v, want DeadlineExceeded and ErrNotAvailable", err)
	}
	// The withdrawal of a wait that ended on its context follows Wait's
	// return (Wait does not wait for it).
	eventually(t, 10*time.Second, "no waiter left", func() bool { return stats(t, p).Waiting == 0 })
	put(t, p, xsync.Container{ID: "a", Interval: time.Hour})
	got, err := p.AskOne(ctx)
	if err != nil || got.UsageCount != 1 {
		t.Fatalf("AskOne after the withdrawn waits: %+v, %v; the container must be untouched", got, err)
	}
}

// grantedNotReceived puts container id, with an hour's interval, and has a
// waiter granted it; nobody has received the grant (no Wait returned it).
// It returns the container as it was before, and the waiter's future.
func grantedNotReceived(t *testing.T, p *xsync.Pool, id string) (xsync.Container, *xsync.Future[xsync.Container]) {
	t.Helper()
	put(t, p, xsync.Container{ID: id, Interval: time.Hour})
	before := get(t, p, id)
	f := p.WaitAskOneAsync(t.Context())
	<-f.Done()
	return before, f
}

// A grant that races a cancellation is handed back: the container is ready
// again with its UsageCount and NextAvailable restored.
func TestPool_GrantRacingACancelIsHandedBack(t *testing.T) {
	c := newClient(t)
	p := c.Pool("accounts")
	ctx := t.Context()

	// A grant that arrived but was never received.
	before, f := grantedNotReceived(t, p, "a")
	f.Cancel()
	if _, err := f.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait after Cancel: %v, want context.Canceled", err)
	}
	eventually(t, 10*time.Second, "a handed back", func() bool { return get(t, p, "a") == before })

	// Cancels at every moment of a take: whichever way each race goes, a
	// grant is either received (Wait returned it: the cancel came too late)
	// or handed back; none stays taken unseen.
	const rounds = 40
	var cs []xsync.Container
	for i := range rounds {
		cs = append(cs, xsync.Container{ID: fmt.Sprintf("r%02d", i), Interval: time.Hour})
	}
	put(t, p, cs...)
	usage := map[string]int64{"a": 0}
	cooling := map[string]bool{}
	for i := range rounds {
		cctx, cancel := context.WithCancel(ctx)
		var f *xsync.Future[[]xsync.Container]
		random := i%2 == 1
		if random {
			f = p.WaitAcquireRandomAsync(cctx, 2)
		} else {
			f = p.WaitAskAsync(cctx, 2)
		}
		if i%3 == 0 {
			cancel() // cancels through the context, asynchronously
		} else {
			f.Cancel()
		}
		cancel()
		got, err := f.Wait(ctx)
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("round %d: %v", i, err)
		}
		for _, c := range got {
			usage[c.ID]++
			if !random {
				cooling[c.ID] = true
			}
		}
	}
	var last xsync.PoolStats
	defer func() { t.Logf("last stats: %+v; received %v", last, usage) }()
	all := append(cs, xsync.Container{ID: "a"})
	eventually(t, 10*time.Second, "every grant not received handed back", func() bool {
		last = stats(t, p)
		if last.Ready != rounds+1-len(cooling) || last.Waiting != 0 {
			return false
		}
		// Ready can hold before the last hand-backs' UsageCount
		// corrections land: wait for those too.
		for _, c := range all {
			if get(t, p, c.ID).UsageCount != usage[c.ID] {
				return false
			}
		}
		return true
	})
	for _, c := range all {
		if got := get(t, p, c.ID); got.UsageCount != usage[c.ID] {
			t.Fatalf("%s: UsageCount %d, received %d times: a grant was neither received nor handed back", c.ID, got.UsageCount, usage[c.ID])
		}
	}
}

// A grant that nobody received is handed back, but a Cooldown given
// meanwhile (by the consumer that still uses the container from an
// earlier take) stands: the container is not ready before it ends.
func TestPool_HandBackDoesNotUndoACooldown(t *testing.T) {
	c := newClient(t)
	p := c.Pool("accounts")
	ctx := t.Context()
	before, f := grantedNotReceived(t, p, "a") // NextAvailable is an hour away
	cooledAt := serverNow(t)
	if err := p.Cooldown(ctx, "a", time.Minute); err != nil {
		t.Fatal(err)
	}
	f.Cancel() // hands the grant back
	eventually(t, 10*time.Second, "the grant handed back", func() bool { return get(t, p, "a").UsageCount == before.UsageCount })
	if got := get(t, p, "a"); got.NextAvailable.Before(cooledAt.Add(time.Minute)) {
		t.Fatalf("NextAvailable %v after the hand-back: the Cooldown to %v was undone", got.NextAvailable, cooledAt.Add(time.Minute))
	}
	if got, err := p.AskOne(ctx); !errors.Is(err, xsync.ErrNotAvailable) {
		t.Fatalf("AskOne during the cooldown: %+v, %v; want ErrNotAvailable", got, err)
	}
}

// --- closing ---

func TestPool_CloseFailsWaitersWithErrClosed(t *testing.T) {
	c, err := xsync.New(withOptions(testOptions(t), withPrefix(testPrefix(t))))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Pool("accounts")
	ctx := t.Context()
	waiters := []*xsync.Future[[]xsync.Container]{p.WaitAskAsync(ctx, 1), p.WaitAcquireRandomAsync(ctx, 2)}
	poolSettled(t, p)
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, f := range waiters {
		if _, err := f.Wait(ctx); !errors.Is(err, xsync.ErrClosed) {
			t.Fatalf("waiter after Close: %v, want ErrClosed", err)
		}
	}
	if _, err := p.AskOne(ctx); !errors.Is(err, xsync.ErrClosed) {
		t.Fatalf("AskOne after Close: %v, want ErrClosed", err)
	}
	if err := p.Put(ctx, xsync.Container{ID: "a"}); !errors.Is(err, xsync.ErrClosed) {
		t.Fatalf("Put after Close: %v, want ErrClosed", err)
	}
	if _, err := c.Pool("other").Stats(ctx); !errors.Is(err, xsync.ErrClosed) {
		t.Fatalf("a new pool of a closed client: %v, want ErrClosed", err)
	}
}

// --- bad input ---

func TestPool_BadInput(t *testing.T) {
	prefix := testPrefix(t)
	c := newClient(t, withPrefix(prefix))
	p := c.Pool("accounts")
	ctx := t.Context()

	takes := map[string]func(n int) error{
		"Ask":               func(n int) error { _, err := p.Ask(ctx, n); return err },
		"WaitAsk":           func(n int) error { _, err := p.WaitAsk(ctx, n); return err },
		"AcquireRandom":     func(n int) error { _, err := p.AcquireRandom(ctx, n); return err },
		"WaitAcquireRandom": func(n int) error { _, err := p.WaitAcquireRandom(ctx, n); return err },
		"AskAsync":          func(n int) error { _, err := p.AskAsync(ctx, n).Wait(ctx); return err },
		"WaitAskAsync":      func(n int) error { _, err := p.WaitAskAsync(ctx, n).Wait(ctx); return err },
		"AcquireRandomAsync": func(n int) error {
			_, err := p.AcquireRandomAsync(ctx, n).Wait(ctx)
			return err
		},
		"WaitAcquireRandomAsync": func(n int) error {
			_, err := p.WaitAcquireRandomAsync(ctx, n).Wait(ctx)
			return err
		},
	}
	for name, take := range takes {
		for _, n := range []int{0, -1} {
			if err := take(n); !errors.Is(err, xsync.ErrInvalidQuantity) {
				t.Errorf("%s(%d): %v, want ErrInvalidQuantity", name, n, err)
			}
		}
	}

	bad := []xsync.Container{
		{ID: ""},
		{ID: "neg-ttl", TTL: -time.Second},
		{ID: "neg-interval", Interval: -time.Millisecond},
		{ID: "oversize", Data: strings.Repeat("x", xsync.MaxPayload+1)},
		{ID: "before-1970", CreatedAt: time.Unix(-10, 0)},
	}
	for _, b := range bad {
		// Each bad container spoils a batch of good ones: nothing is written.
		err := p.Put(ctx, xsync.Container{ID: "good-1"}, b, xsync.Container{ID: "good-2"})
		if !errors.Is(err, xsync.ErrInvalidContainer) {
			t.Errorf("Put with %q: %v, want ErrInvalidContainer", b.ID, err)
		}
	}
	if s := stats(t, p); s.Total != 0 {
		t.Fatalf("rejected Puts wrote %d containers", s.Total)
	}
	if n, _ := rawDB(t, 0).Exists(ctx, poolKey(prefix, "accounts", "ready"), poolKey(prefix, "accounts", "meta")).Result(); n != 0 {
		t.Fatalf("rejected Puts left %d keys", n)
	}
	if _, err := p.Get(ctx, ""); !errors.Is(err, xsync.ErrInvalidContainer) {
		t.Errorf("Get(\"\"): %v, want ErrInvalidContainer", err)
	}
	if _, err := p.Remove(ctx, "a", ""); !errors.Is(err, xsync.ErrInvalidContainer) {
		t.Errorf("Remove with an empty id: %v, want ErrInvalidContainer", err)
	}
	if err := p.Cooldown(ctx, "", time.Second); !errors.Is(err, xsync.ErrInvalidContainer) {
		t.Errorf("Cooldown(\"\"): %v, want ErrInvalidContainer", err)
	}

	for name, bad := range map[string]*xsync.Pool{"empty name": c.Pool(""), "negative DB": c.Pool("x", xsync.OnDB(-1))} {
		if _, err := bad.AskOne(ctx); !errors.Is(err, xsync.ErrInvalidOptions) {
			t.Errorf("%s: AskOne: %v, want ErrInvalidOptions", name, err)
		}
		if err := bad.Put(ctx, xsync.Container{ID: "a"}); !errors.Is(err, xsync.ErrInvalidOptions) {
			t.Errorf("%s: Put: %v, want ErrInvalidOptions", name, err)
		}
		if _, err := bad.Stats(ctx); !errors.Is(err, xsync.ErrInvalidOptions) {
			t.Errorf("%s: Stats: %v, want ErrInvalidOptions", name, err)
		}
	}
}

// Records written behind the pool's back fail with ErrCorrupt, naming the
// container; nothing panics, and the pool works again once they are gone.
func TestPool_CorruptRecordsAreReportedNotHandedOut(t *testing.T) {
	prefix := testPrefix(t)
	c := newClient(t, withPrefix(prefix))
	p := c.Pool("accounts")
	ctx := t.Context()
	db := rawDB(t, 0)
	put(t, p, xsync.Container{ID: "good", Interval: time.Hour})
	if err := p.Cooldown(ctx, "good", time.Minute); err != nil {
		t.Fatal(err)
	}
	// "bad" is ready and first in line, but its record is garbage.
	db.ZAdd(ctx, poolKey(prefix, "accounts", "ready"), redis.Z{Score: 1, Member: "bad"})
	db.HSet(ctx, poolKey(prefix, "accounts", "meta"), "bad", "not a record")
	// "orphan" is in the ready set with no record at all.
	db.ZAdd(ctx, poolKey(prefix, "accounts", "ready"), redis.Z{Score: 2, Member: "orphan"})

	corrupt := func(what string, err error, id string) {
		t.Helper()
		if !errors.Is(err, xsync.ErrCorrupt) || !strings.Contains(err.Error(), strconv.Quote(id)) {
			t.Fatalf("%s: %v, want ErrCorrupt naming %q", what, err, id)
		}
	}
	_, err := p.Get(ctx, "bad")
	corrupt("Get(bad)", err, "bad")
	_, err = p.Get(ctx, "orphan")
	corrupt("Get(orphan)", err, "orphan")
	_, err = p.AskOne(ctx)
	corrupt("AskOne", err, "bad")
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = p.WaitAsk(wctx, 1)
	corrupt("WaitAsk", err, "bad")
	err = p.Put(ctx, xsync.Container{ID: "fresh"}, xsync.Container{ID: "bad"})
	corrupt("Put(fresh, bad)", err, "bad")
	if _, err := p.Get(ctx, "fresh"); !errors.Is(err, xsync.ErrNotFound) {
		t.Fatalf("a Put that failed on a corrupt record wrote another container: %v", err)
	}
	if get(t, p, "good").UsageCount != 0 {
		t.Fatal("a failed take touched another container")
	}

	if n, err := p.Remove(ctx, "bad", "orphan"); err != nil || n != 2 {
		t.Fatalf("Remove of the corrupt records: %d, %v", n, err)
	}
	put(t, p, xsync.Container{ID: "fresh"})
	if got, err := p.AskOne(ctx); err != nil || got.ID != "fresh" {
		t.Fatalf("AskOne after the cleanup: %+v, %v", got, err)
	}

	// A key of the wrong type is corrupt data too.
	db.Set(ctx, poolKey(prefix, "other", "ready"), "a string", 0)
	if _, err := c.Pool("other").AskOne(ctx); !errors.Is(err, xsync.ErrCorrupt) {
		t.Fatalf("AskOne with a ready key of the wrong type: %v, want ErrCorrupt", err)
	}
}

// --- the scripts themselves ---

// pool_take may be resent with the same token after an answer was lost
// (xsync's clients never let go-redis resend a script): the resend gets the
// same containers and counts nothing twice; pool_handback undoes a grant by
// its token, once.
func TestPool_TakeScriptIsIdempotentPerToken(t *testing.T) {
	prefix := testPrefix(t)
	c := newClient(t, withPrefix(prefix))
	p := c.Pool("accounts")
	ctx := t.Context()
	put(t, p, xsync.Container{ID: "a", Interval: time.Hour}, xsync.Container{ID: "b", Interval: time.Hour},
		xsync.Container{ID: "c", Interval: time.Hour})
	before := get(t, p, "a")
	db := rawDB(t, 0)
	keys := redisx.Keys{Prefix: prefix}
	take := func(token string) []any {
		k, args := xsync.PoolTakeArgs(keys, "accounts", token, 2, false)
		res, err := xsync.Scripts.Get("pool_take").Run(ctx, db, k, args...).Slice()
		if err != nil {
			t.Fatal(err)
		}
		return res[1].([]any)
	}
	first := take("tok-1")
	again := take("tok-1")
	if first[0] != int64(1) || fmt.Sprint(first[1:]) != fmt.Sprint(again[1:]) {
		t.Fatalf("resent take: %v, then %v; want the same grant", first, again)
	}
	if other := take("tok-2"); other[0] != int64(0) {
		t.Fatalf("a second token got %v: only one container is left", other)
	}
	if got := get(t, p, "a"); got.UsageCount != 1 {
		t.Fatalf("UsageCount %d after a take and its resend, want 1", got.UsageCount)
	}

	hand := func(token string) int64 {
		res, err := xsync.Scripts.Get("pool_handback").Run(ctx, db,
			append(poolBaseKeys(prefix, "accounts"), keys.Pool("accounts", "grant:"+token)),
			keys.PoolChannel(0), "accounts", "1").Int64Slice()
		if err != nil {
			t.Fatal(err)
		}
		return res[0]
	}
	if n := hand("tok-1"); n != 2 {
		t.Fatalf("hand-back of a 2-container grant: %d", n)
	}
	if n := hand("tok-1"); n != 0 {
		t.Fatalf("second hand-back of the same grant: %d, want 0", n)
	}
	if got := get(t, p, "a"); got != before {
		t.Fatalf("after the hand-back: %+v, want %+v", got, before)
	}
}

// Pools of the same name on two DBs are two pools.
func TestPool_OnDBIsolatesPools(t *testing.T) {
	prefix := testPrefix(t)
	c := newClient(t, withPrefix(prefix))
	ctx := t.Context()
	p0, p5 := c.Pool("accounts"), c.Pool("accounts", xsync.OnDB(5))
	if c.Pool("accounts") != p0 || c.Pool("accounts", xsync.OnDB(5)) != p5 || p0 == p5 {
		t.Fatal("Pool must return one handle per name and DB")
	}
	put(t, p5, xsync.Container{ID: "on-5"})
	if _, err := p0.Get(ctx, "on-5"); !errors.Is(err, xsync.ErrNotFound) {
		t.Fatalf("DB 0 sees DB 5's container: %v", err)
	}
	f := p0.WaitAskOneAsync(ctx)
	defer f.Cancel()
	poolSettled(t, p0)
	put(t, p5, xsync.Container{ID: "on-5-again"})
	if got := get(t, p5, "on-5"); got.UsageCount != 0 {
		t.Fatal("a waiter on DB 0 took a container of DB 5")
	}
	if n, _ := rawDB(t, 5).Exists(ctx, poolKey(prefix, "accounts", "ready")).Result(); n != 1 {
		t.Fatal("DB 5's pool is not in DB 5")
	}
}

// After the pub/sub connection drops, whatever was published meanwhile may
// be lost: waiters are tried again once it is back. Here the container is
// written behind the pool's back (nothing is published), so the retry after
// the reconnection is the only thing that can serve the waiter.
func TestPool_WaitersAreRetriedAfterPubSubReconnects(t *testing.T) {
	prefix := testPrefix(t)
	c := newClient(t, withPrefix(prefix))
	p := c.Pool("accounts")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	f := p.WaitAskOneAsync(ctx)
	poolSettled(t, p)

	db := rawDB(t, 0)
	now := serverNow(t)
	db.HSet(ctx, poolKey(prefix, "accounts", "meta"), "quiet", fmt.Sprintf("%d:0:0:0:0", now.UnixMilli()))
	db.ZAdd(ctx, poolKey(prefix, "accounts", "ready"), redis.Z{Score: float64(now.UnixMicro()), Member: "quiet"})
	select {
	case <-f.Done():
		t.Fatal("served before the reconnection: something polls")
	default:
	}
	killPubSub(t, db)
	got, err := f.Wait(ctx)
	if err != nil || got.ID != "quiet" {
		t.Fatalf("waiter after the reconnection: %+v, %v", got, err)
	}
}

// Every grant is received by a caller or handed back, never lost and never
// counted twice: with three clients whose waits are cancelled at every
// moment, the containers' usage counts add up to the grants received.
func TestPool_UsageCountsMatchGrantsReceivedDespiteCancels(t *testing.T) {
	prefix := testPrefix(t)
	var clients []*xsync.Client
	for range 3 {
		c, err := xsync.New(withOptions(testOptions(t), withPrefix(prefix)))
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	var cs []xsync.Container
	for i := range 5 {
		cs = append(cs, xsync.Container{ID: fmt.Sprintf("c%d", i), Interval: 2 * time.Millisecond})
	}
	put(t, clients[0].Pool("accounts"), cs...)

	var (
		mu     sync.Mutex
		counts = map[string]int64{}
		wg     sync.WaitGroup
	)
	for ci, c := range clients {
		p := c.Pool("accounts")
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 40 {
					var (
						got []xsync.Container
						err error
					)
					switch (ci + g + i) % 4 {
					case 0: // a deadline that often ends the wait
						ctx, cancel := context.WithTimeout(t.Context(), time.Duration(i%3)*time.Millisecond)
						got, err = p.WaitAsk(ctx, 1+i%2)
						cancel()
					case 1: // Cancel right away
						f := p.WaitAcquireRandomAsync(t.Context(), 1)
						f.Cancel()
						got, err = f.Wait(t.Context())
					case 2: // Cancel once granted, before Wait
						f := p.WaitAskAsync(t.Context(), 2)
						<-f.Done()
						f.Cancel()
						got, err = f.Wait(t.Context())
					default:
						got, err = p.Ask(t.Context(), 1)
					}
					if err != nil {
						continue
					}
					mu.Lock()
					for _, c := range got {
						counts[c.ID]++
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	// Close hands back what is in flight and waits for every hand-back.
	for _, c := range clients {
		if err := c.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	check := newClient(t, withPrefix(prefix)).Pool("accounts")
	total := int64(0)
	for _, c := range cs {
		got := get(t, check, c.ID)
		if got.UsageCount != counts[c.ID] {
			t.Errorf("%s: UsageCount %d, but callers received it %d times", c.ID, got.UsageCount, counts[c.ID])
		}
		total += got.UsageCount
	}
	t.Logf("%d grants received", total)
	if total == 0 {
		t.Fatal("no grant at all: the test tested nothing")
	}
}

// After a change every waiter is tried again, however long the queue:
// waiters that cannot be served, more than one call's worth of them, do not
// hide one that can.
func TestPool_EveryWaiterIsTriedAfterAChange(t *testing.T) {
	c := newClient(t)
	p := c.Pool("accounts")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var impossible []*xsync.Future[[]xsync.Container]
	for range 300 {
		impossible = append(impossible, p.WaitAskAsync(ctx, 1000))
	}
	last := p.WaitAskOneAsync(ctx)
	poolSettled(t, p)
	put(t, p, xsync.Container{ID: "a", Interval: time.Hour})
	if got, err := last.Wait(ctx); err != nil || got.ID != "a" {
		t.Fatalf("the waiter behind 300 impossible ones: %+v, %v", got, err)
	}
	if s := stats(t, p); s.Waiting != 300 {
		t.Fatalf("%d waiting, want the 300 impossible ones", s.Waiting)
	}
	for _, f := range impossible {
		f.Cancel()
	}
}

// Close while takes are in flight: the waiters fail with ErrClosed, and a
// grant that was on its way when Close began is handed back before Close
// returns, so the usage counts add up to what callers received.
func TestPool_CloseHandsBackGrantsInFlight(t *testing.T) {
	prefix := testPrefix(t)
	c, err := xsync.New(withOptions(testOptions(t), withPrefix(prefix)))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Pool("accounts")
	var cs []xsync.Container
	for i := range 5 {
		cs = append(cs, xsync.Container{ID: fmt.Sprintf("c%d", i), Interval: time.Millisecond})
	}
	put(t, p, cs...)
	var (
		mu       sync.Mutex
		counts   = map[string]int64{}
		received = make(chan struct{}, 1000)
		wg       sync.WaitGroup
	)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, err := p.WaitAskOne(t.Context())
				if err != nil {
					if !errors.Is(err, xsync.ErrClosed) {
						t.Errorf("WaitAskOne during Close: %v, want ErrClosed", err)
					}
					return
				}
				mu.Lock()
				counts[got.ID]++
				mu.Unlock()
				select {
				case received <- struct{}{}:
				default:
				}
			}
		}()
	}
	for range 100 {
		<-received
	}
	if err := c.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	check := newClient(t, withPrefix(prefix)).Pool("accounts")
	for _, c := range cs {
		if got := get(t, check, c.ID); got.UsageCount != counts[c.ID] {
			t.Errorf("%s: UsageCount %d, received %d times", c.ID, got.UsageCount, counts[c.ID])
		}
	}
}
