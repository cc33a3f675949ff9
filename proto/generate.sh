#!/bin/sh
# Regenerates the Go code for externalscaler.proto with Debian's protoc and the
# protoc-gen-go / protoc-gen-go-grpc versions pinned by the tool directives in
# go.mod. Usage: proto/generate.sh [output directory, default proto/].
set -eu
cd "$(dirname "$0")/.."
out=${1:-proto}
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
go build -o "$bin/protoc-gen-go-grpc" google.golang.org/grpc/cmd/protoc-gen-go-grpc
PATH="$bin:$PATH" protoc -I proto \
	--go_out="$out" --go_opt=paths=source_relative \
	--go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
	externalscaler.proto
