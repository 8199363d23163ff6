#!/usr/bin/env bash
# Installs the tools test/integration/test_k8s.py uses to check k8s/:
#   kustomize            from the Go module proxy (go install), into
#                        ${WEIR_TEST_CACHE:-$HOME/.cache/weir-test}/k8s-tools/bin/kustomize
#   kubernetes-validate  from PyPI (bundles the Kubernetes JSON schemas, works
#                        offline; brings PyYAML), into the test venv
#                        ${WEIR_TEST_CACHE:-$HOME/.cache/weir-test}/venv
# Idempotent: a fast no-op when both are there at the pinned versions.
# Prints the kustomize path on success.
set -euo pipefail
kustomize_ver=${KUSTOMIZE_VERSION:-v5.8.1}
validate_ver=${KUBERNETES_VALIDATE_VERSION:-1.37.0}
cache=${WEIR_TEST_CACHE:-$HOME/.cache/weir-test}
dir=$cache/k8s-tools
bin=$dir/bin/kustomize-$kustomize_ver
venv=$cache/venv

if [ ! -x "$bin" ]; then
  command -v go >/dev/null || { echo "k8s-tools.sh: go is not installed (apt-get install golang-go)" >&2; exit 1; }
  mkdir -p "$dir/bin" "$dir/gobin"
  export GOPATH=$dir/gopath GOMODCACHE=$dir/gopath/pkg/mod GOCACHE=$dir/gocache
  export GOBIN=$dir/gobin GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local}
  export GOPROXY=${GOPROXY:-https://proxy.golang.org}
  # -p 2: the test machine has 2 cores shared with other builds.
  nice -n 10 go install -p 2 -trimpath -ldflags='-s -w' "sigs.k8s.io/kustomize/kustomize/v5@$kustomize_ver"
  mv "$GOBIN/kustomize" "$bin"
fi
ln -sf "kustomize-$kustomize_ver" "$dir/bin/kustomize"

if [ ! -x "$venv/bin/python" ]; then
  echo "k8s-tools.sh: no test venv at $venv (run scripts/install-deps.sh --test first)" >&2
  exit 1
fi
have=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("kubernetes-validate"))' 2>/dev/null || true)
if [ "$have" != "$validate_ver" ] || ! "$venv/bin/python" -c 'import yaml, kubernetes_validate' 2>/dev/null; then
  "$venv/bin/pip" install -q "kubernetes-validate==$validate_ver" >&2
fi
echo "$dir/bin/kustomize"
