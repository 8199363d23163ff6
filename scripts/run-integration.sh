#!/usr/bin/env bash
# Runs weir's integration tests (test/integration, pytest) against WEIR_BIN.
#   WEIR_BIN         weir binary to test (default: build/weir); made absolute
#   WEIR_TEST_CACHE  where scripts/install-deps.sh --test put the venv and node
#                    modules (default: ~/.cache/weir-test)
# Extra arguments go to pytest (e.g. -k ack, -x). The last line printed is
# pytest's summary line; the exit code is pytest's.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${WEIR_TEST_CACHE:-$HOME/.cache/weir-test}

bin=${WEIR_BIN:-$here/build/weir}
case "$bin" in /*) ;; *) bin=$PWD/$bin ;; esac
export WEIR_BIN=$bin

if [ ! -x "$cache/venv/bin/python" ] || [ ! -d "$cache/node/node_modules/@fluent-org/logger" ]; then
  echo "run-integration: test tools missing in $cache, running scripts/install-deps.sh --test" >&2
  "$here/scripts/install-deps.sh" --test >&2 || { echo "run-integration: install-deps failed" >&2; exit 2; }
fi

export NODE_PATH=$cache/node/node_modules
export PYTHONDONTWRITEBYTECODE=1
cd "$here"
"$cache/venv/bin/python" -m pytest -q -p no:cacheprovider test/integration "$@"
exit $?
