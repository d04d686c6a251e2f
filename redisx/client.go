// Package redisx owns everything xsync says to Redis: building go-redis
// clients from options or a redis:// URL, the registry of Lua scripts
// (EVALSHA with an EVAL fallback), and the names of the keys xsync writes.
//
// It is part of xsync's engine room, not its API: it exports what package
// xsync and its actors need, and may change with them. Programs use
// package xsync.
package redisx

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// ErrConfig is wrapped by every error that Config.Options returns.
var ErrConfig = errors.New("redisx: invalid config")

// DefaultAddr is the address used when neither Addr nor URL is given.
const DefaultAddr = "127.0.0.1:6379"

// Topology is the kind of Redis deployment a Config describes.
type Topology int

// The topologies.
const (
	Single   Topology = iota // one server (Addr or URL)
	Sentinel                 // a master found through Sentinels (MasterName, Addrs)
	Cluster                  // a Redis Cluster (Addrs: seed nodes)
)

// String names the topology: "single", "sentinel" or "cluster".
func (t Topology) String() string {
	switch t {
	case Sentinel:
		return "sentinel"
	case Cluster:
		return "cluster"
	default:
		return "single"
	}
}

// Config is what redisx needs to build clients for one Redis deployment.
type Config struct {
	Addr     string
	URL      string
	Username string
	Password string
	DB       int
	TLS      *tls.Config

	Addrs            []string
	MasterName       string
	SentinelUsername string
	SentinelPassword string
	Cluster          bool
	// Tune has the last word on the go-redis options (see Target.Client
	// for the two settings xsync's own clients keep).
	Tune func(*redis.UniversalOptions)
	// Hooks are added to every client for xsync's own scripts (metrics);
	// the callers' clients do not get them.
	Hooks []redis.Hook
}

// Topology is the deployment c describes: Sentinel when MasterName is
// set, Cluster when Cluster is set or Addrs holds more than one address,
// else Single. It does not validate c (Target does).
func (c Config) Topology() Topology {
	switch {
	case c.MasterName != "":
		return Sentinel
	case c.Cluster || len(c.Addrs) > 1:
		return Cluster
	default:
		return Single
	}
}

// Target is a validated Config: the go-redis options of one deployment,
// from which Client builds a client per DB.
type Target struct {
	topo  Topology
	opts  redis.UniversalOptions
	hooks []redis.Hook
}

// Target validates c and returns its deployment. Contradictory settings
// (Addr and URL, Addr or URL with Addrs, MasterName with Cluster, a DB
// other than 0 on Cluster, Sentinel credentials without MasterName, an
// address that is not host:port) are ErrConfig, with a message that says
// which.
func (c Config) Target() (*Target, error) {
	topo := c.Topology()
	switch {
	case c.Addr != "" && c.URL != "":
		return nil, fmt.Errorf("%w: both Addr and URL are set", ErrConfig)
	case len(c.Addrs) > 0 && c.Addr != "":
		return nil, fmt.Errorf("%w: both Addr and Addrs are set: Addr is one server, Addrs the Sentinels or the cluster's seed nodes", ErrConfig)
	case len(c.Addrs) > 0 && c.URL != "":
		return nil, fmt.Errorf("%w: both URL and Addrs are set: URL is one server, Addrs the Sentinels or the cluster's seed nodes", ErrConfig)
	case c.MasterName != "" && c.Cluster:
		return nil, fmt.Errorf("%w: MasterName (Sentinel) and Cluster are set: pick one topology", ErrConfig)
	case c.MasterName != "" && len(c.Addrs) == 0:
		return nil, fmt.Errorf("%w: MasterName is set without Addrs: give the Sentinels' addresses in Addrs", ErrConfig)
	case c.Cluster && len(c.Addrs) == 0:
		return nil, fmt.Errorf("%w: Cluster is set without Addrs: give one or more seed nodes in Addrs", ErrConfig)
	case c.MasterName == "" && (c.SentinelUsername != "" || c.SentinelPassword != ""):
		return nil, fmt.Errorf("%w: SentinelUsername or SentinelPassword without MasterName", ErrConfig)
	case topo == Cluster && c.DB != 0:
		return nil, fmt.Errorf("%w: DB %d on Redis Cluster, which has DB 0 only", ErrConfig, c.DB)
	case c.DB < 0:
		return nil, fmt.Errorf("%w: negative db %d", ErrConfig, c.DB)
	}
	for _, a := range c.Addrs {
		if !strings.Contains(a, ":") {
			return nil, fmt.Errorf("%w: Addrs: %q: want host:port", ErrConfig, a)
		}
	}
	t := &Target{topo: topo, hooks: slices.Clone(c.Hooks)}
	o := &t.opts
	if topo == Single {
		so, err := c.single()
		if err != nil {
			return nil, err
		}
		*o = redis.UniversalOptions{
			Addrs:           []string{so.Addr},
			ClientName:      so.ClientName,
			DB:              so.DB,
			Protocol:        so.Protocol,
			Username:        so.Username,
			Password:        so.Password,
			DialTimeout:     so.DialTimeout,
			ReadTimeout:     so.ReadTimeout,
			WriteTimeout:    so.WriteTimeout,
			PoolFIFO:        so.PoolFIFO,
			PoolSize:        so.PoolSize,
			PoolTimeout:     so.PoolTimeout,
			MinIdleConns:    so.MinIdleConns,
			MaxIdleConns:    so.MaxIdleConns,
			MaxActiveConns:  so.MaxActiveConns,
			ConnMaxIdleTime: so.ConnMaxIdleTime,
			ConnMaxLifetime: so.ConnMaxLifetime,
			TLSConfig:       so.TLSConfig,
		}
	} else {
		*o = redis.UniversalOptions{
			Addrs:            slices.Clone(c.Addrs),
			DB:               c.DB,
			Username:         c.Username,
			Password:         c.Password,
			MasterName:       c.MasterName,
			SentinelUsername: c.SentinelUsername,
			SentinelPassword: c.SentinelPassword,
			TLSConfig:        c.TLS,
		}
	}
	o.DisableIdentity = true
	// Maintenance notifications are a Redis Enterprise feature xsync does
	// not use: off, and no endpoint detection (a DNS lookup of a host
	// name). go-redis's Sentinel clients ignore this setting: each resolves
	// its placeholder address "FailoverClient" once, when it is built.
	o.MaintNotificationsConfig = &maintnotifications.Config{
		Mode:         maintnotifications.ModeDisabled,
		EndpointType: maintnotifications.EndpointTypeNone,
	}
	if c.Tune != nil {
		db, master := o.DB, o.MasterName
		c.Tune(o)
		switch {
		case o.DB != db:
			return nil, fmt.Errorf("%w: the Redis func changed DB: set Options.DB instead", ErrConfig)
		case o.MasterName != master:
			return nil, fmt.Errorf("%w: the Redis func changed MasterName: set Options.MasterName instead", ErrConfig)
		}
	}
	return t, nil
}

// single is the go-redis options of a single-server Config. A URL, when
// given, wins over Addr; Username, Password and TLS, when set, win over the
// URL's.
func (c Config) single() (*redis.Options, error) {
	var o *redis.Options
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		if err != nil {
			return nil, fmt.Errorf("%w: url: %v", ErrConfig, redactURLError(err, c.URL))
		}
		if u.Scheme != "redis" && u.Scheme != "rediss" {
			return nil, fmt.Errorf("%w: url scheme %q: want redis:// or rediss://", ErrConfig, u.Scheme)
		}
		o, err = redis.ParseURL(c.URL)
		if err != nil {
			return nil, fmt.Errorf("%w: url %s: %v", ErrConfig, redact(c.URL), redactURLError(err, c.URL))
		}
		if c.DB != 0 {
			o.DB = c.DB
		}
	} else {
		addr := c.Addr
		if addr == "" && len(c.Addrs) == 1 {
			addr = c.Addrs[0]
		}
		if addr == "" {
			addr = DefaultAddr
		}
		if !strings.Contains(addr, ":") {
			return nil, fmt.Errorf("%w: addr %q: want host:port", ErrConfig, addr)
		}
		o = &redis.Options{Addr: addr, DB: c.DB}
	}
	if o.DB < 0 {
		return nil, fmt.Errorf("%w: negative db %d", ErrConfig, o.DB)
	}
	if c.Username != "" {
		o.Username = c.Username
	}
	if c.Password != "" {
		o.Password = c.Password
	}
	if c.TLS != nil {
		o.TLSConfig = c.TLS
	}
	return o, nil
}

// Topology is the kind of deployment t is.
func (t *Target) Topology() Topology { return t.topo }

// DB is the default DB: Config.DB, or the DB of the URL.
func (t *Target) DB() int { return t.opts.DB }

// String names the deployment for errors and logs, never with a password:
// "127.0.0.1:6379", "sentinel master mymaster via a:26379,b:26379",
// "cluster a:7000,b:7001".
func (t *Target) String() string {
	addrs := strings.Join(t.opts.Addrs, ",")
	switch t.topo {
	case Sentinel:
		return "sentinel master " + t.opts.MasterName + " via " + addrs
	case Cluster:
		return "cluster " + addrs
	default:
		return addrs
	}
}

// Client returns a new go-redis client of the deployment bound to DB db
// (on Cluster, db must be 0). Creating it does no I/O: it connects on
// first use.
//
// A client for xsync's own scripts (retrying false) has go-redis's retries
// off and honours the context's deadline: scripts that take something are
// not safe to send twice after a timeout, so xsync retries at its own
// level, with the same token; and xsync bounds every call with its context
// (a lease renewal by the lease's expiry), so go-redis must honour the
// deadline, not wait for its own 3s read timeout. The Cluster client still
// follows MOVED and ASK redirections (MaxRedirects) and resends a command
// whose connection broke; the acquire and take scripts are idempotent for
// the same token, so that a resent one takes nothing twice.
//
// A client for callers (retrying true) keeps go-redis's defaults and gets
// none of Config.Hooks.
func (t *Target) Client(db int, retrying bool) redis.UniversalClient {
	o := t.opts
	o.DB = db
	if !retrying {
		o.MaxRetries = -1
		o.ContextTimeoutEnabled = true
	}
	var cl redis.UniversalClient
	switch t.topo {
	case Sentinel:
		cl = redis.NewFailoverClient(o.Failover())
	case Cluster:
		cl = newClusterClient(o.Cluster())
	default:
		cl = redis.NewClient(o.Simple())
	}
	if !retrying {
		for _, h := range t.hooks {
			cl.AddHook(h)
		}
	}
	return cl
}

// Options turns a single-server c into go-redis options for its default
// DB, with retries off (see Target.Client). It is ErrConfig for the other
// topologies.
func (c Config) Options() (*redis.Options, error) {
	t, err := c.Target()
	if err != nil {
		return nil, err
	}
	if t.topo != Single {
		return nil, fmt.Errorf("%w: %s is not a single server", ErrConfig, t.topo)
	}
	o := t.opts
	o.MaxRetries = -1
	o.ContextTimeoutEnabled = true
	return o.Simple(), nil
}

// Retrying returns a copy of o with go-redis's defaults for retries and
// context deadlines: the clients handed to callers through Client.DB behave
// like any go-redis client.
func Retrying(o *redis.Options) *redis.Options {
	c := *o
	c.MaxRetries = 0                // go-redis default: 3 retries
	c.ContextTimeoutEnabled = false // go-redis default
	return &c
}

// OnDB returns a copy of o bound to DB n.
func OnDB(o *redis.Options, n int) *redis.Options {
	c := *o
	c.DB = n
	return &c
}

// Ping checks, within ctx, that the server answers and accepts the
// credentials and the DB. Its error names the deployment, never the
// password.
func Ping(ctx context.Context, c redis.UniversalClient, t *Target, db int) error {
	if err := c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis %s db %d: %w", t, db, err)
	}
	return nil
}

// redact returns rawURL with its password replaced by "xxxxx".
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable url)"
	}
	return u.Redacted()
}

func redactURLError(err error, rawURL string) string {
	msg := err.Error()
	if u, perr := url.Parse(rawURL); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	} else if i := strings.LastIndex(rawURL, "@"); i > 0 {
		// The URL did not parse: hide everything that may be credentials.
		msg = strings.ReplaceAll(msg, rawURL[:i], "xxxxx")
	}
	return msg
}
