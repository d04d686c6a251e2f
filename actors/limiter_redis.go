package actors

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// LimitDecision is limiter_allow's answer for one request.
type LimitDecision struct {
	Allowed    int
	Remaining  int
	RetryAfter time.Duration // -1 when allowed
	ResetAfter time.Duration
}

// runAllow runs limiter_allow for costs on key. It reads l's configuration
// only, so that goroutines may call it.
func (l *limiterActor) runAllow(ctx context.Context, key string, costs []int) ([]LimitDecision, error) {
	return RunLimiterAllow(ctx, l.cfg.Client, l.cfg.Keys.Limiter(l.cfg.Name, key),
		l.cfg.Burst, l.cfg.Rate, l.period, costs)
}

// RunLimiterAllow runs limiter_allow on the Redis key redisKey for requests
// of costs, in order, and returns the decisions: one per request served,
// then one for the first refused. period is in seconds.
func RunLimiterAllow(ctx context.Context, cl redis.Scripter, redisKey string, burst, rate int, period string, costs []int) ([]LimitDecision, error) {
	args := make([]any, 0, 3+len(costs))
	args = append(args, burst, rate, period)
	for _, c := range costs {
		args = append(args, c)
	}
	res, err := limiterAllowScript.Run(ctx, cl, []string{redisKey}, args...).Slice()
	if err != nil {
		return nil, err
	}
	if len(res) == 0 || len(res) > len(costs) {
		return nil, fmt.Errorf("limiter_allow: %d replies for %d requests", len(res), len(costs))
	}
	outs := make([]LimitDecision, len(res))
	for i, r := range res {
		a, ok := r.([]any)
		if !ok || len(a) != 4 {
			return nil, fmt.Errorf("limiter_allow: reply %d is %v", i, r)
		}
		allowed, ok1 := a[0].(int64)
		remaining, ok2 := a[1].(int64)
		retry, err1 := seconds(a[2])
		reset, err2 := seconds(a[3])
		if !ok1 || !ok2 || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("limiter_allow: reply %d is %v", i, a)
		}
		outs[i] = LimitDecision{Allowed: int(allowed), Remaining: int(remaining), RetryAfter: retry, ResetAfter: reset}
	}
	return outs, nil
}

// seconds reads a duration that a script wrote as seconds in a string, the
// way redis_rate reads it: -1 stays -1.
func seconds(v any) (time.Duration, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("%T, not a string", v)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	if f == -1 {
		return -1, nil
	}
	return time.Duration(f * float64(time.Second)), nil
}
