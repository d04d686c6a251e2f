#!/usr/bin/env bash
# with-redis.sh [single|sentinel|cluster] CMD [ARGS...]
#
# Runs CMD against a private Redis deployment made of Debian's redis-server
# (installed with apt-get when it is missing): every server on a free port,
# in one temporary directory, without persistence, all stopped (and the
# directory removed) when CMD ends, whether CMD passed or not. Exits with
# CMD's status. The topology, single by default:
#
#   single    one server.
#             REDIS_TOPOLOGY=single REDIS_ADDR=host:port REDIS_URL=redis://host:port/0
#   sentinel  a master, one replica, three Sentinels watching the master
#             under the name "xsync" (a failover starts 1s after the master
#             stops answering).
#             REDIS_TOPOLOGY=sentinel REDIS_SENTINEL_ADDRS=a,b,c REDIS_MASTER_NAME=xsync
#   cluster   a Redis Cluster of three masters with one replica each (a
#             replica takes over 2s after its master stops answering).
#             REDIS_TOPOLOGY=cluster REDIS_CLUSTER_ADDRS=a,b,c,d,e,f
#
# Every topology also sets REDIS_TOPOLOGY_DIR, the temporary directory:
# <port>.conf starts the server of that port again (`redis-server
# <port>.conf`) and <port>.pid holds its pid, for the tests that kill a
# server to see a failover.
set -euo pipefail

topology=single
case "${1:-}" in
single | sentinel | cluster)
	topology=$1
	shift
	;;
esac
if [ $# -eq 0 ]; then
	echo "usage: with-redis.sh [single|sentinel|cluster] CMD [ARGS...]" >&2
	exit 2
fi

if ! command -v redis-server >/dev/null 2>&1; then
	echo "with-redis: installing redis-server (Debian package)" >&2
	if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq >&2
	$SUDO apt-get install -y -qq redis-server >&2
	# The package starts a system-wide server on 6379; we do not use it.
fi

dir="$(mktemp -d "${TMPDIR:-/tmp}/xsync-redis.XXXXXX")"
cleanup() {
	local f pid
	for f in "$dir"/*.pid; do
		[ -e "$f" ] || continue
		pid="$(cat "$f" 2>/dev/null || true)"
		# Only a redis process started from this directory's files.
		if [ -n "$pid" ] && grep -qs redis "/proc/$pid/cmdline"; then
			kill "$pid" 2>/dev/null || true
		fi
	done
	for f in "$dir"/*.pid; do
		[ -e "$f" ] || continue
		pid="$(cat "$f" 2>/dev/null || true)"
		for _ in $(seq 1 100); do
			[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		if [ -n "$pid" ] && grep -qs redis "/proc/$pid/cmdline"; then
			kill -9 "$pid" 2>/dev/null || true
		fi
	done
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM

cli() {
	local port=$1
	shift
	redis-cli -h 127.0.0.1 -p "$port" "$@" 2>/dev/null
}

# listening PORT: something answers on PORT.
listening() { (: >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ours PORT: the server on PORT is the one whose pid file we wrote.
ours() {
	local pid
	pid="$(cat "$dir/$1.pid" 2>/dev/null || true)"
	[ -n "$pid" ] && [ "$(cli "$1" info server | sed -n 's/^process_id:\([0-9]*\).*/\1/p')" = "$pid" ]
}

# start PORT MODE [CONF LINES...]: writes PORT.conf and starts the server.
# MODE is "server" or "sentinel". Fails when the server does not come up
# as ours (the port was taken meanwhile).
start() {
	local port=$1 mode=$2
	shift 2
	mkdir -p "$dir/$port"
	{
		echo "port $port"
		echo "bind 127.0.0.1"
		echo "dir $dir/$port"
		echo "daemonize yes"
		echo "pidfile $dir/$port.pid"
		echo "logfile $dir/$port.log"
		if [ "$mode" = server ]; then
			echo 'save ""'
			echo "appendonly no"
			echo "databases 16"
		fi
		local line
		for line in "$@"; do echo "$line"; done
	} >"$dir/$port.conf"
	if [ "$mode" = sentinel ]; then
		redis-server "$dir/$port.conf" --sentinel >/dev/null
	else
		redis-server "$dir/$port.conf" >/dev/null
	fi
	for _ in $(seq 1 100); do
		if ours "$port"; then return 0; fi
		sleep 0.05
	done
	return 1
}

# new_port: a port in 20000-29999 that nothing listens on, nor on
# port+10000 (the cluster bus). The servers are started one after the
# other, so a port handed out before is taken when the next is chosen.
new_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 10000))
		if listening "$p" || listening $((p + 10000)); then continue; fi
		echo "$p"
		return 0
	done
	echo "with-redis: no free port" >&2
	return 1
}

# serve MODE [CONF LINES...]: starts a server on a new free port, retrying
# on another port when the first was taken meanwhile; prints the port.
serve() {
	local port
	for _ in $(seq 1 10); do
		port="$(new_port)"
		if start "$port" "$@"; then
			echo "$port"
			return 0
		fi
		rm -f "$dir/$port.pid"
	done
	echo "with-redis: could not start redis-server ($1)" >&2
	cat "$dir"/*.log >&2 2>/dev/null || true
	return 1
}

# until_true SECONDS WHAT CMD...: polls CMD every 0.1s until it succeeds.
until_true() {
	local secs=$1 what=$2
	shift 2
	local i
	for i in $(seq 1 $((secs * 10))); do
		if "$@"; then return 0; fi
		sleep 0.1
	done
	echo "with-redis: $what not within ${secs}s" >&2
	tail -n 20 "$dir"/*.log >&2 2>/dev/null || true
	return 1
}

version="$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')"
export REDIS_TOPOLOGY="$topology" REDIS_TOPOLOGY_DIR="$dir"

case "$topology" in
single)
	port="$(serve server)"
	export REDIS_ADDR="127.0.0.1:$port"
	export REDIS_URL="redis://127.0.0.1:$port/0"
	echo "with-redis: redis-server $version on $REDIS_ADDR" >&2
	;;

sentinel)
	master="$(serve server)"
	replica="$(serve server "replicaof 127.0.0.1 $master")"
	sentinels=()
	for _ in 1 2 3; do
		sentinels+=("$(serve sentinel \
			"sentinel monitor xsync 127.0.0.1 $master 2" \
			"sentinel down-after-milliseconds xsync 1000" \
			"sentinel failover-timeout xsync 5000" \
			"sentinel parallel-syncs xsync 1")")
	done
	# Ready when the replica is in sync and every Sentinel knows the
	# replica and the two other Sentinels: a failover can happen.
	synced() { cli "$replica" info replication | grep -q '^master_link_status:up'; }
	until_true 20 "replica in sync" synced
	sentinels_ready() {
		local s info
		for s in "${sentinels[@]}"; do
			info="$(cli "$s" sentinel master xsync | tr '\n' ' ')"
			case "$info" in *"num-slaves 1 "*) ;; *) return 1 ;; esac
			case "$info" in *"num-other-sentinels 2 "*) ;; *) return 1 ;; esac
		done
	}
	until_true 30 "sentinels aware of each other" sentinels_ready
	addrs=""
	for s in "${sentinels[@]}"; do addrs="${addrs:+$addrs,}127.0.0.1:$s"; done
	export REDIS_SENTINEL_ADDRS="$addrs" REDIS_MASTER_NAME=xsync
	echo "with-redis: redis-server $version: master 127.0.0.1:$master, replica 127.0.0.1:$replica, sentinels $addrs (master name xsync)" >&2
	;;

cluster)
	ports=()
	for _ in 1 2 3 4 5 6; do
		ports+=("$(serve server \
			"cluster-enabled yes" \
			"cluster-config-file nodes.conf" \
			"cluster-node-timeout 2000" \
			"cluster-replica-validity-factor 0")")
	done
	nodes=""
	for p in "${ports[@]}"; do nodes="$nodes 127.0.0.1:$p"; done
	# shellcheck disable=SC2086 # one argument per node
	redis-cli --cluster create $nodes --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 || {
		cat "$dir/create.log" >&2
		exit 1
	}
	cluster_ok() {
		local p
		for p in "${ports[@]}"; do
			cli "$p" cluster info | grep -q '^cluster_state:ok' || return 1
			cli "$p" cluster info | grep -q '^cluster_slots_ok:16384' || return 1
		done
		# Every replica attached to its master.
		[ "$(cli "${ports[0]}" cluster nodes | grep -c ' slave ')" -eq 3 ] || return 1
		local r
		for r in $(cli "${ports[0]}" cluster nodes | awk '/ slave / { split($2, a, "[:@]"); print a[2] }'); do
			cli "$r" info replication | grep -q '^master_link_status:up' || return 1
		done
	}
	until_true 30 "cluster ready" cluster_ok
	addrs=""
	for p in "${ports[@]}"; do addrs="${addrs:+$addrs,}127.0.0.1:$p"; done
	export REDIS_CLUSTER_ADDRS="$addrs"
	echo "with-redis: redis-server $version: cluster of 3 masters and 3 replicas on $addrs" >&2
	;;
esac

set +e
"$@"
status=$?
set -e
exit $status
