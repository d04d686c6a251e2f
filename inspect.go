package xsync

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redisxsync/xsync/actors"
	"github.com/redisxsync/xsync/internal/xerr"
	"github.com/redisxsync/xsync/messages"
)

// LockInfo is what Redis holds about the lock on one key, at one moment.
type LockInfo struct {
	// Key is the caller's key, as given to LockInfo; Locks gives a key
	// without the hash tag xsync added to it ("orders", not "{orders}").
	Key string
	// Held reports whether an owner holds the key.
	Held bool
	// Token is the holder's owner token (Lease.Token); "" when free.
	Token string
	// TTL is the lease time left; -1 when the key never expires; 0 when
	// free.
	TTL time.Duration
	// Fence is the latest fencing token issued for the key; 0 if none yet.
	Fence int64
	// Waiting is the number of clients queued for their turn on the key
	// (each may have several waiters of its own).
	Waiting int
}

// LockInfo reads the lock on key, on Options.DB or the DB that OnDB gives
// (TTL and AutoRenew are ignored). It changes nothing. An empty key is
// ErrInvalidKey.
func (c *Client) LockInfo(ctx context.Context, key string, opts ...LockOption) (LockInfo, error) {
	if key == "" {
		return LockInfo{}, fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	s, err := lockSettingsOf(c, opts)
	if err != nil {
		return LockInfo{}, err
	}
	cl, err := c.db(s.db, true)
	if err != nil {
		return LockInfo{}, err
	}
	st, err := actors.ReadLock(ctx, cl, c.keys, key)
	if err != nil {
		return LockInfo{}, c.inspectErr("lock.info", "lock info", err)
	}
	return lockInfo(key, st), nil
}

func lockInfo(key string, st actors.LockState) LockInfo {
	info := LockInfo{Key: key, Held: st.Token != "", Token: st.Token, Fence: st.Fence, Waiting: int(st.Waiting)}
	switch {
	case !info.Held:
	case st.PTTL < 0:
		info.TTL = -1
	default:
		info.TTL = time.Duration(st.PTTL) * time.Millisecond
	}
	return info
}

// Locks returns the locks held on Options.DB (or the DB that OnDB gives)
// under the client's KeyPrefix, sorted by key. It changes nothing: it finds
// the keys with SCAN in batches of a few hundred and reads each batch in one
// pipeline. A lock taken or released during the scan may or may not be in
// the list.
func (c *Client) Locks(ctx context.Context, opts ...LockOption) ([]LockInfo, error) {
	s, err := lockSettingsOf(c, opts)
	if err != nil {
		return nil, err
	}
	cl, err := c.db(s.db, true)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []LockInfo
	err = actors.ScanLocks(ctx, cl, c.keys, func(page []string) error {
		fresh := page[:0:0]
		for _, key := range page {
			if !seen[key] {
				seen[key] = true
				fresh = append(fresh, key)
			}
		}
		states, err := actors.ReadLocks(ctx, cl, c.keys, fresh)
		if err != nil {
			return err
		}
		for i, st := range states {
			if st.Token != "" {
				out = append(out, lockInfo(fresh[i], st))
			}
		}
		return nil
	})
	if err != nil {
		return nil, c.inspectErr("locks", "locks", err)
	}
	slices.SortFunc(out, func(a, b LockInfo) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// ForceUnlock frees the lock on key whoever holds it, as an operator does
// with a lock whose holder is stuck, and hands it to the next client
// waiting for it, which is woken at once as by a release. It reports
// whether the key was held; a free key is left as it is. The holder learns
// it at its next renewal or Refresh: its Lost channel closes, Refresh and
// Release return ErrLockNotHeld. Until then it may still believe it holds
// the lock, which is what fencing tokens are for: the next holder's is
// higher.
func (c *Client) ForceUnlock(ctx context.Context, key string, opts ...LockOption) (bool, error) {
	if key == "" {
		return false, fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	s, err := lockSettingsOf(c, opts)
	if err != nil {
		return false, err
	}
	cl, err := c.db(s.db, true)
	if err != nil {
		return false, err
	}
	holder, err := actors.ForceUnlock(ctx, cl, c.keys, s.db, key)
	if err != nil {
		return false, c.inspectErr("lock.force_unlock", "force unlock", err)
	}
	if holder != "" {
		c.metrics.broken()
	}
	return holder != "", nil
}

// Pools returns the names of the pools on Options.DB (or the DB that OnDB
// gives) under the client's KeyPrefix, sorted: those that hold containers,
// and those that held containers that expired. It changes nothing: it
// finds them with SCAN in batches of a few hundred keys.
func (c *Client) Pools(ctx context.Context, opts ...PoolOption) ([]string, error) {
	s := newPoolSettings(c, opts)
	if s.db < 0 {
		return nil, fmt.Errorf("%w: negative DB %d", ErrInvalidOptions, s.db)
	}
	cl, err := c.db(s.db, true)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	err = actors.ScanPools(ctx, cl, c.keys, func(name string) error {
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
		return nil
	})
	if err != nil {
		return nil, c.inspectErr("pools", "pools", err)
	}
	slices.Sort(out)
	return out, nil
}

// List returns every live container of the pool, retired ones included
// (Container.Retired), sorted by ID. It changes nothing (a container whose
// TTL has passed is left out, not purged) and reads the pool in pages of a
// few hundred containers, one short script call each, so that a pool of
// any size costs Redis no long call and no huge reply. A container changed
// during the listing is returned as one of its states.
func (p *Pool) List(ctx context.Context) ([]Container, error) {
	if p.err != nil {
		return nil, p.err
	}
	cl, err := p.c.db(p.db, true)
	if err != nil {
		return nil, err
	}
	byID := map[string]int{}
	var out []Container
	err = actors.ListPool(ctx, cl, p.c.keys, p.name, func(page []messages.Container) error {
		for _, mc := range page {
			if i, ok := byID[mc.ID]; ok {
				out[i] = containerOf(mc) // seen twice: the later reading
				continue
			}
			byID[mc.ID] = len(out)
			out = append(out, containerOf(mc))
		}
		return nil
	})
	if err != nil {
		return nil, p.c.inspectErr("pool.list", fmt.Sprintf("pool %q: list", p.name), err)
	}
	slices.SortFunc(out, func(a, b Container) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Exists reports whether the pool is in Redis: it holds containers, or has
// held containers that expired. It changes nothing.
func (p *Pool) Exists(ctx context.Context) (bool, error) {
	if p.err != nil {
		return false, p.err
	}
	cl, err := p.c.db(p.db, true)
	if err != nil {
		return false, err
	}
	ok, err := actors.PoolExists(ctx, cl, p.c.keys, p.name)
	if err != nil {
		return false, p.c.inspectErr("pool.exists", fmt.Sprintf("pool %q: exists", p.name), err)
	}
	return ok, nil
}

// inspectErr turns the Redis error of an inspection call into one that
// matches a sentinel, as every call does (xerr.Redis): a client closed
// meanwhile is ErrClosed, data xsync did not write ErrCorrupt, any other
// failure ErrUnavailable. op names the call in xsync.errors, what in the
// error.
func (c *Client) inspectErr(op, what string, err error) error {
	if c.isClosing() {
		return ErrClosed
	}
	err = xerr.Redis(what, err)
	c.metrics.failed(op, err)
	return err
}
