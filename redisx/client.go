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
	"strings"

	"github.com/redis/go-redis/v9"
)

// ErrConfig is wrapped by every error that Config.Options returns.
var ErrConfig = errors.New("redisx: invalid config")

// DefaultAddr is the address used when neither Addr nor URL is given.
const DefaultAddr = "127.0.0.1:6379"

// Config is what redisx needs to build clients for one Redis deployment.
type Config struct {
	Addr     string
	URL      string
	Username string
	Password string
	DB       int
	TLS      *tls.Config
}

// Options turns c into go-redis options for its default DB. A URL, when
// given, wins over Addr; Username, Password and TLS, when set, win over the
// URL's. The result has retries switched off: see Retrying.
func (c Config) Options() (*redis.Options, error) {
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
	// Scripts that take something are not safe to send twice after a
	// timeout; xsync retries at its own level, with the same token.
	o.MaxRetries = -1
	// xsync bounds every call with its context (a lease renewal by the
	// lease's expiry): go-redis must honour the deadline, not wait for its
	// own 3s read timeout.
	o.ContextTimeoutEnabled = true
	o.DisableIdentity = true
	return o, nil
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
// credentials and the DB. Its error names the address, never the password.
func Ping(ctx context.Context, c *redis.Client) error {
	if err := c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis %s db %d: %w", c.Options().Addr, c.Options().DB, err)
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
