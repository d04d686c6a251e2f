// Command bench runs one workload against xsync and its rivals, one after
// the other in one process, and prints one table.
//
// The workload: n goroutines spread over two clients (two connections to
// Redis, as two processes would have), each taking one lock, doing a GET
// then a SET of one counter under it, and releasing it, for a fixed time.
// The rivals are go-redsync/redsync v4 (its defaults, and a 1ms retry
// delay) and bsm/redislock (LinearBackoff 100ms and 1ms). The runs of one
// round go through every contender in turn, so that the machine's moods
// fall on all of them; the table gives each contender's median run.
//
//	go run . -redis redis://127.0.0.1:6379/0 -goroutines 2,8,32 -runs 3 -duration 3s
//
// The module is separate from xsync's so that the library never depends on
// its rivals.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

func main() {
	var (
		url        = flag.String("redis", os.Getenv("REDIS_URL"), "the Redis to run against (default $REDIS_URL)")
		goroutines = flag.String("goroutines", "2,8,32", "comma-separated goroutine counts")
		runs       = flag.Int("runs", 3, "runs per contender and goroutine count; the table gives the median")
		duration   = flag.Duration("duration", 3*time.Second, "length of one run")
		only       = flag.String("only", "", "run only the contenders whose name contains this")
		cpuProfile = flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
		memProfile = flag.String("memprofile", "", "write an allocation profile of the whole run to this file (go tool pprof -sample_index=alloc_objects)")
	)
	flag.Parse()
	if *memProfile != "" {
		defer writeMemProfile(*memProfile)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := benchmark(*url, *goroutines, *runs, *duration, *only); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func benchmark(url, goroutines string, runs int, d time.Duration, only string) error {
	if url == "" {
		return fmt.Errorf("no Redis: give -redis or set REDIS_URL")
	}
	var counts []int
	for _, s := range strings.Split(goroutines, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("bad goroutine count %q", s)
		}
		counts = append(counts, n)
	}
	if runs < 1 {
		return fmt.Errorf("-runs must be at least 1")
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return err
	}
	ctx := context.Background()
	admin := redis.NewClient(opts)
	defer admin.Close()

	var cs []contender
	for _, c := range contenders() {
		if strings.Contains(c.name, only) {
			cs = append(cs, c)
		}
	}
	rtt, pingCPU, err := pingCost(ctx, admin)
	if err != nil {
		return err
	}
	fmt.Printf("GOMAXPROCS %d, %s, %s per run, median of %d runs; one PING round trip: %.0fµs, %.0fµs of client CPU\n\n",
		runtime.GOMAXPROCS(0), runtime.Version(), d, runs, us(rtt), us(pingCPU))
	fmt.Println("| goroutines | contender | acq/s (median; runs) | wait p50 / p99 / max | fairness (fewest/most) | Redis commands/acq | Redis CPU µs/acq (process; in commands) | client CPU µs/acq | client allocs/acq; goroutines started/acq | section p50; hand-off p50 / p99 µs | hand-off mean µs: same client; across clients (share) | leases lost |")
	fmt.Println("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	seq := 0
	for _, n := range counts {
		all := make([][]result, len(cs))
		for round := 0; round < runs; round++ {
			for i, c := range cs {
				seq++
				prefix := fmt.Sprintf("bench:%d:%d", time.Now().UnixNano(), seq)
				rg, err := c.open(ctx, opts.Addr, prefix)
				if err != nil {
					return fmt.Errorf("%s: %w", c.name, err)
				}
				res, err := run(ctx, admin, rg, n, d, prefix+":counter")
				rg.close()
				if err != nil {
					return fmt.Errorf("%s, %d goroutines: %w", c.name, n, err)
				}
				all[i] = append(all[i], res)
			}
		}
		for i, c := range cs {
			printRow(n, c.name, all[i])
		}
	}
	return nil
}

// printRow prints the run of median throughput, whole, and the throughput
// of every run.
func printRow(n int, name string, rs []result) {
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b result) int { return int(a.rate() - b.rate()) })
	m := sorted[len(sorted)/2]
	var rates []string
	for _, r := range rs {
		rates = append(rates, fmt.Sprintf("%.0f", r.rate()))
	}
	fmt.Printf("| %d | %s | %.0f (%s) | %.1f / %.1f / %.0f ms | %.2f (%d/%d) | %.1f | %.0f; %.0f | %.0f | %.0f; %.2f | %.0f; %.0f / %.0f | %.0f; %.0f (%.1f%%) | %d |\n",
		n, name, m.rate(), strings.Join(rates, ", "),
		ms(m.quantile(0.5)), ms(m.quantile(0.99)), ms(m.waits[len(m.waits)-1]),
		m.fairness(), slices.Min(m.perGoroutine), slices.Max(m.perGoroutine),
		float64(m.server.commands)/float64(max(1, m.acquisitions)),
		m.perAcq(m.server.cpu), m.perAcq(m.server.cmdTime), m.perAcq(m.clientCPU),
		m.perAcqN(m.client.allocs), m.perAcqN(m.client.goroutines),
		us(quantile(m.sections, 0.5)), us(quantile(m.handOffs, 0.5)), us(quantile(m.handOffs, 0.99)),
		us(mean(m.sameClient)), us(mean(m.acrossClients)), 100*float64(len(m.acrossClients))/float64(max(1, len(m.handOffs))),
		m.lost)
}

// pingCost is the round trip of one PING and the client CPU it costs, from
// one goroutine: the unit that the lock's figures compare with.
func pingCost(ctx context.Context, r *redis.Client) (rtt, cpu time.Duration, err error) {
	const n = 2000
	for range 100 {
		if err := r.Ping(ctx).Err(); err != nil {
			return 0, 0, err
		}
	}
	cpu0, t0 := processCPU(), time.Now()
	for range n {
		if err := r.Ping(ctx).Err(); err != nil {
			return 0, 0, err
		}
	}
	return time.Since(t0) / n, (processCPU() - cpu0) / n, nil
}

// writeMemProfile writes the allocations of the whole run to path.
func writeMemProfile(path string) {
	f, err := os.Create(path)
	if err == nil {
		err = pprof.Lookup("allocs").WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
