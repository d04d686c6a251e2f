package redisx

import (
	"context"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Wake-ups: the scripts publish what may let a waiter go on a channel, and
// the waiters' clients subscribe to it. Two schemes:
//
//   - classic pub/sub (one server, Sentinel, a Cluster without SSUBSCRIBE):
//     one channel per DB and kind, PUBLISH and SUBSCRIBE;
//   - sharded pub/sub (Keys.Sharded: a Redis Cluster of Redis ≥ 7): a
//     channel in the slot of the keys a script touches, SPUBLISH and
//     SSUBSCRIBE, so that a wake-up is sent to the one master that owns
//     the slot instead of to every node. A lock's channel is its slot's
//     (SlotTag): one script may touch keys of different tags in one slot.
//     A pool's and a semaphore's is its own tag's.

// Wake is a channel that scripts publish wake-ups on.
type Wake struct {
	Channel string
	Sharded bool // a shard channel: SPUBLISH and SSUBSCRIBE
}

// shardedArg marks the scripts' argument of a shard channel (see Arg).
const shardedArg = "SPUBLISH "

// Arg is w as the scripts take it (lib_publish.lua): the channel's name,
// or "SPUBLISH <name>" for a shard channel.
func (w Wake) Arg() string {
	if w.Sharded {
		return shardedArg + w.Channel
	}
	return w.Channel
}

// LockWake is the channel of the releases of locks on DB db:
// LockChannel(db), or on sharded pub/sub the channel of the slot of
// redisKey (any Redis key of the lock: Lock(key), LockQueue(key)...),
// "xsync:lock-released:{<slot tag>}".
func (k Keys) LockWake(db int, redisKey string) Wake {
	if !k.Sharded {
		return Wake{Channel: k.LockChannel(db)}
	}
	return Wake{Channel: k.prefix() + ":lock-released:{" + SlotTag(Slot(redisKey)) + "}", Sharded: true}
}

// PoolWake is the channel of the changes of the pool name on DB db:
// PoolChannel(db), or on sharded pub/sub the pool's own,
// "xsync:pool-changed:{accounts}", in the slot of the pool's keys. The
// payload names the pool either way.
func (k Keys) PoolWake(db int, name string) Wake {
	if !k.Sharded {
		return Wake{Channel: k.PoolChannel(db)}
	}
	return Wake{Channel: k.prefix() + ":pool-changed:" + Tagged(name), Sharded: true}
}

// SemaphoreWake is the channel of the releases of the semaphore name on DB
// db: SemaphoreChannel(db), or on sharded pub/sub the semaphore's own,
// "xsync:sem-released:{workers}". The payload names the semaphore either
// way.
func (k Keys) SemaphoreWake(db int, name string) Wake {
	if !k.Sharded {
		return Wake{Channel: k.SemaphoreChannel(db)}
	}
	return Wake{Channel: k.prefix() + ":sem-released:" + Tagged(name), Sharded: true}
}

var (
	slotTagsOnce sync.Once
	slotTags     []string
)

// SlotTag is the hash tag of slot s's lock channel: the decimal form of the
// least non-negative integer whose slot is s. Every client computes the
// same, so that a release's channel is its waiters'. (The greatest is
// 109757; the table is built once, in about a millisecond.)
func SlotTag(s int) string {
	slotTagsOnce.Do(func() {
		slotTags = make([]string, SlotCount)
		for n, left := 0, SlotCount; left > 0; n++ {
			tag := strconv.Itoa(n)
			if sl := Slot(tag); slotTags[sl] == "" {
				slotTags[sl] = tag
				left--
			}
		}
	})
	return slotTags[s]
}

// ShardedPubSub reports whether the server of c knows SSUBSCRIBE and
// SPUBLISH (Redis ≥ 7), from COMMAND INFO: a server that does not know a
// command answers nil for it.
func ShardedPubSub(ctx context.Context, c redis.UniversalClient) (bool, error) {
	res, err := c.Do(ctx, "COMMAND", "INFO", "SPUBLISH", "SSUBSCRIBE").Slice()
	if err != nil {
		return false, err
	}
	if len(res) != 2 {
		return false, nil
	}
	for _, r := range res {
		if r == nil {
			return false, nil
		}
	}
	return true, nil
}

// MovedSlot is the slot of a MOVED or ASK error reply ("MOVED 3999
// 127.0.0.1:6381"); false for any other error.
func MovedSlot(err error) (int, bool) {
	if err == nil {
		return 0, false
	}
	msg := err.Error()
	for _, p := range []string{"MOVED ", "ASK "} {
		if rest, ok := strings.CutPrefix(msg, p); ok {
			s, _, _ := strings.Cut(rest, " ")
			n, err := strconv.Atoi(s)
			return n, err == nil
		}
	}
	return 0, false
}
