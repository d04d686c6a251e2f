package xsync_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/redisxsync/xsync"
	"github.com/redisxsync/xsync/internal/testredis"
)

// Options that name no topology, or two, are refused before any
// connection, with a message that says what contradicts what.
func TestOptions_ContradictoryTopologiesAreInvalid(t *testing.T) {
	cases := []struct {
		name string
		opts xsync.Options
		says string
	}{
		{"Addr and Addrs", xsync.Options{Addr: "h:1", Addrs: []string{"a:1", "b:1"}}, "Addr and Addrs"},
		{"URL and Addrs", xsync.Options{URL: "redis://h:1/0", Addrs: []string{"a:1"}}, "URL and Addrs"},
		{"MasterName with Cluster", xsync.Options{Addrs: []string{"a:1"}, MasterName: "m", Cluster: true}, "MasterName (Sentinel) and Cluster"},
		{"MasterName without Sentinels", xsync.Options{MasterName: "m"}, "MasterName is set without Addrs"},
		{"Cluster without seeds", xsync.Options{Cluster: true}, "Cluster is set without Addrs"},
		{"DB on Cluster", xsync.Options{Addrs: []string{"a:1", "b:1"}, DB: 2}, "DB 2 on Redis Cluster"},
		{"DB on a one-seed Cluster", xsync.Options{Addrs: []string{"a:1"}, Cluster: true, DB: 1}, "DB 1 on Redis Cluster"},
		{"Sentinel password without MasterName", xsync.Options{Addrs: []string{"a:1"}, SentinelPassword: "pw"}, "without MasterName"},
		{"negative AckReplicas", xsync.Options{Addr: "h:1", AckReplicas: -1}, "negative AckReplicas"},
		{"not host:port", xsync.Options{Addrs: []string{"a:1", "b"}}, `"b": want host:port`},
		{"Redis func changes the DB", xsync.Options{Addr: "h:1", Redis: func(o *redis.UniversalOptions) { o.DB = 3 }}, "changed DB"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := xsync.New(tc.opts)
			if err == nil {
				_ = c.Close(context.Background())
				t.Fatal("New accepted contradictory options")
			}
			if !errors.Is(err, xsync.ErrInvalidOptions) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("err = %v; want ErrInvalidOptions saying %q", err, tc.says)
			}
		})
	}
}

// The Redis func has the last word on go-redis's settings of the clients
// xsync builds.
func TestOptions_RedisFuncTunesTheClients(t *testing.T) {
	o := testOptions(t)
	o.Redis = func(u *redis.UniversalOptions) { u.ClientName = "tuned-by-caller" }
	o.KeyPrefix = testPrefix(t)
	c, err := xsync.New(o)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close(context.Background()) }()
	db, err := c.DB(0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	name, err := db.Do(ctx, "CLIENT", "GETNAME").Text()
	if err != nil || name != "tuned-by-caller" {
		t.Fatalf("CLIENT GETNAME = %q, %v; want the name the Redis func set", name, err)
	}
}

// requireTopology fails t unless the tests run against topo: the tests
// named TestSentinel_ and TestCluster_ are run by `make test-sentinel` and
// `make test-cluster`, which start one.
func requireTopology(t *testing.T, topo string) testredis.Deployment {
	t.Helper()
	d := testredis.Current(t)
	if d.Topology != topo {
		t.Fatalf("this test needs REDIS_TOPOLOGY=%s (got %s): run it with `make test-%s`", topo, d.Topology, topo)
	}
	return d
}

// On Cluster, DB(0) is the cluster client; other DBs do not exist.
func TestCluster_DB0IsTheClusterClientAndOtherDBsAreInvalid(t *testing.T) {
	requireTopology(t, testredis.Cluster)
	c := newClient(t)
	db, err := c.DB(0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := db.(*redis.ClusterClient); !ok {
		t.Fatalf("DB(0) is a %T, want *redis.ClusterClient", db)
	}
	if _, err := c.DB(1); !errors.Is(err, xsync.ErrInvalidOptions) {
		t.Fatalf("DB(1) on Cluster: err = %v, want ErrInvalidOptions", err)
	}
	ctx := context.Background()
	if _, err := c.TryLock(ctx, []string{"k"}, xsync.OnDB(2)); !errors.Is(err, xsync.ErrInvalidOptions) {
		t.Fatalf("TryLock OnDB(2) on Cluster: err = %v, want ErrInvalidOptions", err)
	}
	if _, err := c.Pool("p", xsync.OnDB(3)).AskOne(ctx); !errors.Is(err, xsync.ErrInvalidOptions) {
		t.Fatalf("AskOne OnDB(3) on Cluster: err = %v, want ErrInvalidOptions", err)
	}
}

// Keys with one {hash tag} share a slot on Cluster, and are taken
// all-or-nothing by one script (keys in several slots: lock_slots_test.go).
func TestCluster_LockKeysOfOneTagAreTakenAllOrNothing(t *testing.T) {
	requireTopology(t, testredis.Cluster)
	prefix := testPrefix(t)
	ctx := context.Background()
	a, b := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))
	held, err := a.Lock(ctx, []string{"{order-7}:payment"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.TryLock(ctx, []string{"{order-7}:stock", "{order-7}:payment"}); !errors.Is(err, xsync.ErrNotObtained) {
		t.Fatalf("TryLock of two same-tag keys, one held: err = %v, want ErrNotObtained", err)
	}
	for _, k := range lockKeysLeft(t, prefix, 0) {
		if k == prefix+":lock:{order-7}:stock" {
			t.Fatal("all-or-nothing broken: the free key of a refused lock is taken")
		}
	}
	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}
	both, err := b.TryLock(ctx, []string{"{order-7}:stock", "{order-7}:payment"})
	if err != nil {
		t.Fatalf("TryLock of two free same-tag keys: %v", err)
	}
	if both.Fence("{order-7}:payment") < 2 || both.Fence("{order-7}:stock") < 1 {
		t.Fatalf("fences %d, %d", both.Fence("{order-7}:payment"), both.Fence("{order-7}:stock"))
	}
	if err := both.Release(ctx); err != nil {
		t.Fatal(err)
	}
}
