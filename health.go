package xsync

import (
	"context"
	"fmt"
	"time"

	"github.com/redisxsync/xsync/messages"
)

// Outcome is how one use of a container went, as Pool.Report tells it.
type Outcome int

const (
	// Succeeded: the use worked. It clears the container's failure streak.
	Succeeded Outcome = iota
	// Failed: the use failed because of this container (a login refused, a
	// bad cookie, an error page). It lengthens the streak.
	Failed
	// Blocked: the site refused the container for now (HTTP 429, a
	// captcha, a temporary ban). It lengthens the streak and cools the
	// container down (see HealthPolicy).
	Blocked
)

// String names the outcome.
func (o Outcome) String() string {
	switch o {
	case Succeeded:
		return "Succeeded"
	case Failed:
		return "Failed"
	case Blocked:
		return "Blocked"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// The health policy of a pool given no Health option, and the values that
// stand in for a HealthPolicy's zero fields.
const (
	// DefaultBackoff is the cooldown after the first Blocked of a streak.
	DefaultBackoff = 30 * time.Second
	// DefaultMaxBackoff caps the cooldown after a Blocked.
	DefaultMaxBackoff = 30 * time.Minute
)

// HealthPolicy is how a pool treats the outcomes that Pool.Report tells:
// what crawlers do after a 429, a captcha or a ban.
//
// A container's streak counts its consecutive Failed and Blocked reports;
// only Succeeded clears it (and the Put that revives a retired container).
// The k-th Blocked of a streak cools the container down until at least now
// + Backoff × 2^(k-1), capped at MaxBackoff, on the Redis server's clock; a
// cooldown already in force for longer (the container's Interval since its
// take, a Cooldown) is kept, never shortened. A streak of RetireAfter
// retires the container: the pool never hands it out again, but keeps it
// (Get and Stats show it, Total counts it) until its TTL ends or a Put of
// its ID revives it.
type HealthPolicy struct {
	// Backoff is the cooldown after the first Blocked of a streak; each
	// further Blocked of the streak doubles it. Default (0):
	// DefaultBackoff.
	Backoff time.Duration
	// MaxBackoff caps that cooldown. Default (0): DefaultMaxBackoff, or
	// Backoff when that is longer.
	MaxBackoff time.Duration
	// RetireAfter is the streak of Failed and Blocked reports that retires
	// a container. Default (0): never retire.
	RetireAfter int
}

// Health gives a pool its health policy; without it, a pool uses
// DefaultBackoff and DefaultMaxBackoff and retires nothing.
//
// The policy belongs to the client's handle of the pool and travels with
// each report: clients that share a pool should give it the same policy.
// The first Health given for a pool on a client is its policy there; a
// later Client.Pool call with another one returns a handle whose every call
// fails with ErrInvalidOptions, and so does a policy with a negative field,
// a MaxBackoff shorter than its Backoff, or a duration over 100 years.
func Health(h HealthPolicy) PoolOption { return healthOption(h) }

type healthOption HealthPolicy

func (o healthOption) applyPool(s *poolSettings) { s.health, s.healthSet = HealthPolicy(o), true }

// resolved returns the policy with its defaults filled in, or why it is
// invalid.
func (h HealthPolicy) resolved() (HealthPolicy, error) {
	switch {
	case h.Backoff < 0 || h.MaxBackoff < 0 || h.RetireAfter < 0:
		return h, fmt.Errorf("%w: health policy %+v: a negative field", ErrInvalidOptions, h)
	case h.Backoff > maxDelay || h.MaxBackoff > maxDelay:
		return h, fmt.Errorf("%w: health policy %+v: a back-off over 100 years", ErrInvalidOptions, h)
	case h.MaxBackoff > 0 && h.MaxBackoff < h.Backoff:
		return h, fmt.Errorf("%w: health policy %+v: MaxBackoff shorter than Backoff", ErrInvalidOptions, h)
	}
	if h.Backoff == 0 {
		h.Backoff = DefaultBackoff
	}
	if h.MaxBackoff == 0 {
		h.MaxBackoff = max(DefaultMaxBackoff, h.Backoff)
	}
	return h, nil
}

// Report tells the pool how one use of container id went, and so keeps its
// health (see HealthPolicy): Succeeded clears its failure streak, Failed
// lengthens it, Blocked lengthens it and cools the container down. A
// streak long enough retires the container. One Lua script applies the
// report atomically, on the Redis server's clock, so the reports of every
// process count towards one streak.
//
// A report makes no container ready, so it wakes no waiter. A Blocked
// report, and one that retires, count as a change of the container for
// the takes made before them: Return, or the hand-back of a cancelled
// wait, leaves such a container as the report left it. Reports about a
// retired container change nothing: only Put revives it.
//
// Report cannot tell which take a report is about: one that arrives after
// a Put updated the container counts towards its streak as it is now. An
// id the pool does not hold (never put, removed, or past its TTL) is
// ErrNotFound, and nothing is written. An empty id is ErrInvalidContainer,
// an outcome other than the three ErrInvalidOutcome.
//
// A Report whose ctx is done already sends nothing. One whose ctx ends in
// flight, or that fails with ErrUnavailable, may have been applied: unlike
// Put, a report repeated then may count twice.
func (p *Pool) Report(ctx context.Context, id string, o Outcome) error {
	if err := p.checkID(id); err != nil {
		return err
	}
	if o != Succeeded && o != Failed && o != Blocked {
		return fmt.Errorf("%w: pool %q: container %q: %v", ErrInvalidOutcome, p.name, id, o)
	}
	if p.err != nil {
		return p.err
	}
	h := p.healthPolicy()
	msg := &messages.PoolReport{ID: id, Outcome: int(o), Backoff: h.Backoff, MaxBackoff: h.MaxBackoff, RetireAfter: h.RetireAfter}
	_, err := call(ctx, p, msg, func(r *messages.PoolReportResult) (struct{}, error) { return struct{}{}, r.Err })
	return err
}

// healthPolicy is the pool's policy, its defaults filled in.
func (p *Pool) healthPolicy() HealthPolicy {
	if h := p.health.Load(); h != nil {
		return *h
	}
	h, _ := HealthPolicy{}.resolved() // the defaults are valid
	return h
}

// adoptHealth makes h (resolved) the pool's policy unless it has another.
func (p *Pool) adoptHealth(h HealthPolicy) error {
	if p.health.CompareAndSwap(nil, &h) {
		return nil
	}
	if cur := p.health.Load(); *cur != h {
		return fmt.Errorf("%w: pool %q has the health policy %+v already, not %+v", ErrInvalidOptions, p.name, *cur, h)
	}
	return nil
}
