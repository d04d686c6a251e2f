package xsync

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/redisxsync/xsync/actors"
	"github.com/redisxsync/xsync/messages"
)

// MaxPayload is the largest Container.Data a pool stores: 1 MiB.
const MaxPayload = 1 << 20

// maxDelay bounds Interval and Cooldown, so that every time the pool keeps
// stays exact in Redis' scores (microseconds in a double).
const maxDelay = 100 * 365 * 24 * time.Hour

// PoolBypassLimit is how many later requests of one client may be served
// before a waiting request that cannot be served yet, before it holds them
// back: the bypass rule of the package doc, section Pools.
const PoolBypassLimit = actors.DefaultMaxBypass

// Container is one rate-limited resource of a pool: an account, a cookie
// jar, a proxy. A pool hands a container out at most once per Interval.
type Container struct {
	// ID names the container in its pool; required.
	ID string
	// CreatedAt is when the container was made; TTL counts from it. Put
	// sets it to the Redis server's time when it is zero, for a new ID and
	// for an update alike. Kept to the millisecond.
	CreatedAt time.Time
	// TTL is how long the container lives: once CreatedAt+TTL has passed
	// it is never handed out again and is purged. 0 means forever.
	// Rounded up to the millisecond.
	TTL time.Duration
	// Interval is the minimum time between two takes of the container by
	// Ask and its kin. 0 means no limit. Rounded up to the millisecond; at
	// most 100 years.
	Interval time.Duration
	// NextAvailable is when the container may be taken again; read-only,
	// kept by the pool (Put ignores it).
	NextAvailable time.Time
	// Data is an opaque payload, e.g. cookies, of at most MaxPayload bytes.
	Data string
	// UsageCount is how many times the container was taken; read-only,
	// kept by the pool (Put ignores it).
	UsageCount int64
	// Failures is the container's current streak of Failed and Blocked
	// reports (see Pool.Report); read-only, kept by the pool. Succeeded
	// clears it, and so does the Put that revives a retired container.
	Failures int64
	// Retired reports that a streak of failures retired the container (see
	// HealthPolicy): it is never handed out until a Put of its ID revives
	// it. Read-only, kept by the pool.
	Retired bool
}

// containerOf is the Container of a pool actor's answer.
func containerOf(m messages.Container) Container {
	return Container{ID: m.ID, CreatedAt: m.CreatedAt, TTL: m.TTL, Interval: m.Interval,
		NextAvailable: m.NextAvailable, Data: m.Data, UsageCount: m.UsageCount, Failures: m.Failures, Retired: m.Retired}
}

// PoolStats are a pool's counters at one moment.
//
// Stats purges up to 128 containers whose TTL has passed, as every take
// does. When more than that expired at once, until the purges catch up,
// Total is exact, Ready may be short (it takes off every expired container
// left, as if each were ready), Retired may count retired ones among them,
// and NextReadyAt may be the NextAvailable of one of them: the bound keeps
// each script short.
type PoolStats struct {
	// At is the Redis server's time of the reading.
	At time.Time
	// Total is the number of live containers, retired ones included.
	Total int
	// Ready is the number of live containers that may be taken now;
	// retired ones never may.
	Ready int
	// NextReadyAt is the earliest NextAvailable of the live containers that
	// are not retired: at or before At when one is ready; zero when there
	// is none.
	NextReadyAt time.Time
	// Retired is the number of live containers that are retired (see
	// HealthPolicy), counted in Total until their TTL ends.
	Retired int
	// Expired is the number of containers purged because their TTL had
	// passed, since the pool began.
	Expired int64
	// Waiting is the number of this client's requests waiting for
	// containers of the pool (WaitAsk and kin).
	Waiting int
	// WaitingAll is the number of requests waiting for containers of the
	// pool on every client: this client's as Waiting counts them, the
	// others' as each last wrote its count to Redis. A client writes its
	// count when it changes (no heartbeat), with the time its last waiter
	// gives up: a count whose time has passed (a process that crashed) is
	// not counted. A process that crashed with waiters without a deadline
	// is counted until the pool's last waiter on any client gives up.
	WaitingAll int
}

// Pool is a pool of rate-limited containers, shared by every client of the
// same Redis DB under the same KeyPrefix: accounts, cookies or proxies that
// many workers on many machines use, each no faster than its Interval
// allows. Get one from Client.Pool; it is safe for use by many goroutines.
// How takes, waiting, the bypass rule and cancellation work: see the
// package doc, section Pools.
type Pool struct {
	c    *Client
	name string
	db   int
	err  error // invalid name or options: every call fails with it

	tokenPrefix string
	seq         atomic.Uint64
	health      atomic.Pointer[HealthPolicy] // nil: the defaults (see Health)

	worker lazyWorker

	grants grantBook // what this handle's takes handed out, for Return
}

// Pool returns the pool called name, on Options.DB or on the DB that OnDB
// gives. Every call with the same name and DB returns the same *Pool. Pool
// itself never fails: an empty name, a name holding '{' or '}' (the name is
// the pool's hash tag) or a negative DB makes every call on the pool fail
// with ErrInvalidOptions, a closed client with ErrClosed; so does an
// invalid Health policy, or one other than the pool's (see Health). The
// pool starts its actor on first use.
func (c *Client) Pool(name string, opts ...PoolOption) *Pool {
	s := newPoolSettings(c, opts)
	p := &Pool{c: c, name: name, db: s.db}
	var health HealthPolicy
	var healthErr error
	if s.healthSet {
		health, healthErr = s.health.resolved()
	}
	switch {
	case name == "":
		p.err = fmt.Errorf("%w: empty pool name", ErrInvalidOptions)
	case strings.ContainsAny(name, "{}"):
		// The name is the pool's hash tag: braces in it would make
		// "{x}" and "x" one pool, as KeyPrefix forbids them for the same reason.
		p.err = fmt.Errorf("%w: pool name %q holds a brace", ErrInvalidOptions, name)
	case s.db < 0:
		p.err = fmt.Errorf("%w: pool %q: negative DB %d", ErrInvalidOptions, name, s.db)
	case healthErr != nil:
		p.err = fmt.Errorf("pool %q: %w", name, healthErr)
	}
	if p.err != nil {
		return p
	}
	key := strconv.Itoa(s.db) + "/" + name
	c.mu.Lock()
	defer c.mu.Unlock()
	if q := c.pools[key]; q != nil {
		if s.healthSet {
			if err := q.adoptHealth(health); err != nil {
				p.err = err
				return p
			}
		}
		return q
	}
	if c.closing {
		p.err = ErrClosed
		return p
	}
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	p.tokenPrefix = hex.EncodeToString(b[:])
	if s.healthSet {
		p.health.Store(&health)
	}
	c.pools[key] = p
	return p
}

// Name is the pool's name.
func (p *Pool) Name() string { return p.name }

// actor returns the pool's actor, spawned on first use.
func (p *Pool) actor() (*actor.PID, error) {
	return p.worker.get(p.c, p.err, p.db, func(cl redis.UniversalClient) *actor.Props {
		return actor.PropsFromProducer(actors.NewPool(actors.PoolConfig{
			ID:     p.tokenPrefix,
			Name:   p.name,
			DB:     p.db,
			Keys:   p.c.keys,
			Client: cl,
			Ack:    p.c.opts.ack(),
			Conn:   p.c.conn,
			Log:    p.c.log.Named("pool").With(zap.String("pool", p.name), zap.Int("db", p.db)),
		}))
	})
}

func (p *Pool) nextToken() string {
	return p.tokenPrefix + "." + strconv.FormatUint(p.seq.Add(1), 36)
}

// Put adds containers to the pool or updates them, all or none: every
// container is checked first, and one with no ID, a negative TTL or
// Interval, or Data over MaxPayload makes Put fail with ErrInvalidContainer
// and write nothing. A new ID is ready at once. An existing ID keeps its
// UsageCount, NextAvailable and Failures and takes the new CreatedAt (now
// when zero), TTL, Interval and Data. A retired ID is revived: Failures 0,
// back in turn at the NextAvailable it had when it was retired (a cooldown
// still in force holds). When an ID appears twice, the last one wins. Put
// wakes the pool's waiters on every client.
//
// A Put whose ctx is done already sends nothing. One whose ctx ends while
// it is in flight (or that fails with ErrUnavailable) may have been
// applied: Put is safe to repeat.
func (p *Pool) Put(ctx context.Context, cs ...Container) error {
	if p.err != nil {
		return p.err
	}
	msg := &messages.PoolPut{Containers: make([]messages.Container, 0, len(cs))}
	last := make(map[string]int, len(cs))
	for i, c := range cs {
		if err := p.validate(c); err != nil {
			return err
		}
		last[c.ID] = i
	}
	for i, c := range cs {
		if last[c.ID] == i {
			msg.Containers = append(msg.Containers, messages.Container{ID: c.ID, CreatedAt: c.CreatedAt,
				TTL: c.TTL, Interval: c.Interval, Data: c.Data})
		}
	}
	if len(msg.Containers) == 0 {
		return nil
	}
	_, err := call(ctx, p, msg, func(r *messages.PoolPutResult) (struct{}, error) { return struct{}{}, r.Err })
	return err
}

func (p *Pool) validate(c Container) error {
	if why := c.problem(); why != "" {
		return fmt.Errorf("%w: pool %q: container %q: %s", ErrInvalidContainer, p.name, c.ID, why)
	}
	return nil
}

// Get returns the container id as it is now: ErrNotFound when the pool does
// not hold it or its TTL has passed.
func (p *Pool) Get(ctx context.Context, id string) (Container, error) {
	if err := p.checkID(id); err != nil {
		return Container{}, err
	}
	return call(ctx, p, &messages.PoolGet{ID: id}, func(r *messages.PoolGetResult) (Container, error) {
		return containerOf(r.Container), r.Err
	})
}

// Remove deletes containers from the pool and returns how many it held.
// A Remove whose ctx is done already sends nothing; one whose ctx ends in
// flight (or that fails with ErrUnavailable) may have been applied.
func (p *Pool) Remove(ctx context.Context, ids ...string) (int, error) {
	for _, id := range ids {
		if err := p.checkID(id); err != nil {
			return 0, err
		}
	}
	if p.err != nil {
		return 0, p.err
	}
	if len(ids) == 0 {
		return 0, nil
	}
	return call(ctx, p, &messages.PoolRemove{IDs: ids}, func(r *messages.PoolRemoveResult) (int, error) {
		return r.Removed, r.Err
	})
}

// Cooldown makes the container id unavailable until at least now+d, on the
// server's clock (after a 429 or a captcha); a container already unavailable
// for longer keeps its time (plus 1µs: a grant of it that nobody received
// and that is handed back later then cannot make it ready again before
// now+d). Cooldown wakes the pool's waiters on every
// client. A retired container stays retired; its NextAvailable moves all
// the same. ErrNotFound when the pool does not hold it (or its TTL has
// passed); a negative d, or one over 100 years, is ErrInvalidContainer.
// Pool.Report with Blocked picks the cooldown by the pool's HealthPolicy.
// A Cooldown whose ctx is done already sends nothing; one whose ctx ends in
// flight (or that fails with ErrUnavailable) may have been applied.
func (p *Pool) Cooldown(ctx context.Context, id string, d time.Duration) error {
	if err := p.checkID(id); err != nil {
		return err
	}
	if d < 0 || d > maxDelay {
		return fmt.Errorf("%w: pool %q: container %q: cooldown %v out of [0, 100 years]", ErrInvalidContainer, p.name, id, d)
	}
	_, err := call(ctx, p, &messages.PoolCooldown{ID: id, D: d}, func(r *messages.PoolCooldownResult) (struct{}, error) {
		return struct{}{}, r.Err
	})
	return err
}

// Stats returns the pool's counters.
func (p *Pool) Stats(ctx context.Context) (PoolStats, error) {
	return call(ctx, p, &messages.PoolReadStats{}, func(r *messages.PoolReadStatsResult) (PoolStats, error) {
		return PoolStats{
			At:          r.At,
			Total:       r.Total,
			Ready:       r.Ready,
			NextReadyAt: r.NextReadyAt,
			Expired:     r.Expired,
			Retired:     r.Retired,
			Waiting:     r.Waiting,
			WaitingAll:  r.Waiting + r.OthersWaiting,
		}, r.Err
	})
}

func (p *Pool) checkID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: pool %q: empty ID", ErrInvalidContainer, p.name)
	}
	return nil
}

// call sends msg to the pool's actor and waits for its answer, of type R.
func call[R any, T any](ctx context.Context, p *Pool, msg any, convert func(R) (T, error)) (T, error) {
	pid, err := p.actor()
	if err != nil {
		var zero T
		return zero, err
	}
	v, err := request(ctx, p.c.sys, pid, msg, nil, func(m any) (T, error) {
		r, ok := m.(R)
		if !ok {
			var zero T
			return zero, fmt.Errorf("xsync: pool %q: unexpected answer %T", p.name, m)
		}
		return convert(r)
	}, nil).Wait(ctx)
	p.c.metrics.failed(poolOp(msg), err)
	return v, err
}
