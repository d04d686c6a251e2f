package xsync

import (
	"context"
	"fmt"

	"github.com/redisxsync/xsync/messages"
)

// LimiterStats reports what a limiter's actor holds, for tests: waiting
// requests, keys waiting for a timer, Redis calls under way.
func LimiterStats(ctx context.Context, l *Limiter) (waiting, timers, busy int, err error) {
	pid, err := l.actor()
	if err != nil {
		return 0, 0, 0, err
	}
	r, err := request(ctx, l.c.sys, pid, &messages.LimitReadStats{}, nil, func(m any) (*messages.LimitReadStatsResult, error) {
		r, ok := m.(*messages.LimitReadStatsResult)
		if !ok {
			return nil, fmt.Errorf("unexpected answer %T", m)
		}
		return r, nil
	}, nil).Wait(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	return r.Waiting, r.Timers, r.Busy, nil
}

// SemaphoreStats reports what the actor behind s holds: pending requests,
// leases, Redis calls under way.
func SemaphoreStats(ctx context.Context, s *Semaphore) (waiters, leases, busy int, err error) {
	pid, err := s.actor()
	if err != nil {
		return 0, 0, 0, err
	}
	r, err := askLockStats(ctx, s.c.sys, pid)
	if err != nil {
		return 0, 0, 0, err
	}
	return r.Waiters, r.Leases, r.Busy, nil
}

// PoolState is the one-line account of p's actor's take machinery (see
// messages.PoolReadState).
func PoolState(ctx context.Context, p *Pool) (string, error) {
	return call(ctx, p, &messages.PoolReadState{}, func(r *messages.PoolReadStateResult) (string, error) {
		return r.State, nil
	})
}

// PoolBusy reports how many Redis calls p's actor has under way, besides
// the Stats call that asks.
func PoolBusy(ctx context.Context, p *Pool) (int, error) {
	r, err := call(ctx, p, &messages.PoolReadStats{}, func(r *messages.PoolReadStatsResult) (*messages.PoolReadStatsResult, error) {
		return r, r.Err
	})
	if err != nil {
		return 0, err
	}
	return r.Busy, nil
}
