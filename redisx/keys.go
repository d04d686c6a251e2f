package redisx

import (
	"strconv"
	"strings"
)

// DefaultPrefix is the namespace of every key xsync writes when
// Options.KeyPrefix is empty.
const DefaultPrefix = "xsync"

// Keys names the keys xsync writes under one prefix. The zero value uses
// DefaultPrefix.
type Keys struct {
	Prefix string
	// Sharded: wake-ups go through sharded pub/sub, on channels in the
	// slots of the keys (see Wake); set on a Redis Cluster that has it.
	Sharded bool
}

func (k Keys) prefix() string {
	if k.Prefix == "" {
		return DefaultPrefix
	}
	return k.Prefix
}

// Tagged returns key with a Redis Cluster hash tag: a key that already has
// a non-empty {tag} keeps it, any other key becomes its own tag ("orders"
// becomes "{orders}").
func Tagged(key string) string {
	if hasTag(key) {
		return key
	}
	return "{" + key + "}"
}

// hasTag reports whether key holds a non-empty {hash tag}, as Redis
// Cluster reads it: the first "{" followed later by a "}" with something
// between them.
func hasTag(key string) bool {
	i := strings.IndexByte(key, '{')
	if i < 0 {
		return false
	}
	j := strings.IndexByte(key[i+1:], '}')
	return j > 0
}

// Lock is the key that holds the owner token of the lock on key:
// "xsync:lock:{orders}".
func (k Keys) Lock(key string) string {
	return k.prefix() + ":lock:" + Tagged(key)
}

// Fence is the key of the fencing counter of key, beside its lock key in
// the same slot: "xsync:fence:{orders}".
func (k Keys) Fence(key string) string {
	return k.prefix() + ":fence:" + Tagged(key)
}

// LockChannel is the pub/sub channel on which the releases of locks on DB
// db are published. Pub/sub ignores DBs, so the DB is in the name.
func (k Keys) LockChannel(db int) string {
	return k.prefix() + ":lock-released:" + strconv.Itoa(db)
}

// Pool is the key of one part of a pool; every part shares the pool's tag:
// Pool("accounts", "ready") is "xsync:pool:{accounts}:ready".
func (k Keys) Pool(name, part string) string {
	return k.prefix() + ":pool:" + Tagged(name) + ":" + part
}

// PoolChannel is the pub/sub channel on which changes to the pools of DB db
// are published; the payload names the pool.
func (k Keys) PoolChannel(db int) string {
	return k.prefix() + ":pool-changed:" + strconv.Itoa(db)
}

// LockQueue is the key of the turn queue of the lock on key: the clients
// waiting for it, oldest first, beside its lock key in the same slot:
// "xsync:lockq:{orders}".
func (k Keys) LockQueue(key string) string {
	return k.prefix() + ":lockq:" + Tagged(key)
}

// LockTickets is the key of the tickets of the turn queue of the lock on
// key: for each queued client, the waiter a release transfers the key to,
// beside its lock key in the same slot: "xsync:lockt:{orders}".
func (k Keys) LockTickets(key string) string {
	return k.prefix() + ":lockt:" + Tagged(key)
}
