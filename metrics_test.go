package xsync_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/redisxsync/xsync"
)

// meterHarness is a client whose metrics go to a manual reader.
type meterHarness struct {
	t      *testing.T
	reader *sdkmetric.ManualReader
	c      *xsync.Client
}

func newMeterHarness(t *testing.T, prefix string) *meterHarness {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	c := newClient(t, withPrefix(prefix), func(o *xsync.Options) { o.MeterProvider = mp })
	return &meterHarness{t: t, reader: reader, c: c}
}

// collect reads every instrument: name -> its data.
func (h *meterHarness) collect() map[string]metricdata.Aggregation {
	h.t.Helper()
	var rm metricdata.ResourceMetrics
	if err := h.reader.Collect(context.Background(), &rm); err != nil {
		h.t.Fatalf("Collect: %v", err)
	}
	out := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != "github.com/redisxsync/xsync" {
			h.t.Errorf("scope %q", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m.Data
		}
	}
	return out
}

// attrs is a set of attributes written as key=value pairs.
func attrs(kv ...string) attribute.Set {
	var a []attribute.KeyValue
	for i := 0; i+1 < len(kv); i += 2 {
		a = append(a, attribute.String(kv[i], kv[i+1]))
	}
	return attribute.NewSet(a...)
}

// sum is the value of counter name at the attributes, 0 when absent.
func sum(t *testing.T, data map[string]metricdata.Aggregation, name string, at attribute.Set) int64 {
	t.Helper()
	agg, ok := data[name]
	if !ok {
		return 0
	}
	s, ok := agg.(metricdata.Sum[int64])
	if !ok {
		t.Fatalf("%s is a %T, want a Sum[int64]", name, agg)
	}
	for _, dp := range s.DataPoints {
		if dp.Attributes.Equals(&at) {
			return dp.Value
		}
	}
	return 0
}

// histCount is how many values histogram name recorded at the attributes,
// and their sum.
func histCount(t *testing.T, data map[string]metricdata.Aggregation, name string, at attribute.Set) (uint64, float64) {
	t.Helper()
	agg, ok := data[name]
	if !ok {
		return 0, 0
	}
	h, ok := agg.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("%s is a %T, want a Histogram[float64]", name, agg)
	}
	for _, dp := range h.DataPoints {
		if dp.Attributes.Equals(&at) {
			return dp.Count, dp.Sum
		}
	}
	return 0, 0
}

// gauge is the value of gauge name at the attributes, and whether it has one.
func gauge(t *testing.T, data map[string]metricdata.Aggregation, name string, at attribute.Set) (int64, bool) {
	t.Helper()
	agg, ok := data[name]
	if !ok {
		return 0, false
	}
	g, ok := agg.(metricdata.Gauge[int64])
	if !ok {
		t.Fatalf("%s is a %T, want a Gauge[int64]", name, agg)
	}
	for _, dp := range g.DataPoints {
		if dp.Attributes.Equals(&at) {
			return dp.Value, true
		}
	}
	return 0, false
}

func TestMetrics_Locks(t *testing.T) {
	prefix := testPrefix(t)
	ctx := context.Background()
	h := newMeterHarness(t, prefix)
	other := newClient(t, withPrefix(prefix))

	held, err := h.c.Lock(ctx, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	blocker, err := other.Lock(ctx, []string{"b"}, xsync.TTL(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.TryLock(ctx, []string{"b"}); !errors.Is(err, xsync.ErrNotObtained) {
		t.Fatalf("TryLock of a held key: %v", err)
	}
	// A lease of 100ms without renewal is lost when it runs out.
	short, err := h.c.Lock(ctx, []string{"c"}, xsync.TTL(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	<-short.Lost()
	if err := held.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// A lease broken by an operator is lost at its next Refresh.
	broken, err := h.c.Lock(ctx, []string{"d"})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := h.c.ForceUnlock(ctx, "d"); err != nil || !ok {
		t.Fatalf("ForceUnlock: %v, %v", ok, err)
	}
	if err := broken.Refresh(ctx, time.Minute); !errors.Is(err, xsync.ErrLockNotHeld) {
		t.Fatalf("Refresh of a broken lease: %v", err)
	}
	_ = blocker.Release(ctx)

	var data map[string]metricdata.Aggregation
	eventually(t, 5*time.Second, "two leases counted lost", func() bool {
		data = h.collect()
		return sum(t, data, "xsync.lock.lost", attrs()) == 2
	})
	if n := sum(t, data, "xsync.lock.acquired", attrs()); n != 3 {
		t.Errorf("xsync.lock.acquired = %d, want 3 (the other client's lease is not this client's)", n)
	}
	if n, _ := histCount(t, data, "xsync.lock.wait", attrs("outcome", "acquired")); n != 3 {
		t.Errorf("xsync.lock.wait{acquired} counted %d, want 3", n)
	}
	if n, _ := histCount(t, data, "xsync.lock.wait", attrs("outcome", "not_obtained")); n != 1 {
		t.Errorf("xsync.lock.wait{not_obtained} counted %d, want 1", n)
	}
	if n := sum(t, data, "xsync.lock.broken", attrs()); n != 1 {
		t.Errorf("xsync.lock.broken = %d, want 1", n)
	}
}

func TestMetrics_LockWaitMeasuresTheWait(t *testing.T) {
	prefix := testPrefix(t)
	ctx := context.Background()
	h := newMeterHarness(t, prefix)
	other := newClient(t, withPrefix(prefix))
	// The other client holds the key for 300ms: the wait lasts at least
	// that long (and is not a speed assertion: only a lower bound).
	blocker, err := other.Lock(ctx, []string{"k"}, xsync.TTL(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	lease, err := h.c.Lock(ctx, []string{"k"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lease.Release(ctx) }()
	_ = blocker.Release(ctx)
	n, total := histCount(t, h.collect(), "xsync.lock.wait", attrs("outcome", "acquired"))
	if n != 1 || total < 0.2 {
		t.Fatalf("xsync.lock.wait{acquired}: %d values summing %.3fs, want one of at least the blocker's ~0.3s", n, total)
	}
}

func TestMetrics_Pools(t *testing.T) {
	prefix := testPrefix(t)
	ctx := context.Background()
	h := newMeterHarness(t, prefix)
	p := h.c.Pool("accounts")
	put(t, p, xsync.Container{ID: "a", Interval: time.Hour}, xsync.Container{ID: "b", Interval: time.Hour},
		xsync.Container{ID: "c", Interval: time.Hour})
	if _, err := p.Ask(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := p.AcquireRandomOne(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Ask(ctx, 5); !errors.Is(err, xsync.ErrNotAvailable) {
		t.Fatalf("Ask(5) of 3: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := p.WaitAsk(wctx, 2); !errors.Is(err, xsync.ErrNotAvailable) { // one is ready for an hour
		t.Fatalf("WaitAsk(2): %v", err)
	}
	// Another pool that this client never used is not observed.
	put(t, newClient(t, withPrefix(prefix)).Pool("unused"), xsync.Container{ID: "x"})
	poolIdle(t, p) // the waiter's count written to Redis, before the window

	raw := rawDB(t, 0)
	before := commandCounts(t, raw)
	data := h.collect()
	if n := commandsSince(t, raw, before)["evalsha"]; n != 1 {
		t.Errorf("collecting ran %d scripts, want 1: one Stats of the one pool used", n)
	}
	if n := sum(t, data, "xsync.pool.granted", attrs("kind", "ready", "pool", "accounts")); n != 2 {
		t.Errorf("xsync.pool.granted{ready} = %d, want 2", n)
	}
	if n := sum(t, data, "xsync.pool.granted", attrs("kind", "random", "pool", "accounts")); n != 1 {
		t.Errorf("xsync.pool.granted{random} = %d, want 1", n)
	}
	if n, _ := histCount(t, data, "xsync.pool.wait", attrs("kind", "ready", "outcome", "granted", "pool", "accounts")); n != 1 {
		t.Errorf("xsync.pool.wait{ready, granted} counted %d, want 1", n)
	}
	if n, total := histCount(t, data, "xsync.pool.wait", attrs("kind", "ready", "outcome", "not_available", "pool", "accounts")); n != 2 || total < 0.04 {
		t.Errorf("xsync.pool.wait{ready, not_available}: %d values summing %.3fs, want 2, one of them the 50ms wait", n, total)
	}
	for state, want := range map[string]int64{"total": 3, "ready": 1} {
		if v, ok := gauge(t, data, "xsync.pool.containers", attrs("pool", "accounts", "state", state)); !ok || v != want {
			t.Errorf("xsync.pool.containers{%s} = %d (%v), want %d", state, v, ok, want)
		}
	}
	if _, ok := gauge(t, data, "xsync.pool.containers", attrs("pool", "unused", "state", "total")); ok {
		t.Error("a pool this client never used was observed")
	}
}

// Calls that Redis fails are counted by call and kind; bad input is not.
func TestMetrics_ErrorsByCallAndKind(t *testing.T) {
	prefix := testPrefix(t)
	ctx := context.Background()
	h := newMeterHarness(t, prefix)
	p := h.c.Pool("accounts")
	put(t, p, xsync.Container{ID: "good"}, xsync.Container{ID: "bad"})
	raw := rawDB(t, 0)
	if err := raw.HSet(ctx, poolKey(prefix, "accounts", "meta"), "bad", "not a record").Err(); err != nil {
		t.Fatal(err)
	}
	if err := raw.HSet(ctx, prefix+":lock:{h}", "a", "b").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Get(ctx, "bad"); !errors.Is(err, xsync.ErrCorrupt) {
		t.Fatalf("Get of a corrupt record: %v", err)
	}
	if _, err := p.List(ctx); !errors.Is(err, xsync.ErrCorrupt) {
		t.Fatalf("List over a corrupt record: %v", err)
	}
	if _, err := h.c.LockInfo(ctx, "h"); !errors.Is(err, xsync.ErrCorrupt) {
		t.Fatalf("LockInfo of a hash: %v", err)
	}
	if _, err := h.c.TryLock(ctx, []string{"h"}); !errors.Is(err, xsync.ErrCorrupt) {
		t.Fatalf("TryLock of a hash: %v", err)
	}
	if _, err := p.Get(ctx, ""); !errors.Is(err, xsync.ErrInvalidContainer) { // not Redis's fault
		t.Fatalf("Get of no id: %v", err)
	}
	data := h.collect()
	for op, want := range map[string]int64{"pool.get": 1, "pool.list": 1, "lock.info": 1, "lock": 1} {
		if n := sum(t, data, "xsync.errors", attrs("op", op, "kind", "corrupt")); n != want {
			t.Errorf("xsync.errors{op=%s, kind=corrupt} = %d, want %d", op, n, want)
		}
	}
	if agg, ok := data["xsync.errors"].(metricdata.Sum[int64]); !ok || len(agg.DataPoints) != 4 {
		t.Errorf("xsync.errors = %+v, want the four corrupt calls only", data["xsync.errors"])
	}
	// The same failures by the script that met them.
	for script, want := range map[string]int64{"pool_get": 1, "lock_acquire": 1} {
		if n := sum(t, data, "xsync.script.errors", attrs("script", script, "kind", "corrupt")); n != want {
			t.Errorf("xsync.script.errors{script=%s, kind=corrupt} = %d, want %d", script, n, want)
		}
	}
	if agg, ok := data["xsync.script.errors"].(metricdata.Sum[int64]); !ok {
		t.Errorf("xsync.script.errors missing: %+v", data["xsync.script.errors"])
	} else {
		for _, dp := range agg.DataPoints {
			if v, _ := dp.Attributes.Value("kind"); v.AsString() != "corrupt" {
				t.Errorf("xsync.script.errors has %v = %d: only corrupt data failed", dp.Attributes.ToSlice(), dp.Value)
			}
		}
	}
}

func TestMetrics_LimiterWait(t *testing.T) {
	prefix := testPrefix(t)
	ctx := context.Background()
	h := newMeterHarness(t, prefix)
	// One event per 200ms, no burst beyond it: the second Wait waits.
	l := h.c.Limiter("api", xsync.Limit{Rate: 1, Period: 200 * time.Millisecond, Burst: 1})
	for i := range 2 {
		if err := l.Wait(ctx, "host-a"); err != nil {
			t.Fatalf("Wait %d: %v", i, err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := l.Wait(wctx, "host-a"); !errors.Is(err, xsync.ErrNotAvailable) {
		t.Fatalf("Wait past its context: %v", err)
	}
	if _, err := l.Allow(ctx, "host-b"); err != nil { // not a wait: not recorded
		t.Fatal(err)
	}
	data := h.collect()
	n, total := histCount(t, data, "xsync.limiter.wait", attrs("limiter", "api", "outcome", "allowed"))
	if n != 2 || total < 0.1 {
		t.Errorf("xsync.limiter.wait{allowed}: %d values summing %.3fs, want 2, one of them ~0.2s", n, total)
	}
	if n, _ := histCount(t, data, "xsync.limiter.wait", attrs("limiter", "api", "outcome", "not_available")); n != 1 {
		t.Errorf("xsync.limiter.wait{not_available} counted %d, want 1", n)
	}
}

// A renewal that finds the key no longer holding the lease is counted as a
// renewal failure, with reason lost.
func TestMetrics_RenewFailuresByReason(t *testing.T) {
	prefix := testPrefix(t)
	ctx := context.Background()
	h := newMeterHarness(t, prefix)
	lease, err := h.c.Lock(ctx, []string{"k"}, xsync.TTL(300*time.Millisecond), xsync.AutoRenew(true))
	if err != nil {
		t.Fatal(err)
	}
	// Somebody deletes the key behind the holder's back: its next renewal,
	// due within 100ms, finds it gone.
	if err := rawDB(t, 0).Del(ctx, prefix+":lock:{k}").Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lease.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("the lease was not reported lost")
	}
	var data map[string]metricdata.Aggregation
	eventually(t, 5*time.Second, "one renewal failure and one lost lease counted", func() bool {
		data = h.collect()
		return sum(t, data, "xsync.lock.renew_failures", attrs("reason", "lost")) == 1 &&
			sum(t, data, "xsync.lock.lost", attrs()) == 1
	})
	if n := sum(t, data, "xsync.lock.renew_failures", attrs("reason", "unavailable")); n != 0 {
		t.Errorf("xsync.lock.renew_failures{unavailable} = %d, want 0", n)
	}
}

// A release that transfers the key to a waiter is timed until the waiter's
// grant, for a waiter of the releasing client and for one of another.
func TestMetrics_HandoffLatencyBySource(t *testing.T) {
	prefix := testPrefix(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h := newMeterHarness(t, prefix)
	other := newClient(t, withPrefix(prefix))
	// handOff holds key on holder, queues a Lock of waiter behind it, and
	// releases: the release transfers the key to the waiter.
	handOff := func(holder, waiter *xsync.Client, key string) {
		t.Helper()
		held, err := holder.Lock(ctx, []string{key}, xsync.TTL(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		f := waiter.LockAsync(ctx, []string{key}, xsync.TTL(time.Minute))
		settled(t, waiter, 1)
		if err := held.Release(ctx); err != nil {
			t.Fatal(err)
		}
		next, err := f.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := next.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	handOff(other, h.c, "across")
	data := h.collect()
	n, total := histCount(t, data, "xsync.lock.handoff", attrs("from", "other_client"))
	// A transfer's lease lasts 500ms until its holder confirms it: a grant
	// dated later is refused, so any recorded value is below that.
	if n != 1 || total < 0 || total >= 0.5 {
		t.Errorf("xsync.lock.handoff{other_client}: %d values summing %.4fs, want one in [0, 0.5s)", n, total)
	}
	if n, _ := histCount(t, data, "xsync.lock.handoff", attrs("from", "same_client")); n != 0 {
		t.Errorf("xsync.lock.handoff{same_client} counted %d before any same-client hand-off", n)
	}

	handOff(h.c, h.c, "within")
	data = h.collect()
	n, total = histCount(t, data, "xsync.lock.handoff", attrs("from", "same_client"))
	if n != 1 || total <= 0 || total >= 0.5 {
		t.Errorf("xsync.lock.handoff{same_client}: %d values summing %.4fs, want one in (0, 0.5s)", n, total)
	}
}
