package xsync_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync/internal/testredis"
	"github.com/redisxsync/xsync/redisx"
)

// Helpers that read what the test server did, shared by the lock and pool
// tests.

// commandCounts reads INFO commandstats: calls per command, summed over
// every master (one on a single server or Sentinel, three on the test
// Cluster).
func commandCounts(t testing.TB, r redis.UniversalClient) map[string]int64 {
	t.Helper()
	var mu sync.Mutex
	counts := map[string]int64{}
	err := testredis.EachMaster(context.Background(), r, func(m *redis.Client) error {
		info, err := m.Info(context.Background(), "commandstats").Result()
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, line := range strings.Split(info, "\n") {
			name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
			if !ok {
				continue
			}
			n, _, _ := strings.Cut(rest, ",")
			v, _ := strconv.ParseInt(n, 10, 64)
			counts[strings.TrimPrefix(name, "cmdstat_")] += v
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return counts
}

// keysMatching is KEYS pattern over every master.
func keysMatching(t testing.TB, r redis.UniversalClient, pattern string) []string {
	t.Helper()
	var mu sync.Mutex
	var all []string
	err := testredis.EachMaster(context.Background(), r, func(m *redis.Client) error {
		keys, err := m.Keys(context.Background(), pattern).Result()
		mu.Lock()
		all = append(all, keys...)
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// commandsSince is what the deployment has processed since before (from
// commandCounts), by command, but for what neither xsync nor its waiters
// send (see noise).
func commandsSince(t testing.TB, db redis.UniversalClient, before map[string]int64) map[string]int64 {
	t.Helper()
	diff := map[string]int64{}
	for name, n := range commandCounts(t, db) {
		if d := n - before[name]; d != 0 {
			diff[name] = d
		}
	}
	for name := range noise(diff) {
		delete(diff, name)
	}
	return diff
}

// noise is the part of diff (commands by name) that is not xsync's: the
// test's own INFO calls, go-redis's pub/sub health-check PINGs, the
// replicas' REPLCONF ACKs, the test's cluster client asking for the slots
// (CLUSTER ...), and the Sentinels' hello messages (PUBLISH every 2s).
// xsync publishes only from inside its scripts, so a PUBLISH is a
// Sentinel's when no script ran.
func noise(diff map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for name, n := range diff {
		switch {
		case name == "info" || name == "ping" || name == "replconf" || strings.HasPrefix(name, "cluster|"):
			out[name] = n
		case name == "publish" && diff["evalsha"] == 0 && diff["eval"] == 0:
			out[name] = n
		}
	}
	return out
}

// wakeKeys names the keys and channels under prefix as the test
// deployment's clients do: on Cluster (Redis 7), with shard channels.
func wakeKeys(t testing.TB, prefix string) redisx.Keys {
	return redisx.Keys{Prefix: prefix, Sharded: testredis.Current(t).Topology == testredis.Cluster}
}

// subscribeWake subscribes to w as xsync's clients do (SSUBSCRIBE for a
// shard channel), closed when t ends, and returns once Redis confirmed it.
func subscribeWake(t testing.TB, w redisx.Wake) *redis.PubSub {
	t.Helper()
	raw := rawDB(t, 0)
	var ps *redis.PubSub
	if w.Sharded {
		ps = raw.SSubscribe(context.Background(), w.Channel)
	} else {
		ps = raw.Subscribe(context.Background(), w.Channel)
	}
	t.Cleanup(func() { _ = ps.Close() })
	if _, err := ps.Receive(context.Background()); err != nil { // the subscription's confirmation
		t.Fatal(err)
	}
	return ps
}

// killPubSub closes every pub/sub connection of every node, as a network
// cut would.
func killPubSub(t testing.TB, r redis.UniversalClient) {
	t.Helper()
	err := testredis.EachNode(context.Background(), r, func(m *redis.Client) error {
		return m.Do(context.Background(), "CLIENT", "KILL", "TYPE", "pubsub").Err()
	})
	if err != nil {
		t.Fatal(err)
	}
}
