#!/usr/bin/env bash
# Unpacks Debian's nginx binary (package `nginx`, never installed: no
# service is started, nothing listens on port 80) into
# ${WEIR_TEST_CACHE:-$HOME/.cache/weir-test}/nginx. The tests run it as the
# gateway in front of Loki (basic auth, bearer token, 502 while the upstream
# is down, as Loki's own docs deploy it) and Elasticsearch (API key check,
# TLS termination requiring client certificates).
# Idempotent: a fast no-op when the binary is there.
set -euo pipefail
cache=${WEIR_TEST_CACHE:-$HOME/.cache/weir-test}/nginx
bin="$cache/root/usr/sbin/nginx"
if [ -x "$bin" ] && "$bin" -v >/dev/null 2>&1; then
  exit 0
fi
command -v apt-get >/dev/null || { echo "nginx.sh: apt-get is required (Debian)" >&2; exit 1; }
rm -rf "$cache"
mkdir -p "$cache/deb"
cd "$cache/deb"
chmod 777 . # apt's sandbox user writes the download here
if ! apt-get download -qq nginx >/dev/null 2>&1; then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq
  apt-get download -qq nginx >/dev/null
fi
dpkg-deb -x nginx_*.deb "$cache/root"
"$bin" -v 2>&1 | head -1 >&2
