# walcast — common tasks. `make test` is what CI runs (after `make deps`).
GO      ?= go
FUZZTIME ?= 10s

.PHONY: all build test test-go test-race fuzz deps demo bench vet

all: build

build:
	$(GO) build -o bin/ ./cmd/...

deps:
	bash .ci/deps

vet:
	$(GO) vet ./...

# The full suite: every package against real Postgres/Redis/Node/Chromium, the
# concurrency-heavy packages again under the race detector, then a short fuzz pass.
test: deps vet test-go test-race fuzz

test-go:
	$(GO) test -count=1 -timeout 25m ./...

test-race:
	$(GO) test -race -count=1 -timeout 15m ./hub/... ./rooms/... ./cdc/

fuzz:
	FUZZTIME=$(FUZZTIME) bash .ci/fuzz

demo:
	$(GO) run ./cmd/walcast demo

# The issue-7 benchmark suite: walcast and the Node socket.io baseline, same
# database, same load tool, one table (cmd/walcast-load). BENCH_QUICK=1 for small
# numbers; BENCH_ONLY=idle,spread and BENCH_SERVERS=walcast to narrow it down.
bench: deps
	$(GO) run ./cmd/walcast-load bench
