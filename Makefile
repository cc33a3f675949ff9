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
test: lint ## Run every test, KEDA's conformance module included (see .ci/run for what they need).
	$(GO) test -count=1 -timeout 30m ./...
	$(MAKE) test-keda

.PHONY: test-keda
test-keda: ## Conformance with KEDA's own scaler client (module test/keda; its first build takes ~10 min).
	cd test/keda && $(GO) test -vet=off -count=1 -timeout 30m ./...

.PHONY: lint
lint: ## Check formatting and go vet.
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

.PHONY: fmt
fmt: ## Format the Go code.
	gofmt -w $(GOFILES)

.PHONY: generate
generate: proto mixin ## Regenerate every generated file: gRPC code, mixin output, CLI help golden files.
	$(GO) test ./cmd/kedastral -run TestHelp -update

.PHONY: proto
proto: ## Regenerate the gRPC code in proto/ (needs protoc: apt-get install protobuf-compiler).
	./proto/generate.sh

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
