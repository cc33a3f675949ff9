# Kedastral's build. `make help` lists the targets.

GO      ?= go
PKG     := github.com/kedastral/kedastral
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REV     := $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -X github.com/prometheus/common/version.Version=$(VERSION) \
           -X github.com/prometheus/common/version.Revision=$(REV) \
           -X github.com/prometheus/common/version.Branch=$(shell git rev-parse --abbrev-ref HEAD 2>/dev/null) \
           -X github.com/prometheus/common/version.BuildDate=$(shell date -u +%Y%m%d-%H:%M:%S)
GOFILES := $(shell git ls-files '*.go' 2>/dev/null | grep -v '\.pb\.go$$')

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build and install the kedastral binary into $(go env GOPATH)/bin.
	$(GO) install -ldflags "$(LDFLAGS)" ./cmd/kedastral
	@echo "installed $$($(GO) env GOPATH)/bin/kedastral"

.PHONY: test
test: lint ## Run every test (needs Debian's prometheus and promtool on PATH, see .ci/run).
	$(GO) test -count=1 -timeout 30m ./...

.PHONY: lint
lint: ## Check formatting and go vet.
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

.PHONY: fmt
fmt: ## Format the Go code.
	gofmt -w $(GOFILES)

.PHONY: generate
generate: ## Regenerate generated files (CLI help golden files).
	$(GO) test ./cmd/kedastral -run TestHelp -update

.PHONY: mixin
mixin: ## Format the jsonnet mixin and regenerate mixins/kedastral/out/ (needs jsonnet, jsonnetfmt).
	jsonnetfmt -i $$(find mixins/kedastral -name '*.jsonnet' -o -name '*.libsonnet' | grep -v /vendor/)
	$(GO) test ./mixins/kedastral -run TestGenerated -count=1 -update

.PHONY: demo
demo: ## Run the local demo: a real Prometheus with a real trace, the forecaster, its forecast.
	$(GO) run ./test/demo

.PHONY: bench
bench: ## Run the Go benchmarks.
	$(GO) test -run '^$$' -bench . -benchmem ./engine/...
