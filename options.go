package xsync

import (
	"crypto/tls"
	"fmt"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/redisxsync/xsync/redisx"
)

// DefaultConnectTimeout is Options.ConnectTimeout when it is not set.
const DefaultConnectTimeout = 5 * time.Second

// DefaultLockTurn is Options.LockTurn when it is not set.
const DefaultLockTurn = 20 * time.Millisecond

// AckTimeout is how long a write waits for Options.AckReplicas replicas
// to confirm it (WAIT's timeout) before it is undone: long enough for a
// replica in the same region under load, short enough that a caller
// learns of a missing replica within a second.
const AckTimeout = time.Second

// Options configure a Client. The zero value is a client of the Redis server
// at 127.0.0.1:6379, DB 0, keys under "xsync", logging nothing.
//
// Exactly one topology:
//   - one server: Addr or URL (or neither, for the default address);
//   - Sentinel: MasterName, and the Sentinels' addresses in Addrs;
//   - Redis Cluster: Cluster, and one or more seed nodes in Addrs (Cluster
//     is implied when Addrs holds more than one address and MasterName is
//     empty).
//
// Contradictory combinations are ErrInvalidOptions, with a message that
// says which: Addr or URL with Addrs, MasterName with Cluster, MasterName
// or Cluster without Addrs, Sentinel credentials without MasterName, a DB
// other than 0 on Cluster, a negative AckReplicas.
type Options struct {
	// Addr is the server's "host:port". Default "127.0.0.1:6379".
	// Give Addr or URL, not both, and neither with Addrs.
	Addr string
	// URL is an alternative to Addr: redis://user:pass@host:port/db, or
	// rediss:// for TLS. Its DB is the default DB of locks and pools, as DB
	// is. Username, Password, DB and TLS, when set, win over the URL's.
	URL string
	// Username for Redis ACLs. Default none.
	Username string
	// Password. Default none. It never appears in an error or a log line.
	Password string
	// DB is the default DB of locks and pools (OnDB picks another per call).
	// Default 0, or the URL's DB when URL names one; negative is
	// ErrInvalidOptions.
	DB int
	// TLS, when set, connects with TLS. Default none (rediss:// URLs get a
	// default TLS config).
	TLS *tls.Config
	// KeyPrefix is the namespace of every key xsync writes, e.g.
	// "xsync:lock:{orders}". Default "xsync". It may not hold '{' or '}'.
	KeyPrefix string
	// Logger receives every log line of xsync, of its actors and of the
	// actor system xsync starts. Default zap.NewNop(): nothing is printed.
	Logger *zap.Logger
	// ConnectTimeout bounds New's and Register's first contact with the
	// server (dial, AUTH, SELECT, PING). Default 5s; negative is
	// ErrInvalidOptions.
	ConnectTimeout time.Duration
	// System, when set, is the actor system xsync's actors are spawned in;
	// Close stops xsync's actors but leaves the system running. Default: a
	// system of xsync's own, shut down by Close. xsync adds an address
	// resolver to the system's process registry ("xsync-futures", the
	// address of its futures' PIDs) when the first client on it is made:
	// make that client before the system resolves addresses from other
	// goroutines (protoactor's resolver list is not safe to change then).
	System *actor.ActorSystem

	// Addrs are the Sentinels' "host:port" addresses when MasterName is
	// set, else the seed nodes of a Redis Cluster (any node; the client
	// finds the others). One address without MasterName or Cluster is a
	// single server, as Addr. Default none.
	Addrs []string
	// MasterName is the name under which the Sentinels in Addrs watch the
	// master: the client follows the master through failovers. Default
	// none (no Sentinel).
	MasterName string
	// SentinelUsername and SentinelPassword authenticate to the Sentinels
	// (Username and Password authenticate to the master). Default none.
	SentinelUsername string
	SentinelPassword string
	// Cluster connects to a Redis Cluster through the seed nodes in Addrs,
	// also when there is one. Default false; implied by more than one
	// address in Addrs without MasterName. A cluster has DB 0 only: DB,
	// OnDB and Client.DB with another DB are ErrInvalidOptions.
	Cluster bool
	// AckReplicas, when > 0, makes a lock acquisition, a lease renewal (and
	// Lease.Refresh) and a pool take succeed only once that many replicas
	// have the write: the script and a WAIT for AckReplicas replicas go
	// down one connection to the master of the keys, as one pipeline. WAIT
	// waits AckTimeout at most (1s, less when go-redis's ReadTimeout is
	// shorter). Default 0: a write is confirmed by the master alone, and a
	// failover may lose it.
	//
	// When fewer replicas confirm in time:
	//   - an acquisition is undone (its keys released, handed on to the
	//     next waiter) and fails with ErrNotReplicated; a waiting Lock
	//     fails too, rather than retry behind the caller's back. The
	//     keys' fencing counters keep the number the undone grant drew
	//     (a fence is never issued twice, whatever happens);
	//   - a take is undone (the containers handed back as a grant nobody
	//     received) and fails with ErrNotReplicated;
	//   - a renewal does not extend the lease: the lease keeps the expiry
	//     a replica confirmed last, is renewed again soon (the error is
	//     logged), and is Lost at that expiry if no renewal is confirmed
	//     by then; Refresh fails with ErrNotReplicated on the same terms.
	//
	// A key that a release hands on to a waiter (a transfer) is confirmed
	// by the new holder's own acquisition, with WAIT, before its Lock
	// returns. Without replicas (one server, or a replica down) every
	// acquisition and take fails with ErrNotReplicated after AckTimeout.
	// Semaphores and limiters do not wait for replicas.
	AckReplicas int
	// LockTurn is how long a client's turn on a lock key that other
	// clients wait for may go on. Clients take turns in the order they
	// queued; a turn serves the client's waiters for the key that were
	// waiting when it began, one after the other, each release handing the
	// key straight to the next (no other client hears of it), while the
	// turn is younger than LockTurn. Then the next client's turn begins.
	// Default DefaultLockTurn; negative: a turn is one acquisition, and the
	// clients' waiters alternate. A longer turn costs fewer hand-offs
	// between processes (each one costs the waiting client a pub/sub
	// message), and lets the other clients wait that much longer.
	LockTurn time.Duration
	// Redis, when set, has the last word on the go-redis options of every
	// client xsync builds: pool sizes, timeouts, the dialer, TLS details.
	// It may not change DB or MasterName (ErrInvalidOptions). xsync's own
	// script clients keep two settings whatever it does: retries off
	// (MaxRetries -1; a script that took something is not sent twice
	// behind xsync's back) and ContextTimeoutEnabled (xsync bounds its
	// calls by their context). Default nil: go-redis's defaults.
	Redis func(*redis.UniversalOptions)
	// MeterProvider receives xsync's metrics (OpenTelemetry; see the
	// package doc's Metrics section). Default none: nothing is recorded,
	// at no cost.
	MeterProvider metric.MeterProvider
}

// normalized returns o with its defaults set, or ErrInvalidOptions.
func (o Options) normalized() (Options, error) {
	if o.Addr != "" && o.URL != "" {
		return o, fmt.Errorf("%w: both Addr and URL are set", ErrInvalidOptions)
	}
	if o.DB < 0 {
		return o, fmt.Errorf("%w: negative DB %d", ErrInvalidOptions, o.DB)
	}
	switch {
	case o.AckReplicas < 0:
		return o, fmt.Errorf("%w: negative AckReplicas %d", ErrInvalidOptions, o.AckReplicas)
	case o.ConnectTimeout < 0:
		return o, fmt.Errorf("%w: negative ConnectTimeout %v", ErrInvalidOptions, o.ConnectTimeout)
	case o.ConnectTimeout == 0:
		o.ConnectTimeout = DefaultConnectTimeout
	}
	switch {
	case o.LockTurn < 0:
		o.LockTurn = 0
	case o.LockTurn == 0:
		o.LockTurn = DefaultLockTurn
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = redisx.DefaultPrefix
	}
	if strings.ContainsAny(o.KeyPrefix, "{}") {
		return o, fmt.Errorf("%w: KeyPrefix %q holds a brace", ErrInvalidOptions, o.KeyPrefix)
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return o, nil
}

// ack is what the actors need of AckReplicas.
func (o Options) ack() redisx.Ack {
	return redisx.Ack{Replicas: o.AckReplicas, Timeout: AckTimeout}
}

func (o Options) redisConfig() redisx.Config {
	return redisx.Config{
		Addr: o.Addr, URL: o.URL, Username: o.Username, Password: o.Password, DB: o.DB, TLS: o.TLS,
		Addrs: o.Addrs, MasterName: o.MasterName, Cluster: o.Cluster,
		SentinelUsername: o.SentinelUsername, SentinelPassword: o.SentinelPassword,
		Tune: o.Redis,
	}
}

// LockOption configures one lock call: TTL, AutoRenew, OnDB.
type LockOption interface {
	applyLock(*lockSettings)
}

// PoolOption configures a pool handle: OnDB, Health.
type PoolOption interface {
	applyPool(*poolSettings)
}

// DBOption picks the DB of a lock or a pool; it is both a LockOption and a
// PoolOption. Get one from OnDB.
type DBOption struct{ n int }

// OnDB makes a lock or a pool live on DB n instead of Options.DB. A negative
// n makes the call fail with ErrInvalidOptions.
func OnDB(n int) DBOption { return DBOption{n: n} }

func (o DBOption) applyLock(s *lockSettings) { s.db = o.n }
func (o DBOption) applyPool(s *poolSettings) { s.db = o.n }
