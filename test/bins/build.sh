#!/usr/bin/env bash
# Builds the heavy prerequisites of the tests and the demo from the Go module
# proxy, each into one cache directory keyed by its version, so only the first
# run on a machine pays for a build; later runs print the directory at once.
#
#   test/bins/build.sh [kube]      # etcd, kube-apiserver (test/kube) and kube-controller-manager
#                                  # (test/live); about 7 + 18 minutes of CPU once
#   test/bins/build.sh prometheus  # Prometheus 3 and its promtool; about 9 minutes of CPU once
#   test/bins/build.sh thanos      # Thanos (receive, query, sidecar in one binary; test/stores)
#   test/bins/build.sh keda        # KEDA's operator and metrics API server (adapter) and its CRDs
#                                  # (test/live); about 24 minutes of CPU once
#
# Each prints the directory holding its binaries on standard output; what it
# does goes to standard error. Each component pins its version in the go.mod
# of its wrapper module beside this script (test/bins/<component>/go.mod).
# KEDASTRAL_BIN_CACHE (or the older KEDASTRAL_KUBE_BIN_CACHE) overrides the
# cache root, ~/.cache/kedastral by default.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="${KEDASTRAL_BIN_CACHE:-${KEDASTRAL_KUBE_BIN_CACHE:-$HOME/.cache/kedastral}}"
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"

# version MOD: the version the wrapper module MOD requires of its one direct dependency.
version() { awk '$1=="require" && NF==3 {print $3; exit}' "$here/$1/go.mod"; }

# build MOD OUT PKG [LDFLAGS [TAGS]]: go build PKG inside wrapper module MOD into OUT,
# atomically, with a line every 30 s so a long build never looks hung.
build() {
  local mod=$1 out=$2 pkg=$3 ldflags=${4:-} tags=${5:-} lock
  # Two runs at once (make test in two worktrees) build it once: the second
  # waits for the first and finds the binary.
  exec {lock}>"$out.lock"
  if ! flock -n "$lock"; then
    echo "waiting for another build of $(basename "$out") into $(dirname "$out")…" >&2
    flock "$lock"
  fi
  if [ -x "$out" ]; then
    exec {lock}>&-
    return 0
  fi
  echo "building $(basename "$out") $(version "$mod") into $(dirname "$out") (once per machine)…" >&2
  local start=$SECONDS
  # The ticker holds neither the lock nor standard output (a caller may be
  # reading it to its end), and its sleep may outlive it by up to 30 s.
  (
    exec {lock}>&- >&2
    while sleep 30; do echo "  still building $(basename "$out"), $((SECONDS - start)) s"; done
  ) &
  local ticker=$! rc=0
  # No RETURN trap: it would outlive this function and fire, with $ticker
  # unset, when its caller returns.
  (cd "$here/$mod" && go build -trimpath -tags="$tags" -ldflags="-s $ldflags" -o "$out.tmp" "$pkg") || rc=$?
  kill "$ticker" 2>/dev/null || true
  if [ "$rc" -ne 0 ]; then
    echo "building $(basename "$out") failed (exit $rc)" >&2
    exit "$rc"
  fi
  mv "$out.tmp" "$out"
  echo "built $(basename "$out") in $((SECONDS - start)) s" >&2
  exec {lock}>&-
}

kube() {
  local k8s etcd dir
  k8s="$(version apiserver)"
  etcd="$(version etcd)"
  dir="$root/kube-$k8s-etcd-$etcd"
  mkdir -p "$dir"
  # The version the API server reports (/version, helm's kubeVersion checks)
  # comes from ldflags, as in Kubernetes' own build.
  local minor="${k8s#v1.}"
  minor="${minor%%.*}"
  local v=k8s.io/component-base/version
  [ -x "$dir/kube-apiserver" ] || build apiserver "$dir/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver \
    "-X $v.gitVersion=$k8s -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
  [ -x "$dir/etcd" ] || build etcd "$dir/etcd" go.etcd.io/etcd/server/v3
  # The HorizontalPodAutoscaler and Deployment controllers of the live loop;
  # from the same wrapper module, so it shares most packages with the API server.
  [ -x "$dir/kube-controller-manager" ] || build apiserver "$dir/kube-controller-manager" k8s.io/kubernetes/cmd/kube-controller-manager \
    "-X $v.gitVersion=$k8s -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
  echo "$dir"
}

# keda: KEDA's operator (keda) and metrics API server (keda-adapter) as its
# Makefile builds them, and its CRDs from the module (config/crd/bases).
keda() {
  local v dir
  v="$(version keda)"
  dir="$root/keda-$v"
  mkdir -p "$dir/crds"
  local ld="-X github.com/kedacore/keda/v2/version.Version=${v#v} -X github.com/kedacore/keda/v2/version.GitCommit=module-$v"
  [ -x "$dir/keda" ] || build keda "$dir/keda" github.com/kedacore/keda/v2/cmd/operator "$ld"
  [ -x "$dir/keda-adapter" ] || build keda "$dir/keda-adapter" github.com/kedacore/keda/v2/cmd/adapter "$ld"
  if [ ! -f "$dir/crds/keda.sh_scaledobjects.yaml" ]; then
    local src
    src="$(cd "$here/keda" && go mod download -json "github.com/kedacore/keda/v2@$v" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    cp "$src"/config/crd/bases/*.yaml "$dir/crds/"
    chmod 0644 "$dir"/crds/*.yaml
  fi
  echo "$dir"
}

prometheus() {
  local v dir
  v="$(version prometheus)"
  dir="$root/prometheus-$v"
  mkdir -p "$dir"
  # Prometheus' module is v0.3xx.y for Prometheus 3.xx.y; --version prints it.
  local pv="${v#v0.}"
  pv="3.${pv#3}"
  local c=github.com/prometheus/common/version
  local ld="-X $c.Version=$pv -X $c.Revision=module-$v -X $c.Branch=module -X $c.BuildUser=kedastral"
  [ -x "$dir/prometheus" ] || build prometheus "$dir/prometheus" github.com/prometheus/prometheus/cmd/prometheus "$ld"
  [ -x "$dir/promtool" ] || build prometheus "$dir/promtool" github.com/prometheus/prometheus/cmd/promtool "$ld"
  echo "$dir"
}

thanos() {
  local v dir
  v="$(version thanos)"
  # Thanos converts Prometheus' labels.Labels to its own protobuf labels with
  # unsafe casts that hold only for the slice implementation: built without
  # the slicelabels tag (as its .promu.yml sets), its gRPC servers panic on
  # the first call. The tag is part of the cache key.
  dir="$root/thanos-$v-slicelabels"
  mkdir -p "$dir"
  # Thanos v0.42 needs Go 1.26.10; its wrapper module names toolchain
  # go1.26.11 (the project's own), which GOTOOLCHAIN=auto fetches.
  local c=github.com/prometheus/common/version
  local ld="-X $c.Version=${v#v} -X $c.Revision=module-$v -X $c.Branch=module -X $c.BuildUser=kedastral"
  [ -x "$dir/thanos" ] || build thanos "$dir/thanos" github.com/thanos-io/thanos/cmd/thanos "$ld" slicelabels
  echo "$dir"
}

case "${1:-kube}" in
kube) kube ;;
prometheus) prometheus ;;
thanos) thanos ;;
keda) keda ;;
*)
  echo "usage: $0 [kube|prometheus|thanos|keda]" >&2
  exit 2
  ;;
esac
