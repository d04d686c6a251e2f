package xsync_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/redisxsync/xsync"
	"github.com/redisxsync/xsync/internal/testredis"
	"github.com/redisxsync/xsync/redisx"
)

// What the failover tests put under load: 3 clients (processes), each with
// lock workers on a few keys (auto-renewed leases) and pool waiters on a
// few rate-limited containers.
const (
	failoverClients     = 3
	failoverLockWorkers = 3 // per client
	failoverPoolWorkers = 3 // per client
	// failoverServeWithin is how long after the promotion every worker
	// must have been served again.
	failoverServeWithin = 15 * time.Second
	// failoverInterval is the interval of the pool's containers.
	failoverInterval = 50 * time.Millisecond
)

// section is one critical section run under a lock, or one container
// taken from the pool.
type section struct {
	key        string
	start, end time.Time
	lost       bool // the lease reported itself lost (Lost, or Release's ErrLockNotHeld)
	// fence and release tell an overlap apart: the lease's fence of key,
	// and what its Release returned.
	fence   int64
	release error
	// next is a taken container's NextAvailable: the server's time of the
	// take plus the container's interval.
	next time.Time
}

// failoverLoad runs the load on clients until stop is closed.
type failoverLoad struct {
	t       *testing.T
	prefix  string
	clients []*xsync.Client
	logs    *observer.ObservedLogs
	ack     int // Options.AckReplicas of the clients

	mu       sync.Mutex
	sections []section
	takes    []section
	served   map[string][]time.Time // worker -> times it was served
	errs     map[string]int
	// poolStats are the clients' pool Stats at the end of the load.
	poolStats []string
}

func newFailoverLoad(t *testing.T, ack int) *failoverLoad {
	core, logs := observer.New(zapcore.InfoLevel)
	l := &failoverLoad{t: t, prefix: testPrefix(t), logs: logs, ack: ack, served: map[string][]time.Time{}, errs: map[string]int{}}
	for i := 0; i < failoverClients; i++ {
		l.clients = append(l.clients, newClient(t, withPrefix(l.prefix), withAck(ack), func(o *xsync.Options) {
			o.Logger = zap.New(core).With(zap.Int("client", i))
		}))
	}
	return l
}

func (l *failoverLoad) servedAt(worker string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.served[worker] = append(l.served[worker], at)
}

func (l *failoverLoad) failed(what string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	msg := err.Error()
	if len(msg) > 80 {
		msg = msg[:80]
	}
	l.errs[what+": "+msg]++
}

// run starts the workers; they stop when ctx is done, and run's result
// waits for them.
func (l *failoverLoad) run(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	pool := l.clients[0].Pool("accounts")
	var cs []xsync.Container
	for i := 0; i < 4; i++ {
		cs = append(cs, xsync.Container{ID: fmt.Sprintf("acct-%d", i), Interval: failoverInterval})
	}
	if err := pool.Put(ctx, cs...); err != nil {
		l.t.Fatal(err)
	}
	// The keys share the pool's slot on Cluster: the failover hits them all.
	keys := []string{"{accounts}:job-a", "{accounts}:job-b", "{accounts}:job-c"}
	for ci, c := range l.clients {
		for w := 0; w < failoverLockWorkers; w++ {
			worker := fmt.Sprintf("lock-%d-%d", ci, w)
			key := keys[(ci+w)%len(keys)]
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					l.lockOnce(ctx, c, worker, key)
				}
			}()
		}
		p := c.Pool("accounts")
		for w := 0; w < failoverPoolWorkers; w++ {
			worker := fmt.Sprintf("pool-%d-%d", ci, w)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					got, err := p.WaitAskOne(ctx)
					if err != nil {
						if ctx.Err() == nil {
							l.failed("pool", err)
						}
						continue
					}
					now := time.Now()
					l.servedAt(worker, now)
					l.mu.Lock()
					l.takes = append(l.takes, section{key: got.ID, start: now, next: got.NextAvailable})
					l.mu.Unlock()
				}
			}()
		}
	}
	return wg.Wait
}

// lockOnce takes key with an auto-renewed lease of 3s (renewed every 1s),
// holds it for 20ms, and records the section.
func (l *failoverLoad) lockOnce(ctx context.Context, c *xsync.Client, worker, key string) {
	lease, err := c.Lock(ctx, []string{key}, xsync.TTL(3*time.Second), xsync.AutoRenew(true))
	if err != nil {
		if ctx.Err() == nil {
			l.failed("lock", err)
		}
		return
	}
	s := section{key: key, start: time.Now(), fence: lease.Fence(key)}
	l.servedAt(worker, s.start)
	select {
	case <-time.After(20 * time.Millisecond): // the work done under the lock
	case <-lease.Lost():
	}
	s.end = time.Now()
	select {
	case <-lease.Lost():
		s.lost = true
	default:
	}
	rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := lease.Release(rctx); err != nil {
		s.release = err
		// A lease whose key was lost in the failover learns it here.
		s.lost = s.lost || errors.Is(err, xsync.ErrLockNotHeld)
		if !errors.Is(err, xsync.ErrLockNotHeld) {
			l.failed("release", err)
		}
	}
	l.mu.Lock()
	l.sections = append(l.sections, s)
	l.mu.Unlock()
}

// check asserts the guarantees of a failover promoted at promoted, and
// logs the recovery times.
func (l *failoverLoad) check(promoted, end time.Time) {
	t := l.t
	l.mu.Lock()
	defer l.mu.Unlock()

	// Every worker is served again within failoverServeWithin of the
	// promotion.
	var recoveries []time.Duration
	var starved []string
	defer func() {
		if len(starved) > 0 {
			l.explain(starved, promoted)
		}
	}()
	for w, times := range l.served {
		i := slices.IndexFunc(times, func(at time.Time) bool { return at.After(promoted) })
		if i < 0 {
			t.Errorf("worker %s not served after the promotion (%v of load after it)", w, end.Sub(promoted).Round(time.Millisecond))
			starved = append(starved, w)
			continue
		}
		d := times[i].Sub(promoted)
		recoveries = append(recoveries, d)
		if d > 3*time.Second {
			t.Logf("worker %s served again %v after the promotion", w, d.Round(time.Millisecond))
		}
		if d > failoverServeWithin {
			t.Errorf("worker %s served again %v after the promotion; want within %v", w, d, failoverServeWithin)
		}
	}
	if len(l.served) != failoverClients*(failoverLockWorkers+failoverPoolWorkers) {
		t.Errorf("%d workers were ever served, want %d", len(l.served), failoverClients*(failoverLockWorkers+failoverPoolWorkers))
	}
	slices.Sort(recoveries)
	if len(recoveries) > 0 {
		t.Logf("recovery after the promotion: median %v, max %v over %d workers",
			recoveries[len(recoveries)/2].Round(time.Millisecond), recoveries[len(recoveries)-1].Round(time.Millisecond), len(recoveries))
	}

	// No two holders of one key at once among the leases not reported lost.
	// A lease whose Release failed otherwise (ErrUnavailable while the
	// master was down) counts as not lost: it was granted before the kill
	// and its section ended long before the promotion, so it cannot
	// overlap a section granted by the new master; if it ever does, the
	// message shows it.
	byKey := map[string][]section{}
	lost := 0
	for _, s := range l.sections {
		if s.lost {
			lost++
			continue
		}
		byKey[s.key] = append(byKey[s.key], s)
	}
	for key, ss := range byKey {
		slices.SortFunc(ss, func(a, b section) int { return a.start.Compare(b.start) })
		for i := 1; i < len(ss); i++ {
			if ss[i].start.Before(ss[i-1].end) {
				t.Errorf("key %s held twice at once: [%v, %v] fence %d, Release %v; and [%v, %v] fence %d, Release %v (promotion at %v)", key,
					ss[i-1].start.Format(time.StampMilli), ss[i-1].end.Format(time.StampMilli), ss[i-1].fence, ss[i-1].release,
					ss[i].start.Format(time.StampMilli), ss[i].end.Format(time.StampMilli), ss[i].fence, ss[i].release,
					promoted.Format(time.StampMilli))
			}
		}
	}
	t.Logf("%d critical sections, %d under leases reported lost; %d containers taken", len(l.sections), lost, len(l.takes))
	l.checkTakes()
	if len(l.errs) > 0 {
		t.Logf("errors returned to the workers: %v", l.errs)
	}

	// No error loop in the log: warnings while Redis is away, bounded by
	// the back-offs, and none once every worker is served again.
	var warns []string
	quietFrom := promoted.Add(failoverServeWithin)
	for _, e := range l.logs.All() {
		if e.Level < zapcore.WarnLevel {
			continue
		}
		warns = append(warns, e.Message)
		if e.Time.After(quietFrom) {
			t.Errorf("log line %v after every worker was served again: %q %v", e.Time.Sub(promoted), e.Message, e.ContextMap())
		}
	}
	t.Logf("%d warnings in the log", len(warns))
	if limit := 60 * failoverClients * 2; len(warns) > limit {
		t.Errorf("%d warnings in the log (more than %d): an error loop? first ones: %q", len(warns), limit, warns[:10])
	}
}

// checkTakes asserts, with AckReplicas, that no container was handed out
// twice within its interval: the takes of one container, by the server's
// clock, are an interval apart at least. A take that the failover forgot
// would be repeated sooner; with AckReplicas none is forgotten. Without,
// it logs how many were.
func (l *failoverLoad) checkTakes() {
	twice := 0
	byID := map[string][]time.Time{}
	for _, s := range l.takes {
		byID[s.key] = append(byID[s.key], s.next)
	}
	for id, nexts := range byID {
		slices.SortFunc(nexts, func(a, b time.Time) int { return a.Compare(b) })
		for i := 1; i < len(nexts); i++ {
			if gap := nexts[i].Sub(nexts[i-1]); gap < failoverInterval {
				twice++
				if l.ack == 0 {
					continue
				}
				l.t.Errorf("container %s handed out twice within its interval: takes %v apart (interval %v), at %v",
					id, gap, failoverInterval, nexts[i].Add(-failoverInterval).Format(time.StampMicro))
			}
		}
	}
	l.t.Logf("AckReplicas %d: %d takes of %d containers, %d within the interval of the one before", l.ack, len(l.takes), len(byID), twice)
}

// explain logs the last lines the clients of starved workers logged from
// just before the promotion, to tell why they were not served.
func (l *failoverLoad) explain(starved []string, promoted time.Time) {
	clients := map[int64]bool{}
	for _, w := range starved {
		var ci, wi int64
		var kind string
		if _, err := fmt.Sscanf(strings.ReplaceAll(w, "-", " "), "%s %d %d", &kind, &ci, &wi); err == nil {
			clients[ci] = true
		}
	}
	var lines []string
	for _, e := range l.logs.All() {
		ci, _ := e.ContextMap()["client"].(int64)
		if clients[ci] && e.Time.After(promoted.Add(-10*time.Second)) {
			lines = append(lines, fmt.Sprintf("client %d at %+v: %s %v", ci, e.Time.Sub(promoted).Round(time.Millisecond), e.Message, e.ContextMap()))
		}
	}
	for _, line := range lines[max(0, len(lines)-60):] {
		l.t.Log(line)
	}
	// Every warning and error of the run, by message: a panic an actor
	// was resumed from shows here whenever it came.
	byMessage := map[string]int{}
	for _, e := range l.logs.All() {
		if e.Level >= zapcore.WarnLevel {
			byMessage[e.Level.String()+": "+e.Message]++
		}
	}
	l.t.Logf("warnings and errors of the run, by message: %v", byMessage)
	l.explainPool()
}

// explainPool logs what the pool's keys hold now, and what each client's
// Stats say: where the containers a starved pool worker waited for are.
func (l *failoverLoad) explainPool() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw := rawDB(l.t, 0)
	now, err := raw.Time(ctx).Result()
	l.t.Logf("server time %v (%v)", now, err)
	keys, err := raw.Keys(ctx, l.prefix+":pool*").Result()
	if err != nil {
		l.t.Logf("pool keys: %v", err)
	}
	grants := 0
	for _, k := range keys {
		if strings.Contains(k, ":grant:") {
			grants++ // one per take, kept 30s: counted, not listed
			continue
		}
		ty, _ := raw.Type(ctx, k).Result()
		ttl, _ := raw.PTTL(ctx, k).Result()
		var v any
		switch ty {
		case "zset":
			v, _ = raw.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "hash":
			v, _ = raw.HKeys(ctx, k).Result()
		case "string":
			v, _ = raw.StrLen(ctx, k).Result()
		}
		l.t.Logf("%s: %s, PTTL %v: %v", k, ty, ttl, v)
	}
	l.t.Logf("%d grant records", grants)
	for i, st := range l.poolStats {
		l.t.Logf("client %d at the end of the load: Stats %s", i, st)
	}
}

// snapshotPools records each client's pool Stats while the load still
// runs: how many of its requests wait, how many calls are under way.
func (l *failoverLoad) snapshotPools() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, c := range l.clients {
		p := c.Pool("accounts")
		st, err := p.Stats(ctx)
		busy, berr := xsync.PoolBusy(ctx, p)
		state, serr := xsync.PoolState(ctx, p)
		l.poolStats = append(l.poolStats, fmt.Sprintf("%+v %v; calls under way %d %v; actor: %s %v", st, err, busy, berr, state, serr))
	}
}

// runFailover kills -9 the master at addr under load (clients with
// AckReplicas ack), waits for promoted to report the replica's promotion,
// keeps the load on for failoverServeWithin more, then checks the
// guarantees. With ack > 0 the killed server is brought back as a replica
// first (nothing is confirmed without one), and the workers are timed
// from when it is in sync.
func runFailover(t *testing.T, d testredis.Deployment, ack int, victim func(ctx context.Context) string, promoted func(ctx context.Context, old string) bool) {
	// Runs last, once every client is closed.
	t.Cleanup(func() { waitForGoRedisDialers(t) })
	l := newFailoverLoad(t, ack)
	ctx, cancel := context.WithCancel(context.Background())
	wait := l.run(ctx)
	defer func() {
		cancel()
		wait()
	}()

	// Load before the failover: every worker served once.
	eventually(t, 10*time.Second, "every worker served before the failover", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.served) == failoverClients*(failoverLockWorkers+failoverPoolWorkers)
	})
	old := victim(ctx)
	killed := time.Now()
	d.Kill(t, old)
	restarted := false
	t.Cleanup(func() { // back as a replica, for the next tests
		if !restarted {
			d.Restart(t, old)
		}
	})
	eventually(t, 30*time.Second, "a replica promoted", func() bool { return promoted(ctx, old) })
	at := time.Now()
	t.Logf("master %s killed; replica promoted %v later", old, at.Sub(killed).Round(time.Millisecond))
	if ack > 0 {
		// The promoted replica has no replica of its own: no write is
		// confirmed until the old master is back as one, as an operator
		// would bring it back.
		d.Restart(t, old)
		restarted = true
		t.Logf("old master back as a replica in sync %v after the promotion: the workers are timed from then", time.Since(at).Round(time.Millisecond))
		at = time.Now()
	}

	// The load goes on until every worker had its chance to come back.
	<-time.After(failoverServeWithin + time.Second) // an observation window
	l.snapshotPools()
	cancel()
	wait()
	l.check(at, time.Now())
}

// A Sentinel failover: the master is killed with -9 while 3 clients lock
// and take; a replica is promoted; every worker is served again within
// 15s, no key has two holders at once among leases not reported lost, and
// the log shows no error loop.
func TestSentinel_FailoverKeepsLocksAndPoolsServing(t *testing.T) {
	sentinelFailover(t, 0)
}

// The same with AckReplicas 1: moreover no container is handed out twice
// within its interval, as the promoted replica has every take a caller got.
func TestSentinel_FailoverWithAckReplicasHandsNoContainerOutTwice(t *testing.T) {
	sentinelFailover(t, 1)
}

func sentinelFailover(t *testing.T, ack int) {
	d := requireTopology(t, testredis.Sentinel)
	sentinel := redis.NewSentinelClient(&redis.Options{Addr: d.Addrs[0]})
	defer sentinel.Close()
	master := func(ctx context.Context) string {
		addr, err := sentinel.GetMasterAddrByName(ctx, d.MasterName).Result()
		if err != nil {
			t.Fatal(err)
		}
		return addr[0] + ":" + addr[1]
	}
	runFailover(t, d, ack, master, func(ctx context.Context, old string) bool { return master(ctx) != old })
}

// A Cluster failover: the master of the pool's and the locks' slots is
// killed with -9 under the same load; its replica takes over.
func TestCluster_FailoverKeepsLocksAndPoolsServing(t *testing.T) {
	clusterFailover(t, 0)
}

// The same with AckReplicas 1: no container is handed out twice within its
// interval.
func TestCluster_FailoverWithAckReplicasHandsNoContainerOutTwice(t *testing.T) {
	clusterFailover(t, 1)
}

func clusterFailover(t *testing.T, ack int) {
	d := requireTopology(t, testredis.Cluster)
	raw := rawDB(t, 0).(*redis.ClusterClient)
	var replica string
	victim := func(ctx context.Context) string {
		// The master of the pool's slot, and its replica.
		var master string
		replica, master = testredis.ReplicaOf(ctx, t, raw, "{accounts}")
		return master
	}
	// The replica that took over the killed master's slots answers ROLE
	// master.
	promoted := func(ctx context.Context, old string) bool {
		r := redis.NewClient(&redis.Options{Addr: replica})
		defer r.Close()
		role, err := r.Do(ctx, "ROLE").Slice()
		return err == nil && len(role) > 0 && role[0] == "master"
	}
	runFailover(t, d, ack, victim, promoted)
}

// waitForGoRedisDialers waits until go-redis's probes of a dead node are
// gone: a connection pool that failed to dial starts one, which sleeps 1s
// between attempts and sees only then that its client was closed.
func waitForGoRedisDialers(t *testing.T) {
	eventually(t, 5*time.Second, "go-redis's dial probes ended", func() bool {
		buf := make([]byte, 1<<20)
		return !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "(*ConnPool).tryDial")
	})
}

// A failover can lose a waiting client's place in a key's turn queue (the
// write had not reached the replica). The client must still be served
// while two other clients pass the key to each other faster than a turn's
// grace: it tries within the grace, which queues it again.
func TestLock_WaiterWhoseTurnQueuePlaceWasLostIsStillServed(t *testing.T) {
	prefix := testPrefix(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, b, c := newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix)), newClient(t, withPrefix(prefix))
	first, err := a.Lock(ctx, []string{"k"})
	if err != nil {
		t.Fatal(err)
	}
	// b queues first, then c.
	passing, stop := context.WithCancel(ctx)
	bFirst := b.LockAsync(passing, []string{"k"})
	settled(t, b, 1)
	waiting := c.LockAsync(ctx, []string{"k"})
	settled(t, c, 1)
	// What the failover lost: c's place in the turn queue, behind b's.
	raw, queue := rawDB(t, 0), redisx.Keys{Prefix: prefix}.LockQueue("k")
	ids, err := raw.ZRange(ctx, queue, 0, -1).Result()
	if err != nil || len(ids) != 2 {
		t.Fatalf("turn queue %v, %v; want b and c", ids, err)
	}
	if err := raw.ZRem(ctx, queue, ids[1]).Err(); err != nil {
		t.Fatal(err)
	}
	// a and b pass the key to each other, 20ms each, until c has it.
	pass := func(cl *xsync.Client, next *xsync.Future[*xsync.Lease]) {
		for passing.Err() == nil {
			l, err := next.Wait(passing)
			if err != nil {
				return
			}
			<-time.After(20 * time.Millisecond) // the work under the lock
			_ = l.Release(ctx)
			next = cl.LockAsync(passing, []string{"k"})
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); pass(b, bFirst) }()
	go func() { defer wg.Done(); pass(a, a.LockAsync(passing, []string{"k"})) }()
	start := time.Now()
	if err := first.Release(ctx); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	lease, err := waiting.Wait(wctx)
	stop()
	wg.Wait()
	if err != nil {
		t.Fatalf("the client whose queue place was lost: %v after %v, while the others passed the key around", err, time.Since(start).Round(time.Millisecond))
	}
	t.Logf("served %v after the first release", time.Since(start).Round(time.Millisecond))
	if err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
}
