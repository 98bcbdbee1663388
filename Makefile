# Shepherd — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Pinned tools, built once from the Go module proxy into a cache outside the clone.
TEMPORAL_VERSION   := 1.5.1
PROMETHEUS_VERSION := 0.316.0
# The production-shaped stack (make cluster, make test-faults): the Temporal server and temporal-sql-tool
# of the version the CLI's dev server embeds, and docker-compose.yml runs.
TEMPORAL_SERVER_VERSION := 1.29.1
# The Kubernetes control plane the kubernetes target is tested on (scripts/kube-tools.sh has the others:
# etcd, kwok, Gateway API CRDs).
KUBE_VERSION       := 1.37.2
CACHE_BIN ?= $(if $(XDG_CACHE_HOME),$(XDG_CACHE_HOME),$(HOME)/.cache)/shepherd/bin
TEMPORAL   := $(CACHE_BIN)/temporal
PROMETHEUS := $(CACHE_BIN)/prometheus
PROMTOOL   := $(CACHE_BIN)/promtool
TEMPORAL_SERVER   := $(CACHE_BIN)/temporal-server
TEMPORAL_SQL_TOOL := $(CACHE_BIN)/temporal-sql-tool
export SHEPHERD_TEMPORAL   ?= $(TEMPORAL)
export SHEPHERD_PROMETHEUS ?= $(PROMETHEUS)
export SHEPHERD_PROMTOOL   ?= $(PROMTOOL)
export SHEPHERD_TEMPORAL_SERVER   ?= $(TEMPORAL_SERVER)
export SHEPHERD_TEMPORAL_SQL_TOOL ?= $(TEMPORAL_SQL_TOOL)
export SHEPHERD_KUBE_BIN   ?= $(CACHE_BIN)
KUBE_TOOLS := $(CACHE_BIN)/kube-tools-$(KUBE_VERSION).stamp

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

.PHONY: dev-kube
dev-kube: tools build ## make dev plus a local Kubernetes control plane and a Deployment to release on it
	bin/shepherd dev --kube

.PHONY: test
test: tools ## run every test: unit, replay, and end-to-end on real Temporal, Prometheus and Kubernetes
	go vet ./...
	SHEPHERD_REQUIRE_E2E=1 go test $(GO_TEST_FLAGS) ./...

.PHONY: test-faults
# The fault suite (e2e/faults_*_test.go, build tag faults): PostgreSQL, the real Temporal server and two
# or more worker processes, with the server, the database, Prometheus, workers and targets failing.
test-faults: tools ## run the fault suite on the production-shaped stack (PostgreSQL + Temporal server)
	SHEPHERD_REQUIRE_E2E=1 go test -tags faults $(GO_TEST_FLAGS) -run '^TestFault' ./e2e/

.PHONY: test-unit
# Every package but e2e; -short skips the tests that start a Prometheus or Temporal server.
test-unit: ## run the tests that need no server (fast)
	go test -count=1 -short $$(go list ./... | grep -v '/e2e$$')

.PHONY: cluster
cluster: tools build ## run the production-shaped stack: PostgreSQL + Temporal server (:7233) + a worker; Ctrl-C stops it
	bin/shepherd dev --cluster

.PHONY: build
build: ## build bin/shepherd and bin/demo-service
	go build -o bin/shepherd ./cmd/shepherd
	go build -o bin/demo-service ./cmd/demo-service

.PHONY: tools
tools: $(TEMPORAL) $(PROMETHEUS) $(PROMTOOL) $(TEMPORAL_SERVER) $(TEMPORAL_SQL_TOOL) $(KUBE_TOOLS) ## build the pinned Temporal CLI, server, sql tool, Prometheus and a Kubernetes control plane into the cache (once)

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

# go install names them server and sql; they are renamed as Temporal's images name them.
$(TEMPORAL_SERVER) $(TEMPORAL_SQL_TOOL) &:
	@mkdir -p $(CACHE_BIN)
	@echo "building Temporal server and temporal-sql-tool v$(TEMPORAL_SERVER_VERSION) into $(CACHE_BIN) (a few minutes, once)"
	tmp=$$(mktemp -d) && \
	GOBIN=$$tmp go install go.temporal.io/server/cmd/server@v$(TEMPORAL_SERVER_VERSION) go.temporal.io/server/cmd/tools/sql@v$(TEMPORAL_SERVER_VERSION) && \
	mv $$tmp/server $(TEMPORAL_SERVER) && mv $$tmp/sql $(TEMPORAL_SQL_TOOL) && rmdir $$tmp

# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, kwok's stages and the Gateway API
# CRDs, built from throw-away modules in a temporary directory (nothing fetched enters the clone).
$(KUBE_TOOLS):
	@echo "building the Kubernetes control plane v$(KUBE_VERSION) into $(CACHE_BIN) (10-25 minutes on 2 cores, once)"
	KUBE_VERSION=$(KUBE_VERSION) scripts/kube-tools.sh $(CACHE_BIN)
	@touch $@

.PHONY: lint
lint: ## gofmt, go vet and staticcheck
	@test -z "$$(gofmt -l .)" || (gofmt -l . && echo "gofmt: files above need formatting" && exit 1)
	go vet -tags faults ./...
	go tool staticcheck -tags faults ./...

.PHONY: histories
histories: tools ## re-record the replay histories in testdata/histories from real runs
	SHEPHERD_REQUIRE_E2E=1 go test -count=1 ./e2e/ -run . -args -record

.PHONY: fuzz
fuzz: ## fuzz the spec parser for 60 s
	go test ./spec -run '^$$' -fuzz FuzzParse -fuzztime 60s

.PHONY: bench
bench: tools build ## run the benchmarks and write docs/BENCHMARKS.md
	bin/shepherd bench --out docs/BENCHMARKS.md

.PHONY: bench-scale
bench-scale: tools build ## measure capacity: 100/500/1000 soaking releases on one worker, 1000 on two; writes the scale section of docs/BENCHMARKS.md (~25 min)
	bin/shepherd bench --scale --out docs/BENCHMARKS.md

.PHONY: clean
clean: ## remove build output (the tool cache stays)
	rm -rf bin
