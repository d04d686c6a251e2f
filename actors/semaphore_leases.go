package actors

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/redisxsync/xsync/internal/xerr"
	"github.com/redisxsync/xsync/messages"
)

// semLease is a lease of permits that the semaphore actor granted: it
// renews it, or closes lost when it runs out.
type semLease struct {
	id        uint64
	token     string
	ttl       time.Duration
	autoRenew bool
	lost      chan struct{}
	lostOnce  bool
	expires   time.Time // local: no later than Redis' expiry
	timer     *time.Timer
	timerGen  uint64
}

// Messages of the leases that the semaphore actor sends itself.
type (
	semRenew struct {
		id  uint64
		gen uint64
	}
	semRenewed struct {
		callResult
		id    uint64
		to    *actor.PID // a Refresh waiting for the answer; nil for a renewal
		ttl   time.Duration
		start time.Time
		held  bool
		err   error
	}
)

func (s *semaphoreActor) grant(ctx actor.Context, w *semWaiter, start time.Time) {
	s.lastID++
	l := &semLease{id: s.lastID, token: w.token, ttl: w.ttl, autoRenew: w.autoRenew,
		lost: make(chan struct{}), expires: start.Add(w.ttl)}
	s.leases[l.id] = l
	s.scheduleLease(l)
	s.answer(ctx, w, &messages.AcquireResult{Lease: &messages.LeaseGrant{ID: l.id, Lost: l.lost}})
}

// scheduleLease sets the lease's timer: its next renewal, or its expiry.
func (s *semaphoreActor) scheduleLease(l *semLease) {
	s.stopLeaseTimer(l)
	at := l.expires
	if l.autoRenew {
		at = l.expires.Add(-l.ttl + l.ttl/3)
	}
	s.setLeaseTimer(l, time.Until(at))
}

func (s *semaphoreActor) setLeaseTimer(l *semLease, d time.Duration) {
	l.timerGen++
	l.timer = s.sendAfter(d, &semRenew{id: l.id, gen: l.timerGen})
}

func (s *semaphoreActor) stopLeaseTimer(l *semLease) {
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
		l.timerGen++
	}
}

func (s *semaphoreActor) onRenewTick(m *semRenew) {
	l := s.leases[m.id]
	if l == nil || l.timerGen != m.gen {
		return
	}
	l.timer = nil
	if !time.Now().Before(l.expires) {
		// Not renewed in time (or no renewal): Redis lets it go now.
		s.loseLease(l)
		delete(s.leases, l.id)
		return
	}
	s.refresh(l, nil, l.ttl)
}

// refresh runs sem_refresh for l; to, when set, gets the answer.
func (s *semaphoreActor) refresh(l *semLease, to *actor.PID, ttl time.Duration) {
	cl, keys, id, token := s.cfg.Client, s.keys, l.id, l.token
	s.goRedisFor(semCallTimeout, func(c context.Context) inlineMessage {
		start := time.Now()
		n, err := semRefreshScript.Run(c, cl, keys, token, durMs(ttl)).Int64()
		return &semRenewed{id: id, to: to, ttl: ttl, start: start, held: n == 1, err: err}
	})
}

func (s *semaphoreActor) onRenewed(ctx actor.Context, m *semRenewed) {
	defer s.callDone()
	l := s.leases[m.id]
	answer := func(err error) {
		if m.to != nil {
			ctx.Send(m.to, &messages.RefreshLeaseResult{Err: err})
		}
	}
	switch {
	case l == nil:
		answer(xerr.ErrLockNotHeld)
	case m.err != nil:
		s.log.Warn("semaphore lease refresh failed", zap.Error(m.err))
		answer(s.wrap("refresh", m.err))
		if l.timer == nil && s.closedErr == nil {
			// Try again soon, until the lease runs out.
			s.setLeaseTimer(l, min(semRetryMax, max(0, time.Until(l.expires))))
		}
	case !m.held:
		s.stopLeaseTimer(l)
		s.loseLease(l)
		delete(s.leases, l.id)
		answer(xerr.ErrLockNotHeld)
	default:
		l.ttl, l.expires = m.ttl, m.start.Add(m.ttl)
		if s.closedErr == nil {
			s.scheduleLease(l)
		}
		answer(nil)
	}
}

func (s *semaphoreActor) onRefresh(ctx actor.Context, m *messages.RefreshLease) {
	l := s.leases[m.ID]
	switch {
	case s.closedErr != nil:
		ctx.Respond(&messages.RefreshLeaseResult{Err: s.closedErr})
	case l == nil:
		ctx.Respond(&messages.RefreshLeaseResult{Err: xerr.ErrLockNotHeld})
	default:
		s.refresh(l, ctx.Sender(), m.TTL)
	}
}

func (s *semaphoreActor) onRelease(ctx actor.Context, m *messages.ReleaseLease) {
	l := s.leases[m.ID]
	if l == nil {
		if ctx.Sender() != nil {
			if s.closedErr != nil {
				ctx.Respond(&messages.ReleaseLeaseResult{Err: s.closedErr})
			} else {
				ctx.Respond(&messages.ReleaseLeaseResult{Err: xerr.ErrLockNotHeld})
			}
		}
		return
	}
	s.stopLeaseTimer(l)
	delete(s.leases, l.id)
	s.release(ctx.Sender(), l.token)
}

// release runs sem_release for tokens; to, when set, gets the answer.
func (s *semaphoreActor) release(to *actor.PID, tokens ...string) {
	if s.finished {
		s.log.Warn("semaphore release after shutdown: dropped", zap.Strings("tokens", tokens))
		return
	}
	args := make([]any, 0, 2+len(tokens))
	args = append(args, s.channel.Arg(), s.cfg.Name)
	for _, t := range tokens {
		args = append(args, t)
	}
	cl, keys, log := s.cfg.Client, s.keys, s.log
	s.goRedisFor(semCallTimeout, func(c context.Context) inlineMessage {
		live, err := semReleaseScript.Run(c, cl, keys, args...).Int64()
		res := &messages.ReleaseLeaseResult{}
		switch {
		case err != nil:
			log.Warn("semaphore release failed", zap.Error(err))
			res.Err = s.wrap("release", err)
		case live == 0:
			res.Err = xerr.ErrLockNotHeld
		}
		return &semOpDone{to: to, answer: res}
	})
}

func (s *semaphoreActor) loseLease(l *semLease) {
	if !l.lostOnce {
		l.lostOnce = true
		close(l.lost)
	}
}
