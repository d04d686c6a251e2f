package xsync_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync"
	"github.com/redisxsync/xsync/redisx"
)

// The rate tests time the limiter's decisions, not their delivery: a Wait
// that returns late (a loaded machine, a slow actor) says nothing about
// when Redis allowed it. limiter_allow reads the server's clock once and
// decides a whole batch at that instant, which lies between the moment
// its call was sent and the moment its reply came back.

// decision is one limiter_allow call seen by a limiterDecisions hook:
// every event it allowed (n of them) was decided at one instant within
// [from, to], on the clock of the recorder.
type decision struct {
	from, to time.Duration
	n        int
}

// limiterDecisions is a go-redis hook that records the limiter_allow calls
// on one Redis key: for each call, the clock before it is sent and after
// its reply, and how many events the reply allowed. Other commands pass
// through untouched.
type limiterDecisions struct {
	key   string // the limiter's Redis key
	clock func(ctx context.Context) (time.Duration, error)

	mu   sync.Mutex
	got  []decision
	errs []error
}

// limiterAllowHash is the SHA1 of limiter_allow.lua, as EVALSHA names it.
var limiterAllowHash = xsync.Scripts.Get("limiter_allow").Hash()

// newLimiterDecisions records the decisions of limiter name on key, made by
// the clients whose internal go-redis clients it is added to (see watch),
// timed by clock.
func newLimiterDecisions(prefix, name, key string, clock func(context.Context) (time.Duration, error)) *limiterDecisions {
	return &limiterDecisions{key: redisx.Keys{Prefix: prefix}.Limiter(name, key), clock: clock}
}

// watch hooks the go-redis client that c's actors use.
func (h *limiterDecisions) watch(t *testing.T, c *xsync.Client) {
	t.Helper()
	cl, err := xsync.InternalDB(c, 0)
	if err != nil {
		t.Fatal(err)
	}
	cl.AddHook(h)
}

// isAllow reports whether cmd runs limiter_allow on h's key.
func (h *limiterDecisions) isAllow(cmd redis.Cmder) bool {
	args := cmd.Args()
	if len(args) < 4 || args[3] != h.key {
		return false
	}
	switch strings.ToLower(cmd.Name()) {
	case "evalsha":
		return args[1] == limiterAllowHash
	case "eval":
		src, _ := args[1].(string)
		sum := sha1.Sum([]byte(src))
		return hex.EncodeToString(sum[:]) == limiterAllowHash
	}
	return false
}

func (h *limiterDecisions) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *limiterDecisions) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *limiterDecisions) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !h.isAllow(cmd) {
			return next(ctx, cmd)
		}
		from, err := h.clock(ctx)
		if err != nil {
			h.fail(fmt.Errorf("clock before limiter_allow: %w", err))
			return next(ctx, cmd)
		}
		if err := next(ctx, cmd); err != nil {
			return err // NOSCRIPT, or no reply: nothing allowed that anyone got
		}
		to, err := h.clock(ctx)
		if err != nil {
			h.fail(fmt.Errorf("clock after limiter_allow: %w", err))
			return nil
		}
		n, err := allowedEvents(cmd)
		if err != nil {
			h.fail(err)
			return nil
		}
		if n > 0 {
			h.mu.Lock()
			h.got = append(h.got, decision{from: from, to: to, n: n})
			h.mu.Unlock()
		}
		return nil
	}
}

func (h *limiterDecisions) fail(err error) {
	h.mu.Lock()
	h.errs = append(h.errs, err)
	h.mu.Unlock()
}

// decisions returns what h recorded, and fails t if a call could not be
// timed or read.
func (h *limiterDecisions) decisions(t *testing.T) []decision {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, err := range h.errs {
		t.Error(err)
	}
	return append([]decision(nil), h.got...)
}

// allowedEvents sums the events a limiter_allow reply allowed (the first
// field of each of its entries, see limiter_allow.lua).
func allowedEvents(cmd redis.Cmder) (int, error) {
	c, ok := cmd.(*redis.Cmd)
	if !ok {
		return 0, fmt.Errorf("limiter_allow ran as %T", cmd)
	}
	res, err := c.Slice()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range res {
		a, ok := r.([]any)
		if !ok || len(a) != 4 {
			return 0, fmt.Errorf("limiter_allow replied %v", res)
		}
		allowed, ok := a[0].(int64)
		if !ok {
			return 0, fmt.Errorf("limiter_allow replied %v", res)
		}
		n += int(allowed)
	}
	return n, nil
}

// rateExcess returns an error naming a window in which the decisions
// certainly allowed more than limit does, and nil when some placement of
// each decision inside its interval keeps the limit.
//
// GCRA allows at most Burst + w/emission events in any window of length w
// of the server's clock: the first of them finds the TAT at or after the
// window's start, each adds one emission interval, and the last fits only
// if the TAT less Burst emissions is not after the window's end. A set of
// decisions lies in a window no longer than the last end of their intervals
// less the first start, so it breaks the limit for certain only when it
// holds more events than Burst plus that longest span allows. Trying every
// pair of a start and an end, with every decision inside them, finds the
// worst such set. One call decides all its events at one instant: more
// than Burst of them is an excess however long the call took. A
// microsecond of slack covers the script's float arithmetic on seconds.
func rateExcess(ds []decision, limit xsync.Limit) error {
	emission := limit.Period / time.Duration(limit.Rate)
	burst := limit.Burst
	if burst == 0 {
		burst = limit.Rate
	}
	for i, first := range ds {
		for j, last := range ds {
			lo, hi := first.from, last.to
			if hi < lo {
				continue
			}
			n, span := 0, hi-lo
			if i == j {
				// one call, one instant: the events of others that may
				// have shared it count in the pairs that include them
				n, span = first.n, 0
			} else {
				for _, d := range ds {
					if d.from >= lo && d.to <= hi {
						n += d.n
					}
				}
			}
			if time.Duration(n-burst)*emission > span+time.Microsecond {
				return fmt.Errorf("%d events decided within %v: the limit allows %d",
					n, span, burst+int(span/emission))
			}
		}
	}
	return nil
}

// checkDecisions fails t when ds break limit for certain (rateExcess), or
// do not account for exactly the events that were received: the hook must
// have seen every decision for the check to mean anything.
func checkDecisions(t *testing.T, ds []decision, limit xsync.Limit, received int) {
	t.Helper()
	total := 0
	for _, d := range ds {
		total += d.n
	}
	if total != received {
		t.Fatalf("limiter_allow allowed %d events in %d calls, %d were received", total, len(ds), received)
	}
	if received == 0 {
		t.Fatal("no event")
	}
	if err := rateExcess(ds, limit); err != nil {
		t.Fatal(err)
	}
}

// The check itself: it catches an excess that no timing can explain, and
// only such an excess.
func TestLimiter_RateExcessIsCertainOnly(t *testing.T) {
	limit := xsync.Limit{Rate: 50, Period: time.Second, Burst: 5} // one event every 20ms
	ms := time.Millisecond
	for _, tc := range []struct {
		name   string
		ds     []decision
		excess bool
	}{
		{"the burst at once", []decision{{0, ms, 5}}, false},
		{"one more than the burst at once", []decision{{0, ms, 5}, {ms, 2 * ms, 1}}, true},
		{"one more after an emission interval", []decision{{0, ms, 5}, {20 * ms, 21 * ms, 1}}, false},
		{"one more, maybe an emission interval later", []decision{{0, ms, 5}, {ms, 22 * ms, 1}}, false},
		{"one more, certainly too early", []decision{{0, ms, 5}, {ms, 18 * ms, 1}}, true},
		{"the burst in a slow call", []decision{{0, 200 * ms, 5}}, false},
		{"more than the burst in one call, however slow", []decision{{0, 200 * ms, 6}}, true},
		{"two slow calls that may be far apart", []decision{{0, 200 * ms, 5}, {0, 200 * ms, 5}}, false},
		{"two quick calls together", []decision{{0, 2 * ms, 5}, {ms, 3 * ms, 5}}, true},
		{"twice the rate, in steps", steady(40, 10*ms), true},
		{"the rate, in steps", steady(40, 20*ms), false},
		{"an excess late in the run", append(steady(10, 20*ms), decision{180 * ms, 181 * ms, 6}), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := rateExcess(tc.ds, limit)
			if (err != nil) != tc.excess {
				t.Fatalf("rateExcess = %v, want an excess: %v", err, tc.excess)
			}
		})
	}
}

// steady is n decisions of one event each, every interval from time 0, each
// decided within 1ms.
func steady(n int, every time.Duration) []decision {
	ds := make([]decision, n)
	for i := range ds {
		at := time.Duration(i) * every
		ds[i] = decision{at, at + time.Millisecond, 1}
	}
	return ds
}
