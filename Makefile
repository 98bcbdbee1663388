# Shepherd — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Pinned tools, built once from the Go module proxy into a cache outside the clone.
TEMPORAL_VERSION   := 1.5.1
PROMETHEUS_VERSION := 0.316.0
CACHE_BIN ?= $(if $(XDG_CACHE_HOME),$(XDG_CACHE_HOME),$(HOME)/.cache)/shepherd/bin
TEMPORAL   := $(CACHE_BIN)/temporal
PROMETHEUS := $(CACHE_BIN)/prometheus
PROMTOOL   := $(CACHE_BIN)/promtool
export SHEPHERD_TEMPORAL   ?= $(TEMPORAL)
export SHEPHERD_PROMETHEUS ?= $(PROMETHEUS)
export SHEPHERD_PROMTOOL   ?= $(PROMTOOL)

GO_TEST_FLAGS ?= -count=1 -timeout 40m

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: demo
demo: tools build ## run the demo: a good release promoted and a bad one rolled back, on a local stack
	bin/shepherd demo

.PHONY: dev
dev: tools build ## run a local stack: Temporal dev server + web UI (:8233) + a worker; Ctrl-C stops it
	bin/shepherd dev --config examples/shepherd.yaml

.PHONY: test
test: tools ## run every test: unit, replay, and end-to-end on real Temporal and Prometheus
	go vet ./...
	SHEPHERD_REQUIRE_E2E=1 go test $(GO_TEST_FLAGS) ./...

.PHONY: test-unit
# Every package but e2e; -short skips the tests that start a Prometheus or Temporal server.
test-unit: ## run the tests that need no server (fast)
	go test -count=1 -short $$(go list ./... | grep -v '/e2e$$')

.PHONY: build
build: ## build bin/shepherd and bin/demo-service
	go build -o bin/shepherd ./cmd/shepherd
	go build -o bin/demo-service ./cmd/demo-service

.PHONY: tools
tools: $(TEMPORAL) $(PROMETHEUS) $(PROMTOOL) ## build the pinned Temporal CLI and Prometheus into the cache (once)

# A `temporal` on PATH is used when its version fits; otherwise it is built from the module proxy.
$(TEMPORAL):
	@mkdir -p $(CACHE_BIN)
	@if command -v temporal >/dev/null && temporal --version | grep -Eq 'version $(TEMPORAL_VERSION)|Server 1\.29\.'; then \
		echo "using $$(command -v temporal) ($$(temporal --version))"; ln -sf "$$(command -v temporal)" $@; \
	else \
		echo "building Temporal CLI v$(TEMPORAL_VERSION) into $(CACHE_BIN) (about 6 minutes on 2 cores, once)"; \
		GOBIN=$(CACHE_BIN) go install github.com/temporalio/cli/cmd/temporal@v$(TEMPORAL_VERSION); \
	fi

$(PROMETHEUS):
	@mkdir -p $(CACHE_BIN)
	@echo "building Prometheus v$(PROMETHEUS_VERSION) into $(CACHE_BIN) (a few minutes, once)"
	GOBIN=$(CACHE_BIN) go install github.com/prometheus/prometheus/cmd/prometheus@v$(PROMETHEUS_VERSION)

$(PROMTOOL):
	@mkdir -p $(CACHE_BIN)
	GOBIN=$(CACHE_BIN) go install github.com/prometheus/prometheus/cmd/promtool@v$(PROMETHEUS_VERSION)

.PHONY: lint
lint: ## gofmt, go vet and staticcheck
	@test -z "$$(gofmt -l .)" || (gofmt -l . && echo "gofmt: files above need formatting" && exit 1)
	go vet ./...
	go tool staticcheck ./...

.PHONY: histories
histories: tools ## re-record the replay histories in testdata/histories from real runs
	SHEPHERD_REQUIRE_E2E=1 go test -count=1 ./e2e/ -run . -args -record

.PHONY: fuzz
fuzz: ## fuzz the spec parser for 60 s
	go test ./spec -run '^$$' -fuzz FuzzParse -fuzztime 60s

.PHONY: bench
bench: tools build ## run the benchmarks and write docs/BENCHMARKS.md
	bin/shepherd bench --out docs/BENCHMARKS.md

.PHONY: clean
clean: ## remove build output (the tool cache stays)
	rm -rf bin
