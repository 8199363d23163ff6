#!/usr/bin/env bash
# Builds the Go test client (test/integration/clients/go: the official
# github.com/fluent/fluent-logger-golang, from the Go module proxy, pinned by
# its go.mod/go.sum) into
#   ${WEIR_TEST_CACHE:-$HOME/.cache/weir-test}/go-client/weir-go-client
# Idempotent: rebuilt only when the client's sources change.
# Prints the binary's path on success.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
src=$here/test/integration/clients/go
cache=${WEIR_TEST_CACHE:-$HOME/.cache/weir-test}
dir=$cache/go-client
sum=$(cat "$src/main.go" "$src/go.mod" "$src/go.sum" | sha256sum | cut -c1-16)
bin=$dir/weir-go-client-$sum

if [ ! -x "$bin" ]; then
  command -v go >/dev/null || { echo "go-client.sh: go is not installed (apt-get install golang-go)" >&2; exit 1; }
  mkdir -p "$dir"
  export GOPATH=$dir/gopath GOMODCACHE=$dir/gopath/pkg/mod GOCACHE=$dir/gocache
  export GOFLAGS=-mod=readonly GOTOOLCHAIN=${GOTOOLCHAIN:-local}
  (cd "$src" && go build -trimpath -o "$bin.tmp" .)
  mv "$bin.tmp" "$bin"
fi
ln -sf "$(basename "$bin")" "$dir/weir-go-client"
echo "$dir/weir-go-client"
