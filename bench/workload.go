package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// result is what one run of the workload measured.
type result struct {
	acquisitions int
	elapsed      time.Duration
	waits        []time.Duration // sorted; a wait the end of the run cut short counts as it stood
	perGoroutine []int
	sections     []time.Duration // sorted: lock granted -> release called (the GET and SET)
	handOffs     []time.Duration // sorted: release called -> the next section's grant
	// sameClient and acrossClients split handOffs by whether the next
	// section is in the client of the one before it (unsorted).
	sameClient, acrossClients []time.Duration
	lost                      int           // releases that found the lease gone (expired)
	server                    serverStats   // the server's work during the run
	clientCPU                 time.Duration // this process's CPU time during the run
	client                    clientCounts  // this process's allocations and goroutines started during the run
}

func (r result) rate() float64 { return float64(r.acquisitions) / r.elapsed.Seconds() }

// perAcqN is n per acquisition.
func (r result) perAcqN(n uint64) float64 {
	if r.acquisitions == 0 {
		return 0
	}
	return float64(n) / float64(r.acquisitions)
}

// fairness is the fewest acquisitions of a goroutine over the most.
func (r result) fairness() float64 {
	most := slices.Max(r.perGoroutine)
	if most == 0 {
		return 0
	}
	return float64(slices.Min(r.perGoroutine)) / float64(most)
}

func (r result) perAcq(d time.Duration) float64 {
	if r.acquisitions == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(r.acquisitions)
}

func (r result) quantile(q float64) time.Duration { return quantile(r.waits, q) }

// quantile is the q-quantile of sorted ds, 0 for none.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return ds[min(len(ds)-1, int(float64(len(ds))*q))]
}

// span is one critical section: from the lock's grant to the release call,
// in client 0 or 1 of the rig.
type span struct {
	granted, released time.Time
	client            int
}

// mean is the mean of ds, 0 for none.
func mean(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}

// cycle splits the run's timeline into the critical sections and the
// hand-offs between them (release called -> the next grant, whichever
// goroutine it goes to): the lock's own share of each acquisition. The
// sections never overlap while mutual exclusion holds.
//
// The hand-offs are also split by whether the next section is in the same
// client (same) or the other one (across): a fair lock hands the key to
// the other process now and then, a hand-off that costs more (pub/sub
// instead of a reply), and the mean of each, with how often each comes,
// is what the throughput sees.
func cycle(spans []span) (sections, handOffs, same, across []time.Duration) {
	slices.SortFunc(spans, func(a, b span) int { return a.granted.Compare(b.granted) })
	for i, s := range spans {
		sections = append(sections, s.released.Sub(s.granted))
		if i+1 < len(spans) {
			h := max(0, spans[i+1].granted.Sub(s.released))
			handOffs = append(handOffs, h)
			if spans[i+1].client == s.client {
				same = append(same, h)
			} else {
				across = append(across, h)
			}
		}
	}
	slices.Sort(sections)
	slices.Sort(handOffs)
	return sections, handOffs, same, across
}

// run puts n goroutines over the rig's two clients for d: each takes the
// lock, GETs a counter, SETs it one higher and releases the lock, again
// and again. Waits for the lock end when the run does; a critical section
// under way finishes. The counter must then equal the acquisitions, or the
// lock let two goroutines in at once.
func run(ctx context.Context, admin *redis.Client, rg *rig, n int, d time.Duration, counter string) (result, error) {
	type worker struct {
		lock lockFunc
		db   redis.Cmdable
	}
	workers := make([]worker, n)
	for g := range workers {
		workers[g].lock, workers[g].db = rg.worker(g)
	}
	// Warm up each client: connections, script caches, subscriptions.
	for g := range min(n, 2) {
		unlock, err := workers[g].lock(ctx)
		if err != nil {
			return result{}, fmt.Errorf("warm-up: %w", err)
		}
		if err := unlock(ctx); err != nil {
			return result{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	if err := admin.Del(ctx, counter).Err(); err != nil {
		return result{}, err
	}

	s0, err := readServerStats(ctx, admin)
	if err != nil {
		return result{}, err
	}
	cpu0, counts0 := processCPU(), readClientCounts()
	runCtx, stop := context.WithTimeout(ctx, d)
	defer stop()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		res   = result{perGoroutine: make([]int, n)}
		fails []error
		spans []span
	)
	start := time.Now()
	for g := range workers {
		w := workers[g]
		wg.Add(1)
		go func() {
			defer wg.Done()
			var waits []time.Duration
			var mine []span
			count, lost := 0, 0
			var failure error
			for runCtx.Err() == nil {
				t0 := time.Now()
				unlock, err := w.lock(runCtx)
				waits = append(waits, time.Since(t0))
				if err != nil {
					if runCtx.Err() == nil {
						failure = err
					}
					break
				}
				granted := time.Now()
				v, err := w.db.Get(ctx, counter).Int()
				if err != nil && !errors.Is(err, redis.Nil) {
					failure = err
				} else if err := w.db.Set(ctx, counter, v+1, 0).Err(); err != nil {
					failure = err
				}
				count++
				mine = append(mine, span{granted, time.Now(), g % 2})
				if err := unlock(ctx); errors.Is(err, errLost) {
					lost++
				} else if err != nil && failure == nil {
					failure = fmt.Errorf("release: %w", err)
				}
				if failure != nil {
					break
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.waits = append(res.waits, waits...)
			spans = append(spans, mine...)
			res.perGoroutine[g] = count
			res.acquisitions += count
			res.lost += lost
			if failure != nil {
				fails = append(fails, failure)
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.clientCPU = processCPU() - cpu0
	res.client = readClientCounts().sub(counts0)
	s1, err := readServerStats(ctx, admin)
	if err != nil {
		return result{}, err
	}
	res.server = s1.sub(s0)
	slices.Sort(res.waits)
	res.sections, res.handOffs, res.sameClient, res.acrossClients = cycle(spans)
	if len(fails) > 0 {
		return res, errors.Join(fails...)
	}
	got, err := admin.Get(ctx, counter).Int()
	if err != nil && !errors.Is(err, redis.Nil) {
		return res, err
	}
	if got != res.acquisitions && res.lost == 0 {
		return res, fmt.Errorf("mutual exclusion broken: counter %d after %d locked increments", got, res.acquisitions)
	}
	return res, nil
}
