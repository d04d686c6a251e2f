package xsync_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync"
	"github.com/redisxsync/xsync/redisx"
)

// limiterSettled waits until l's actor has no Redis call under way and
// waiting requests wait: their timers are set.
func limiterSettled(t testing.TB, l *xsync.Limiter, waiting int) {
	t.Helper()
	eventually(t, 5*time.Second, fmt.Sprintf("%d waiters settled", waiting), func() bool {
		w, _, busy, err := xsync.LimiterStats(context.Background(), l)
		return err == nil && w == waiting && busy == 0
	})
}

// scriptCalls counts the script calls of diff (from commandsSince), and -1
// when diff holds a command that no limiter script sends: INFO
// commandstats counts the commands a script runs too.
func scriptCalls(diff map[string]int64) int64 {
	for name := range diff {
		switch name {
		case "evalsha", "eval", "time", "get", "set", "del":
		default:
			return -1
		}
	}
	return diff["evalsha"] + diff["eval"]
}

// near reports whether a and b are within d of each other.
func near(a, b, d time.Duration) bool { return a-b <= d && b-a <= d }

// redis_rate is the oracle: the same requests, made one after the other on
// a key of each, get the same decisions, and RetryAfter and ResetAfter
// agree to a few milliseconds (the calls are that far apart).
func TestLimiter_DecidesAsRedisRate(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	oracle := redis_rate.NewLimiter(rawDB(t, 0))
	prefix := testPrefix(t)
	for _, tc := range []struct {
		limit xsync.Limit
		costs []int
	}{
		// An event every 6s: nothing comes back during the test.
		{xsync.Limit{Rate: 10, Period: time.Minute, Burst: 5}, []int{1, 2, 1, 3, 1, 1, 5, 6, 2, 1}},
		{xsync.PerSecond(3), []int{3, 1, 1, 2, 4}},
		{xsync.Limit{Rate: 1, Period: time.Hour}, []int{1, 1, 2}},
		{xsync.Limit{Rate: 100, Period: time.Hour, Burst: 20}, []int{7, 7, 7, 7, 1, 30}},
	} {
		t.Run(tc.limit.String(), func(t *testing.T) {
			l := c.Limiter("api-"+strconv.Itoa(tc.limit.Rate), tc.limit)
			theirs := redis_rate.Limit{Rate: tc.limit.Rate, Period: tc.limit.Period, Burst: l.Limit().Burst}
			key := "alice"
			// Both clients warm (the actor spawned, the script loaded), so
			// that the two sequences start within a millisecond.
			if _, err := l.Allow(ctx, "warm-up"); err != nil {
				t.Fatal(err)
			}
			if _, err := oracle.Allow(ctx, prefix+":warm-up", theirs); err != nil {
				t.Fatal(err)
			}
			// Both keys count from their first request: the results of a
			// pair differ by no more than the two pairs' spans (ours' end
			// less the oracle's start), a millisecond or so when nothing
			// slows the test down.
			var firstSpan time.Duration
			for i, n := range tc.costs {
				// The oracle goes first: its key is never the more used.
				start := time.Now()
				want, err := oracle.AllowN(ctx, prefix+":"+tc.limit.String(), theirs, n)
				if err != nil {
					t.Fatal(err)
				}
				got, err := l.AllowN(ctx, key, n)
				if err != nil {
					t.Fatal(err)
				}
				span := time.Since(start)
				if i == 0 {
					firstSpan = span
				}
				tolerance := firstSpan + span + time.Millisecond
				what := fmt.Sprintf("request %d (n=%d): xsync %+v, redis_rate %+v (within %v)", i, n, got, *want, tolerance)
				if got.Allowed != want.Allowed {
					t.Fatalf("%s: decisions differ", what)
				}
				// redis_rate's Remaining is sometimes one short: it
				// truncates 0.9999999 events (a rounding of the clock's
				// double) to 0.
				if got.Remaining != want.Remaining && got.Remaining != want.Remaining+1 {
					t.Fatalf("%s: Remaining differs", what)
				}
				if (got.RetryAfter < 0) != (want.RetryAfter < 0) || !near(got.RetryAfter, want.RetryAfter, tolerance) {
					t.Fatalf("%s: RetryAfter differs", what)
				}
				if !near(got.ResetAfter, want.ResetAfter, tolerance) {
					t.Fatalf("%s: ResetAfter differs", what)
				}
				t.Logf("%s", what)
			}
		})
	}
}

// xsync keeps the state redis_rate keeps, where redis_rate keeps it when
// the prefixes line up: the two interleaved on one key agree on every
// decision, as two redis_rate clients would.
func TestLimiter_SharesStateWithRedisRate(t *testing.T) {
	ctx := context.Background()
	name := testPrefix(t)
	// redis_rate's key is "rate:" + its key; ours is KeyPrefix + ":rate:"
	// + name + ":{key}".
	c := newClient(t, withPrefix("rate:x"))
	l := c.Limiter(name, xsync.Limit{Rate: 10, Period: time.Minute, Burst: 4})
	oracle := redis_rate.NewLimiter(rawDB(t, 0))
	theirs := redis_rate.Limit{Rate: 10, Period: time.Minute, Burst: 4}
	theirKey := "x:rate:" + name + ":{k}"
	var allowed []int
	for i := range 6 {
		if i%2 == 0 {
			r, err := l.Allow(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			allowed = append(allowed, r.Allowed)
		} else {
			r, err := oracle.Allow(ctx, theirKey, theirs)
			if err != nil {
				t.Fatal(err)
			}
			allowed = append(allowed, r.Allowed)
		}
	}
	if want := []int{1, 1, 1, 1, 0, 0}; !slices.Equal(allowed, want) {
		t.Fatalf("allowed %v, want %v: a burst of 4 shared by both", allowed, want)
	}
}

func TestLimiter_RefusesBadInputWithTypedErrors(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	c := newClient(t, withPrefix(prefix))
	for _, tc := range []struct {
		name  string
		limit xsync.Limit
	}{
		{"zero rate", xsync.Limit{Period: time.Second}},
		{"negative rate", xsync.Limit{Rate: -1, Period: time.Second}},
		{"zero period", xsync.Limit{Rate: 1}},
		{"negative period", xsync.Limit{Rate: 1, Period: -time.Second}},
		{"negative burst", xsync.Limit{Rate: 1, Period: time.Second, Burst: -1}},
	} {
		l := c.Limiter("bad-"+tc.name, tc.limit)
		if _, err := l.Allow(ctx, "k"); !errors.Is(err, xsync.ErrInvalidOptions) {
			t.Errorf("%s: Allow: err = %v, want ErrInvalidOptions", tc.name, err)
		}
		if err := l.Wait(ctx, "k"); !errors.Is(err, xsync.ErrInvalidOptions) {
			t.Errorf("%s: Wait: err = %v, want ErrInvalidOptions", tc.name, err)
		}
		if err := l.Reset(ctx, "k"); !errors.Is(err, xsync.ErrInvalidOptions) {
			t.Errorf("%s: Reset: err = %v, want ErrInvalidOptions", tc.name, err)
		}
	}
	if _, err := c.Limiter("", xsync.PerSecond(1)).Allow(ctx, "k"); !errors.Is(err, xsync.ErrInvalidOptions) {
		t.Errorf("empty name: err = %v, want ErrInvalidOptions", err)
	}
	if _, err := c.Limiter("neg-db", xsync.PerSecond(1), xsync.OnDB(-1)).Allow(ctx, "k"); !errors.Is(err, xsync.ErrInvalidOptions) {
		t.Errorf("negative DB: err = %v, want ErrInvalidOptions", err)
	}

	l := c.Limiter("api", xsync.Limit{Rate: 5, Period: time.Second, Burst: 3})
	if again := c.Limiter("api", xsync.Limit{Rate: 5, Period: time.Second, Burst: 3}); again != l {
		t.Error("the same name and limit gave another *Limiter")
	}
	if _, err := c.Limiter("api", xsync.PerSecond(5)).Allow(ctx, "k"); !errors.Is(err, xsync.ErrInvalidOptions) {
		t.Errorf("the name again with another limit: err = %v, want ErrInvalidOptions", err)
	}
	if _, err := l.Allow(ctx, ""); !errors.Is(err, xsync.ErrInvalidKey) {
		t.Errorf("Allow of an empty key: err = %v, want ErrInvalidKey", err)
	}
	if err := l.Wait(ctx, ""); !errors.Is(err, xsync.ErrInvalidKey) {
		t.Errorf("Wait of an empty key: err = %v, want ErrInvalidKey", err)
	}
	if err := l.Reset(ctx, ""); !errors.Is(err, xsync.ErrInvalidKey) {
		t.Errorf("Reset of an empty key: err = %v, want ErrInvalidKey", err)
	}
	for _, n := range []int{0, -1} {
		if _, err := l.AllowN(ctx, "k", n); !errors.Is(err, xsync.ErrInvalidQuantity) {
			t.Errorf("AllowN(%d): err = %v, want ErrInvalidQuantity", n, err)
		}
		if err := l.WaitN(ctx, "k", n); !errors.Is(err, xsync.ErrInvalidQuantity) {
			t.Errorf("WaitN(%d): err = %v, want ErrInvalidQuantity", n, err)
		}
	}
	if err := l.WaitN(ctx, "k", 4); !errors.Is(err, xsync.ErrInvalidQuantity) {
		t.Errorf("WaitN over the burst: err = %v, want ErrInvalidQuantity", err)
	}
	// Over the burst, AllowN is refused as redis_rate refuses it.
	if r, err := l.AllowN(ctx, "k", 4); err != nil || r.Allowed != 0 || r.RetryAfter <= 0 {
		t.Errorf("AllowN over the burst = %+v, %v; want refused", r, err)
	}
	if keys, _ := rawDB(t, 0).Keys(ctx, prefix+":*").Result(); len(keys) != 0 {
		t.Errorf("bad and refused requests wrote %v", keys)
	}
}

// A refused request's RetryAfter is exact: WaitN is allowed then, not
// before, and the key's Remaining is as redis_rate would say.
func TestLimiter_WaitIsAllowedAtRetryAfter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := newClient(t)
	l := c.Limiter("api", xsync.Limit{Rate: 10, Period: time.Second, Burst: 2})
	if r, err := l.AllowN(ctx, "k", 2); err != nil || r.Allowed != 2 {
		t.Fatalf("AllowN(2) = %+v, %v", r, err)
	}
	// The RetryAfter counts from the server's refusal, which comes after
	// start and before the refusal reaches this goroutine: timed from
	// start, an allowance at the RetryAfter is never seen early, however
	// late the refusal's reply was delivered.
	start := time.Now()
	refused, err := l.AllowN(ctx, "k", 2)
	if err != nil || refused.Allowed != 0 {
		t.Fatalf("AllowN(2) again = %+v, %v; want refused", refused, err)
	}
	res, err := l.WaitNAsync(ctx, "k", 2).Wait(ctx)
	waited := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if res.Allowed != 2 || res.RetryAfter != -1 || res.Remaining != 0 {
		t.Fatalf("WaitN's result = %+v, want 2 allowed, 0 remaining", res)
	}
	// Never early: the limit would be broken. (The server's clock counts
	// whole milliseconds: 2ms of slack.)
	if waited < refused.RetryAfter-2*time.Millisecond {
		t.Fatalf("allowed after %v, before the RetryAfter of %v", waited, refused.RetryAfter)
	}
}

// 100 waiters of one key cost no Redis command until the earliest
// RetryAfter; then one call serves the head and finds the next refused.
func TestLimiter_WaitersCostNoCommandsUntilRetryAfter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := newClient(t)
	l := c.Limiter("api", xsync.Limit{Rate: 1, Period: 500 * time.Millisecond})
	if r, err := l.Allow(ctx, "k"); err != nil || r.Allowed != 1 {
		t.Fatalf("Allow = %+v, %v", r, err)
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	fs := make([]*xsync.Future[xsync.LimitResult], 100)
	for i := range fs {
		fs[i] = l.WaitNAsync(wctx, "k", 1)
	}
	limiterSettled(t, l, 100)
	db := rawDB(t, 0)
	before := commandCounts(t, db)
	if _, err := fs[0].Wait(ctx); err != nil {
		t.Fatal(err)
	}
	diff := commandsSince(t, db, before)
	if scriptCalls(diff) != 1 {
		t.Fatalf("commands from the 100 waiters' arrival to the first one's RetryAfter: %v, want one script call", diff)
	}
	for _, f := range fs[1:] {
		select {
		case <-f.Done():
			t.Fatal("a second waiter was served within one emission interval")
		default:
		}
	}
	stop()
	for _, f := range fs[1:] {
		if _, err := f.Wait(ctx); !errors.Is(err, xsync.ErrNotAvailable) || !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled waiter: err = %v, want ErrNotAvailable and Canceled", err)
		}
	}
}

// One script call serves every waiter of a key that fits the limit.
func TestLimiter_OneCallServesManyWaiters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := newClient(t)
	l := c.Limiter("api", xsync.PerMinute(10))
	if r, err := l.AllowN(ctx, "k", 10); err != nil || r.Allowed != 10 {
		t.Fatalf("AllowN(10) = %+v, %v", r, err)
	}
	var fs []*xsync.Future[xsync.LimitResult]
	for range 10 {
		fs = append(fs, l.WaitNAsync(ctx, "k", 1))
	}
	limiterSettled(t, l, 10)
	db := rawDB(t, 0)
	before := commandCounts(t, db)
	if err := l.Reset(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	for i, f := range fs {
		r, err := f.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r.Remaining != 9-i {
			t.Fatalf("waiter %d: Remaining %d, want %d", i, r.Remaining, 9-i)
		}
	}
	diff := commandsSince(t, db, before)
	if scriptCalls(diff) != 1 || diff["del"] != 1 {
		t.Fatalf("commands to serve 10 waiters after a reset: %v, want one script call", diff)
	}
}

// The waiters of one key are served in arrival order: a request for the
// whole burst at the head is not overtaken by the small ones behind it,
// which the limit would allow sooner.
func TestLimiter_WaitersOfAKeyAreServedInOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := newClient(t)
	l := c.Limiter("api", xsync.Limit{Rate: 8, Period: time.Second, Burst: 4})
	if r, err := l.AllowN(ctx, "k", 4); err != nil || r.Allowed != 4 {
		t.Fatalf("AllowN(4) = %+v, %v", r, err)
	}
	big := l.WaitNAsync(ctx, "k", 4)
	var small []*xsync.Future[xsync.LimitResult]
	for range 4 {
		small = append(small, l.WaitNAsync(ctx, "k", 1))
	}
	// Another key's waiters do not wait behind them.
	if err := l.WaitN(ctx, "other", 4); err != nil {
		t.Fatalf("WaitN of another key: %v", err)
	}
	for i, f := range append([]*xsync.Future[xsync.LimitResult]{big}, small...) {
		if isDone(f) {
			t.Fatalf("waiter %d of k served as soon as another key's", i)
		}
	}
	all := append([]*xsync.Future[xsync.LimitResult]{big}, small...)
	for i, f := range all {
		if _, err := f.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		// A future completes when the actor answers it: the ones before
		// it were answered first.
		for j := range i {
			select {
			case <-all[j].Done():
			default:
				t.Fatalf("waiter %d served before waiter %d", i, j)
			}
		}
	}
}

// A wait that ends with its context, or is cancelled, consumes nothing:
// not while it waits, and not when its call was under way (what it was
// allowed is given back).
func TestLimiter_CancelledWaitConsumesNothing(t *testing.T) {
	ctx := context.Background()
	prefix := testPrefix(t)
	c := newClient(t, withPrefix(prefix))
	db := rawDB(t, 0)
	l := c.Limiter("api", xsync.PerMinute(2))
	if r, err := l.AllowN(ctx, "k", 2); err != nil || r.Allowed != 2 {
		t.Fatalf("AllowN(2) = %+v, %v", r, err)
	}
	key := prefix + ":rate:api:{k}"
	tat, err := db.Get(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := l.Wait(short, "k"); !errors.Is(err, xsync.ErrNotAvailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait past its deadline: err = %v, want ErrNotAvailable and DeadlineExceeded", err)
	}
	limiterSettled(t, l, 0)
	if now, _ := db.Get(ctx, key).Result(); now != tat {
		t.Fatalf("the key's TAT moved from %s to %s: a timed-out wait consumed", tat, now)
	}

	// Cancelled at once, while its call is under way (or before): the key
	// ends as it was, untouched.
	for i := range 20 {
		k := fmt.Sprintf("fresh-%d", i)
		f := l.WaitNAsync(ctx, k, 2)
		f.Cancel()
		if _, err := f.Wait(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled wait: err = %v, want Canceled", err)
		}
		limiterSettled(t, l, 0)
		if n, _ := db.Exists(ctx, prefix+":rate:api:{"+k+"}").Result(); n != 0 {
			t.Fatalf("round %d: a cancelled wait left the key used", i)
		}
	}
}

// Close fails the waiters with ErrClosed and leaves nothing running
// (goleak checks the rest).
func TestLimiter_CloseFailsWaiters(t *testing.T) {
	ctx := context.Background()
	c, err := xsync.New(withOptions(testOptions(t), withPrefix(testPrefix(t))))
	if err != nil {
		t.Fatal(err)
	}
	l := c.Limiter("api", xsync.PerMinute(1))
	if _, err := l.Allow(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	f := l.WaitNAsync(ctx, "k", 1)
	limiterSettled(t, l, 1)
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Wait(ctx); !errors.Is(err, xsync.ErrClosed) {
		t.Fatalf("waiter at Close: err = %v, want ErrClosed", err)
	}
	if _, err := l.Allow(ctx, "k"); !errors.Is(err, xsync.ErrClosed) {
		t.Fatalf("Allow after Close: err = %v, want ErrClosed", err)
	}
	if _, err := c.Limiter("other", xsync.PerMinute(1)).Allow(ctx, "k"); !errors.Is(err, xsync.ErrClosed) {
		t.Fatalf("a new limiter after Close: err = %v, want ErrClosed", err)
	}
}

// Two clients waiting on one key together never exceed the limit: the
// decisions Redis made for them, each timed between the sending of its call
// and its reply, fit within Burst + w/emission in every window w, however
// late the answers reached the waiters.
func TestLimiter_ClientsTogetherKeepTheLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	prefix := testPrefix(t)
	limit := xsync.Limit{Rate: 50, Period: time.Second, Burst: 5}
	start := time.Now()
	rec := newLimiterDecisions(prefix, "api", "k", func(context.Context) (time.Duration, error) {
		return time.Since(start), nil // one process, one monotonic clock
	})
	var received atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		c := newClient(t, withPrefix(prefix))
		rec.watch(t, c)
		l := c.Limiter("api", limit)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 10 {
					if err := l.Wait(ctx, "k"); err != nil {
						t.Error(err)
						return
					}
					received.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	if received.Load() != 2*4*10 {
		t.Fatalf("%d events received, want %d", received.Load(), 2*4*10)
	}
	checkDecisions(t, rec.decisions(t), limit, int(received.Load()))
}

// Two OS processes share one limiter: together they keep the limit. The
// test binary runs itself as the children, which time each decision of
// limiter_allow on the server's clock (TIME before the call and after its
// reply, on the server of the key: the clock the script reads) and record
// it.
const limiterChildEnv = "XSYNC_LIMITER_CHILD_PREFIX"

var childLimit = xsync.Limit{Rate: 20, Period: time.Second, Burst: 2}

const (
	limiterChildWorkers = 3
	limiterChildEvents  = 5
)

func TestLimiter_ProcessesTogetherKeepTheLimit(t *testing.T) {
	prefix := testPrefix(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	runChildren(t, ctx, 2, "TestLimiter_ChildProcess", limiterChildEnv+"="+prefix)
	raw, err := rawDB(t, 0).LRange(ctx, prefix+":decisions", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	ds := make([]decision, len(raw))
	for i, s := range raw {
		var from, to int64
		if _, err := fmt.Sscanf(s, "%d %d %d", &from, &to, &ds[i].n); err != nil {
			t.Fatalf("decision %q: %v", s, err)
		}
		ds[i].from, ds[i].to = time.Duration(from)*time.Microsecond, time.Duration(to)*time.Microsecond
	}
	checkDecisions(t, ds, childLimit, 2*limiterChildWorkers*limiterChildEvents)
}

// runChildren runs n copies of the test binary that run test alone, with
// env added, and fails unless each passes.
func runChildren(t *testing.T, ctx context.Context, n int, test, env string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	outs := make([][]byte, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.CommandContext(ctx, exe, "-test.run=^"+test+"$", "-test.count=1")
			cmd.Env = append(os.Environ(), env)
			outs[i], errs[i] = cmd.CombinedOutput()
		}()
	}
	wg.Wait()
	for i := range errs {
		if errs[i] != nil {
			t.Fatalf("child %d: %v\n%s", i, errs[i], outs[i])
		}
		if !strings.Contains(string(outs[i]), "PASS") {
			t.Fatalf("child %d did not run %s:\n%s", i, test, outs[i])
		}
	}
}

// TestLimiter_ChildProcess is the body of the children of
// TestLimiter_ProcessesTogetherKeepTheLimit; run on its own, it does nothing.
func TestLimiter_ChildProcess(t *testing.T) {
	prefix := os.Getenv(limiterChildEnv)
	if prefix == "" {
		return // not a child
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := newClient(t, withPrefix(prefix))
	db, err := c.DB(0)
	if err != nil {
		t.Fatal(err)
	}
	// The server's clock, read where the key lives.
	var server interface {
		Time(context.Context) *redis.TimeCmd
	} = db
	if cc, ok := db.(*redis.ClusterClient); ok {
		if server, err = cc.MasterForKey(ctx, redisx.Keys{Prefix: prefix}.Limiter("api", "k")); err != nil {
			t.Fatal(err)
		}
	}
	rec := newLimiterDecisions(prefix, "api", "k", func(ctx context.Context) (time.Duration, error) {
		now, err := server.Time(ctx).Result()
		return time.Duration(now.UnixMicro()) * time.Microsecond, err
	})
	rec.watch(t, c)
	l := c.Limiter("api", childLimit)
	// Warm up first (the actor, the connections), so that the calls are
	// timed closely from the start.
	if _, err := l.Allow(ctx, "warm-up"); err != nil {
		t.Fatal(err)
	}
	if err := server.Time(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range limiterChildWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range limiterChildEvents {
				if err := l.Wait(ctx, "k"); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var out []any
	for _, d := range rec.decisions(t) {
		out = append(out, fmt.Sprintf("%d %d %d", d.from.Microseconds(), d.to.Microseconds(), d.n))
	}
	if len(out) == 0 {
		t.Fatal("no decision recorded")
	}
	if err := db.RPush(ctx, prefix+":decisions", out...).Err(); err != nil {
		t.Fatal(err)
	}
}
