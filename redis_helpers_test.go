package xsync_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Helpers that read what the test server did, shared by the lock and pool
// tests.

// commandCounts reads INFO commandstats: calls per command.
func commandCounts(t testing.TB, r *redis.Client) map[string]int64 {
	t.Helper()
	info, err := r.Info(t.Context(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok {
			continue
		}
		n, _, _ := strings.Cut(rest, ",")
		counts[strings.TrimPrefix(name, "cmdstat_")], _ = strconv.ParseInt(n, 10, 64)
	}
	return counts
}

// totalCommands is INFO stats total_commands_processed.
func totalCommands(t testing.TB, r *redis.Client) int64 {
	t.Helper()
	info, err := r.Info(t.Context(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_commands_processed:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatal("no total_commands_processed in INFO stats")
	return 0
}

// commandsSince is what the server has processed since before (from
// commandCounts), by command, but for INFO and PING: the test's own INFO
// calls and go-redis's pub/sub health checks.
func commandsSince(t testing.TB, db *redis.Client, before map[string]int64) map[string]int64 {
	t.Helper()
	diff := map[string]int64{}
	for name, n := range commandCounts(t, db) {
		if name == "info" || name == "ping" {
			continue
		}
		if d := n - before[name]; d != 0 {
			diff[name] = d
		}
	}
	return diff
}
