package main

import (
	"bufio"
	"context"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// serverStats is what the server says it has done so far.
type serverStats struct {
	commands int64         // commands run, those called by scripts included; INFO left out
	cmdTime  time.Duration // the time the server spent in those commands (commandstats usec)
	cpu      time.Duration // the server process's CPU time (used_cpu_sys + used_cpu_user)
}

func (s serverStats) sub(o serverStats) serverStats {
	return serverStats{s.commands - o.commands, s.cmdTime - o.cmdTime, s.cpu - o.cpu}
}

// readServerStats reads INFO commandstats and INFO cpu. Redis counts a
// command called from a script in that command's commandstats line, so a
// script call counts as its EVALSHA plus every command inside it.
func readServerStats(ctx context.Context, r *redis.Client) (serverStats, error) {
	info, err := r.Info(ctx, "commandstats", "cpu").Result()
	if err != nil {
		return serverStats{}, err
	}
	var s serverStats
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(name, "cmdstat_"):
			if name == "cmdstat_info" {
				continue
			}
			for _, kv := range strings.Split(rest, ",") {
				k, v, _ := strings.Cut(kv, "=")
				n, _ := strconv.ParseInt(v, 10, 64)
				switch k {
				case "calls":
					s.commands += n
				case "usec":
					s.cmdTime += time.Duration(n) * time.Microsecond
				}
			}
		case name == "used_cpu_sys" || name == "used_cpu_user":
			sec, _ := strconv.ParseFloat(rest, 64)
			s.cpu += time.Duration(sec * float64(time.Second))
		}
	}
	return s, sc.Err()
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clientCounts are counts of this process's work that load does not
// distort, unlike its CPU time: heap allocations (objects) and goroutines
// started.
type clientCounts struct {
	allocs, goroutines uint64
}

func (c clientCounts) sub(o clientCounts) clientCounts {
	return clientCounts{c.allocs - o.allocs, c.goroutines - o.goroutines}
}

// readClientCounts reads the runtime's cumulative counters.
func readClientCounts() clientCounts {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}, {Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	var c clientCounts
	if s[0].Value.Kind() == metrics.KindUint64 {
		c.allocs = s[0].Value.Uint64()
	}
	if s[1].Value.Kind() == metrics.KindUint64 {
		c.goroutines = s[1].Value.Uint64()
	}
	return c
}
