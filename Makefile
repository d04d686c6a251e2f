# The whole set-up on a fresh machine is `make demo` and `make test`: each
# installs Debian's redis-server when it is missing, starts a private one on
# a free port, and stops it at the end.

GO ?= go
WITH_REDIS := ./hack/with-redis.sh

# Flags of the crawler demo; CI runs a short one.
DEMO_FLAGS ?=

.PHONY: test test-sentinel test-cluster demo demo-cluster bench bench-cluster bench-compare vet fmt check-fmt

# The tests that run on Sentinel and on Cluster: locks, pools, the limiter and the semaphore, the
# topology tests (failovers included) and the crawler.
TOPOLOGY_TESTS := TestLock|TestPool|TestLimiter|TestSemaphore|TestSentinel|TestCluster|TestOptions|TestCrawl
# Tests that need one plain server: a TCP proxy (fault_test.go) stands
# between xsync and one server, or the server is made a replica.
SINGLE_ONLY := WhoseAnswerWasLost|WhoseGrantWasLost|TestPool_ResentTake|TestLock_ResentAcquire|TestLock_OnAServerThatRefusesWrites|TestPool_TakeThatReachesAReplica
# Tests that Cluster cannot run: other DBs than 0 (there are none:
# OnDB, TestPools_NamesThePoolsUnderThePrefix).
NOT_ON_CLUSTER := $(SINGLE_ONLY)|OnDB|TestPools_NamesThePoolsUnderThePrefix

## test: go vet, gofmt check, then every test with -race against a private Redis.
## -p 1: one package at a time, as the packages share the one Redis (some
## tests count its commands) and the crawler's test is timing-sensitive.
test:
	$(GO) vet ./...
	@$(MAKE) --no-print-directory check-fmt
	$(WITH_REDIS) $(GO) test -race -count=1 -p 1 -skip 'TestSentinel|TestCluster' ./...

## test-sentinel: the lock, pool, limiter, semaphore and crawler tests against a master, a
## replica and three Sentinels, and the Sentinel failover tests. The tests
## that count the master's commands leave out the Sentinels' own (their
## hellos, and what a link sends when it reconnects; see
## redis_helpers_test.go).
test-sentinel:
	$(WITH_REDIS) sentinel $(GO) test -race -count=1 -p 1 -run '$(TOPOLOGY_TESTS)' -skip '$(SINGLE_ONLY)|TestCluster' . ./examples/crawler

## test-cluster: the same against a Redis Cluster of three masters with a
## replica each, and the Cluster failover tests.
test-cluster:
	$(WITH_REDIS) cluster $(GO) test -race -count=1 -p 1 -run '$(TOPOLOGY_TESTS)' -skip '$(NOT_ON_CLUSTER)|TestSentinel' . ./examples/crawler

## demo: the crawler example against a private Redis.
demo:
	$(WITH_REDIS) sh -c '$(GO) run ./examples/crawler -redis "$$REDIS_URL" $(DEMO_FLAGS)'

## demo-cluster: the crawler example against a private Redis Cluster.
demo-cluster:
	$(WITH_REDIS) cluster sh -c '$(GO) run ./examples/crawler -addrs "$$REDIS_CLUSTER_ADDRS" $(DEMO_FLAGS)'

## bench: the benchmarks, 6 runs each (benchstat wants 6 for its intervals).
bench:
	$(WITH_REDIS) $(GO) test -run '^$$' -bench . -benchmem -count 6 .

## bench-cluster: the lock and pool benchmarks on a Redis Cluster, and
## those whose keys are spread over the slots (BenchmarkSpread_).
bench-cluster:
	$(WITH_REDIS) cluster $(GO) test -run '^$$' -bench 'Spread|Lock_Uncontended|PoolThroughput' -benchmem -count 6 .

## bench-compare: xsync against redsync and redislock (bench/, its own module),
## one after the other in one process, on a private Redis pinned to another
## CPU than the clients; median of 3 runs. BENCH_FLAGS: -goroutines, -runs,
## -duration, -only, -cpuprofile, -memprofile.
BENCH_FLAGS ?=
bench-compare:
	$(WITH_REDIS) ./hack/bench-compare.sh $(BENCH_FLAGS)

check-fmt:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

fmt:
	gofmt -w .
