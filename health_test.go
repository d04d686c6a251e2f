package xsync_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/redisxsync/xsync"
)

// The health rules through the API: Pool.Report, HealthPolicy, and what
// retirement does to takes, Stats, Put and waiters, across clients.

// report is Pool.Report that fails the test on an error.
func report(t testing.TB, p *xsync.Pool, id string, o xsync.Outcome) {
	t.Helper()
	if err := p.Report(context.Background(), id, o); err != nil {
		t.Fatalf("Report(%s, %v): %v", id, o, err)
	}
}

// reportCooling reports o on id and checks that the container is then
// unavailable for d after the report, on the server's clock: its
// NextAvailable lies between (server time before the call) + d and (server
// time after it) + d.
func reportCooling(t testing.TB, p *xsync.Pool, id string, o xsync.Outcome, d time.Duration) xsync.Container {
	t.Helper()
	before := serverNow(t)
	report(t, p, id, o)
	after := serverNow(t)
	c := get(t, p, id)
	lo, hi := before.Add(d).Truncate(time.Microsecond), after.Add(d)
	if c.NextAvailable.Before(lo) || c.NextAvailable.After(hi) {
		t.Fatalf("%v on %s: NextAvailable %v; want %v after the report, in [%v, %v]", o, id,
			c.NextAvailable.Format(time.StampMicro), d, lo.Format(time.StampMicro), hi.Format(time.StampMicro))
	}
	return c
}

// Blocked cools a container down for Backoff, doubled for each Blocked of
// the streak, up to MaxBackoff; a Failed lengthens the streak but not the
// back-off; Succeeded clears the streak, and the next Blocked starts from
// Backoff again. Reports never make the container ready sooner.
func TestPool_ReportBlockedBacksOffAndSucceededClearsTheStreak(t *testing.T) {
	const backoff = 100 * time.Millisecond
	p := newClient(t).Pool("accounts", xsync.Health(xsync.HealthPolicy{Backoff: backoff, MaxBackoff: 3 * backoff}))
	ctx := context.Background()
	put(t, p, xsync.Container{ID: "a"})

	// Each cooldown is longer than the one before, or as long and later:
	// it shows whole.
	if c := reportCooling(t, p, "a", xsync.Blocked, backoff); c.Failures != 1 {
		t.Fatalf("after Blocked: Failures %d, want 1", c.Failures)
	}
	cooling := get(t, p, "a").NextAvailable
	report(t, p, "a", xsync.Failed)
	if c := get(t, p, "a"); c.Failures != 2 || !c.NextAvailable.Equal(cooling) {
		t.Fatalf("after Failed: %+v; want Failures 2, NextAvailable kept %v", c, cooling)
	}
	reportCooling(t, p, "a", xsync.Blocked, 2*backoff) // the second Blocked
	reportCooling(t, p, "a", xsync.Blocked, 3*backoff) // the third: 4×, capped at 3×
	if c := reportCooling(t, p, "a", xsync.Blocked, 3*backoff); c.Failures != 5 || c.Retired {
		t.Fatalf("after 5 failures and no RetireAfter: %+v; want Failures 5, not retired", c)
	}
	cooling = get(t, p, "a").NextAvailable
	report(t, p, "a", xsync.Succeeded)
	if c := get(t, p, "a"); c.Failures != 0 || !c.NextAvailable.Equal(cooling) {
		t.Fatalf("after Succeeded: %+v; want Failures 0, the cooldown kept %v", c, cooling)
	}
	// Wait out the cooldown (Interval 0: taking leaves a ready); the
	// streak begins again with Backoff.
	if got, err := p.WaitAskOne(ctx); err != nil || takenAt(got).Before(cooling) {
		t.Fatalf("WaitAskOne: %+v, %v; want a, taken after %v", got, err, cooling)
	}
	reportCooling(t, p, "a", xsync.Blocked, backoff)
}

// Without a Health option, Blocked cools down for DefaultBackoff and
// nothing is ever retired.
func TestPool_ReportWithoutHealthUsesTheDefaultBackoffAndNeverRetires(t *testing.T) {
	p := newClient(t).Pool("accounts")
	put(t, p, xsync.Container{ID: "a"})
	reportCooling(t, p, "a", xsync.Blocked, xsync.DefaultBackoff)
	for range 50 {
		report(t, p, "a", xsync.Failed)
	}
	if c := get(t, p, "a"); c.Retired || c.Failures != 51 {
		t.Fatalf("after 51 failures without a policy: %+v; want Failures 51, not retired", c)
	}
}

// A streak of RetireAfter, reported by two clients, retires the container
// for both: no take of either hands it out, Stats counts it in Total and
// Retired but not in Ready, and further reports change nothing. A Put of
// its id on one client revives it, with Failures 0, and wakes the other's
// waiter.
func TestPool_RetirementAcrossClientsAndRevivalByPut(t *testing.T) {
	prefix := testPrefix(t)
	health := xsync.Health(xsync.HealthPolicy{Backoff: time.Millisecond, RetireAfter: 3})
	a := newClient(t, withPrefix(prefix)).Pool("accounts", health)
	b := newClient(t, withPrefix(prefix)).Pool("accounts", health)
	ctx := context.Background()
	put(t, a, xsync.Container{ID: "dead", Data: "cookie"}, xsync.Container{ID: "spare"})
	if err := a.Cooldown(ctx, "spare", time.Hour); err != nil {
		t.Fatal(err)
	}

	report(t, a, "dead", xsync.Failed)
	report(t, b, "dead", xsync.Blocked)
	if c := get(t, b, "dead"); c.Retired || c.Failures != 2 {
		t.Fatalf("after 2 of 3: %+v", c)
	}
	report(t, a, "dead", xsync.Failed)
	for _, p := range []*xsync.Pool{a, b} {
		c := get(t, p, "dead")
		if !c.Retired || c.Failures != 3 || c.Data != "cookie" {
			t.Fatalf("after a streak of 3: %+v; want Retired, Failures 3, its data", c)
		}
		if s := stats(t, p); s.Total != 2 || s.Retired != 1 || s.Ready != 0 {
			t.Fatalf("Stats = %+v; want Total 2, Retired 1, Ready 0", s)
		}
		if got, err := p.AskOne(ctx); !errors.Is(err, xsync.ErrNotAvailable) {
			t.Fatalf("AskOne with one retired and one cooling: %+v, %v", got, err)
		}
		for range 10 {
			if got, err := p.AcquireRandomOne(ctx); err != nil || got.ID != "spare" {
				t.Fatalf("AcquireRandomOne: %+v, %v; want spare, never the retired one", got, err)
			}
		}
		if got, err := p.AcquireRandom(ctx, 2); !errors.Is(err, xsync.ErrNotAvailable) {
			t.Fatalf("AcquireRandom(2) with one live container not retired: %v, %v", ids(got), err)
		}
	}
	retired := get(t, a, "dead")
	report(t, b, "dead", xsync.Succeeded) // no resurrection by a report
	report(t, b, "dead", xsync.Blocked)
	if c := get(t, a, "dead"); c != retired {
		t.Fatalf("reports on a retired container changed it: %+v, was %+v", c, retired)
	}

	// A waits for a container; B revives "dead" with a new cookie.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	f := a.WaitAskOneAsync(wctx)
	poolSettled(t, a)
	put(t, b, xsync.Container{ID: "dead", Data: "new cookie"})
	got, err := f.Wait(wctx)
	if err != nil {
		t.Fatalf("waiter after the revival: %v", err)
	}
	if got.ID != "dead" || got.Failures != 0 || got.Retired || got.Data != "new cookie" {
		t.Fatalf("waiter got %+v; want the revived container, Failures 0", got)
	}
}

// A report makes nothing ready: it wakes no waiter, on its client or
// another, and costs one script call and nothing else.
func TestPool_ReportsWakeNoWaiter(t *testing.T) {
	prefix := testPrefix(t)
	health := xsync.Health(xsync.HealthPolicy{Backoff: time.Millisecond, RetireAfter: 4})
	a := newClient(t, withPrefix(prefix)).Pool("accounts", health)
	b := newClient(t, withPrefix(prefix)).Pool("accounts", health)
	ctx := context.Background()
	put(t, a, xsync.Container{ID: "x", Interval: time.Hour}, xsync.Container{ID: "y"})
	if _, err := a.Ask(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := a.Cooldown(ctx, "y", time.Hour); err != nil { // both busy for an hour
		t.Fatal(err)
	}
	db := rawDB(t, 0)
	// The wake-ups of the Put and the Cooldown reach the waiters before
	// they come, not in the window (on Cluster they travel over the bus).
	publishedEverywhere(t, db, poolKey(prefix, "accounts", "meta"))
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fa, fb := a.WaitAskOneAsync(wctx), b.WaitAskOneAsync(wctx)
	poolSettled(t, a)
	poolSettled(t, b)
	// pool_report and pool_get are in the server's script cache.
	report(t, a, "y", xsync.Succeeded)
	get(t, a, "y")
	before := commandCounts(t, db)
	outcomes := []xsync.Outcome{xsync.Succeeded, xsync.Failed, xsync.Blocked, xsync.Failed, xsync.Succeeded, xsync.Blocked, xsync.Failed, xsync.Failed, xsync.Failed}
	for i, o := range outcomes {
		report(t, []*xsync.Pool{a, b}[i%2], "x", o) // the last three retire x
	}
	if c := get(t, a, "x"); !c.Retired {
		t.Fatalf("x after the reports: %+v; want retired", c)
	}
	diff := commandsSince(t, db, before)
	// The reports and the Get: one script call each (the commands the
	// scripts run are counted too); no take, no PUBLISH.
	if want := int64(len(outcomes) + 1); diff["evalsha"] != want || diff["eval"] != 0 || diff["publish"] != 0 {
		t.Fatalf("%d reports and a Get sent %v; want %d evalsha, no publish", len(outcomes), diff, want)
	}
	for _, f := range []*xsync.Future[xsync.Container]{fa, fb} {
		select {
		case <-f.Done():
			c, err := f.Wait(ctx)
			t.Fatalf("a waiter was answered: %+v, %v", c, err)
		default:
		}
	}
}

// A report and a take of the same container race, from two clients. The
// script of each is atomic, so one goes first: a take before the Blocked
// report gets the container, and the report's cooldown holds after it; no
// take after the report gets it. UsageCount counts exactly the takes
// received.
func TestPool_ReportRacingATake(t *testing.T) {
	prefix := testPrefix(t)
	health := xsync.Health(xsync.HealthPolicy{Backoff: time.Hour})
	taker := newClient(t, withPrefix(prefix)).Pool("accounts", health)
	reporter := newClient(t, withPrefix(prefix)).Pool("accounts", health)
	ctx := context.Background()
	const rounds = 20
	for i := range rounds {
		id := fmt.Sprintf("c%02d", i)
		put(t, reporter, xsync.Container{ID: id}) // Interval 0: ready again after each take
		var (
			wg    sync.WaitGroup
			taken []xsync.Container
			stop  = make(chan struct{})
		)
		wg.Add(1)
		go func() { // takes as fast as it can until told to stop
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := taker.AskOne(ctx)
				if err == nil {
					taken = append(taken, c)
				} else if !errors.Is(err, xsync.ErrNotAvailable) {
					t.Errorf("AskOne: %v", err)
					return
				}
			}
		}()
		before := serverNow(t) // at or before the report
		report(t, reporter, id, xsync.Blocked)
		reported := serverNow(t) // at or after the report
		// Takes still under way may end either way; then none may succeed.
		close(stop)
		wg.Wait()
		if c, err := taker.AskOne(ctx); !errors.Is(err, xsync.ErrNotAvailable) {
			t.Fatalf("round %d: AskOne after the Blocked report: %+v, %v", i, c, err)
		}
		got := get(t, reporter, id)
		for _, c := range taken {
			if !takenAt(c).Before(reported) {
				t.Fatalf("round %d: taken at %v, after the report (by %v)", i, takenAt(c), reported)
			}
		}
		if got.UsageCount != int64(len(taken)) || got.Failures != 1 || got.NextAvailable.Before(before.Add(time.Hour)) {
			t.Fatalf("round %d: %+v after %d takes; want UsageCount %d, Failures 1, cooling for an hour", i, got, len(taken), len(taken))
		}
	}
}

// Bad input is refused before anything is sent: an empty id, an unknown
// outcome; ids the pool does not hold are ErrNotFound and nothing is
// written; a bad or conflicting policy fails the handle's every call.
func TestPool_ReportBadInput(t *testing.T) {
	prefix := testPrefix(t)
	c := newClient(t, withPrefix(prefix))
	p := c.Pool("accounts")
	ctx := context.Background()
	put(t, p, xsync.Container{ID: "a"}, xsync.Container{ID: "gone"})
	if _, err := p.Remove(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := p.Report(ctx, "", xsync.Failed); !errors.Is(err, xsync.ErrInvalidContainer) {
		t.Errorf("Report with an empty id: %v, want ErrInvalidContainer", err)
	}
	for _, o := range []xsync.Outcome{-1, 3} {
		if err := p.Report(ctx, "a", o); !errors.Is(err, xsync.ErrInvalidOutcome) {
			t.Errorf("Report(%v): %v, want ErrInvalidOutcome", o, err)
		}
	}
	if s := xsync.Outcome(7).String(); s != "Outcome(7)" {
		t.Errorf("Outcome(7).String() = %q", s)
	}
	db := rawDB(t, 0)
	before := snapshot(t, db, prefix)
	for _, id := range []string{"gone", "never"} {
		for _, o := range []xsync.Outcome{xsync.Succeeded, xsync.Failed, xsync.Blocked} {
			if err := p.Report(ctx, id, o); !errors.Is(err, xsync.ErrNotFound) {
				t.Errorf("Report(%s, %v): %v, want ErrNotFound", id, o, err)
			}
		}
	}
	if after := snapshot(t, db, prefix); !maps.Equal(before, after) {
		t.Error("reports on ids the pool does not hold changed Redis")
	}
	if _, err := p.Get(ctx, "gone"); !errors.Is(err, xsync.ErrNotFound) {
		t.Errorf("a report brought a removed container back: %v", err)
	}

	for _, h := range []xsync.HealthPolicy{
		{Backoff: -time.Second},
		{RetireAfter: -1},
		{Backoff: time.Minute, MaxBackoff: time.Second},
		{MaxBackoff: 101 * 365 * 24 * time.Hour},
	} {
		bad := c.Pool("other", xsync.Health(h))
		if err := bad.Report(ctx, "a", xsync.Failed); !errors.Is(err, xsync.ErrInvalidOptions) {
			t.Errorf("Report on a pool with policy %+v: %v, want ErrInvalidOptions", h, err)
		}
		if _, err := bad.Stats(ctx); !errors.Is(err, xsync.ErrInvalidOptions) {
			t.Errorf("Stats on a pool with policy %+v: %v, want ErrInvalidOptions", h, err)
		}
	}
	// The first policy given is the pool's; the same one again is fine,
	// another one is refused. A pool given none until then adopts one.
	first := xsync.HealthPolicy{Backoff: time.Second, RetireAfter: 2}
	if q := c.Pool("accounts", xsync.Health(first)); q != p {
		t.Errorf("Pool with a first policy returned another handle")
	}
	if q := c.Pool("accounts", xsync.Health(first)); q != p {
		t.Errorf("Pool with the same policy returned another handle")
	}
	if q := c.Pool("accounts"); q != p {
		t.Errorf("Pool without a policy returned another handle")
	}
	other := c.Pool("accounts", xsync.Health(xsync.HealthPolicy{Backoff: time.Second, RetireAfter: 3}))
	if _, err := other.Get(ctx, "a"); !errors.Is(err, xsync.ErrInvalidOptions) {
		t.Errorf("Pool with another policy: Get: %v, want ErrInvalidOptions", err)
	}
	report(t, p, "a", xsync.Failed)
	report(t, p, "a", xsync.Failed) // RetireAfter 2: the adopted policy applies
	if got := get(t, p, "a"); !got.Retired {
		t.Errorf("after two failures under RetireAfter 2: %+v, want retired", got)
	}
}

// The pool's actor tells the caller's logger when a report retires a
// container; it prints nothing itself.
func TestPool_RetirementIsLogged(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	p := newClient(t, func(o *xsync.Options) { o.Logger = zap.New(core) }).Pool("accounts",
		xsync.Health(xsync.HealthPolicy{RetireAfter: 1}))
	put(t, p, xsync.Container{ID: "a"})
	report(t, p, "a", xsync.Failed)
	entries := logs.FilterMessage("pool container retired").All()
	if len(entries) != 1 || entries[0].ContextMap()["id"] != "a" || entries[0].ContextMap()["failures"] != int64(1) {
		t.Fatalf("log entries %+v; want one for a, with its 1 failure", entries)
	}
}

// A report about a container that a Put changed since its take counts
// against the container as it is now and leaves the Put's settings alone;
// one about a removed container is ErrNotFound and brings nothing back. A
// retired container can be removed, and one whose TTL ends is purged like
// any other: Retired counts it no more, Expired does.
func TestPool_ReportAfterAPutOrARemoveAndRetiredExpiry(t *testing.T) {
	p := newClient(t).Pool("accounts", xsync.Health(xsync.HealthPolicy{Backoff: time.Millisecond, RetireAfter: 2}))
	ctx := context.Background()
	put(t, p, xsync.Container{ID: "a", Data: "old"}, xsync.Container{ID: "b"})
	taken, err := p.AskOne(ctx)
	if err != nil || taken.ID != "a" {
		t.Fatalf("AskOne: %+v, %v", taken, err)
	}
	put(t, p, xsync.Container{ID: "a", Data: "new", Interval: time.Minute})
	report(t, p, "a", xsync.Failed)
	if c := get(t, p, "a"); c.Data != "new" || c.Interval != time.Minute || c.Failures != 1 || c.Retired {
		t.Fatalf("after a report on a re-Put container: %+v; want the Put's data and interval, Failures 1", c)
	}
	if n, err := p.Remove(ctx, "a"); err != nil || n != 1 {
		t.Fatalf("Remove: %d, %v", n, err)
	}
	if err := p.Report(ctx, "a", xsync.Failed); !errors.Is(err, xsync.ErrNotFound) {
		t.Fatalf("report on a removed container: %v, want ErrNotFound", err)
	}
	if _, err := p.Get(ctx, "a"); !errors.Is(err, xsync.ErrNotFound) {
		t.Fatalf("a report brought a removed container back: %v", err)
	}

	report(t, p, "b", xsync.Failed)
	report(t, p, "b", xsync.Failed)
	if n, err := p.Remove(ctx, "b"); err != nil || n != 1 {
		t.Fatalf("Remove of a retired container: %d, %v; want 1", n, err)
	}
	if s := stats(t, p); s.Total != 0 || s.Retired != 0 {
		t.Fatalf("Stats after removing the retired container: %+v", s)
	}

	// c lives 300ms more; retired, it is counted until then, then purged.
	now := serverNow(t)
	put(t, p, xsync.Container{ID: "c", CreatedAt: now.Add(-time.Hour), TTL: time.Hour + 300*time.Millisecond})
	report(t, p, "c", xsync.Blocked)
	report(t, p, "c", xsync.Blocked)
	if s := stats(t, p); s.Total != 1 || s.Retired != 1 || s.Expired != 0 {
		t.Fatalf("Stats with c retired: %+v; want Total 1, Retired 1", s)
	}
	var last xsync.PoolStats
	eventually(t, 10*time.Second, "c's TTL ended and Stats purged it", func() bool {
		last = stats(t, p)
		return last.Expired == 1
	})
	if last.Total != 0 || last.Retired != 0 {
		t.Fatalf("Stats after c expired: %+v; want Total 0, Retired 0, Expired 1", last)
	}
}

// Return after a report: a Blocked report counts as a change of the
// container (like a Cooldown), so Return leaves it cooling; Succeeded and
// Failed do not, so Return restores the container as before its take and
// keeps the streak the report left.
func TestPool_ReturnAfterAReport(t *testing.T) {
	p := newClient(t).Pool("accounts", xsync.Health(xsync.HealthPolicy{Backoff: time.Hour}))
	ctx := context.Background()
	put(t, p, xsync.Container{ID: "a", Interval: time.Minute})
	before := get(t, p, "a")
	taken, err := p.AskOne(ctx)
	if err != nil {
		t.Fatal(err)
	}
	report(t, p, "a", xsync.Failed)
	if err := p.Return(ctx, taken); err != nil {
		t.Fatalf("Return after Failed: %v", err)
	}
	want := before
	want.Failures = 1
	if got := get(t, p, "a"); got != want {
		t.Fatalf("after Failed and Return: %+v; want %+v (as before the take, the streak kept)", got, want)
	}

	taken, err = p.AskOne(ctx)
	if err != nil {
		t.Fatal(err)
	}
	report(t, p, "a", xsync.Blocked)
	cooling := get(t, p, "a")
	if err := p.Return(ctx, taken); err != nil {
		t.Fatalf("Return after Blocked: %v", err)
	}
	if got := get(t, p, "a"); got != cooling {
		t.Fatalf("after Blocked and Return: %+v; want it left cooling as the report made it, %+v", got, cooling)
	}
}

// List shows retired containers, with their health, as Get does; JSON
// carries the health as "failures" and "retired".
func TestPool_ListShowsRetiredContainers(t *testing.T) {
	p := newClient(t).Pool("accounts", xsync.Health(xsync.HealthPolicy{RetireAfter: 2}))
	put(t, p, xsync.Container{ID: "dead", Data: "x"}, xsync.Container{ID: "live"})
	report(t, p, "dead", xsync.Failed)
	report(t, p, "dead", xsync.Blocked)
	report(t, p, "live", xsync.Failed)
	got, err := p.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != "dead" || !got[0].Retired || got[0].Failures != 2 ||
		got[1].ID != "live" || got[1].Retired || got[1].Failures != 1 {
		t.Fatalf("List = %+v; want dead (retired, 2 failures) and live (1 failure)", got)
	}
	for _, c := range got {
		if g := get(t, p, c.ID); !sameContainer(c, g) {
			t.Errorf("List has %+v, Get has %+v", c, g)
		}
	}
	b, err := json.Marshal(got[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"failures":2,"retired":true`) {
		t.Fatalf("JSON of a retired container: %s", b)
	}
}
