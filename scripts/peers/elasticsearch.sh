#!/usr/bin/env bash
# Fetches the Elasticsearch node the tests and bench/elasticsearch.sh run:
# Maven Central's org.elasticsearch.distribution.integ-test-zip:elasticsearch
# (server + modules incl. x-pack-core/x-pack-security, no bundled JDK; runs
# on the machine's Java 17), checked against Maven's .sha1, unpacked under
#   ${WEIR_TEST_CACHE:-$HOME/.cache/weir-test}/elasticsearch/elasticsearch-<version>
# Idempotent: a fast no-op when that directory is complete. Prints its path.
set -euo pipefail
ver=${WEIR_ES_VERSION:-8.19.4}
cache=${WEIR_TEST_CACHE:-$HOME/.cache/weir-test}
dir=$cache/elasticsearch
home=$dir/elasticsearch-$ver

if [ ! -f "$home/.complete" ]; then
  command -v java >/dev/null || { echo "elasticsearch.sh: java is not installed (apt-get install openjdk-17-jre-headless)" >&2; exit 1; }
  mkdir -p "$dir"
  url=https://repo1.maven.org/maven2/org/elasticsearch/distribution/integ-test-zip/elasticsearch/$ver/elasticsearch-$ver.zip
  zip=$dir/elasticsearch-$ver.zip
  tmp=$(mktemp -d "$dir/.fetch.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  curl -sSfL --retry 3 -o "$tmp/es.zip" "$url"
  want=$(curl -sSfL --retry 3 "$url.sha1" | cut -c1-40)
  have=$(sha1sum "$tmp/es.zip" | cut -c1-40)
  [ "$want" = "$have" ] || { echo "elasticsearch.sh: sha1 mismatch for $url ($have != $want)" >&2; exit 1; }
  (cd "$tmp" && unzip -q es.zip)
  rm -rf "$home"
  mv "$tmp/elasticsearch-$ver" "$home"
  # the node runs as an unprivileged user (Elasticsearch refuses root): let it read everything
  chmod -R a+rX "$home"
  touch "$home/.complete"
  rm -f "$zip"
fi
echo "$home"
