package xsync

import (
	"fmt"
	"time"
)

// DefaultLockTTL is the lease length of a lock taken without TTL; such a
// lease is renewed every DefaultLockTTL/3 until it is released.
const DefaultLockTTL = 30 * time.Second

// lockSettings are the settings of one lock call, built from LockOptions.
type lockSettings struct {
	db int

	ttl          time.Duration
	ttlSet       bool
	autoRenew    bool
	autoRenewSet bool

	maxWait    time.Duration
	maxWaitSet bool
}

// TTL sets the lease length of a lock (default DefaultLockTTL). TTL alone
// turns renewal off: a lock taken with TTL is not renewed unless
// AutoRenew(true) is given too, and expires d after it was taken (or
// refreshed with Lease.Refresh). d under one
// millisecond makes the call fail with ErrInvalidTTL; d is counted in whole
// milliseconds.
func TTL(d time.Duration) LockOption { return ttlOption(d) }

type ttlOption time.Duration

func (o ttlOption) applyLock(s *lockSettings) { s.ttl, s.ttlSet = time.Duration(o), true }

// AutoRenew turns the renewal of a lease on or off. A renewed lease is
// extended to its TTL every TTL/3 by the client's lock manager, until it is
// released or found lost. Default: on when TTL is not given, off when it is.
func AutoRenew(on bool) LockOption { return autoRenewOption(on) }

type autoRenewOption bool

func (o autoRenewOption) applyLock(s *lockSettings) { s.autoRenew, s.autoRenewSet = bool(o), true }

// MaxWait bounds the wait for the keys of Lock, LockAsync and WithLock to
// d: a lock not obtained by then fails with ErrNotObtained. Unlike a ctx
// deadline, it does not bound what is done under the lock (WithLock's fn),
// and the error does not match context.DeadlineExceeded. MaxWait(0) makes
// one attempt, as TryLock does; a negative d is ErrInvalidOptions.
func MaxWait(d time.Duration) LockOption { return maxWaitOption(d) }

type maxWaitOption time.Duration

func (o maxWaitOption) applyLock(s *lockSettings) { s.maxWait, s.maxWaitSet = time.Duration(o), true }

// lockSettingsOf applies opts over the defaults of client c.
func lockSettingsOf(c *Client, opts []LockOption) (lockSettings, error) {
	s := lockSettings{db: c.opts.DB, ttl: DefaultLockTTL}
	for _, o := range opts {
		if o != nil {
			o.applyLock(&s)
		}
	}
	if s.db < 0 {
		return s, fmt.Errorf("%w: negative DB %d", ErrInvalidOptions, s.db)
	}
	if s.maxWait < 0 {
		return s, fmt.Errorf("%w: negative MaxWait %v", ErrInvalidOptions, s.maxWait)
	}
	if s.ttl < time.Millisecond {
		return s, fmt.Errorf("%w: %v is under 1ms", ErrInvalidTTL, s.ttl)
	}
	if !s.autoRenewSet {
		s.autoRenew = !s.ttlSet
	}
	return s, nil
}
