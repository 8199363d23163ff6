#!/usr/bin/env bash
# Fetches Apache Kafka (broker, KRaft mode) from Maven Central into
# ${WEIR_TEST_CACHE:-$HOME/.cache/weir-test}/kafka/libs via a throwaway pom.
# Idempotent: a fast no-op when the jars of this version are already there.
set -euo pipefail
cache=${WEIR_TEST_CACHE:-$HOME/.cache/weir-test}/kafka
version=${KAFKA_VERSION:-3.9.1}
stamp="$cache/libs/.version"
recipe="$version+tools+reload4j"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$recipe" ]; then
  exit 0
fi
command -v mvn >/dev/null || { echo "kafka.sh: mvn (Debian package maven) is required" >&2; exit 1; }
command -v java >/dev/null || { echo "kafka.sh: java (Debian package default-jre-headless) is required" >&2; exit 1; }
mkdir -p "$cache"
cat > "$cache/pom.xml" <<POM
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>weir.test</groupId>
  <artifactId>kafka-peer</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$version</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>$version</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-reload4j</artifactId>
      <version>1.7.36</version>
    </dependency>
  </dependencies>
</project>
POM
rm -rf "$cache/libs"
(cd "$cache" && mvn -q -B -Dmaven.repo.local="$cache/m2" \
   dependency:copy-dependencies -DoutputDirectory="$cache/libs" -DincludeScope=runtime)
echo "$recipe" > "$stamp"
