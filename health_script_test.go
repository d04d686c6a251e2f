package xsync_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync"
	"github.com/redisxsync/xsync/redisx"
)

// The health rules at the script level (pool_report and what the other pool
// scripts do with a retired container), where the test picks the timing and
// reads the server's own clock back: the arithmetic is checked exactly.

// scriptPolicy is the health policy pool_report is called with.
type scriptPolicy struct {
	backoff, maxBackoff time.Duration
	retireAfter         int
}

// reportReply is pool_report's answer.
type reportReply struct {
	now      time.Time // the server's clock when the report was applied
	state    int64     // -1 not found, 0 live, 1 retired already, 2 retired by this report
	next     time.Time // NextAvailable after the report
	failures int64
}

// scriptReport runs pool_report on container id of pool "accounts".
func scriptReport(t testing.TB, prefix, id, outcome string, pol scriptPolicy) reportReply {
	t.Helper()
	res, err := runScript(t, "pool_report", poolBaseKeys(prefix, "accounts"),
		id, outcome, pol.backoff.Microseconds(), pol.maxBackoff.Microseconds(), pol.retireAfter).Int64Slice()
	if err != nil {
		t.Fatalf("pool_report(%s, %s): %v", id, outcome, err)
	}
	if len(res) != 4 {
		t.Fatalf("pool_report: reply %v", res)
	}
	return reportReply{now: time.UnixMicro(res[0]), state: res[1], next: time.UnixMicro(res[2]), failures: res[3]}
}

// runScript runs one of xsync's scripts on DB 0 of the test server.
func runScript(t testing.TB, name string, keys []string, args ...any) *redis.Cmd {
	t.Helper()
	return xsync.Scripts.Get(name).Run(context.Background(), rawDB(t, 0), keys, args...)
}

// scriptTake runs pool_take for one request of pool "accounts" and returns
// its reply: {1, containers...}, {0, at} or {4}.
func scriptTake(t testing.TB, prefix, token string, n int, random bool) []any {
	t.Helper()
	k, args := xsync.PoolTakeArgs(redisx.Keys{Prefix: prefix}, "accounts", token, n, random)
	res, err := runScript(t, "pool_take", k, args...).Slice()
	if err != nil {
		t.Fatalf("pool_take: %v", err)
	}
	return res[1].([]any)
}

// A Blocked report cools the container down for backoff × 2^(k-1), k the
// Blocked reports of the streak (Failed ones count in the streak, not in
// k), capped at maxBackoff; Succeeded starts the streak, and k, afresh.
func TestPoolReportScript_BlockedBacksOffExponentiallyUpToTheCap(t *testing.T) {
	prefix := testPrefix(t)
	p := newClient(t, withPrefix(prefix)).Pool("accounts")
	put(t, p, xsync.Container{ID: "a"})
	pol := scriptPolicy{backoff: time.Second, maxBackoff: 5 * time.Second}
	steps := []struct {
		outcome  string
		cooldown time.Duration // from the report's own clock; 0: NextAvailable unchanged
		failures int64
	}{
		{"b", 1 * time.Second, 1}, // k=1
		{"b", 2 * time.Second, 2}, // k=2
		{"f", 0, 3},               // counts in the streak, not in k
		{"b", 4 * time.Second, 4}, // k=3
		{"b", 5 * time.Second, 5}, // k=4: 8s, capped at 5s
		{"b", 5 * time.Second, 6}, // k=5: still the cap
		{"s", 0, 0},               // clears the streak and k
		{"b", 1 * time.Second, 1}, // k=1 again
	}
	for i, st := range steps {
		// Each step starts with the container ready, so that the cooldown
		// it gets shows whole (a cooldown in force is never shortened).
		forceReady(t, prefix, "a")
		before := get(t, p, "a")
		got := scriptReport(t, prefix, "a", st.outcome, pol)
		want := before.NextAvailable
		if st.cooldown > 0 {
			want = got.now.Add(st.cooldown)
		}
		if got.state != 0 || got.failures != st.failures || !got.next.Equal(want) {
			t.Fatalf("step %d (%s): state %d, failures %d, NextAvailable %v (report at %v); want live, %d, %v",
				i, st.outcome, got.state, got.failures, got.next.Format(time.StampMicro), got.now.Format(time.StampMicro),
				st.failures, want.Format(time.StampMicro))
		}
		if c := get(t, p, "a"); c.Failures != st.failures || !c.NextAvailable.Equal(want) || c.Retired {
			t.Fatalf("step %d (%s): Get = %+v; want Failures %d, NextAvailable %v", i, st.outcome, c, st.failures, want)
		}
	}
}

// forceReady makes container id of pool "accounts" ready now, whatever its
// cooldown, by writing its ready score directly.
func forceReady(t testing.TB, prefix, id string) {
	t.Helper()
	if err := rawDB(t, 0).ZAdd(context.Background(), poolKey(prefix, "accounts", "ready"), redis.Z{Score: 1, Member: id}).Err(); err != nil {
		t.Fatal(err)
	}
}

// A Blocked report never shortens a cooldown in force, but it still counts
// as a change of the container: a grant made before it is void.
func TestPoolReportScript_BlockedKeepsALongerCooldownAndOvertakesGrants(t *testing.T) {
	prefix := testPrefix(t)
	p := newClient(t, withPrefix(prefix)).Pool("accounts")
	put(t, p, xsync.Container{ID: "a", Interval: time.Hour})
	taken := scriptTake(t, prefix, "tok-1", 1, false)
	if taken[0] != int64(1) {
		t.Fatalf("take: %v", taken)
	}
	long := get(t, p, "a").NextAvailable.Add(time.Microsecond) // an hour from the take; a Blocked moves it by 1µs at least
	got := scriptReport(t, prefix, "a", "b", scriptPolicy{backoff: time.Second, maxBackoff: time.Minute})
	if !got.next.Equal(long) || !get(t, p, "a").NextAvailable.Equal(long) {
		t.Fatalf("Blocked (1s) during an hour's interval moved NextAvailable %v -> %v", long, got.next)
	}
	// The grant is void: resent, it is answered "overtaken"; handed back,
	// it leaves the container as the report left it.
	if again := scriptTake(t, prefix, "tok-1", 1, false); len(again) != 1 || again[0] != int64(4) {
		t.Fatalf("resent take after a Blocked report: %v, want {4} (overtaken)", again)
	}
	if c := get(t, p, "a"); !c.NextAvailable.Equal(long) || c.Failures != 1 {
		t.Fatalf("after the void grant: %+v, want NextAvailable %v and Failures 1", c, long)
	}
}

// Succeeded and Failed (short of retiring) change the streak alone: a grant
// made before them is not overtaken, and handing it back keeps the streak.
func TestPoolReportScript_SucceededAndFailedDoNotOvertakeGrants(t *testing.T) {
	prefix := testPrefix(t)
	p := newClient(t, withPrefix(prefix)).Pool("accounts")
	put(t, p, xsync.Container{ID: "a", Interval: time.Hour})
	before := get(t, p, "a")
	first := scriptTake(t, prefix, "tok-1", 1, false)
	scriptReport(t, prefix, "a", "f", scriptPolicy{backoff: time.Second, maxBackoff: time.Minute, retireAfter: 3})
	scriptReport(t, prefix, "a", "s", scriptPolicy{backoff: time.Second, maxBackoff: time.Minute, retireAfter: 3})
	scriptReport(t, prefix, "a", "f", scriptPolicy{backoff: time.Second, maxBackoff: time.Minute, retireAfter: 3})
	if again := scriptTake(t, prefix, "tok-1", 1, false); fmt.Sprint(again) != fmt.Sprint(first) {
		t.Fatalf("resent take after Failed/Succeeded reports: %v, want the grant %v again", again, first)
	}
	back, err := runScript(t, "pool_handback", append(poolBaseKeys(prefix, "accounts"), poolKey(prefix, "accounts", "grant:tok-1")),
		"unused", "accounts", "0").Int64Slice()
	if err != nil || back[0] != 1 {
		t.Fatalf("hand-back: %v, %v; want 1 container given back", back, err)
	}
	want := before
	want.Failures = 1
	if c := get(t, p, "a"); c != want {
		t.Fatalf("after the hand-back: %+v, want %+v (as before the take, with the streak kept)", c, want)
	}
}

// A streak of retireAfter Failed/Blocked reports retires the container:
// Get shows it, Stats counts it in Total and Retired, not in Ready; no take
// hands it out, and it counts neither as live nor towards a retry time.
// Reports on it change nothing. Without retireAfter nothing retires.
func TestPoolReportScript_StreakRetiresAndTakesIgnoreRetired(t *testing.T) {
	prefix := testPrefix(t)
	p := newClient(t, withPrefix(prefix)).Pool("accounts")
	put(t, p, xsync.Container{ID: "b", Interval: time.Hour})
	if got := scriptTake(t, prefix, "tok-b", 1, false); got[0] != int64(1) {
		t.Fatalf("take of b: %v", got) // b: ready in an hour
	}
	put(t, p, xsync.Container{ID: "a", Data: "cookie"})
	never := scriptPolicy{backoff: time.Millisecond, maxBackoff: time.Millisecond}
	for range 10 {
		if got := scriptReport(t, prefix, "a", "f", never); got.state != 0 {
			t.Fatalf("without retireAfter, a Failed report retired a: %+v", got)
		}
	}
	scriptReport(t, prefix, "a", "s", never)
	pol := scriptPolicy{backoff: time.Millisecond, maxBackoff: time.Millisecond, retireAfter: 3}
	for i, o := range []string{"f", "b", "f"} {
		got := scriptReport(t, prefix, "a", o, pol)
		if want := map[bool]int64{true: 2, false: 0}[i == 2]; got.state != want || got.failures != int64(i+1) {
			t.Fatalf("report %d (%s): %+v, want state %d, failures %d", i+1, o, got, want, i+1)
		}
	}
	a := get(t, p, "a")
	if !a.Retired || a.Failures != 3 || a.Data != "cookie" {
		t.Fatalf("a after 3 failures: %+v, want Retired, Failures 3, its data kept", a)
	}
	if s := stats(t, p); s.Total != 2 || s.Retired != 1 || s.Ready != 0 || !s.NextReadyAt.Equal(get(t, p, "b").NextAvailable) {
		t.Fatalf("Stats = %+v; want Total 2, Retired 1, Ready 0, NextReadyAt b's NextAvailable", s)
	}
	// a is ready by its time but retired: asking for 1 waits for b; for 2
	// can never be served; at random, only b is ever handed out.
	if got := scriptTake(t, prefix, "tok-1", 1, false); got[0] != int64(0) || got[1] != get(t, p, "b").NextAvailable.UnixMicro() {
		t.Fatalf("ask 1: %v; want {0, b's NextAvailable}", got)
	}
	if got := scriptTake(t, prefix, "tok-2", 2, false); got[0] != int64(0) || got[1] != int64(-1) {
		t.Fatalf("ask 2: %v; want {0, -1}: one container is not retired", got)
	}
	if got := scriptTake(t, prefix, "tok-3", 2, true); got[0] != int64(0) || got[1] != int64(-1) {
		t.Fatalf("random 2: %v; want {0, -1}", got)
	}
	for i := range 20 {
		if got := scriptTake(t, prefix, fmt.Sprintf("tok-r%d", i), 1, true); got[0] != int64(1) || got[1].([]any)[0] != "b" {
			t.Fatalf("random 1: %v; want b, the one container not retired", got)
		}
	}
	// Reports on a retired container change nothing.
	before := snapshot(t, rawDB(t, 0), prefix)
	for _, o := range []string{"s", "f", "b"} {
		if got := scriptReport(t, prefix, "a", o, pol); got.state != 1 || got.failures != 3 {
			t.Fatalf("%s on retired a: %+v, want state 1 (retired already), failures 3", o, got)
		}
	}
	if after := snapshot(t, rawDB(t, 0), prefix); !maps.Equal(before, after) {
		t.Fatal("reports on a retired container changed its record")
	}
}

// The Blocked report that retires a container keeps its cooldown: a Put
// that revives it brings it back at that NextAvailable, not before, with
// its streak cleared, and wakes the waiters (it publishes). A Put of a live
// container keeps its streak.
func TestPoolReportScript_PutRevivesRetiredAndKeepsLiveStreaks(t *testing.T) {
	prefix := testPrefix(t)
	p := newClient(t, withPrefix(prefix)).Pool("accounts")
	put(t, p, xsync.Container{ID: "a"}, xsync.Container{ID: "b"})
	pol := scriptPolicy{backoff: time.Hour, maxBackoff: time.Hour, retireAfter: 2}
	scriptReport(t, prefix, "a", "f", pol)
	retiring := scriptReport(t, prefix, "a", "b", pol)
	if retiring.state != 2 || !retiring.next.Equal(retiring.now.Add(time.Hour)) {
		t.Fatalf("retiring Blocked: %+v; want retired, an hour's cooldown", retiring)
	}
	scriptReport(t, prefix, "b", "f", pol)

	sub := subscribeWake(t, wakeKeys(t, prefix).PoolWake(0, "accounts"))
	put(t, p, xsync.Container{ID: "a", Data: "new cookie"}, xsync.Container{ID: "b", Data: "new too"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if msg, err := sub.ReceiveMessage(ctx); err != nil || msg.Payload != "accounts" {
		t.Fatalf("the reviving Put published %v, %v; want the pool's name", msg, err)
	}
	a, b := get(t, p, "a"), get(t, p, "b")
	if a.Retired || a.Failures != 0 || !a.NextAvailable.Equal(retiring.next) || a.Data != "new cookie" {
		t.Fatalf("revived a: %+v; want live, Failures 0, NextAvailable %v, the new data", a, retiring.next)
	}
	if b.Retired || b.Failures != 1 {
		t.Fatalf("b after a Put: %+v; want its streak of 1 kept", b)
	}
	if s := stats(t, p); s.Retired != 0 || s.Total != 2 {
		t.Fatalf("Stats after the revival: %+v", s)
	}
}

// A report makes nothing ready, so it publishes nothing: no waiter of any
// client is woken by it.
func TestPoolReportScript_ReportsPublishNothing(t *testing.T) {
	prefix := testPrefix(t)
	p := newClient(t, withPrefix(prefix)).Pool("accounts")
	put(t, p, xsync.Container{ID: "a"})
	db := rawDB(t, 0)
	before := commandCounts(t, db)
	pol := scriptPolicy{backoff: time.Second, maxBackoff: time.Minute, retireAfter: 3}
	for _, o := range []string{"b", "s", "f", "b", "f", "s"} {
		scriptReport(t, prefix, "a", o, pol)
	}
	if diff := commandsSince(t, db, before); diff["publish"] != 0 {
		t.Fatalf("reports published %d times: %v", diff["publish"], diff)
	}
}

// A report on an id the pool does not hold, or whose TTL has passed,
// finds nothing and writes nothing: no record comes back to life. The
// expired one is purged and counted.
func TestPoolReportScript_UnknownRemovedAndExpiredAreNotFound(t *testing.T) {
	prefix := testPrefix(t)
	p := newClient(t, withPrefix(prefix)).Pool("accounts")
	// Put with a CreatedAt an hour ago and a TTL of a minute, old and
	// old2 have expired already.
	hourAgo := serverNow(t).Add(-time.Hour)
	put(t, p, xsync.Container{ID: "gone"}, xsync.Container{ID: "old", CreatedAt: hourAgo, TTL: time.Minute}, xsync.Container{ID: "a"})
	if n, err := p.Remove(context.Background(), "gone"); err != nil || n != 1 {
		t.Fatalf("Remove: %d, %v", n, err)
	}
	stats(t, p) // purges old: the snapshot below shows only what reports do
	put(t, p, xsync.Container{ID: "old2", CreatedAt: hourAgo, TTL: time.Minute})

	db := rawDB(t, 0)
	before := snapshot(t, db, prefix)
	pol := scriptPolicy{backoff: time.Second, maxBackoff: time.Minute, retireAfter: 1}
	for _, id := range []string{"gone", "never", "old"} {
		for _, o := range []string{"s", "f", "b"} {
			if got := scriptReport(t, prefix, id, o, pol); got.state != -1 {
				t.Fatalf("%s on %s: %+v, want not found", o, id, got)
			}
		}
	}
	if after := snapshot(t, db, prefix); !maps.Equal(before, after) {
		t.Fatal("reports on ids the pool does not hold changed Redis")
	}
	if got := scriptReport(t, prefix, "old2", "f", pol); got.state != -1 {
		t.Fatalf("report on an expired container: %+v, want not found", got)
	}
	if s := stats(t, p); s.Total != 1 || s.Expired != 2 || s.Retired != 0 {
		t.Fatalf("Stats = %+v; want a alone, 2 expired (old2 purged by the report), none retired", s)
	}
}

// Bad records fail a report with XSYNC_CORRUPT before it writes anything:
// one that does not decode, a retired one still in the ready set, a live
// one missing from it. An unknown outcome is refused. A record written
// before pools kept health (five fields) reads as a clean streak.
func TestPoolReportScript_BadDataAndOldRecords(t *testing.T) {
	prefix := testPrefix(t)
	p := newClient(t, withPrefix(prefix)).Pool("accounts")
	ctx := context.Background()
	db := rawDB(t, 0)
	meta, ready := poolKey(prefix, "accounts", "meta"), poolKey(prefix, "accounts", "ready")
	put(t, p, xsync.Container{ID: "a"}, xsync.Container{ID: "r"}, xsync.Container{ID: "l"})
	pol := scriptPolicy{backoff: time.Second, maxBackoff: time.Minute, retireAfter: 1}
	scriptReport(t, prefix, "r", "f", pol) // r is retired
	if err := db.ZAdd(ctx, ready, redis.Z{Score: 1, Member: "r"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := db.ZRem(ctx, ready, "l").Err(); err != nil {
		t.Fatal(err)
	}
	if err := db.HSet(ctx, meta, "bad", "1:2:3:4:5:6").Err(); err != nil {
		t.Fatal(err)
	}
	if err := db.ZAdd(ctx, ready, redis.Z{Score: 1, Member: "bad"}).Err(); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, db, prefix)
	for _, id := range []string{"bad", "r", "l"} {
		err := runScript(t, "pool_report", poolBaseKeys(prefix, "accounts"), id, "f", 1, 1, 1).Err()
		if err == nil || !strings.HasPrefix(err.Error(), "XSYNC_CORRUPT") {
			t.Fatalf("report on %s: %v, want XSYNC_CORRUPT", id, err)
		}
		if _, err := p.Get(ctx, id); !errors.Is(err, xsync.ErrCorrupt) {
			t.Fatalf("Get(%s): %v, want ErrCorrupt", id, err)
		}
	}
	if err := runScript(t, "pool_report", poolBaseKeys(prefix, "accounts"), "a", "x", 1, 1, 1).Err(); err == nil {
		t.Fatal("an unknown outcome was accepted")
	}
	if after := snapshot(t, db, prefix); !maps.Equal(before, after) {
		t.Fatal("refused reports changed Redis")
	}

	a := get(t, p, "a")
	old := fmt.Sprintf("%d:0:0:7:3", a.CreatedAt.UnixMilli())
	if err := db.HSet(ctx, meta, "a", old).Err(); err != nil {
		t.Fatal(err)
	}
	if c := get(t, p, "a"); c.UsageCount != 7 || c.Failures != 0 || c.Retired {
		t.Fatalf("a five-field record reads as %+v; want UsageCount 7, a clean streak", c)
	}
	if got := scriptReport(t, prefix, "a", "b", scriptPolicy{backoff: time.Second, maxBackoff: time.Minute}); got.failures != 1 {
		t.Fatalf("Blocked on a five-field record: %+v", got)
	}
	if raw := db.HGet(ctx, meta, "a").Val(); strings.Count(raw, ":") != 7 {
		t.Fatalf("the report rewrote the record as %q, want the eight-field form", raw)
	}
}

// When more containers expired than one call purges, some of them retired,
// a take cannot count the live ones exactly: it asks to be retried soon
// rather than answer "never" (-1), which would leave a waiter without a
// timer; once the purges caught up it answers the true retry time.
func TestPoolTakeScript_ExpiredRetiredContainersNeverMakeAWaiterGiveUp(t *testing.T) {
	prefix := testPrefix(t)
	p := newClient(t, withPrefix(prefix)).Pool("accounts")
	put(t, p, xsync.Container{ID: "b", Interval: time.Hour})
	if got := scriptTake(t, prefix, "tok-b", 1, false); got[0] != int64(1) {
		t.Fatalf("take of b: %v", got)
	}
	bNext := get(t, p, "b").NextAvailable
	const many = 300 // over twice the purge batch (128)
	const ttl = time.Second
	cs := make([]xsync.Container, many)
	for i := range cs {
		cs[i] = xsync.Container{ID: fmt.Sprintf("r%03d", i), TTL: ttl}
	}
	put(t, p, cs...)
	// All retired within their TTL: one report loads the script, one
	// pipeline sends the others.
	ctx := context.Background()
	scriptReport(t, prefix, cs[0].ID, "f", scriptPolicy{retireAfter: 1})
	pipe := rawDB(t, 0).Pipeline()
	for _, c := range cs[1:] {
		xsync.Scripts.Get("pool_report").Run(ctx, pipe, poolBaseKeys(prefix, "accounts"), c.ID, "f", 0, 0, 1)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if s := stats(t, p); s.Retired != many {
		t.Fatalf("Stats = %+v; want all %d retired within their TTL", s, many)
	}
	created := get(t, p, "r000").CreatedAt
	eventually(t, 5*time.Second, "the retired containers expired", func() bool {
		return serverNow(t).After(created.Add(ttl + 10*time.Millisecond))
	})
	var answers []int64
	for i := 0; ; i++ {
		got := scriptTake(t, prefix, fmt.Sprintf("tok-%d", i), 1, false)
		if got[0] != int64(0) {
			t.Fatalf("take %d: %v, want not served", i, got)
		}
		answers = append(answers, got[1].(int64))
		if got[1] == bNext.UnixMicro() {
			break
		}
		if got[1] == int64(-1) || i == 5 {
			t.Fatalf("takes answered %v; want a retry soon until the purges caught up, then b's NextAvailable %d",
				answers, bNext.UnixMicro())
		}
	}
	if len(answers) < 2 {
		t.Fatalf("takes answered %v: the first should not know yet", answers)
	}
}
