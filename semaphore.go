package xsync

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"

	"github.com/redisxsync/xsync/actors"
	"github.com/redisxsync/xsync/messages"
)

// Semaphore is a counting semaphore shared by every client of the same
// Redis DB under the same KeyPrefix: at most Permits permits are held at
// once across all of them, the seed's "multi-service concurrency control".
// Get one from Client.Semaphore; it is safe for use by many goroutines.
//
// A permit is held as a *Lease, as a lock is: it lasts DefaultLockTTL and is
// renewed until it is released, unless TTL or AutoRenew say otherwise, and
// Lost, Refresh and Release work as for locks. The permits of a holder that
// died come back when its lease runs out. Keys of such a lease is the
// semaphore's name, and its Fence is 0.
//
// Acquire takes n permits or none, and waiters are served in the order they
// asked, across every client: the queue is in Redis, and a request is
// granted only at its head, so a big request is never overtaken by small
// ones. Once enough permits are free for the head, it has 100ms to take
// them: a client that died at the head holds the others up that long at
// most, and a client too slow to answer in that time (a machine stalled
// that long) queues again at the back. Waiting costs no Redis command while nothing
// changes: waiters are woken by a release on any client (pub/sub), or by a
// timer at the earliest lease expiry.
type Semaphore struct {
	c       *Client
	name    string
	permits int
	s       lockSettings
	err     error // invalid name, permits or options: every call fails with it

	mu  sync.Mutex
	act *semaphoreActor
}

// semaphoreActor is the actor of one semaphore name and DB of a client,
// shared by its *Semaphore handles.
type semaphoreActor struct {
	pid     *actor.PID
	permits int
}

// Semaphore returns the semaphore called name with permits permits, on
// Options.DB or on the DB that OnDB gives; TTL and AutoRenew set the leases
// of the permits it grants. Semaphore itself never fails: an empty name,
// permits < 1, a negative DB, or a name this client already uses with
// another number of permits make every call fail with ErrInvalidOptions, a
// TTL under 1ms with ErrInvalidTTL, a closed client with ErrClosed.
//
// Clients that share the name share its permits: give every client the
// same number.
func (c *Client) Semaphore(name string, permits int, opts ...LockOption) *Semaphore {
	s := &Semaphore{c: c, name: name, permits: permits}
	settings, err := lockSettingsOf(c, opts)
	s.s = settings
	switch {
	case name == "":
		s.err = fmt.Errorf("%w: empty semaphore name", ErrInvalidOptions)
	case permits < 1:
		s.err = fmt.Errorf("%w: semaphore %q: %d permits", ErrInvalidOptions, name, permits)
	case err != nil:
		s.err = fmt.Errorf("semaphore %q: %w", name, err)
	}
	return s
}

// Name is the semaphore's name.
func (s *Semaphore) Name() string { return s.name }

// actor returns the semaphore's actor, spawned on the client's first use of
// the name.
func (s *Semaphore) actor() (*actor.PID, error) {
	if s.err != nil {
		return nil, s.err
	}
	if s.c.isClosing() {
		return nil, ErrClosed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.act != nil {
		return s.act.pid, nil
	}
	cl, err := s.c.db(s.s.db, true)
	if err != nil {
		return nil, err
	}
	key := strconv.Itoa(s.s.db) + "/" + s.name
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if a := c.semaphores[key]; a != nil {
		if a.permits != s.permits {
			return nil, fmt.Errorf("%w: semaphore %q has %d permits on this client, not %d", ErrInvalidOptions, s.name, a.permits, s.permits)
		}
		s.act = a
		return a.pid, nil
	}
	pid, err := c.spawnWorkerLocked(actor.PropsFromProducer(actors.NewSemaphore(actors.SemaphoreConfig{
		Name:    s.name,
		DB:      s.s.db,
		Permits: s.permits,
		Keys:    c.keys,
		Client:  cl,
		Conn:    c.conn,
		Log:     c.log.Named("semaphore").With(zap.String("semaphore", s.name), zap.Int("db", s.s.db)),
	})))
	if err != nil {
		return nil, err
	}
	if c.semaphores == nil {
		c.semaphores = map[string]*semaphoreActor{}
	}
	s.act = &semaphoreActor{pid: pid, permits: s.permits}
	c.semaphores[key] = s.act
	return pid, nil
}

// Acquire takes n permits, all or none, and waits until it has them or ctx
// is done; then the error matches both ErrNotObtained and ctx.Err(), and
// nothing is left behind (permits granted at that moment are released).
// n < 1 or over the semaphore's permits is ErrInvalidQuantity. A waiter
// whose call fails on Redis tries again after a short backoff. See
// Semaphore for the order in which waiters are served.
func (s *Semaphore) Acquire(ctx context.Context, n int) (*Lease, error) {
	return waitSync(ctx, func(ctx context.Context) *Future[*Lease] { return s.AcquireAsync(ctx, n) })
}

// TryAcquire makes one attempt to take n permits, all or none: it returns
// ErrNotObtained when fewer than n are free, or when requests wait for
// permits (on any client: a try never goes before a waiter).
func (s *Semaphore) TryAcquire(ctx context.Context, n int) (*Lease, error) {
	return waitSync(ctx, func(ctx context.Context) *Future[*Lease] { return s.acquire(ctx, n, true) })
}

// AcquireAsync is Acquire without the wait: the future completes with the
// lease. Cancelling the future, or the end of ctx, withdraws the request;
// permits granted but not yet received by Wait are then released.
func (s *Semaphore) AcquireAsync(ctx context.Context, n int) *Future[*Lease] {
	return s.acquire(ctx, n, false)
}

func (s *Semaphore) acquire(ctx context.Context, n int, try bool) *Future[*Lease] {
	if s.err != nil {
		return failedFuture[*Lease](s.err)
	}
	if n < 1 || n > s.permits {
		return failedFuture[*Lease](fmt.Errorf("%w: semaphore %q: %d of %d permits", ErrInvalidQuantity, s.name, n, s.permits))
	}
	if err := ctx.Err(); err != nil {
		return failedFuture[*Lease](joinErr(ErrNotObtained, err))
	}
	pid, err := s.actor()
	if err != nil {
		return failedFuture[*Lease](err)
	}
	sys, token := s.c.sys, newToken()
	msg := &messages.SemAcquire{Token: token, N: n, TTL: s.s.ttl, AutoRenew: s.s.autoRenew, Try: try}
	return request(ctx, sys, pid, msg, ErrNotObtained,
		func(m any) (*Lease, error) {
			r, ok := m.(*messages.AcquireResult)
			switch {
			case !ok:
				return nil, fmt.Errorf("xsync: semaphore %q: unexpected answer %T", s.name, m)
			case r.Err != nil:
				return nil, r.Err
			case r.Lease == nil:
				return nil, ErrNotObtained
			}
			return &Lease{c: s.c, sys: sys, mgr: pid, id: r.Lease.ID, keys: []string{s.name}, token: token, lost: r.Lease.Lost}, nil
		},
		func(f *Future[*Lease], _ *actor.PID) {
			f.withdraw = func() { sys.Root.Send(pid, &messages.WithdrawAcquire{Token: token}) }
			f.discard = func(l *Lease) {
				if l != nil {
					sys.Root.Send(pid, &messages.ReleaseLease{ID: l.id})
				}
			}
		})
}

// Available returns the number of permits nobody holds now, across every
// client. Requests may be waiting for more than that. A Redis failure is
// ErrUnavailable.
func (s *Semaphore) Available(ctx context.Context) (int, error) {
	pid, err := s.actor()
	if err != nil {
		return 0, err
	}
	return request(ctx, s.c.sys, pid, &messages.SemAvailable{}, nil, func(m any) (int, error) {
		r, ok := m.(*messages.SemAvailableResult)
		if !ok {
			return 0, fmt.Errorf("xsync: semaphore %q: unexpected answer %T", s.name, m)
		}
		return r.Available, r.Err
	}, nil).Wait(ctx)
}
