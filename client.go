package xsync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/redisxsync/xsync/actors"
	"github.com/redisxsync/xsync/internal/xerr"
	"github.com/redisxsync/xsync/messages"
	"github.com/redisxsync/xsync/redisx"
)

// askTimeout bounds the requests xsync makes to its own actors that do no
// waiting of their own (DB lookups, shutdown steps without a deadline).
const askTimeout = 10 * time.Second

// resumeOnPanic supervises xsync's actors: an actor that panics on a
// message keeps its state and goes on with the next one. A restart would
// lose its waiter queues and leases, which is worse than the lost message.
// The actor system logs the panic (through Options.Logger).
var resumeOnPanic = actor.NewOneForOneStrategy(10, time.Second, func(any) actor.Directive {
	return actor.ResumeDirective
})

// actorProps are what every actor of xsync is spawned with: resumed on a
// panic, run by xsync's dispatcher, with xsync's mailbox (see actors).
var actorProps = []actor.PropsOption{
	actor.WithGuardian(resumeOnPanic), actor.WithDispatcher(actors.Dispatcher()), actor.WithMailbox(actors.NewMailbox),
}

// Client is a connection to one Redis deployment: its locks, its pools and
// its go-redis clients per DB. It is safe for use by many goroutines. Get
// one from Register (then Resolve and Default find it) or New.
type Client struct {
	label  string
	opts   Options
	log    *zap.Logger
	keys   redisx.Keys
	topo   redisx.Topology
	sys    *actor.ActorSystem
	ownSys bool
	conn   *actor.PID

	dbs      sync.Map // int -> redis.UniversalClient, for callers
	internal sync.Map // int -> redis.UniversalClient, for xsync's scripts

	mu      sync.Mutex
	closing bool
	closed  chan struct{} // closed when Close has finished
	// workers are the actors spawned for this client (lock manager, pools),
	// asked to shut down in reverse order by Close, before the connection.
	workers []*actor.PID
	lockMgr *actor.PID
	pools   map[string]*Pool
	// limiters and semaphores are made on first use (limiter.go, semaphore.go).
	limiters   map[string]*Limiter
	semaphores map[string]*semaphoreActor

	metrics *metrics // nil without Options.MeterProvider
}

// New connects to the Redis deployment of opts and returns a client that is
// not in the registry. It reaches the server before it returns, within
// Options.ConnectTimeout: a bad option (a DB the server does not have
// included) is ErrInvalidOptions; an unreachable or silent server, or a
// refused password, is ErrUnavailable. Both errors name the address, never
// the password, and wrap the cause (errors.As(err, new(*net.OpError))).
func New(opts Options) (*Client, error) {
	return newClient("", opts)
}

func newClient(label string, opts Options) (*Client, error) {
	opts, err := opts.normalized()
	if err != nil {
		return nil, err
	}
	cfg := opts.redisConfig()
	// The hook counts the failed script calls once the metrics exist: the
	// client runs no script before.
	var scriptMetrics *metrics
	if opts.MeterProvider != nil {
		cfg.Hooks = append(cfg.Hooks, actors.ScriptErrorHook(func(script string, err error) {
			scriptMetrics.scriptFailed(script, err)
		}))
	}
	target, err := cfg.Target()
	if err != nil {
		// The caller knows no redisx: "xsync: invalid options: url scheme ...".
		return nil, fmt.Errorf("%w: %s", ErrInvalidOptions, strings.TrimPrefix(err.Error(), redisx.ErrConfig.Error()+": "))
	}
	// The URL's DB, when Options.DB does not override it, is the default DB
	// of locks and pools too.
	opts.DB = target.DB()
	first := target.Client(target.DB(), false)
	pingCtx, cancel := context.WithTimeout(context.Background(), opts.ConnectTimeout)
	err = redisx.Ping(pingCtx, first, target, target.DB())
	sharded := false
	if err == nil && target.Topology() == redisx.Cluster {
		// Wake-ups go through sharded pub/sub where the servers have it
		// (Redis ≥ 7), classic pub/sub where they do not: asked once. A
		// server that refuses COMMAND itself (renamed away) is taken for
		// one without.
		sharded, err = redisx.ShardedPubSub(pingCtx, first)
		var refused redis.Error
		if errors.As(err, &refused) {
			opts.Logger.Info("COMMAND INFO refused: wake-ups use classic pub/sub", zap.Error(err))
			sharded, err = false, nil
		}
	}
	cancel()
	if err != nil {
		_ = first.Close()
		if strings.Contains(err.Error(), "DB index is out of range") {
			return nil, fmt.Errorf("%w: connect: %w", ErrInvalidOptions, err)
		}
		return nil, xerr.Redis("connect", err)
	}

	c := &Client{
		label:  label,
		opts:   opts,
		topo:   target.Topology(),
		log:    opts.Logger,
		keys:   redisx.Keys{Prefix: opts.KeyPrefix, Sharded: sharded},
		sys:    opts.System,
		closed: make(chan struct{}),
		pools:  map[string]*Pool{},
	}
	if label != "" {
		c.log = c.log.With(zap.String("label", label))
	}
	if c.sys == nil {
		c.ownSys = true
		c.sys = actor.NewActorSystem(
			actor.WithLoggerFactory(protoactorLogger(c.log)),
			// Dead letters start a throttle goroutine for this long; keep it
			// short so that a closed client leaves nothing running.
			actor.WithDeadLetterThrottleInterval(50*time.Millisecond),
			actor.WithDeadLetterRequestLogging(false),
		)
	}
	routeReplies(c.sys) // before the first request (future.go)
	c.metrics = newMetrics(c, opts.MeterProvider)
	scriptMetrics = c.metrics
	c.internal.Store(target.DB(), first)
	c.conn = c.sys.Root.Spawn(actor.PropsFromProducer(actors.NewConnection(target, first, sharded, c.log.Named("connection")), actorProps...))
	return c, nil
}

// Label is the label the client was registered under; "" for New clients.
func (c *Client) Label() string { return c.label }

// DB returns a go-redis client bound to DB n of the client's deployment,
// created on first use and cached: every call with the same n returns the
// same client. Do not close it: Close does. A negative n is
// ErrInvalidOptions; a closed client, ErrClosed. On Redis Cluster, DB(0) is
// the cluster client (a *redis.ClusterClient) and any other n is
// ErrInvalidOptions; on Sentinel, a client that follows the master
// (a failover *redis.Client).
func (c *Client) DB(n int) (redis.UniversalClient, error) {
	cl, err := c.db(n, false)
	if err != nil {
		return nil, err
	}
	return cl, nil
}

// db returns the cached client of DB n, asking the connection actor for it
// on first use. internal selects the clients of xsync's own scripts.
func (c *Client) db(n int, internal bool) (redis.UniversalClient, error) {
	if n < 0 {
		return nil, fmt.Errorf("%w: negative DB %d", ErrInvalidOptions, n)
	}
	if n != 0 && c.topo == redisx.Cluster {
		return nil, fmt.Errorf("%w: DB %d on Redis Cluster, which has DB 0 only", ErrInvalidOptions, n)
	}
	if err := c.checkOpen(); err != nil {
		return nil, err
	}
	cache := &c.dbs
	if internal {
		cache = &c.internal
	}
	if cl, ok := cache.Load(n); ok {
		return cl.(redis.UniversalClient), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), askTimeout)
	defer cancel()
	f := request(ctx, c.sys, c.conn, &messages.GetDB{DB: n, Internal: internal}, nil,
		func(msg any) (redis.UniversalClient, error) {
			r, ok := msg.(*messages.GetDBResult)
			if !ok {
				return nil, fmt.Errorf("xsync: unexpected answer %T", msg)
			}
			return r.Client, r.Err
		}, nil)
	cl, err := f.Wait(ctx)
	if err != nil {
		if c.isClosing() {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("xsync: db %d: %w", n, err)
	}
	cache.Store(n, cl)
	return cl, nil
}

func (c *Client) checkOpen() error {
	if c.isClosing() {
		return ErrClosed
	}
	return nil
}

func (c *Client) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// spawnWorker spawns an actor owned by this client: Close asks it to shut
// down (*messages.Shutdown) before the connection actor, then stops it.
func (c *Client) spawnWorker(props *actor.Props) (*actor.PID, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.spawnWorkerLocked(props)
}

// spawnWorkerLocked is spawnWorker for callers that hold c.mu.
func (c *Client) spawnWorkerLocked(props *actor.Props) (*actor.PID, error) {
	if c.closing {
		return nil, ErrClosed
	}
	pid := c.sys.Root.Spawn(props.Configure(actorProps...))
	c.workers = append(c.workers, pid)
	return pid, nil
}

// Close shuts the client down gracefully: it releases the client's leases,
// fails its waiters with ErrClosed, stops its actors, closes its Redis
// connections and, unless Options.System was given, its actor system. A
// registered client leaves the registry. Close is idempotent: later calls
// wait for the first to finish and return nil. When ctx ends first, the
// remaining actors are stopped at once and ctx's error is returned; their
// waiters fail with ErrClosed all the same (leases they held are left to
// expire).
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		select {
		case <-c.closed:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.closing = true
	workers := c.workers
	c.mu.Unlock()
	defer close(c.closed)
	c.metrics.close()

	if c.label != "" {
		registry.remove(c)
	}
	var errs []error
	for i := len(workers) - 1; i >= 0; i-- {
		errs = append(errs, c.shutdownActor(ctx, workers[i]))
	}
	errs = append(errs, c.shutdownActor(ctx, c.conn))
	// The actors are stopped: a request they never answered (left in a
	// mailbox when ctx was done and they were stopped at once) fails now.
	stopped := map[string]bool{c.conn.GetId(): true}
	for _, pid := range workers {
		stopped[pid.GetId()] = true
	}
	replies.abandon(c.sys, stopped)
	if c.ownSys {
		c.sys.Shutdown()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("xsync: close: %w", err)
	}
	return nil
}

// shutdownActor asks pid to shut down, then stops it and waits until it
// has stopped. When ctx ends, it stops pid at once.
func (c *Client) shutdownActor(ctx context.Context, pid *actor.PID) error {
	var err error
	if ctx.Err() == nil {
		f := request(ctx, c.sys, pid, &messages.Shutdown{Err: ErrClosed}, nil,
			func(msg any) (struct{}, error) {
				if r, ok := msg.(*messages.ShutdownResult); ok {
					return struct{}{}, r.Err
				}
				return struct{}{}, nil
			}, nil)
		_, err = f.Wait(ctx)
	}
	var stopped *actor.Future
	if ctx.Err() != nil {
		stopped = c.sys.Root.StopFuture(pid)
	} else {
		stopped = c.sys.Root.PoisonFuture(pid)
	}
	// Stopping a local actor cannot hang: it ends after the message at hand.
	_ = stopped.Wait()
	return err
}

// lazyWorker is a worker actor of a handle (a pool, a limiter), spawned by
// its first call.
type lazyWorker struct {
	mu  sync.Mutex
	pid *actor.PID
}

// started reports whether the actor was spawned.
func (w *lazyWorker) started() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pid != nil
}

// get returns the actor, spawning it on first use with the props that
// newProps makes from the script client of DB db. invalid is the handle's
// own error (a bad name or option), returned before anything else.
func (w *lazyWorker) get(c *Client, invalid error, db int, newProps func(cl redis.UniversalClient) *actor.Props) (*actor.PID, error) {
	if invalid != nil {
		return nil, invalid
	}
	if c.isClosing() {
		return nil, ErrClosed
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pid != nil {
		return w.pid, nil
	}
	cl, err := c.db(db, true)
	if err != nil {
		return nil, err
	}
	pid, err := c.spawnWorker(newProps(cl))
	if err != nil {
		return nil, err
	}
	w.pid = pid
	return pid, nil
}
