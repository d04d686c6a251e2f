#!/usr/bin/env bash
# with-redis.sh CMD [ARGS...]
#
# Runs CMD with REDIS_ADDR (host:port) and REDIS_URL pointing at a private
# redis-server: Debian's package, installed with apt-get when it is missing,
# started on a free port in a temporary directory, without persistence, and
# stopped (its directory removed) when CMD ends, whether CMD passed or not.
# Exits with CMD's status.
set -euo pipefail

if ! command -v redis-server >/dev/null 2>&1; then
	echo "with-redis: installing redis-server (Debian package)" >&2
	if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq >&2
	$SUDO apt-get install -y -qq redis-server >&2
	# The package starts a system-wide server on 6379; we do not use it.
fi

dir="$(mktemp -d "${TMPDIR:-/tmp}/xsync-redis.XXXXXX")"
pid=""
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM

ping() { redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null | grep -q PONG; }

for attempt in $(seq 1 20); do
	port=$(( 20000 + RANDOM % 20000 ))
	if ping "$port"; then continue; fi # somebody else's server
	redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" \
		--save "" --appendonly no --daemonize no \
		--logfile "$dir/redis.log" --databases 16 &
	pid=$!
	for _ in $(seq 1 100); do
		if ping "$port"; then break; fi
		if ! kill -0 "$pid" 2>/dev/null; then break; fi
		sleep 0.05
	done
	if ping "$port"; then break; fi
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=""
done
if [ -z "$pid" ]; then
	echo "with-redis: could not start redis-server" >&2
	cat "$dir/redis.log" >&2 || true
	exit 1
fi

export REDIS_ADDR="127.0.0.1:$port"
export REDIS_URL="redis://127.0.0.1:$port/0"
echo "with-redis: redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on $REDIS_ADDR" >&2
set +e
"$@"
status=$?
set -e
exit $status
