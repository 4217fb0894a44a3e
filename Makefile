# make test: everything CI runs. It installs what the tests start from
# Debian's packages when missing (as root): redis-server, chromium,
# prometheus-alertmanager and prometheus (promtool); then vets, runs every
# test with the race detector, and fuzzes briefly.

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

# deps installs, in one apt-get run, what the tests start and is missing:
# redis-server, chromium (the admin panel's page in a headless browser),
# prometheus-alertmanager (alerts through a real Alertmanager) and
# prometheus (promtool, and the server that runs the shipped rules), strace
# and Python's redis and psutil (the publisher cost comparison). A variable
# pointing at a binary counts as having it. The prometheus packages would start their daemons where an
# init system runs; a policy-rc.d forbids that for the install, so nothing
# is left listening on 9090 or 9093, and is removed only if deps wrote it.
deps:
	@missing=""; \
	command -v valkey-server >/dev/null 2>&1 || command -v redis-server >/dev/null 2>&1 || [ -n "$$REDIS_SERVER" ] || missing="$$missing redis-server"; \
	command -v chromium >/dev/null 2>&1 || [ -n "$$CHROMIUM" ] || missing="$$missing chromium"; \
	command -v prometheus-alertmanager >/dev/null 2>&1 || [ -n "$$ALERTMANAGER" ] || missing="$$missing prometheus-alertmanager"; \
	{ command -v promtool >/dev/null 2>&1 || [ -n "$$PROMTOOL" ]; } && { command -v prometheus >/dev/null 2>&1 || [ -n "$$PROMETHEUS" ]; } || missing="$$missing prometheus"; \
	command -v strace >/dev/null 2>&1 || [ -n "$$STRACE" ] || missing="$$missing strace"; \
	$${PYTHON3:-/usr/bin/python3} -c 'import redis.asyncio, psutil' >/dev/null 2>&1 || missing="$$missing python3-redis python3-psutil"; \
	if [ -z "$$missing" ]; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing from Debian's packages:$$missing"; \
		if [ ! -e /usr/sbin/policy-rc.d ]; then \
			trap 'rm -f /usr/sbin/policy-rc.d' EXIT; \
			printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; \
		fi; \
		apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else \
		echo "tests need:$$missing (Debian: apt-get install --no-install-recommends$$missing)."; \
		echo "Or point variables at binaries: REDIS_SERVER (redis-server or valkey-server), CHROMIUM (chromium),"; \
		echo "ALERTMANAGER (prometheus-alertmanager, Alertmanager 0.25 or newer), PROMTOOL (promtool), PROMETHEUS (prometheus),"; \
		echo "STRACE (strace), PYTHON3 (a python3 with redis and psutil)."; \
		exit 1; \
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
	$(GO) test -run '^$$' -fuzz '^FuzzNumbersAreReadAsStrconvReadsThem$$' -fuzztime $(FUZZTIME) ./otelheartbeat/wire
	$(GO) test -run '^$$' -fuzz '^FuzzConnectionFromEnv$$' -fuzztime $(FUZZTIME) ./internal/valkeyconf
	$(GO) test -run '^$$' -fuzz '^FuzzEscapeAndSafeJSON$$' -fuzztime $(FUZZTIME) ./otelheartbeat/watch/term
	$(GO) test -run '^$$' -fuzz '^FuzzAKeptHeartbeatMarshalsAsReceived$$' -fuzztime $(FUZZTIME) ./otelheartbeat/watch

# make bench: every performance figure beside its baseline, measured in the
# same run on this machine, as docs/performance.md's table (a few minutes).
bench: deps
	@{ $(GO) test -run '^$$' -bench '^Benchmark(Encode|EncodeJSONMap|Decode|DecodeInterned)$$' -benchmem -count 5 ./otelheartbeat/wire && \
	   $(GO) test -run '^$$' -bench '^BenchmarkHeartbeatCycle' -benchmem -count 5 ./otelheartbeat && \
	   $(GO) test -run '^$$' -bench '^Benchmark(TickNothingDue|Observe|ObserveAndTick)$$' -benchmem ./otelheartbeat/watch && \
	   $(GO) test -run '^$$' -bench '^BenchmarkMemoryPerInstance(KeepingHeartbeats|AServiceEach)?$$' -benchtime 1x ./otelheartbeat/watch && \
	   $(GO) test -run '^$$' -bench '^BenchmarkHistoryCachePerInstance$$' -benchtime 1x ./otelheartbeat/panel && \
	   $(GO) test -run '^$$' -bench '^BenchmarkUptimeOfAFleetThatRuns$$' -count 3 ./otelheartbeat/panel && \
	   $(GO) test -run '^$$' -bench '^BenchmarkIDFlood$$' -benchtime 1x ./otelheartbeat/watch && \
	   $(GO) test -run '^$$' -bench '^BenchmarkFatHeartbeatFlood$$' -benchtime 1x ./otelheartbeat/watch && \
	   $(GO) test -run '^$$' -bench '^BenchmarkLoadFatLatestKeys$$' -benchtime 1x ./otelheartbeat/watch && \
	   $(GO) test -run '^$$' -bench '^BenchmarkIngest$$' -benchtime 5x ./otelheartbeat/watch && \
	   $(GO) test -run '^$$' -bench '^BenchmarkDecodeAndTrack$$' -benchmem ./otelheartbeat/watch && \
	   $(GO) test -run '^$$' -bench '^BenchmarkClusterPubSub$$' -benchtime 3x ./internal/tools/loadgen/fleet && \
	   $(GO) test -run '^$$' -bench '^BenchmarkIdleFootprint$$' -benchtime 1x ./internal/tools/footprint && \
	   PUBCOST_WINDOW=30s PUBCOST_ROUNDS=3 PUBCOST_IDLE_WINDOW=20s $(GO) test -timeout 30m -run '^$$' -bench '^BenchmarkPublisherCost$$' -benchtime 1x ./internal/tools/pubcost && \
	   PANEL_BENCH_WINDOW=60s $(GO) test -run '^$$' -bench '^BenchmarkPanelAtTenThousandInstances$$' -benchtime 1x ./examples/adminpanel && \
	   $(GO) test -run '^$$' -bench '^BenchmarkPanelUnderFatHeartbeats$$' -benchtime 1x ./examples/adminpanel && \
	   PANEL_LIMIT_FLEETS=100000@10s PANEL_LIMIT_WINDOW=60s $(GO) test -timeout 60m -run '^$$' -bench '^BenchmarkPanelAtTheLimit$$' -benchtime 1x ./examples/adminpanel && \
	   PANEL_LIMIT_FLEETS=100000@10s PANEL_LIMIT_SERVICES=1 PANEL_LIMIT_WINDOW=60s $(GO) test -timeout 60m -run '^$$' -bench '^BenchmarkPanelAtTheLimit$$' -benchtime 1x ./examples/adminpanel && \
	   PANEL_LIMIT_FLEETS=1000000@60s PANEL_LIMIT_WINDOW=60s PANEL_LIMIT_ARGS='--series-retention 0' PANEL_LIMIT_PANEL_ENV='GOMEMLIMIT=1300MiB' PANEL_LIMIT_SERVER_ARGS='--client-output-buffer-limit pubsub 0 0 0' $(GO) test -timeout 90m -run '^$$' -bench '^BenchmarkPanelAtTheLimit$$' -benchtime 1x ./examples/adminpanel && \
	   $(GO) test -run '^$$' -bench '^BenchmarkEvaluateAtOneHundredThousand$$' -benchmem -count 3 ./otelheartbeat/alerting && \
	   $(GO) test -run '^$$' -bench '^BenchmarkWriter(Flush|Add)$$' -benchmem -count 3 ./otelheartbeat/series && \
	   $(GO) test -run '^$$' -bench '^BenchmarkBytesPerInstanceDay$$' -benchtime 1x ./otelheartbeat/history && \
	   $(GO) test -run '^$$' -bench '^BenchmarkSeriesBytesPerInstanceDay$$' -benchtime 1x ./otelheartbeat/series && \
	   $(GO) test -run '^$$' -bench '^Benchmark(ThirtyDays|PanelWindows)$$' -benchmem ./otelheartbeat/uptime; } | tee bench.out
	@echo
	@$(GO) run ./internal/tools/benchtable < bench.out
