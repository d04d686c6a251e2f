# The whole set-up on a fresh machine is `make demo` and `make test`: each
# installs Debian's redis-server when it is missing, starts a private one on
# a free port, and stops it at the end.

GO ?= go
WITH_REDIS := ./hack/with-redis.sh

# Flags of the crawler demo; CI runs a short one.
DEMO_FLAGS ?=

.PHONY: test demo vet fmt bench bench-compare check-fmt

## test: go vet, gofmt check, then every test with -race against a private Redis.
## -p 1: one package at a time, as the packages share the one Redis (some
## tests count its commands) and the crawler's test is timing-sensitive.
test:
	$(GO) vet ./...
	@$(MAKE) --no-print-directory check-fmt
	$(WITH_REDIS) $(GO) test -race -count=1 -p 1 ./...

## demo: the crawler example against a private Redis.
demo:
	$(WITH_REDIS) sh -c '$(GO) run ./examples/crawler -redis "$$REDIS_URL" $(DEMO_FLAGS)'

## bench: the benchmarks, 6 runs each (benchstat wants 6 for its intervals).
bench:
	$(WITH_REDIS) $(GO) test -run '^$$' -bench . -benchmem -count 6 .

## bench-compare: xsync against redsync and redislock (bench/, its own module),
## one after the other in one process, on a private Redis pinned to another
## CPU than the clients; median of 3 runs. BENCH_FLAGS: -goroutines, -runs,
## -duration, -only, -cpuprofile.
BENCH_FLAGS ?=
bench-compare:
	$(WITH_REDIS) ./hack/bench-compare.sh $(BENCH_FLAGS)

check-fmt:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

fmt:
	gofmt -w .
