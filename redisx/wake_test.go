package redisx_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync/internal/testredis"
	"github.com/redisxsync/xsync/redisx"
)

func TestSlotTag_IsTheLeastNumberInEachSlot(t *testing.T) {
	seen := map[string]bool{}
	for s := 0; s < redisx.SlotCount; s++ {
		tag := redisx.SlotTag(s)
		if got := redisx.Slot(tag); got != s {
			t.Fatalf("SlotTag(%d) = %q, whose slot is %d", s, tag, got)
		}
		if seen[tag] {
			t.Fatalf("SlotTag(%d) = %q, the tag of another slot too", s, tag)
		}
		seen[tag] = true
	}
	// The least: every client must compute the same tag.
	for _, s := range []int{0, 1, 3300, 15495, redisx.SlotCount - 1} {
		n := 0
		for redisx.Slot(strconv.Itoa(n)) != s {
			n++
		}
		if got := redisx.SlotTag(s); got != strconv.Itoa(n) {
			t.Errorf("SlotTag(%d) = %s, want %d", s, got, n)
		}
	}
}

func TestKeys_ShardedWakeChannelsAreInTheirKeysSlots(t *testing.T) {
	k := redisx.Keys{Prefix: "app", Sharded: true}
	for _, key := range []string{"orders", "{user1}:orders", "a"} {
		w := k.LockWake(0, k.Lock(key))
		if !w.Sharded || redisx.Slot(w.Channel) != redisx.Slot(k.Lock(key)) {
			t.Errorf("LockWake of %q: %+v, slot %d; the lock key's is %d", key, w, redisx.Slot(w.Channel), redisx.Slot(k.Lock(key)))
		}
		if w.Arg() != "SPUBLISH "+w.Channel {
			t.Errorf("Arg() = %q", w.Arg())
		}
	}
	// Keys of two tags in one slot share their channel: a script that
	// releases both publishes once, and a waiter of either hears it.
	first := map[int]string{}
	var a, b string
	for i := 0; b == ""; i++ {
		key := "k" + strconv.Itoa(i)
		s := redisx.Slot(k.Lock(key))
		if other, ok := first[s]; ok {
			a, b = other, key
		}
		first[s] = key
	}
	if ca, cb := k.LockWake(0, k.Lock(a)).Channel, k.LockWake(0, k.LockQueue(b)).Channel; ca != cb {
		t.Errorf("keys %q and %q share a slot, not a channel: %q, %q", a, b, ca, cb)
	}
	if w := k.PoolWake(0, "accounts"); redisx.Slot(w.Channel) != redisx.Slot(k.Pool("accounts", "ready")) || w.Channel != "app:pool-changed:{accounts}" {
		t.Errorf("PoolWake = %+v", w)
	}
	if w := k.SemaphoreWake(0, "workers"); redisx.Slot(w.Channel) != redisx.Slot(k.Semaphore("workers", "holders")) || w.Channel != "app:sem-released:{workers}" {
		t.Errorf("SemaphoreWake = %+v", w)
	}
}

func TestKeys_ClassicWakeChannelsArePerDB(t *testing.T) {
	k := redisx.Keys{Prefix: "app"}
	if w := k.LockWake(2, k.Lock("orders")); w.Sharded || w.Channel != k.LockChannel(2) || w.Arg() != w.Channel {
		t.Errorf("LockWake = %+v, Arg %q", w, w.Arg())
	}
	if w := k.PoolWake(2, "accounts"); w.Sharded || w.Channel != k.PoolChannel(2) {
		t.Errorf("PoolWake = %+v", w)
	}
	if w := k.SemaphoreWake(2, "workers"); w.Sharded || w.Channel != k.SemaphoreChannel(2) {
		t.Errorf("SemaphoreWake = %+v", w)
	}
}

func TestMovedSlot_ReadsMovedAndAskReplies(t *testing.T) {
	cases := []struct {
		err  error
		slot int
		ok   bool
	}{
		{errors.New("MOVED 3999 127.0.0.1:6381"), 3999, true},
		{errors.New("ASK 12 127.0.0.1:6381"), 12, true},
		{errors.New("CROSSSLOT Keys in request don't hash to the same slot"), 0, false},
		{errors.New("MOVED nonsense"), 0, false},
		{nil, 0, false},
	}
	for _, c := range cases {
		if slot, ok := redisx.MovedSlot(c.err); slot != c.slot || ok != c.ok {
			t.Errorf("MovedSlot(%v) = %d, %v; want %d, %v", c.err, slot, ok, c.slot, c.ok)
		}
	}
}

// A Redis 7 server has sharded pub/sub (the test server is 7.0).
func TestShardedPubSub_IsFoundOnRedis7(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: testredis.Addr(t)})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ok, err := redisx.ShardedPubSub(ctx, c)
	if err != nil || !ok {
		t.Fatalf("ShardedPubSub = %v, %v; want true", ok, err)
	}
}
