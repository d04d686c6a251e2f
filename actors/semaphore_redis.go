package actors

import (
	"context"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync/messages"
)

// runSemAcquire runs sem_acquire with args for n requests; it returns the
// server time (ms) and one {granted, expiry or at} per request.
func runSemAcquire(ctx context.Context, cl redis.Scripter, keys []string, args []any, n int) (int64, [][2]int64, error) {
	res, err := semAcquireScript.Run(ctx, cl, keys, args...).Slice()
	if err != nil {
		return 0, nil, err
	}
	if len(res) != n+1 {
		return 0, nil, fmt.Errorf("sem_acquire: %d replies for %d requests", len(res)-1, n)
	}
	now, ok := res[0].(int64)
	if !ok {
		return 0, nil, fmt.Errorf("sem_acquire: server time is %T", res[0])
	}
	outs := make([][2]int64, n)
	for i, r := range res[1:] {
		a, ok := r.([]any)
		if !ok || len(a) != 2 {
			return 0, nil, fmt.Errorf("sem_acquire: reply %v", r)
		}
		nums, ok := int64s(a)
		if !ok {
			return 0, nil, fmt.Errorf("sem_acquire: reply %v", a)
		}
		outs[i] = [2]int64{nums[0], nums[1]}
	}
	return now, outs, nil
}

// onAvailable answers SemAvailable with sem_available's reading.
func (s *semaphoreActor) onAvailable(ctx actor.Context) {
	if s.closedErr != nil {
		ctx.Respond(&messages.SemAvailableResult{Err: s.closedErr})
		return
	}
	to, cl, keys, permits := ctx.Sender(), s.cfg.Client, s.keys, s.cfg.Permits
	s.goRedisFor(semCallTimeout, func(c context.Context) inlineMessage {
		r, err := semAvailableScript.Run(c, cl, keys, permits).Int64Slice()
		if err == nil && len(r) != 2 {
			err = fmt.Errorf("sem_available: %d replies", len(r))
		}
		if err != nil {
			return &semOpDone{to: to, answer: &messages.SemAvailableResult{Err: s.wrap("available", err)}}
		}
		return &semOpDone{to: to, answer: &messages.SemAvailableResult{Available: int(r[0]), Queued: int(r[1])}}
	})
}
