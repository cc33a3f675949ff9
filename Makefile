# Kedastral's build. `make help` lists the targets.

GO      ?= go
# go.mod builds with Go 1.26.8 and names toolchain go1.26.11 (standard-library
# security fixes that make vuln checks for). A machine whose Go is older and set
# to GOTOOLCHAIN=local (Debian's and this project's CI are) would build with its
# own; auto lets the go command fetch go1.26.11 from the module proxy.
export GOTOOLCHAIN ?= auto
PKG     := github.com/kedastral/kedastral
# The version: the file deploy/VERSION (semver without the v) is its one source; a
# release is tagged v$(VERSION), and the chart's version and appVersion, the
# newest release in CHANGELOG.md and the image tag are the same
# (docs/releasing.md; deploy/test checks them).
VERSION ?= $(shell cat deploy/VERSION)
REV     := $(shell git rev-parse HEAD 2>/dev/null)
BRANCH  := $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null)
LDFLAGS := -X github.com/prometheus/common/version.Version=$(VERSION) \
           -X github.com/prometheus/common/version.Revision=$(REV) \
           -X github.com/prometheus/common/version.Branch=$(BRANCH) \
           -X github.com/prometheus/common/version.BuildDate=$(shell date -u +%Y%m%d-%H:%M:%S)
GOFILES := $(shell git ls-files '*.go' 2>/dev/null | grep -v '\.pb\.go$$')
# test/setup.sh caches what it builds under KEDASTRAL_BIN_CACHE; a Prometheus
# it had to build (no apt-get as root) is linked into its bin/, last on PATH.
export KEDASTRAL_BIN_CACHE ?= $(HOME)/.cache/kedastral
export PATH := $(PATH):$(KEDASTRAL_BIN_CACHE)/bin
# make test runs the set-up once; the sub-makes it starts skip it.
SETUP = $(if $(SETUP_DONE),,setup)

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build and install the kedastral binary into $(go env GOPATH)/bin.
	$(GO) install -ldflags "$(LDFLAGS)" ./cmd/kedastral
	@echo "installed $$($(GO) env GOPATH)/bin/kedastral"

.PHONY: setup
setup: ## Install or build every prerequisite of the tests (test/setup.sh: idempotent, cached).
	@test/setup.sh test

.PHONY: test
test: $(SETUP) lint ## Set up, then run every test: main module (test/stores: Thanos), fuzz, KEDA conformance, deploy/, vuln.
	$(GO) test -count=1 -timeout 30m ./...
	$(MAKE) SETUP_DONE=1 fuzz-short test-keda test-deploy vuln

# test-short leaves out the packages that need the heavy prerequisites
# (test/kube: kube-apiserver; test/scale: VictoriaMetrics; test/stores: Thanos); -short skips the
# slow tests elsewhere (each says so).
SHORT_EXCLUDE := /test/kube$$|/test/scale$$|/test/stores$$
.PHONY: test-short
test-short: ## Unit and integration tests against a real Prometheus, for the edit loop (a few minutes warm).
	@test/setup.sh short
	$(GO) test -short -count=1 -timeout 10m $$($(GO) list ./... | grep -Ev '$(SHORT_EXCLUDE)')

FUZZTIME ?= 5000x
FUZZ_TARGETS := engine/policy:FuzzParse engine/scaler:FuzzParseMetadata engine/trace:FuzzRead \
                engine/model:FuzzBYOMResponse engine/model:FuzzModels

.PHONY: fuzz-short
fuzz-short: ## Run each fuzz target for $(FUZZTIME) (inputs or time; a longer run: make fuzz-short FUZZTIME=10m).
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$fn in ./$$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -parallel 2 ./$$pkg; \
	done

GOVULNCHECK_VERSION ?= v1.9.0
# The vulnerability database comes from the golang.org/x/vulndb module (its
# OSV files, indexed with its own indexdb), so the check needs only the Go
# module proxy. Bump the pseudo-version to refresh it.
VULNDB_VERSION ?= v0.0.0-20261105234957-e22db6528018
VULNDB_DIR ?= $(or $(TMPDIR),/tmp)/kedastral-vulndb-$(VULNDB_VERSION)
.PHONY: vuln
vuln: ## Check the module with govulncheck against a vulnerability database built from golang.org/x/vulndb.
	@test -f $(VULNDB_DIR)/index/db.json || { \
		osv=$$($(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p'); \
		$(GO) run golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION) -vulns "$$osv/data/osv" -out $(VULNDB_DIR); }
	$(GO) run golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION) -db file://$(VULNDB_DIR) ./...

.PHONY: bins-stores
bins-stores: ## Build Thanos for test/stores, once per version (test/bins/build.sh thanos; cached).
	@test/bins/build.sh thanos >/dev/null

.PHONY: test-stores
test-stores: bins-stores ## Run test/stores alone: Kedastral on Thanos (Receive hashring, Query, sidecar).
	$(GO) test -count=1 -timeout 20m ./test/stores

.PHONY: test-keda
test-keda: $(SETUP) ## Conformance with KEDA's own scaler client (module test/keda; make setup compiles it first).
	cd test/keda && $(GO) test -vet=off -count=1 -timeout 30m ./...

.PHONY: lint
lint: ## Check formatting and go vet.
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

.PHONY: fmt
fmt: ## Format the Go code.
	gofmt -w $(GOFILES)

.PHONY: generate
generate: proto mixin kustomize ## Regenerate every generated file: gRPC code, mixin output, CRDs, chart and kustomize renders, CLI help golden files.
	$(GO) test ./cmd/kedastral -run TestHelp -update

.PHONY: proto
proto: ## Regenerate the gRPC code in proto/ (needs protoc: apt-get install protobuf-compiler).
	./proto/generate.sh

.PHONY: mixin
mixin: ## Format the jsonnet mixin and regenerate mixins/kedastral/out/ (needs jsonnet, jsonnetfmt).
	jsonnetfmt -i $$(find mixins/kedastral -name '*.jsonnet' -o -name '*.libsonnet' | grep -v /vendor/)
	$(GO) test ./mixins/kedastral -run TestGenerated -count=1 -update

# ---- deploy/ (Helm chart, kustomize, CRDs, image) ----
# The chart's default image is ghcr.io/kedastral/kedastral:<appVersion>.
IMAGE ?= ghcr.io/kedastral/kedastral:$(VERSION)
IMAGE_ARCHIVE ?= dist/kedastral-$(VERSION).oci.tar
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
# The images' creation time, and the time of every file in them: the last
# commit's, so that one commit gives one archive, byte for byte.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null)

.PHONY: image
image: ## Build the image $(IMAGE) for $(IMAGE_PLATFORMS) into $(IMAGE_ARCHIVE), an OCI archive (no Docker needed; docs/image.md).
	@cd deploy/test && SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(GO) run ./cmd/ociimage -name $(IMAGE) \
		-version $(VERSION) -revision "$(REV)" -branch "$(BRANCH)" -platforms $(IMAGE_PLATFORMS) \
		-repo-root $(CURDIR) -out $(abspath $(IMAGE_ARCHIVE))

.PHONY: crds
crds: ## Regenerate deploy/crds, the chart's crds/ and values.schema.json from engine/policy's Go types.
	cd deploy/test && $(GO) mod tidy && $(GO) run ./cmd/crdgen -out ../crds -chart ../helm/kedastral

.PHONY: chart
chart: crds ## Copy the mixin's output into the chart and update the rendered-chart golden files (needs helm).
	mkdir -p deploy/helm/kedastral/files/dashboards
	rm -f deploy/helm/kedastral/files/*.yaml deploy/helm/kedastral/files/dashboards/*.json
	cp mixins/kedastral/out/*.yaml deploy/helm/kedastral/files/
	cp mixins/kedastral/out/*.json deploy/helm/kedastral/files/dashboards/
	cd deploy/test && $(GO) test -count=1 -run 'TestChartTemplate' . -update

.PHONY: kustomize
kustomize: chart ## Regenerate the kustomize base and monitoring component from the chart (needs helm).
	cd deploy/test && $(GO) test -count=1 -run 'TestKustomizeBaseMatchesChart' . -update

.PHONY: test-deploy
test-deploy: $(SETUP) ## Test deploy/: CRDs vs Go types, helm lint/template, kubeconform, kustomize overlays, examples, image, versions.
	cd deploy/test && $(GO) vet ./... && $(GO) test -count=1 -timeout 20m ./...

.PHONY: demo
demo: ## Run the local demo: a real Prometheus with a real trace, the forecaster, its forecast.
	@test/setup.sh demo
	@echo "starting the demo…"
	@$(GO) run ./test/demo

.PHONY: bench
bench: ## Benchmarks: models, backtest, forecaster at 10k series x 2 weeks (auto; KEDASTRAL_BENCH_SERIES resizes), scaler GetMetrics, remote write to a real Prometheus.
	$(GO) test -run '^$$' -bench . -benchmem ./engine/model ./engine/backtest ./engine/capacity
	$(GO) test -run '^$$' -bench . -benchtime 5x -timeout 60m ./engine/forecast
	$(GO) test -run '^$$' -bench . -benchtime 3s ./engine/scaler
	$(GO) test -run '^$$' -bench . -benchtime 10x ./test/scale
