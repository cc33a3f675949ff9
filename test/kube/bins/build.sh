#!/usr/bin/env bash
# Builds the kube-apiserver and etcd the Kubernetes tests (test/kube) run against,
# from the Go module proxy, into a cache directory keyed by their versions, so only
# the first run on a machine pays for the build (about 7 minutes of CPU on 2 cores).
#
#   test/kube/bins/build.sh            # prints the directory holding both binaries
#
# KEDASTRAL_KUBE_BIN_CACHE overrides the cache root (default ~/.cache/kedastral).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
k8s="$(awk '$1=="require"{print $3}' "$here/apiserver/go.mod")"
etcd="$(awk '$1=="require"{print $3}' "$here/etcd/go.mod")"
dir="${KEDASTRAL_KUBE_BIN_CACHE:-$HOME/.cache/kedastral}/kube-$k8s-etcd-$etcd"
mkdir -p "$dir"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
if [ ! -x "$dir/kube-apiserver" ]; then
  echo "building kube-apiserver $k8s into $dir (once per machine)" >&2
  # The version the API server reports (/version, helm's kubeVersion checks)
  # comes from ldflags, as in Kubernetes' own build.
  minor="${k8s#v1.}"; minor="${minor%%.*}"
  v=k8s.io/component-base/version
  (cd "$here/apiserver" && go build -trimpath \
    -ldflags="-s -X $v.gitVersion=$k8s -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean" \
    -o "$dir/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver)
  mv "$dir/kube-apiserver.tmp" "$dir/kube-apiserver"
fi
if [ ! -x "$dir/etcd" ]; then
  echo "building etcd $etcd into $dir (once per machine)" >&2
  (cd "$here/etcd" && go build -trimpath -ldflags=-s -o "$dir/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$dir/etcd.tmp" "$dir/etcd"
fi
echo "$dir"
