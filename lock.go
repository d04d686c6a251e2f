package xsync

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/redisxsync/xsync/actors"
	"github.com/redisxsync/xsync/messages"
	"github.com/redisxsync/xsync/redisx"
)

// releaseTimeout bounds Lease.Release, which runs even when the caller's
// context is already done.
const releaseTimeout = 5 * time.Second

// Lock takes the locks on keys, all of them or none, and waits until it has
// them or ctx is done. It is LockAsync(ctx, keys, opts...).Wait(ctx).
//
// A key is any non-empty string; a key without a {hash tag} gets its own
// ("orders" is stored as "<prefix>:lock:{orders}"), a key with one keeps it,
// so that the keys of a multi-key lock can share a Redis Cluster slot.
// "orders" and "{orders}" are therefore the same lock. No key, an empty key
// or the same key twice is ErrInvalidKey; a TTL under 1ms ErrInvalidTTL.
//
// On a Redis Cluster, keys in different hash slots are taken slot by slot,
// in the order of their slots (the same for every client, so that locks of
// overlapping key sets never deadlock), each slot's keys by one script
// while the slots before are held: one round trip per slot, one after the
// other. The caller still gets every key or none: a wait that ends, or a
// try that finds a later slot's key taken, gives back what it took.
//
// Waiting costs no Redis command, and clients take turns (see the package
// doc, section Locks). When ctx ends first, the error matches both
// ErrNotObtained and ctx.Err(), and nothing is left behind: a lease granted
// at that moment is released.
//
// The lease lasts DefaultLockTTL and is renewed until it is released,
// unless TTL or AutoRenew say otherwise. Release it when done, or use
// WithLock. MaxWait bounds the wait without a ctx deadline.
//
// Locks are not reentrant: a Lock of a key that the same client already
// holds waits for that lease to be released (until ctx ends), even from the
// goroutine that holds it.
func (c *Client) Lock(ctx context.Context, keys []string, opts ...LockOption) (*Lease, error) {
	return waitSync(ctx, func(ctx context.Context) *Future[*Lease] { return c.lockAsync(ctx, keys, waitInLine, opts) })
}

// TryLock makes one attempt to take the locks on keys, all or none, and
// returns ErrNotObtained when another owner holds one of them, when a Lock
// of this client already waits for one of them (a try never goes before the
// waiters of its own client), or when a free key is another client's turn
// (reserved for it for 100ms at most: a dead client's turn ends then too).
func (c *Client) TryLock(ctx context.Context, keys []string, opts ...LockOption) (*Lease, error) {
	return waitSync(ctx, func(ctx context.Context) *Future[*Lease] { return c.lockAsync(ctx, keys, tryOnce, opts) })
}

// LockAsync is Lock without the wait: the future completes with the lease.
// Cancelling the future, or the end of ctx, withdraws the request; a lease
// granted but not yet received by Wait is then released.
func (c *Client) LockAsync(ctx context.Context, keys []string, opts ...LockOption) *Future[*Lease] {
	return c.lockAsync(ctx, keys, waitInLine, opts)
}

// WithLock takes the locks on keys as Lock does, runs fn, and releases the
// lease when fn returns. fn's context is cancelled when ctx is, and when the
// lease is lost (context.Cause is then ErrLockNotHeld): fn must stop
// touching the guarded resource then. LeaseFrom(fn's ctx) gives fn the
// lease, for its fencing tokens. To bound the wait for the keys but not fn
// (a scheduler that skips a tick when another process runs it), give
// MaxWait rather than a ctx deadline. The error is fn's, joined with the
// release's if that failed (ErrLockNotHeld when the lease was lost). If fn
// panics, the lease is released and the panic goes on up.
func (c *Client) WithLock(ctx context.Context, keys []string, fn func(ctx context.Context) error, opts ...LockOption) (err error) {
	lease, err := c.Lock(ctx, keys, opts...)
	if err != nil {
		return err
	}
	fnCtx, cancel := context.WithCancelCause(context.WithValue(ctx, leaseKey{}, lease))
	stop := make(chan struct{})
	var watch sync.WaitGroup
	watch.Add(1)
	go func() {
		defer watch.Done()
		select {
		case <-lease.Lost():
			cancel(fmt.Errorf("%w: lease lost", ErrLockNotHeld))
		case <-stop:
		}
	}()
	// The lease is released however fn ends, a panic included: a panicking
	// fn must not leave the keys locked until the TTL runs out, nor the
	// renewal and the watcher running.
	defer func() {
		close(stop)
		watch.Wait()
		cancel(nil)
		relErr := lease.Release(ctx)
		if err == nil {
			err = relErr
		} else if relErr != nil {
			err = joinErr(err, relErr)
		}
	}()
	return fn(fnCtx)
}

// lockMode says whether a lock request waits in line or makes one attempt.
type lockMode bool

const (
	waitInLine lockMode = false
	tryOnce    lockMode = true
)

// leaseKey is the context key under which WithLock hands fn its lease.
type leaseKey struct{}

// LeaseFrom returns the lease of the WithLock call whose fn was given ctx
// (or a context derived from it), for its fencing tokens; false elsewhere.
func LeaseFrom(ctx context.Context) (*Lease, bool) {
	l, ok := ctx.Value(leaseKey{}).(*Lease)
	return l, ok
}

func (c *Client) lockAsync(ctx context.Context, keys []string, mode lockMode, opts []LockOption) *Future[*Lease] {
	if err := checkKeys(keys); err != nil {
		return failedFuture[*Lease](err)
	}
	s, err := lockSettingsOf(c, opts)
	if err != nil {
		return failedFuture[*Lease](err)
	}
	if s.maxWaitSet && s.maxWait == 0 {
		mode = tryOnce
	}
	cl, err := c.db(s.db, true)
	if err != nil {
		return failedFuture[*Lease](err)
	}
	mgr, err := c.lockManager()
	if err != nil {
		return failedFuture[*Lease](err)
	}
	req := &messages.Acquire{
		Token:     newToken(),
		DB:        s.db,
		Client:    cl,
		TTL:       s.ttl,
		AutoRenew: s.autoRenew,
		Try:       mode == tryOnce,
		Groups:    c.slotGroups(keys),
	}
	// One array holds the four lists of names (each capped: an append
	// copies).
	n := len(keys)
	names := make([]string, 4*n)
	req.Keys, req.FenceKeys, req.QueueKeys, req.TicketKeys = names[:n:n], names[n:2*n:2*n], names[2*n:3*n:3*n], names[3*n:]
	for i, k := range keys {
		req.Keys[i], req.FenceKeys[i], req.QueueKeys[i] = c.keys.Lock(k), c.keys.Fence(k), c.keys.LockQueue(k)
		req.TicketKeys[i] = c.keys.LockTickets(k)
	}
	userKeys := slices.Clone(keys)
	stopMaxWait := context.CancelFunc(func() {})
	if s.maxWaitSet && mode != tryOnce {
		ctx, stopMaxWait = context.WithTimeoutCause(ctx, s.maxWait, fmt.Errorf("MaxWait %v passed", s.maxWait))
	}
	return request(ctx, c.sys, mgr, req, ErrNotObtained,
		func(msg any) (*Lease, error) {
			r, ok := msg.(*messages.AcquireResult)
			switch {
			case !ok:
				return nil, fmt.Errorf("xsync: lock: unexpected answer %T", msg)
			case r.Err != nil:
				return nil, r.Err
			case r.Lease == nil:
				return nil, ErrNotObtained
			}
			l := &Lease{c: c, sys: c.sys, mgr: mgr, id: r.Lease.ID, keys: userKeys, token: req.Token,
				fences: r.Lease.Fences, lost: r.Lease.Lost, done: make(chan struct{})}
			return l, nil
		},
		func(f *Future[*Lease], _ *actor.PID) {
			f.cleanup = stopMaxWait
			f.withdraw = func() { c.sys.Root.Send(mgr, &messages.WithdrawAcquire{Token: req.Token}) }
			f.discard = func(l *Lease) {
				if l != nil {
					l.leaseDone()
					c.sys.Root.Send(mgr, &messages.ReleaseLease{ID: l.id})
				}
			}
			f.observe = c.metrics.lockObserver(c)
		})
}

// checkKeys rejects no key, an empty key and a key given twice (after
// hash-tagging: "a" and "{a}" are one lock).
func checkKeys(keys []string) error {
	if len(keys) == 0 {
		return fmt.Errorf("%w: no key", ErrInvalidKey)
	}
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if k == "" {
			return fmt.Errorf("%w: empty key", ErrInvalidKey)
		}
		tagged := redisx.Tagged(k)
		if seen[tagged] {
			return fmt.Errorf("%w: %q given twice", ErrInvalidKey, k)
		}
		seen[tagged] = true
	}
	return nil
}

// lockManager returns the client's lock manager, spawned on first use. It
// is spawned under c.mu, so that one client never has two.
func (c *Client) lockManager() (*actor.PID, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lockMgr != nil {
		return c.lockMgr, nil
	}
	pid, err := c.spawnWorkerLocked(actor.PropsFromProducer(actors.NewLockManager(newToken(), c.keys, c.conn, c.opts.ack(), c.opts.LockTurn, c.log.Named("locks"), c.metrics.lockEvents())))
	if err != nil {
		return nil, err
	}
	c.lockMgr = pid
	return pid, nil
}

// newToken returns a random owner token: 128 bits, hex.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// Lease is a held lock on one or more keys, granted by Lock, TryLock,
// LockAsync or WithLock, or permits of a Semaphore (then Keys is the
// semaphore's name and Fence is 0). Release it when done. Its methods are
// safe for concurrent use.
type Lease struct {
	c   *Client
	sys *actor.ActorSystem
	// mgr is the actor that holds the lease: the lock manager, or a
	// semaphore's actor; both answer ReleaseLease and RefreshLease.
	mgr    *actor.PID
	id     uint64
	keys   []string
	token  string
	fences []int64 // keys[i]'s is fences[i]; none for a semaphore's
	lost   <-chan struct{}

	done     chan struct{} // closed by Release: see leaseDone
	doneOnce sync.Once
}

// Keys returns the keys of the lease, as given to Lock.
func (l *Lease) Keys() []string { return slices.Clone(l.keys) }

// Token returns the lease's owner token, stored in Redis with each key: a
// random string, unique to this acquisition.
func (l *Lease) Token() string { return l.token }

// Fence returns the fencing token of key, 0 for a key not in the lease.
// Fencing tokens increase strictly with every acquisition of a key, across
// all clients and processes, and never go back (not even when a lock
// expires): a resource that remembers the highest fence it saw can refuse
// the writes of an owner whose lease was lost meanwhile.
func (l *Lease) Fence(key string) int64 {
	if i := slices.Index(l.keys, key); i >= 0 && i < len(l.fences) {
		return l.fences[i]
	}
	return 0
}

// Lost is closed when the lease is known lost: a renewal or Refresh found
// a key deleted or taken over, a lease without renewal ran out, renewal
// could not reach Redis before the lease ran out, or the client was closed.
// The expiry is counted on the local clock from before the call that set
// it was sent, so Lost closes no later than Redis lets the keys go (less
// the clocks' drift over one TTL). Release does not close it.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Refresh extends the lease to ttl from now, if it still holds every key;
// ErrLockNotHeld otherwise (the lease is then lost), and also when Redis
// has not answered by the lease's expiry. With auto-renewal, later
// renewals use ttl too; a Refresh waits for a renewal under way. ttl under
// 1ms is ErrInvalidTTL.
func (l *Lease) Refresh(ctx context.Context, ttl time.Duration) error {
	if ttl < time.Millisecond {
		return fmt.Errorf("%w: %v is under 1ms", ErrInvalidTTL, ttl)
	}
	_, err := waitSync(ctx, func(ctx context.Context) *Future[struct{}] {
		return l.ask(ctx, "refresh", &messages.RefreshLease{ID: l.id, TTL: ttl})
	})
	l.c.metrics.failed("refresh", err)
	return err
}

// Release gives the locks back and wakes their waiters, in every client. It
// returns ErrLockNotHeld when the lease was lost (the keys it still held are
// released all the same), or released already; ErrClosed after the client
// was closed (Close released it). Release runs even when ctx is already
// done: it is bounded by a short timeout of its own instead.
func (l *Lease) Release(ctx context.Context) error {
	l.leaseDone()
	// The caller's context does not end a release: a timer bounds it.
	_, err := l.ask(context.WithoutCancel(ctx), "release", &messages.ReleaseLease{ID: l.id}).waitTimeout(releaseTimeout)
	l.c.metrics.failed("release", err)
	return err
}

// ask asks the lock manager to refresh or release the lease; ErrClosed
// once the client is closing.
func (l *Lease) ask(ctx context.Context, op string, msg any) *Future[struct{}] {
	if l.c.isClosing() {
		// Close releases every lease; the lock manager is gone or going,
		// and a message to it would only be a dead letter in the logs.
		return failedFuture[struct{}](ErrClosed)
	}
	return request(ctx, l.sys, l.mgr, msg, nil, func(answer any) (struct{}, error) {
		switch r := answer.(type) {
		case *messages.RefreshLeaseResult:
			return struct{}{}, r.Err
		case *messages.ReleaseLeaseResult:
			return struct{}{}, r.Err
		}
		return struct{}{}, fmt.Errorf("xsync: %s: unexpected answer %T", op, answer)
	}, nil)
}
