#!/usr/bin/env bash
# Installs what weir needs to build (and, with --test, to test) when missing.
# Idempotent: a second run on a ready machine does nothing but check.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

build_pkgs="build-essential pkg-config libevent-dev libmsgpack-dev libjansson-dev
  libssl-dev zlib1g-dev libzstd-dev libcurl4-openssl-dev libpcre2-dev librdkafka-dev libsnappy-dev"
test_pkgs="libcmocka-dev python3 python3-pip nodejs npm unzip openjdk-17-jdk-headless maven kcat
  libsqlite3-0 libssl3 libyaml-0-2
  ruby ruby-msgpack ruby-yajl ruby-oj ruby-cool.io ruby-http-parser.rb ruby-sigdump ruby-tzinfo
  ruby-strptime ruby-webrick"

missing=()
for p in $build_pkgs $( [ $want_test = 1 ] && echo $test_pkgs ); do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node/python may come from elsewhere than Debian (pyenv, nodesource): accept them.
if [ ${#missing[@]} -gt 0 ]; then
  filtered=()
  for p in "${missing[@]}"; do
    case "$p" in
      python3) command -v python3 >/dev/null || filtered+=("$p") ;;
      python3-pip) python3 -m pip --version >/dev/null 2>&1 || filtered+=("$p") ;;
      nodejs) command -v node >/dev/null || filtered+=("$p") ;;
      npm) command -v npm >/dev/null || filtered+=("$p") ;;
      *) filtered+=("$p") ;;
    esac
  done
  missing=("${filtered[@]+"${filtered[@]}"}")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ $want_test = 1 ]; then
  cache=${WEIR_TEST_CACHE:-$HOME/.cache/weir-test}
  mkdir -p "$cache"
  # Python test tools (pytest, fluent-logger, msgpack) in a venv outside the repo.
  if [ ! -x "$cache/venv/bin/python" ] || ! "$cache/venv/bin/python" -c 'import pytest, fluent, msgpack, zstandard' 2>/dev/null; then
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
      SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
    fi
    rm -rf "$cache/venv"
    python3 -m venv "$cache/venv"
    "$cache/venv/bin/pip" install -q --upgrade pip >/dev/null
    "$cache/venv/bin/pip" install -q -r "$here/test/integration/requirements.txt"
  fi
  # Node test client (@fluent-org/logger) installed outside the repo.
  if [ ! -d "$cache/node/node_modules/@fluent-org/logger" ] || \
     ! cmp -s "$here/test/integration/package.json" "$cache/node/package.json"; then
    mkdir -p "$cache/node"
    cp "$here/test/integration/package.json" "$cache/node/package.json"
    (cd "$cache/node" && npm install --silent --no-audit --no-fund >/dev/null)
  fi
  # the Go test client: fluent-logger-golang from the Go module proxy
  "$here/scripts/peers/go-client.sh" >/dev/null
  # Grafana Loki (built from the Go module proxy; needs go >= loki's go.mod version)
  "$here/scripts/peers/loki.sh" >/dev/null
  # Elasticsearch node (Maven Central integ-test-zip; needs java and unzip)
  "$here/scripts/peers/elasticsearch.sh" >/dev/null
  # kustomize (Go module proxy) and kubernetes-validate + PyYAML (PyPI) for test_k8s.py
  "$here/scripts/peers/k8s-tools.sh" >/dev/null
  # Apache Kafka broker jars (Maven Central, KRaft mode; needs java and maven)
  "$here/scripts/peers/kafka.sh" >/dev/null
  # nginx (Debian's package, unpacked, not installed): the auth gateway in front of Loki
  "$here/scripts/peers/nginx.sh" >/dev/null
fi
