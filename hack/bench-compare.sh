#!/usr/bin/env bash
# bench-compare.sh [FLAGS...]
#
# Runs bench/ (xsync against redsync and redislock) on the Redis that
# REDIS_URL names, as hack/with-redis.sh sets it. When taskset exists and
# the machine has two CPUs or more, the redis-server is pinned to CPU 0 and
# the benchmark to CPU 1, so that neither steals the other's time. FLAGS go
# to the benchmark (-goroutines, -runs, -duration, -only, -cpuprofile,
# -memprofile).
set -euo pipefail
: "${REDIS_URL:?REDIS_URL is not set: run under hack/with-redis.sh}"

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(mktemp -d "${TMPDIR:-/tmp}/xsync-bench.XXXXXX")"
trap 'rm -rf "$bin"' EXIT
(cd "$root/bench" && ${GO:-go} build -o "$bin/bench" .)

if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
	pid="$(redis-cli -u "$REDIS_URL" info server | tr -d '\r' | sed -n 's/^process_id://p')"
	taskset -pc 0 "$pid" >/dev/null
	echo "bench-compare: redis-server (pid $pid) on CPU 0, the clients on CPU 1" >&2
	taskset -c 1 "$bin/bench" -redis "$REDIS_URL" "$@"
else
	echo "bench-compare: no taskset or one CPU: nothing pinned" >&2
	"$bin/bench" -redis "$REDIS_URL" "$@"
fi
