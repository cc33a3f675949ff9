#!/usr/bin/env bash
# Installs or builds what the tests and the demo need, idempotently: a second
# run finds everything in place and takes seconds. make test, make test-short
# and make demo call it first; run it alone as `make setup`.
#
#   test/setup.sh test    # everything `make test` needs
#   test/setup.sh short   # what `make test-short` needs (Prometheus, the main module)
#   test/setup.sh demo    # what `make demo` needs (Prometheus)
#
# Where things go:
#   Debian packages (as root on Debian): prometheus, protobuf-compiler, chromium
#   Go tools: `go install` into $(go env GOBIN) or $(go env GOPATH)/bin, a stamp
#     per version in $KEDASTRAL_BIN_CACHE/stamps
#   heavy binaries (test/bins/build.sh targets): $KEDASTRAL_BIN_CACHE/<name>-<version>
#   a Prometheus built here because none could be installed: linked into
#     $KEDASTRAL_BIN_CACHE/bin, which the Makefile puts at the end of PATH
# KEDASTRAL_BIN_CACHE is ~/.cache/kedastral unless set.
#
# Each phase prints one line; anything that can take longer than 30 s prints
# a progress line every 30 s. To add a prerequisite, add one line to the
# list of its set below (set_test, set_short, set_demo): apt, gotool, bins
# (a test/bins/build.sh target), modules, modcache or prebuild.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
cache="${KEDASTRAL_BIN_CACHE:-${KEDASTRAL_KUBE_BIN_CACHE:-$HOME/.cache/kedastral}}"
export KEDASTRAL_BIN_CACHE="$cache"

say() { echo "setup: $*" >&2; }
die() {
  echo "setup: $*" >&2
  exit 1
}

# long LABEL CMD...: runs CMD, printing "LABEL…" first, a line every 30 s while
# it runs, and how long it took when that was more than 10 s.
long() {
  local label=$1 start=$SECONDS ticker rc=0
  shift
  say "$label…"
  # The ticker writes to standard error only, so that a caller reading this
  # one's standard output to its end does not wait for the ticker's sleep.
  (while sleep 30; do echo "setup:   still $label, $((SECONDS - start)) s"; done) >&2 &
  ticker=$!
  "$@" || rc=$?
  kill "$ticker" 2>/dev/null || true
  wait "$ticker" 2>/dev/null || true
  [ "$rc" -eq 0 ] || die "$label failed (exit $rc)"
  if [ $((SECONDS - start)) -gt 10 ]; then say "$label: done in $((SECONDS - start)) s"; fi
}

can_apt() { [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; }
apt_updated=
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "$apt_updated" ]; then
    apt-get update -qq >/dev/null || return
    apt_updated=1
  fi
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# apt PACKAGE PROGRAM...: Debian's PACKAGE unless every PROGRAM is on PATH.
apt() {
  local pkg=$1 p missing=
  shift
  for p in "$@"; do command -v "$p" >/dev/null 2>&1 || missing=1; done
  [ -n "$missing" ] || return 0
  can_apt || die "$* not on PATH: install Debian's $pkg package (as root: apt-get install --no-install-recommends $pkg)"
  long "installing $pkg (apt-get)" apt_install "$pkg"
}

# prometheus: prometheus and promtool from PATH; else Debian's package as root
# on Debian; else Prometheus 3 built from the Go module proxy (test/bins/build.sh
# prometheus, cached), linked into $cache/bin.
prometheus() {
  if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    return 0
  fi
  if [ -x "$cache/bin/prometheus" ] && [ -x "$cache/bin/promtool" ]; then
    return 0
  fi
  if can_apt && apt-cache show prometheus >/dev/null 2>&1; then
    long "installing prometheus (apt-get)" apt_install prometheus
    return 0
  fi
  local dir
  dir="$(long "building prometheus from the Go module proxy (no apt-get as root here)" test/bins/build.sh prometheus | tail -1)"
  mkdir -p "$cache/bin"
  ln -sf "$dir/prometheus" "$cache/bin/prometheus"
  ln -sf "$dir/promtool" "$cache/bin/promtool"
}

# gotool PKG@VERSION: go install, once per version.
gotool() {
  local spec=$1 name stamp gobin
  gobin="$(go env GOBIN)"
  [ -n "$gobin" ] || gobin="$(go env GOPATH | cut -d: -f1)/bin"
  name="$(basename "${spec%@*}")"
  stamp="$cache/stamps/$name@${spec#*@}"
  [ -x "$gobin/$name" ] && [ -e "$stamp" ] && return 0
  long "installing $name ${spec#*@} (go install)" go install "$spec"
  mkdir -p "$cache/stamps"
  : >"$stamp"
}

# bins TARGET: a heavy binary from test/bins/build.sh, cached by version there.
bins() {
  long "building or finding $1 (test/bins/build.sh $1)" sh -c 'test/bins/build.sh "$1" >/dev/null' _ "$1"
}

# modules DIR...: the dependencies of the Go modules in DIR.
modules() {
  local d
  for d in "$@"; do
    long "downloading the Go modules of ${d}" sh -c 'cd "$1" && go mod download' _ "$d"
  done
}

# modcache MODULE@VERSION...: modules whose files the tests read from the
# module cache (CRDs, Kubernetes' OpenAPI).
modcache() {
  local m
  for m in "$@"; do
    long "downloading $m" sh -c 'go mod download -json "$1" >/dev/null' _ "$m"
  done
}

# prebuild DIR: compiles the tests of the module in DIR so that a long
# first build shows progress here rather than silence under go test.
prebuild() {
  local out
  out="$(mktemp -d)"
  long "compiling the tests of $1 (the first time takes minutes)" sh -c 'cd "$1" && go test -vet=off -c -o "$2" ./... >/dev/null' _ "$1" "$out"
  rm -rf "$out"
}

set_demo() {
  prometheus
  # Compiled here, under a progress line, so that `go run ./test/demo` and
  # the demo's own build of kedastral find them in Go's build cache.
  long "compiling kedastral and the demo" go build ./cmd/kedastral ./test/demo
}

set_short() {
  prometheus
  modules .
  gotool github.com/google/go-jsonnet/cmd/jsonnet@v0.22.0
  gotool github.com/google/go-jsonnet/cmd/jsonnetfmt@v0.22.0
}

set_test() {
  prometheus
  apt protobuf-compiler protoc
  apt chromium chromium
  modules . mixins/tools test/keda deploy/test
  modcache k8s.io/kubernetes@v1.36.3 github.com/kedacore/keda/v2@v2.21.0 \
    github.com/prometheus-operator/prometheus-operator@v0.85.0
  gotool github.com/google/go-jsonnet/cmd/jsonnet@v0.22.0
  gotool github.com/google/go-jsonnet/cmd/jsonnetfmt@v0.22.0
  gotool helm.sh/helm/v3/cmd/helm@v3.22.0
  gotool github.com/yannh/kubeconform/cmd/kubeconform@v0.8.0
  gotool github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics@v1.151.0
  bins kube
  bins thanos
  bins prometheus
  prebuild test/keda
}

set="${1:-test}"
case "$set" in
test | short | demo) ;;
*) die "usage: $0 [test|short|demo]" ;;
esac
start=$SECONDS
# go.mod names a newer toolchain than the machine's Go may be: the first go
# command fetches it from the module proxy.
long "checking the Go toolchain" go version >/dev/null
say "preparing for make $set ($(go version | cut -d' ' -f3), cache $cache)"
"set_$set"
say "ready for make $set in $((SECONDS - start)) s"
