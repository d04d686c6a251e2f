// Package testredis tells xsync's tests where the real Redis they run
// against is. `make test` starts a private redis-server and sets
// REDIS_ADDR; `make test-sentinel` and `make test-cluster` start a Sentinel
// set or a Redis Cluster (hack/with-redis.sh) and say so in REDIS_TOPOLOGY
// and the variables below. Without them the tests fail, they do not skip.
package testredis

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The topologies of REDIS_TOPOLOGY.
const (
	Single   = "single"
	Sentinel = "sentinel"
	Cluster  = "cluster"
)

const howTo = "run the tests with `make test` (one server), `make test-sentinel` or `make test-cluster`, which start a private Redis"

// Addr is the address of the single test server; it fails t when
// REDIS_ADDR is not set (as under a Sentinel or Cluster run: the tests that
// need one plain server do not run there).
func Addr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		t.Fatal("REDIS_ADDR is not set: " + howTo)
	}
	return addr
}

// Deployment is the Redis the tests run against.
type Deployment struct {
	// Topology is Single, Sentinel or Cluster.
	Topology string
	// Addr is the single server's address (Single).
	Addr string
	// Addrs are the Sentinels (Sentinel) or every node (Cluster).
	Addrs []string
	// MasterName is the Sentinels' name of the master (Sentinel).
	MasterName string
	// Dir holds each server's <port>.conf and <port>.pid, for the tests
	// that kill a server to see a failover; "" when not started by
	// hack/with-redis.sh.
	Dir string
}

// Current is the deployment described by the environment; it fails t when
// the environment describes none.
func Current(t testing.TB) Deployment {
	t.Helper()
	d := Deployment{Topology: os.Getenv("REDIS_TOPOLOGY"), Dir: os.Getenv("REDIS_TOPOLOGY_DIR")}
	if d.Topology == "" {
		d.Topology = Single
	}
	split := func(v string) []string {
		if v == "" {
			return nil
		}
		return strings.Split(v, ",")
	}
	switch d.Topology {
	case Single:
		d.Addr = Addr(t)
	case Sentinel:
		d.Addrs, d.MasterName = split(os.Getenv("REDIS_SENTINEL_ADDRS")), os.Getenv("REDIS_MASTER_NAME")
		if len(d.Addrs) == 0 || d.MasterName == "" {
			t.Fatal("REDIS_TOPOLOGY=sentinel without REDIS_SENTINEL_ADDRS and REDIS_MASTER_NAME: " + howTo)
		}
	case Cluster:
		d.Addrs = split(os.Getenv("REDIS_CLUSTER_ADDRS"))
		if len(d.Addrs) == 0 {
			t.Fatal("REDIS_TOPOLOGY=cluster without REDIS_CLUSTER_ADDRS: " + howTo)
		}
	default:
		t.Fatalf("REDIS_TOPOLOGY=%q: want single, sentinel or cluster", d.Topology)
	}
	return d
}

// Universal is the go-redis options of a plain client of DB db.
func (d Deployment) Universal(db int) *redis.UniversalOptions {
	switch d.Topology {
	case Sentinel:
		return &redis.UniversalOptions{Addrs: d.Addrs, MasterName: d.MasterName, DB: db}
	case Cluster:
		return &redis.UniversalOptions{Addrs: d.Addrs, IsClusterMode: true}
	default:
		return &redis.UniversalOptions{Addrs: []string{d.Addr}, DB: db}
	}
}

// Client is a plain go-redis client of DB db (0 on Cluster), closed when t
// ends: the tests look at what xsync wrote through it.
func (d Deployment) Client(t testing.TB, db int) redis.UniversalClient {
	t.Helper()
	c := d.Open(t, db)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Open is Client for a caller that closes it: a Cluster or Sentinel
// client runs goroutines until it is closed, which a test that checks for
// leaks before it ends must not see.
func (d Deployment) Open(t testing.TB, db int) redis.UniversalClient {
	t.Helper()
	if d.Topology == Cluster && db != 0 {
		t.Fatalf("DB %d on Redis Cluster", db)
	}
	return redis.NewUniversalClient(d.Universal(db))
}

// EachMaster runs fn on a plain client of every master: the one server,
// the current Sentinel master, or each master of the Cluster.
func EachMaster(ctx context.Context, c redis.UniversalClient, fn func(*redis.Client) error) error {
	switch c := c.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return fn(m) })
	case *redis.Client:
		return fn(c)
	default:
		return fmt.Errorf("testredis: unexpected client %T", c)
	}
}

// EachNode runs fn on a plain client of every node: masters and replicas.
func EachNode(ctx context.Context, c redis.UniversalClient, fn func(*redis.Client) error) error {
	if cc, ok := c.(*redis.ClusterClient); ok {
		return cc.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error { return fn(n) })
	}
	return EachMaster(ctx, c, fn)
}

// MasterAddr is the address of the master that serves key now.
func MasterAddr(ctx context.Context, c redis.UniversalClient, key string) (string, error) {
	switch c := c.(type) {
	case *redis.ClusterClient:
		m, err := c.MasterForKey(ctx, key)
		if err != nil {
			return "", err
		}
		return m.Options().Addr, nil
	case *redis.Client:
		var addr string
		// A failover client's Options().Addr is not the master's: ask the
		// server who it is.
		info, err := c.Info(ctx, "server").Result()
		if err != nil {
			return "", err
		}
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "tcp_port:"); ok {
				addr = "127.0.0.1:" + v
			}
		}
		if addr == "" {
			return "", fmt.Errorf("testredis: no tcp_port in INFO server")
		}
		return addr, nil
	default:
		return "", fmt.Errorf("testredis: unexpected client %T", c)
	}
}

// Kill kills the server at addr (host:port) with SIGKILL, as a crash
// would, and returns when it is gone. It needs Dir.
func (d Deployment) Kill(t testing.TB, addr string) {
	t.Helper()
	pid := d.pid(t, addr)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %s (pid %d): %v", addr, pid, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		// A killed child of another process lingers as a zombie until it
		// is reaped; /proc says which.
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err != nil || strings.Contains(string(st), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server %s (pid %d) still alive 10s after kill -9", addr, pid)
		}
		time.Sleep(10 * time.Millisecond) // ok: polls the process table with a deadline
	}
}

// Restart starts the server of addr again from its config file (after
// Kill): it rejoins as a replica. It returns once the server is a replica
// in sync with the new master: until then it may still believe itself the
// master and accept writes that the resync throws away, which the next
// tests must not see. On Sentinel it cannot be promoted until then. The server is stopped with the others when the run
// ends.
func (d Deployment) Restart(t testing.TB, addr string) {
	t.Helper()
	port := d.port(t, addr)
	conf := filepath.Join(d.Dir, port+".conf")
	args := []string{conf}
	promotable := false // replica-priority to set back once in sync
	if d.Topology == Sentinel {
		// Back as a replica of the master the Sentinels name now, as an
		// operator would bring it back: left to the Sentinels, the
		// conversion waits for their next look at it (up to 10s) and 8s
		// more, which took 15-16s of the 30s allowed below on a loaded
		// machine, and more than 30s in some runs.
		// A master the Sentinels have not replaced yet (a test that
		// failed before the promotion) comes back as it was.
		//
		// It comes back empty (the test servers keep nothing on disk),
		// and with replica-priority 0 until it is in sync: the Sentinels
		// once failed back to such a server while it synced (a second
		// failover, the machine loaded, down-after 1s), and the promoted
		// replica then resynced from it: every key lost.
		if host, mport, ok := d.sentinelMasterOtherThan(t, addr); ok {
			args = append(args, "--replicaof", host, mport, "--replica-priority", "0")
			promotable = true
		}
	}
	if out, err := exec.Command("redis-server", args...).CombinedOutput(); err != nil {
		t.Fatalf("restart %s: %v: %s", addr, err, out)
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for !syncedReplica(c) {
		if time.Now().After(deadline) {
			t.Fatalf("restarted server %s is no replica in sync within 30s (%s)", addr, role(c))
		}
		time.Sleep(20 * time.Millisecond) // ok: polls the server with a deadline
	}
	if promotable {
		if err := c.ConfigSet(context.Background(), "replica-priority", "100").Err(); err != nil {
			t.Fatalf("restarted server %s: replica-priority back to 100: %v", addr, err)
		}
	}
}

// sentinelMasterOtherThan asks every Sentinel for the address of the
// master now, and returns the first that is not addr: the Sentinels learn
// of a failover one after the other (from each other's hellos, every 2s),
// so one may still name the old master when another names the promoted
// replica, whose configuration is the newer. ok is false when every
// Sentinel names addr.
func (d Deployment) sentinelMasterOtherThan(t testing.TB, addr string) (host, port string, ok bool) {
	t.Helper()
	answered := false
	for _, a := range d.Addrs {
		s := redis.NewSentinelClient(&redis.Options{Addr: a})
		m, err := s.GetMasterAddrByName(context.Background(), d.MasterName).Result()
		_ = s.Close()
		if err != nil || len(m) != 2 {
			continue
		}
		answered = true
		if net.JoinHostPort(m[0], m[1]) != addr {
			return m[0], m[1], true
		}
	}
	if !answered {
		t.Fatalf("no Sentinel of %v names the master %q", d.Addrs, d.MasterName)
	}
	return "", "", false
}

// Pause stops the server at addr with SIGSTOP, as a stalled machine
// would: it answers nothing, and a replica confirms no write, until the
// returned resume sends SIGCONT (also when t ends). It needs Dir.
func (d Deployment) Pause(t testing.TB, addr string) (resume func()) {
	t.Helper()
	pid := d.pid(t, addr)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("kill -STOP %s (pid %d): %v", addr, pid, err)
	}
	var once sync.Once
	resume = func() {
		once.Do(func() {
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
				t.Errorf("kill -CONT %s (pid %d): %v", addr, pid, err)
			}
		})
	}
	t.Cleanup(resume)
	return resume
}

// ReplicaOf is the address of a replica of the Cluster master that
// serves key now, and that master's.
func ReplicaOf(ctx context.Context, t testing.TB, c *redis.ClusterClient, key string) (replica, master string) {
	t.Helper()
	m, err := c.MasterForKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := m.ClusterNodes(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	var id string
	for _, line := range strings.Split(nodes, "\n") {
		if f := strings.Fields(line); len(f) > 2 && strings.Contains(f[2], "myself") {
			id = f[0]
		}
	}
	for _, line := range strings.Split(nodes, "\n") {
		if f := strings.Fields(line); len(f) > 3 && strings.Contains(f[2], "slave") && f[3] == id {
			replica = strings.Split(f[1], "@")[0]
		}
	}
	if replica == "" {
		t.Fatalf("no replica of %s in %s", m.Options().Addr, nodes)
	}
	return replica, m.Options().Addr
}

func (d Deployment) port(t testing.TB, addr string) string {
	t.Helper()
	if d.Dir == "" {
		t.Fatal("REDIS_TOPOLOGY_DIR is not set: the servers were not started by hack/with-redis.sh")
	}
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		t.Fatalf("address %q: want host:port", addr)
	}
	return addr[i+1:]
}

func (d Deployment) pid(t testing.TB, addr string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.Dir, d.port(t, addr)+".pid"))
	if err != nil {
		t.Fatalf("pid of %s: %v", addr, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid of %s: %v", addr, err)
	}
	return pid
}

// role is the role line of c's server's INFO replication, or the error.
func role(c *redis.Client) string {
	info, err := c.Info(context.Background(), "replication").Result()
	if err != nil {
		return err.Error()
	}
	for _, line := range strings.Split(info, "\r\n") {
		if strings.HasPrefix(line, "role:") {
			return line
		}
	}
	return "no role"
}

// syncedReplica: c's server is a replica whose link to its master is up.
func syncedReplica(c *redis.Client) bool {
	info, err := c.Info(context.Background(), "replication").Result()
	return err == nil && strings.Contains(info, "role:slave") && strings.Contains(info, "master_link_status:up")
}
