#!/usr/bin/env bash
# bench/kafka.sh [BUILD_DIR]: weir's Kafka benchmarks against a real broker
# (Apache Kafka, KRaft, from the Maven Central jars of scripts/peers/kafka.sh),
# everything on 127.0.0.1 of this machine.
#
#   1. produce: weir-loadgen -> forward -> file buffer -> kafka2 -> broker.
#      Records/s = records / (time from the first request until the topic's
#      end offsets add up to every record), after a 20000-record warm-up. CPU of the broker JVM and of weir
#      over that window (utime+stime from /proc, % of one core).
#   2. consume: broker -> weir (<source @type kafka>, one consumer) -> file
#      output. Records/s = records / (time from the first record written
#      until the output file holds every record, warm-up included).
#
# Environment: KAFKA_BENCH_RECORDS (default 2000000), KAFKA_BENCH_PARTITIONS (4),
# KAFKA_BENCH_CODEC (none), KAFKA_BENCH_RECORD_SIZE (450), KAFKA_BENCH_FLUSH_THREADS (8), KAFKA_BENCH_RDKAFKA
# (the output's rdkafka_options, default {"linger.ms":"10","batch.size":"1000000"}), KAFKA_BENCH_CONSUME=0
# skips phase 2, BENCH_KEEP=1 keeps
# the temp directory. Exit 0 when both phases delivered every record.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=$(cd "${1:-$ROOT/build}" && pwd) || exit 2
WEIR=$BUILD_DIR/weir
LOADGEN=$BUILD_DIR/weir-loadgen
N=${KAFKA_BENCH_RECORDS:-2000000}
PARTS=${KAFKA_BENCH_PARTITIONS:-4}
CODEC=${KAFKA_BENCH_CODEC:-none}
RSIZE=${KAFKA_BENCH_RECORD_SIZE:-450}
RDOPTS=${KAFKA_BENCH_RDKAFKA:-'{"linger.ms":"10","batch.size":"1000000"}'}
for b in "$WEIR" "$LOADGEN"; do [ -x "$b" ] || { echo "kafka bench: $b missing; run make" >&2; exit 2; }; done
command -v kcat >/dev/null || { echo "kafka bench: kcat missing (apt-get install kcat)" >&2; exit 2; }
"$ROOT/scripts/peers/kafka.sh" || exit 2
LIBS=${WEIR_TEST_CACHE:-$HOME/.cache/weir-test}/kafka/libs

T=$(mktemp -d /tmp/weir-kafka-bench.XXXXXX)
BROKER_PID=""; WEIR_PID=""
cleanup() {
    [ -n "$WEIR_PID" ] && kill "$WEIR_PID" 2>/dev/null && wait "$WEIR_PID" 2>/dev/null
    [ -n "$BROKER_PID" ] && kill -- -"$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null
    [ "${BENCH_KEEP:-0}" = 1 ] && echo "kept $T" >&2 || rm -rf "$T"
}
trap cleanup EXIT
log() { echo "kafka bench: $*" >&2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
HZ=$(getconf CLK_TCK)

# ---- broker
BP=$(free_port); CP=$(free_port); B=127.0.0.1:$BP
cat > "$T/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CP
listeners=PLAINTEXT://127.0.0.1:$BP,CONTROLLER://127.0.0.1:$CP
advertised.listeners=PLAINTEXT://127.0.0.1:$BP
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$T/data
num.partitions=$PARTS
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
printf 'log4j.rootLogger=WARN, f\nlog4j.appender.f=org.apache.log4j.FileAppender\nlog4j.appender.f.File=%s/broker.log\nlog4j.appender.f.layout=org.apache.log4j.PatternLayout\nlog4j.appender.f.layout.ConversionPattern=[%%d] %%p %%m%%n\n' "$T" > "$T/log4j.properties"
JOPTS=(-Xms512m -Xmx1g -XX:+UseG1GC -Dlog4j.configuration="file:$T/log4j.properties" -cp "$LIBS/*")
java "${JOPTS[@]}" kafka.tools.StorageTool format -t weirbenchclusterid001A -c "$T/server.properties" >/dev/null || exit 1
setsid java "${JOPTS[@]}" kafka.Kafka "$T/server.properties" >"$T/broker.out" 2>&1 &
BROKER_PID=$!
for _ in $(seq 200); do kcat -b "$B" -L -m 2 >/dev/null 2>&1 && break; sleep 0.3; done
kcat -b "$B" -L -m 2 >/dev/null 2>&1 || { log "broker did not start"; tail "$T/broker.out" >&2; exit 1; }
# the JVM of the broker: the java child of setsid
BJ=$(pgrep -f "kafka.Kafka $T/server.properties" | head -1)
java "${JOPTS[@]}" org.apache.kafka.tools.TopicCommand --bootstrap-server "$B" --create --topic bench \
    --partitions "$PARTS" --replication-factor 1 >/dev/null || exit 1

# the sum of the topic's end offsets (one kcat run for every partition)
QARGS=()
for ((p = 0; p < PARTS; p++)); do QARGS+=(-t "bench:$p:-1"); done
end_offsets() {
    kcat -b "$B" -Q "${QARGS[@]}" 2>/dev/null | awk '/offset/ { s += $NF } END { print s + 0 }'
}

# ---- 1. produce: forward -> file buffer -> kafka2
FP=$(free_port)
cat > "$T/produce.conf" <<EOF
<source>
  @type forward
  port $FP
  bind 127.0.0.1
</source>
<match **>
  @type kafka2
  brokers $B
  default_topic bench
  compression_codec $CODEC
  rdkafka_options $RDOPTS
  <buffer>
    @type file
    path $T/pbuf
    flush_interval 0.2s
    flush_thread_count ${KAFKA_BENCH_FLUSH_THREADS:-8}
    chunk_limit_size 8m
    total_limit_size 8g
    overflow_action block
  </buffer>
</match>
EOF
"$WEIR" -c "$T/produce.conf" 2>"$T/produce.log" &
WEIR_PID=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$FP) 2>/dev/null && break; sleep 0.1; done
# warm-up (producer id, JIT of the broker): 20000 records, not counted
W=20000
"$LOADGEN" --port "$FP" --records "$W" --mode packed --connections 2 --batch 1000 --record-size "$RSIZE" --ack \
    >/dev/null || log "warm-up loadgen exit $?"
for _ in $(seq 240); do [ "$(end_offsets)" -ge "$W" ] && break; sleep 0.25; done
b0=$(cpu_ticks "$BJ"); w0=$(cpu_ticks "$WEIR_PID"); t0=$(now)
"$LOADGEN" --port "$FP" --records "$N" --mode packed --connections 2 --batch 1000 --record-size "$RSIZE" --ack \
    --json > "$T/loadgen.json" || log "loadgen exit $?"
t_in=$(now)
got=0
for _ in $(seq 2400); do got=$(($(end_offsets) - W)); [ "$got" -ge "$N" ] && break; sleep 0.2; done
t1=$(now); b1=$(cpu_ticks "$BJ"); w1=$(cpu_ticks "$WEIR_PID")
kill "$WEIR_PID"; wait "$WEIR_PID"; WEIR_PID=""
awk -v n="$N" -v got="$got" -v t0="$t0" -v ti="$t_in" -v t1="$t1" -v b="$((b1 - b0))" -v w="$((w1 - w0))" -v hz="$HZ" \
    -v parts="$PARTS" -v codec="$CODEC" -v rs="$RSIZE" 'BEGIN {
    el = t1 - t0;
    printf "produce  forward -> file buffer -> kafka2 (%d partitions, codec %s, %d-byte records): %d/%d records in Kafka in %.2fs = %.0f records/s (ingest acked %.0f records/s); CPU over the run: broker %.0f%%, weir %.0f%% of one core\n",
        parts, codec, rs, got, n, el, got / el, n / (ti - t0), 100 * b / hz / el, 100 * w / hz / el }'
[ "$got" -eq "$N" ] || { log "produce: only $got of $N records reached Kafka"; exit 1; }

[ "${KAFKA_BENCH_CONSUME:-1}" = 1 ] || exit 0
# ---- 2. consume: kafka -> weir -> file
cat > "$T/consume.conf" <<EOF
<source>
  @type kafka
  brokers $B
  topics bench
  consumer_group bench
  format json
</source>
<match **>
  @type file
  path $T/out/records
  append true
  <format>
    @type json
  </format>
  <buffer>
    @type memory
    flush_interval 0.2s
    chunk_limit_size 8m
    total_limit_size 1g
    overflow_action block
  </buffer>
</match>
EOF
"$WEIR" -c "$T/consume.conf" 2>"$T/consume.log" &
WEIR_PID=$!
# the clock starts with the first record written (after the group join)
for _ in $(seq 600); do [ -s "$(ls "$T"/out/records* 2>/dev/null | head -1)" ] && break; sleep 0.05; done
t0=$(now); b0=$(cpu_ticks "$BJ"); w0=$(cpu_ticks "$WEIR_PID")
NT=$((N + W))
lines=0
for _ in $(seq 4800); do
    sleep 0.2
    lines=$(cat "$T"/out/records* 2>/dev/null | wc -l)
    [ "$lines" -ge "$NT" ] && break
done
t1=$(now); b1=$(cpu_ticks "$BJ"); w1=$(cpu_ticks "$WEIR_PID")
kill "$WEIR_PID"; wait "$WEIR_PID"; WEIR_PID=""
awk -v n="$NT" -v got="$lines" -v t0="$t0" -v t1="$t1" -v b="$((b1 - b0))" -v w="$((w1 - w0))" -v hz="$HZ" 'BEGIN {
    el = t1 - t0;
    printf "consume  kafka -> weir (1 consumer) -> file: %d/%d records in %.2fs = %.0f records/s (from the first record written); CPU: broker %.0f%%, weir %.0f%% of one core\n",
        got, n, el, got / el, 100 * b / hz / el, 100 * w / hz / el }'
[ "$lines" -ge "$NT" ] || { log "consume: only $lines of $NT records written"; exit 1; }
exit 0
