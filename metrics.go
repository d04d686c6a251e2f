package xsync

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/redisxsync/xsync/actors"
	"github.com/redisxsync/xsync/internal/xerr"
	"github.com/redisxsync/xsync/messages"
)

// Metric instrument names: see the package doc's Metrics section.
const (
	MetricLockWait       = "xsync.lock.wait"
	MetricLockAcquired   = "xsync.lock.acquired"
	MetricLockLost       = "xsync.lock.lost"
	MetricLockBroken     = "xsync.lock.broken"
	MetricPoolWait       = "xsync.pool.wait"
	MetricPoolGranted    = "xsync.pool.granted"
	MetricPoolContainers = "xsync.pool.containers"
	MetricErrors         = "xsync.errors"
	MetricLimiterWait    = "xsync.limiter.wait"
	MetricRenewFailures  = "xsync.lock.renew_failures"
	MetricLockHandoff    = "xsync.lock.handoff"
	MetricScriptErrors   = "xsync.script.errors"
	MetricPoolWaiting    = "xsync.pool.waiting"
)

// meterName is the instrumentation scope of xsync's instruments.
const meterName = "github.com/redisxsync/xsync"

// waitBuckets are the bucket bounds of the wait histograms, in seconds:
// from a millisecond (a free lock, a ready container) to minutes.
var waitBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// handoffBuckets are the bucket bounds of the hand-off histogram, in
// seconds: from a tenth of a millisecond (a round trip on one host) to the
// transfer's short lease and beyond.
var handoffBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}

// metrics are a client's instruments; a nil *metrics records nothing, so
// that a client without MeterProvider pays one nil check per call.
type metrics struct {
	lockWait     metric.Float64Histogram
	lockAcquired metric.Int64Counter
	lockLost     metric.Int64Counter
	lockBroken   metric.Int64Counter
	poolWait     metric.Float64Histogram
	poolGranted  metric.Int64Counter
	errors       metric.Int64Counter
	limiterWait  metric.Float64Histogram
	renewFailed  metric.Int64Counter
	handoff      metric.Float64Histogram
	scriptErrors metric.Int64Counter
	gauge        metric.Registration
}

// newMetrics makes c's instruments on mp; an instrument that cannot be
// made is logged and left out (OpenTelemetry then hands out a no-op one).
func newMetrics(c *Client, mp metric.MeterProvider) *metrics {
	if mp == nil {
		return nil
	}
	meter := mp.Meter(meterName)
	var errs []error
	note := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	m := &metrics{}
	var err error
	m.lockWait, err = meter.Float64Histogram(MetricLockWait, metric.WithUnit("s"),
		metric.WithDescription("Time from a lock call to its answer, by outcome (acquired, not_obtained, error)"),
		metric.WithExplicitBucketBoundaries(waitBuckets...))
	note(err)
	m.lockAcquired, err = meter.Int64Counter(MetricLockAcquired, metric.WithUnit("{lease}"),
		metric.WithDescription("Leases granted"))
	note(err)
	m.lockLost, err = meter.Int64Counter(MetricLockLost, metric.WithUnit("{lease}"),
		metric.WithDescription("Leases lost before their release: expired, taken over, broken, or not renewed in time"))
	note(err)
	m.lockBroken, err = meter.Int64Counter(MetricLockBroken, metric.WithUnit("{lock}"),
		metric.WithDescription("Held locks freed by ForceUnlock"))
	note(err)
	m.poolWait, err = meter.Float64Histogram(MetricPoolWait, metric.WithUnit("s"),
		metric.WithDescription("Time from a take (Ask, WaitAsk, AcquireRandom...) to its answer, by pool, kind and outcome"),
		metric.WithExplicitBucketBoundaries(waitBuckets...))
	note(err)
	m.poolGranted, err = meter.Int64Counter(MetricPoolGranted, metric.WithUnit("{container}"),
		metric.WithDescription("Containers handed out, by pool and kind (ready, random)"))
	note(err)
	m.errors, err = meter.Int64Counter(MetricErrors, metric.WithUnit("{call}"),
		metric.WithDescription("Calls that Redis failed, by op and kind (unavailable, corrupt)"))
	note(err)
	m.limiterWait, err = meter.Float64Histogram(MetricLimiterWait, metric.WithUnit("s"),
		metric.WithDescription("Time from a limiter's Wait to its answer, by limiter and outcome (allowed, not_available, error)"),
		metric.WithExplicitBucketBoundaries(waitBuckets...))
	note(err)
	m.renewFailed, err = meter.Int64Counter(MetricRenewFailures, metric.WithUnit("{renewal}"),
		metric.WithDescription("Automatic lease renewals that failed, by reason: lost (the key no longer held the lease), unavailable (no answer in time; retried until the lease expires), corrupt, not_replicated (AckReplicas not met; retried until the lease expires)"))
	note(err)
	m.handoff, err = meter.Float64Histogram(MetricLockHandoff, metric.WithUnit("s"),
		metric.WithDescription("Time from a release that transferred the key to a waiter of this client to that waiter's grant. "+
			"from=same_client: from sending the release to its answer, on the local clock. "+
			"from=other_client: from the server's time in the published release (whole ms), placed on the local clock by this client's closest reading of the server's clock, "+
			"to the message's arrival; an upper bound, too long by at most that reading's round trip and 2ms"),
		metric.WithExplicitBucketBoundaries(handoffBuckets...))
	note(err)
	m.scriptErrors, err = meter.Int64Counter(MetricScriptErrors, metric.WithUnit("{call}"),
		metric.WithDescription("Calls of xsync's Lua scripts that failed, background calls (renewals, hand-backs) included, by script and kind (unavailable, corrupt)"))
	note(err)
	gauge, err := meter.Int64ObservableGauge(MetricPoolContainers, metric.WithUnit("{container}"),
		metric.WithDescription("Containers of the pools this client uses, by pool and state (total, ready, retired); read from Redis when collected"))
	note(err)
	waiting, err2 := meter.Int64ObservableGauge(MetricPoolWaiting, metric.WithUnit("{request}"),
		metric.WithDescription("Requests waiting for containers of the pools this client uses, on every live client, by pool; read from Redis when collected"))
	note(err2)
	if err == nil && err2 == nil {
		m.gauge, err = meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
			return c.observePools(ctx, o, gauge, waiting)
		}, gauge, waiting)
		note(err)
	}
	if len(errs) > 0 {
		c.log.Warn("metrics: some instruments are not recorded", zap.Error(errors.Join(errs...)))
	}
	return m
}

// close unregisters the gauge's callback: a closed client reads no pool.
func (m *metrics) close() {
	if m != nil && m.gauge != nil {
		_ = m.gauge.Unregister()
	}
}

// Attribute values.
var (
	outcomeKey   = attribute.Key("outcome")
	poolKey      = attribute.Key("pool")
	limiterKey   = attribute.Key("limiter")
	kindKey      = attribute.Key("kind")
	stateKey     = attribute.Key("state")
	kindReady    = kindKey.String("ready")
	kindRandom   = kindKey.String("random")
	stateTotal   = stateKey.String("total")
	stateReady   = stateKey.String("ready")
	stateRetired = stateKey.String("retired")
	opKey        = attribute.Key("op")
	errKindKey   = attribute.Key("kind")
	lockAcquired = metric.WithAttributes(outcomeKey.String("acquired"))
	lockRefused  = metric.WithAttributes(outcomeKey.String("not_obtained"))
	lockFailed   = metric.WithAttributes(outcomeKey.String("error"))
	reasonKey    = attribute.Key("reason")
	scriptKey    = attribute.Key("script")
	fromKey      = attribute.Key("from")
	fromSame     = metric.WithAttributes(fromKey.String("same_client"))
	fromOther    = metric.WithAttributes(fromKey.String("other_client"))
)

// lockObserver returns the observer of a lock call's future, started now;
// nil without metrics.
func (m *metrics) lockObserver(c *Client) func(*Lease, error) {
	if m == nil {
		return nil
	}
	start := time.Now()
	return func(l *Lease, err error) {
		ctx := context.Background()
		wait := time.Since(start).Seconds()
		switch {
		case err == nil && l != nil:
			m.lockWait.Record(ctx, wait, lockAcquired)
			m.lockAcquired.Add(ctx, 1)
			go m.watchLease(c, l)
		case errors.Is(err, ErrNotObtained):
			m.lockWait.Record(ctx, wait, lockRefused)
		default:
			m.lockWait.Record(ctx, wait, lockFailed)
			m.failed("lock", err)
		}
	}
}

// failed counts a call of op that Redis failed: it could not be reached
// or answered in time (unavailable), it holds data xsync did not write
// (corrupt), or fewer replicas than AckReplicas confirmed the write
// (not_replicated). Other errors (bad input, a closed client) are not Redis's.
func (m *metrics) failed(op string, err error) {
	if m == nil || err == nil {
		return
	}
	var kind string
	switch {
	case errors.Is(err, ErrCorrupt):
		kind = "corrupt"
	case errors.Is(err, ErrUnavailable):
		kind = "unavailable"
	case errors.Is(err, ErrNotReplicated):
		kind = "not_replicated"
	default:
		return
	}
	m.errors.Add(context.Background(), 1, metric.WithAttributes(opKey.String(op), errKindKey.String(kind)))
}

// watchLease counts l as lost if its Lost channel closes before it is
// released, unless the client closed it. It ends with one or the other:
// every lease is released, lost, or lost when its client closes.
func (m *metrics) watchLease(c *Client, l *Lease) {
	select {
	case <-l.Lost():
		if !c.isClosing() {
			m.lockLost.Add(context.Background(), 1)
		}
	case <-l.done:
	}
}

// lockEvents are the callbacks through which the lock manager reports
// what only it sees; none without metrics.
func (m *metrics) lockEvents() actors.LockEvents {
	if m == nil {
		return actors.LockEvents{}
	}
	return actors.LockEvents{
		RenewFailed: func(reason string) {
			m.renewFailed.Add(context.Background(), 1, metric.WithAttributes(reasonKey.String(reason)))
		},
		HandedOff: func(d time.Duration, sameClient bool) {
			from := fromOther
			if sameClient {
				from = fromSame
			}
			m.handoff.Record(context.Background(), d.Seconds(), from)
		},
	}
}

// scriptFailed counts a failed call of script; a call that its caller
// cancelled is not Redis's failure.
func (m *metrics) scriptFailed(script string, err error) {
	if m == nil || errors.Is(err, context.Canceled) {
		return
	}
	kind := "unavailable"
	if errors.Is(xerr.Redis(script, err), ErrCorrupt) {
		kind = "corrupt"
	}
	m.scriptErrors.Add(context.Background(), 1, metric.WithAttributes(scriptKey.String(script), errKindKey.String(kind)))
}

// broken counts a lock freed by ForceUnlock.
func (m *metrics) broken() {
	if m != nil {
		m.lockBroken.Add(context.Background(), 1)
	}
}

// takeObserver returns the observer of a take's future, started now, for
// n containers of pool; nil without metrics.
func takeObserver[T any](m *metrics, pool string, random bool, n int) func(T, error) {
	if m == nil {
		return nil
	}
	start := time.Now()
	kind := kindReady
	if random {
		kind = kindRandom
	}
	return func(_ T, err error) {
		ctx := context.Background()
		outcome := "granted"
		switch {
		case err == nil:
			m.poolGranted.Add(ctx, int64(n), metric.WithAttributes(poolKey.String(pool), kind))
		case errors.Is(err, ErrNotAvailable):
			outcome = "not_available"
		default:
			outcome = "error"
			m.failed("pool.take", err)
		}
		m.poolWait.Record(ctx, time.Since(start).Seconds(),
			metric.WithAttributes(poolKey.String(pool), kind, outcomeKey.String(outcome)))
	}
}

// limiterObserver returns the observer of a limiter's wait, started now;
// nil without metrics.
func (m *metrics) limiterObserver(limiter string) func(LimitResult, error) {
	if m == nil {
		return nil
	}
	start := time.Now()
	return func(_ LimitResult, err error) {
		outcome := "allowed"
		switch {
		case err == nil:
		case errors.Is(err, ErrNotAvailable):
			outcome = "not_available"
		default:
			outcome = "error"
			m.failed("limiter.wait", err)
		}
		m.limiterWait.Record(context.Background(), time.Since(start).Seconds(),
			metric.WithAttributes(limiterKey.String(limiter), outcomeKey.String(outcome)))
	}
}

// observePools reports the containers of every pool this client has used,
// one Stats call each. A pool it cannot read is left out of the reading
// and logged: an error returned here would be printed by the exporter,
// and xsync prints nothing.
func (c *Client) observePools(ctx context.Context, o metric.Observer, gauge, waiting metric.Int64ObservableGauge) error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil
	}
	pools := make([]*Pool, 0, len(c.pools))
	for _, p := range c.pools {
		pools = append(pools, p)
	}
	c.mu.Unlock()
	for _, p := range pools {
		if !p.started() {
			continue
		}
		s, err := p.Stats(ctx)
		if err != nil {
			if !errors.Is(err, ErrClosed) {
				c.log.Warn("metrics: pool not read", zap.String("pool", p.name), zap.Error(err))
			}
			continue
		}
		name := poolKey.String(p.name)
		o.ObserveInt64(gauge, int64(s.Total), metric.WithAttributes(name, stateTotal))
		o.ObserveInt64(gauge, int64(s.Ready), metric.WithAttributes(name, stateReady))
		o.ObserveInt64(gauge, int64(s.Retired), metric.WithAttributes(name, stateRetired))
		o.ObserveInt64(waiting, int64(s.WaitingAll), metric.WithAttributes(name))
	}
	return nil
}

// started reports whether the pool's actor runs: the pool was used.
func (p *Pool) started() bool { return p.worker.started() }

// leaseDone closes l.done once: the lease was released or handed back.
// A lease without done (a semaphore's permits) is not watched.
func (l *Lease) leaseDone() {
	if l.done != nil {
		l.doneOnce.Do(func() { close(l.done) })
	}
}

// poolOp names the pool call of msg in xsync.errors.
func poolOp(msg any) string {
	switch msg.(type) {
	case *messages.PoolPut:
		return "pool.put"
	case *messages.PoolGet:
		return "pool.get"
	case *messages.PoolRemove:
		return "pool.remove"
	case *messages.PoolCooldown:
		return "pool.cooldown"
	case *messages.PoolReadStats:
		return "pool.stats"
	case *messages.PoolReturn:
		return "pool.return"
	}
	return "pool"
}
