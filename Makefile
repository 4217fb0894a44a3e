# make test: everything CI runs. It installs redis-server from Debian's
# packages when no redis-server or valkey-server is on PATH (as root), then
# vets, runs every test with the race detector, and fuzzes briefly.

GO       ?= go
# A count, not a duration: a duration ends the fuzzers by a deadline, which
# on a loaded machine can expire while a worker is busy and fail the run
# with "context deadline exceeded" although nothing was found.
FUZZTIME ?= 50000x

# Every recipe fails when any command in it fails, a pipe's left side
# included: without pipefail, `go test ... | tee` exits with tee's status.
SHELL       := /bin/bash
.SHELLFLAGS := -e -o pipefail -c

.PHONY: test deps vet unit benchonce fuzz bench

test: deps vet unit benchonce fuzz

deps:
	@if command -v valkey-server >/dev/null 2>&1 || command -v redis-server >/dev/null 2>&1 || [ -n "$$REDIS_SERVER" ]; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing redis-server from Debian's packages"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null; \
	else \
		echo "tests need redis-server or valkey-server: apt-get install redis-server (or set REDIS_SERVER)"; exit 1; \
	fi

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 ./...

# Every benchmark once, so that a broken benchmark fails CI rather than the
# next `make bench`.
benchonce:
	$(GO) test -run '^$$' -bench . -benchtime=1x ./...

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzUnmarshal$$' -fuzztime $(FUZZTIME) ./otelheartbeat/wire
	$(GO) test -run '^$$' -fuzz '^FuzzDecoderAgreesWithEncodingJSON$$' -fuzztime $(FUZZTIME) ./otelheartbeat/wire
	$(GO) test -run '^$$' -fuzz '^FuzzConnectionFromEnv$$' -fuzztime $(FUZZTIME) ./internal/valkeyconf
	$(GO) test -run '^$$' -fuzz '^FuzzEscapeAndSafeJSON$$' -fuzztime $(FUZZTIME) ./otelheartbeat/watch/term

# make bench: every performance figure beside its baseline, measured in the
# same run on this machine, as the README's table (a few minutes).
bench: deps
	@{ $(GO) test -run '^$$' -bench '^Benchmark(Encode|EncodeJSONMap|Decode)$$' -benchmem -count 5 ./otelheartbeat/wire && \
	   $(GO) test -run '^$$' -bench '^BenchmarkHeartbeatCycle' -benchmem -count 5 ./otelheartbeat && \
	   $(GO) test -run '^$$' -bench '^Benchmark(TickNothingDue|Observe)$$' -benchmem ./otelheartbeat/watch && \
	   $(GO) test -run '^$$' -bench '^BenchmarkMemoryPerInstance$$' -benchtime 1x ./otelheartbeat/watch && \
	   $(GO) test -run '^$$' -bench '^BenchmarkIDFlood$$' -benchtime 1x ./otelheartbeat/watch && \
	   $(GO) test -run '^$$' -bench '^BenchmarkIngest$$' -benchtime 5x ./otelheartbeat/watch && \
	   $(GO) test -run '^$$' -bench '^BenchmarkDecodeAndTrack$$' -benchmem ./otelheartbeat/watch && \
	   $(GO) test -run '^$$' -bench '^BenchmarkClusterPubSub$$' -benchtime 3x ./examples/loadgen/fleet && \
	   $(GO) test -run '^$$' -bench '^BenchmarkIdleFootprint$$' -benchtime 1x ./internal/footprint; } | tee bench.out
	@echo
	@$(GO) run ./internal/benchtable < bench.out
