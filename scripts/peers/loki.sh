#!/usr/bin/env bash
# Builds the Grafana Loki single binary used by test/integration/test_loki.py
# and bench/loki.sh, from the Go module proxy only, into
#   ${WEIR_TEST_CACHE:-$HOME/.cache/weir-test}/loki/loki-<tag>
# Idempotent: a fast no-op when the binary for LOKI_TAG already exists.
#
# github.com/grafana/loki/v3 has `replace` directives in its go.mod, so
# `go install module@tag` refuses it. We build it from a small wrapper module
# that requires loki at the tag and repeats those replaces, except the
# relative `./pkg/push` one: the module zip leaves out that nested module, so
# the wrapper uses the pkg/push version loki's go.mod requires.
set -euo pipefail
tag=${LOKI_TAG:-v3.7.8}
cache=${WEIR_TEST_CACHE:-$HOME/.cache/weir-test}/loki
bin=$cache/loki-$tag
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
# Go >= 1.21 is needed; an older-than-required go (e.g. Debian's backports
# golang-1.2x) fetches the go version loki's go.mod names from the module
# proxy itself (GOTOOLCHAIN=auto, the default).
command -v go >/dev/null || { echo "loki.sh: go is not installed (Go >= 1.21 needed; Debian: golang-1.2x from backports)" >&2; exit 1; }
mkdir -p "$cache/src-$tag"
export GOMODCACHE=$cache/gomod GOCACHE=$cache/gocache GOFLAGS=-mod=mod
export GOPROXY=${GOPROXY:-https://proxy.golang.org}
src=$cache/src-$tag
go mod download -x "github.com/grafana/loki/v3@$tag" >/dev/null 2>&1 || go mod download "github.com/grafana/loki/v3@$tag"
lokidir=$(go mod download -json "github.com/grafana/loki/v3@$tag" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -f "$lokidir/go.mod" ] || { echo "loki.sh: module download failed for $tag" >&2; exit 1; }
goline=$(grep -m1 '^go ' "$lokidir/go.mod")
{
  echo "module weir.test/lokipeer"
  echo
  echo "$goline"
  echo
  echo "require github.com/grafana/loki/v3 $tag"
  echo
  # Repeat loki's replace/exclude directives (single-line form in its go.mod).
  grep -E '^(replace|exclude) ' "$lokidir/go.mod" | grep -v '=> \./pkg/push' || true
} > "$src/go.mod"
cat > "$src/tools.go" <<'GO'
//go:build tools

package lokipeer

import _ "github.com/grafana/loki/v3/cmd/loki"
GO
cd "$src"
# -p 2: the test machine has 2 cores shared with other builds.
nice -n 10 go build -p "${LOKI_BUILD_P:-2}" -trimpath -ldflags='-s -w' -o "$bin.tmp" github.com/grafana/loki/v3/cmd/loki
mv "$bin.tmp" "$bin"
echo "$bin"
