#!/usr/bin/env bash
# scripts/bench.sh BUILD_DIR: weir's benchmarks (what `make bench` runs).
#
# A scenario is one line "name | weir config | weir-loadgen arguments". For
# each scenario the script renders a copy of the config (the port 24299 is
# replaced by a free port, the path /tmp/weir-bench by a temp directory),
# starts BUILD_DIR/weir on it with its JSON logs going to a file, waits until
# the port accepts, samples weir's idle VmRSS, then runs BUILD_DIR/weir-loadgen
# BENCH_RUNS times for BENCH_DURATION seconds each while a sampler reads
# VmRSS from /proc/PID/status every 100 ms, reads VmHWM, stops weir with
# SIGTERM and waits for it. It prints a table of medians over the runs and
# writes it as markdown to BUILD_DIR/bench-results.md; every run's JSON goes
# to BUILD_DIR/bench-runs.jsonl.
#
# Environment:
#   BENCH_RUNS=3          runs per scenario (the table shows medians)
#   BENCH_DURATION=10     seconds per run
#   BENCH_ONLY=a,b        run only the named scenarios
#   BENCH_SCENARIOS=FILE  read scenarios from FILE (same line format) instead
#                         of the built-in list below
#   BENCH_KEEP=1          keep the temp directory (weir logs, rendered configs)
#
# Exit status: 0 when every run succeeded, 1 when a run failed or weir died,
# did not start or did not stop on SIGTERM, 2 on a usage error.
set -uo pipefail

# name        | config           | loadgen arguments (host, port, duration are added)
SCENARIOS_BUILTIN='
packed        | bench/null.conf  | --mode packed     --connections 2 --batch 1000 --record-size 450 --ack
forward       | bench/null.conf  | --mode forward    --connections 2 --batch 1000 --record-size 450 --ack
compressed    | bench/null.conf  | --mode compressed --connections 2 --batch 1000 --record-size 450 --ack
message       | bench/null.conf  | --mode message    --connections 2 --batch 1000 --record-size 450 --ack
buffer-null   | bench/buffer-null.conf       | --mode packed --connections 2 --batch 1000 --record-size 450 --ack
buffer-fsync  | bench/buffer-null-fsync.conf | --mode packed --connections 2 --batch 1000 --record-size 450 --ack
buffer-file   | bench/buffer-file.conf       | --mode packed --connections 2 --batch 1000 --record-size 450 --ack
enrich        | bench/enrich.conf            | --mode packed --connections 2 --batch 1000 --record-size 450 --ack
packed-64m    | bench/null-budget64.conf        | --mode packed --connections 2 --batch 1000 --record-size 450 --ack
buffer-null-64m | bench/buffer-null-budget64.conf | --mode packed --connections 2 --batch 1000 --record-size 450 --ack
'

usage() { echo "usage: $0 BUILD_DIR   (env: BENCH_RUNS BENCH_DURATION BENCH_ONLY BENCH_SCENARIOS BENCH_KEEP)" >&2; exit 2; }
[ $# -eq 1 ] || usage
BUILD_DIR=$(cd "$1" 2>/dev/null && pwd) || { echo "bench: no such build directory: $1" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2

WEIR=$BUILD_DIR/weir
LOADGEN=$BUILD_DIR/weir-loadgen
RUNS=${BENCH_RUNS:-3}
DURATION=${BENCH_DURATION:-10}
ONLY=${BENCH_ONLY:-}
RESULTS_MD=$BUILD_DIR/bench-results.md
RUNS_JSONL=$BUILD_DIR/bench-runs.jsonl

for b in "$WEIR" "$LOADGEN"; do
    [ -x "$b" ] || { echo "bench: $b is missing; run make first" >&2; exit 2; }
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "bench: BENCH_RUNS must be a positive integer" >&2; exit 2; }
[[ $DURATION =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "bench: BENCH_DURATION must be seconds" >&2; exit 2; }

if [ -n "${BENCH_SCENARIOS:-}" ]; then
    SCENARIOS=$(cat "$BENCH_SCENARIOS") || exit 2
else
    SCENARIOS=$SCENARIOS_BUILTIN
fi

TMP=$(mktemp -d /tmp/weir-bench.XXXXXX) || exit 1
WEIR_PID=
SAMPLER_PID=
FAILED=0

cleanup() {
    [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null
    if [ -n "$WEIR_PID" ] && kill -0 "$WEIR_PID" 2>/dev/null; then
        kill -TERM "$WEIR_PID" 2>/dev/null
        sleep 1
        kill -KILL "$WEIR_PID" 2>/dev/null
    fi
    if [ "${BENCH_KEEP:-0}" = 1 ] || [ "$FAILED" != 0 ]; then
        echo "bench: logs and rendered configs kept in $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'FAILED=1; exit 1' INT TERM

log() { echo "bench: $*" >&2; }

trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; s=${s%"${s##*[![:space:]]}"}; printf '%s' "$s"; }

# A TCP port on 127.0.0.1 that nothing listens on.
free_port() {
    local p i
    for i in $(seq 1 100); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# Connects without sending a byte (weir sees an empty connection, like a
# Fluentd transport heartbeat).
wait_port() {
    local port=$1 pid=$2 i
    for i in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# status_kb PID KEY: a "KEY: N kB" line of /proc/PID/status, 0 if absent.
status_kb() {
    local k v u
    while read -r k v u; do
        if [ "$k" = "$2:" ]; then
            echo "$v"
            return
        fi
    done <"/proc/$1/status" 2>/dev/null
    echo 0
}

# utime + stime of PID in clock ticks.
cpu_ticks() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    s=${s##*) }
    # shellcheck disable=SC2086
    set -- $s
    echo $((${12} + ${13}))
}

# Writes the highest VmRSS (kB) seen so far to $2, every 100 ms, until $1 exits.
rss_sampler() {
    local pid=$1 out=$2 max=0 k v u cur
    while [ -r "/proc/$pid/status" ]; do
        cur=0
        while read -r k v u; do
            if [ "$k" = VmRSS: ]; then
                cur=$v
                break
            fi
        done <"/proc/$pid/status" 2>/dev/null
        if [ "$cur" -gt "$max" ] 2>/dev/null; then
            max=$cur
            echo "$max" >"$out"
        fi
        sleep 0.1
    done
}

median() {
    printf '%s\n' "$@" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# jget JSON KEY: a scalar field of the loadgen's flat JSON object.
jget() { printf '%s' "$1" | sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p"; }

fmt_rate() { awk -v v="$1" 'BEGIN { if (v == "nan") print "-"; else if (v >= 1e6) printf "%.2fM", v / 1e6; else printf "%.0fk", v / 1e3 }'; }
fmt_num() { awk -v v="$1" -v d="$2" 'BEGIN { if (v == "nan") print "-"; else printf "%.*f", d, v }'; }
fmt_mb() { awk -v v="$1" 'BEGIN { printf "%.1f", v / 1024 }'; }

CPU_MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
[ -n "$CPU_MODEL" ] || CPU_MODEL=$(uname -m)
NPROC=$(nproc)
KERNEL=$(uname -r)
CLK_TCK=$(getconf CLK_TCK)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo "uncommitted")
WEIR_VERSION=$("$WEIR" --version 2>/dev/null | head -n 1)

log "machine: $NPROC cpus, $CPU_MODEL, Linux $KERNEL; $RUNS runs x ${DURATION}s per scenario; temp dir $TMP"
: >"$RUNS_JSONL"
ROWS=()
NOTES=()

run_scenario() {
    local name=$1 conf=$2 args=$3
    local dir=$TMP/$name port wpid rconf i rc out err json
    local -a largs
    read -r -a largs <<<"$args"
    mkdir -p "$dir"
    if [ ! -f "$conf" ]; then
        log "$name: config $conf not found"
        ROWS+=("| $name | config $conf not found | | | | | | | | | |")
        FAILED=1
        return
    fi
    port=$(free_port) || { log "$name: no free port"; FAILED=1; return; }
    rconf=$dir/$(basename "$conf")
    sed -e "s/\b24299\b/$port/g" -e "s#/tmp/weir-bench#$dir#g" "$conf" >"$rconf"

    "$WEIR" -c "$rconf" >"$dir/weir.log" 2>&1 &
    wpid=$!
    WEIR_PID=$wpid
    if ! wait_port "$port" "$wpid"; then
        if kill -0 "$wpid" 2>/dev/null; then
            log "$name: weir did not accept on 127.0.0.1:$port within 15 s; last log lines:"
        else
            wait "$wpid" 2>/dev/null
            log "$name: weir exited with status $? before accepting connections; last log lines:"
        fi
        tail -n 20 "$dir/weir.log" >&2
        ROWS+=("| $name | weir did not start | | | | | | | | | |")
        NOTES+=("$name: weir did not start (log: $dir/weir.log)")
        FAILED=1
        kill -KILL "$wpid" 2>/dev/null
        wait "$wpid" 2>/dev/null
        WEIR_PID=
        return
    fi
    sleep 1
    local idle_kb
    idle_kb=$(status_kb "$wpid" VmRSS)

    echo 0 >"$dir/rss.max"
    rss_sampler "$wpid" "$dir/rss.max" &
    SAMPLER_PID=$!
    local t0 t1 ticks0 ticks1
    ticks0=$(cpu_ticks "$wpid")
    t0=$(date +%s.%N)

    local -a rps mbps wmbps p50 p99 lcpu
    local ok=0 errors=0
    for i in $(seq 1 "$RUNS"); do
        out=$dir/run$i.json
        err=$dir/run$i.err
        "$LOADGEN" --host 127.0.0.1 --port "$port" --duration "$DURATION" "${largs[@]}" --json >"$out" 2>"$err"
        rc=$?
        json=$(head -n 1 "$out")
        if [ -n "$json" ]; then
            printf '%s\n' "$json" | sed "s/^{/{\"scenario\":\"$name\",\"run\":$i,\"rc\":$rc,/" >>"$RUNS_JSONL"
        fi
        if [ $rc -ne 0 ] || [ -z "$json" ]; then
            log "$name run $i/$RUNS: loadgen exit $rc"
            sed 's/^/    /' "$err" >&2
            [ $rc -eq 3 ] && NOTES+=("$name: run $i: the load generator was interrupted by a signal from another process")
            errors=$((errors + 1))
            FAILED=1
        else
            ok=$((ok + 1))
            rps+=("$(jget "$json" records_per_s)")
            mbps+=("$(jget "$json" payload_mb_per_s)")
            wmbps+=("$(jget "$json" wire_mb_per_s)")
            p50+=("$(jget "$json" ack_p50_ms)")
            p99+=("$(jget "$json" ack_p99_ms)")
            lcpu+=("$(awk -v c="$(jget "$json" loadgen_cpu_s)" -v e="$(jget "$json" elapsed_s)" 'BEGIN { printf "%.0f", (e > 0) ? 100 * c / e : 0 }')")
            log "$name run $i/$RUNS: $(fmt_rate "${rps[-1]}") rec/s, ${mbps[-1]} MB/s, ack p50 ${p50[-1]} ms p99 ${p99[-1]} ms"
        fi
        if ! kill -0 "$wpid" 2>/dev/null; then
            log "$name: weir exited during run $i; last log lines:"
            tail -n 20 "$dir/weir.log" >&2
            if grep -q -E '(SIGTERM|SIGINT) received' "$dir/weir.log"; then
                NOTES+=("$name: weir was stopped by a signal from another process during run $i (log: $dir/weir.log)")
            else
                NOTES+=("$name: weir died during run $i (log: $dir/weir.log)")
            fi
            FAILED=1
            break
        fi
        [ "$i" -lt "$RUNS" ] && sleep 0.5
    done
    t1=$(date +%s.%N)
    ticks1=$(cpu_ticks "$wpid")

    local hwm_kb peak_kb sampled_kb
    hwm_kb=$(status_kb "$wpid" VmHWM)
    kill "$SAMPLER_PID" 2>/dev/null
    wait "$SAMPLER_PID" 2>/dev/null
    SAMPLER_PID=
    sampled_kb=$(cat "$dir/rss.max" 2>/dev/null || echo 0)
    peak_kb=$hwm_kb
    [ "${sampled_kb:-0}" -gt "${peak_kb:-0}" ] && peak_kb=$sampled_kb
    local weir_cpu
    weir_cpu=$(awk -v a="$ticks0" -v b="$ticks1" -v hz="$CLK_TCK" -v t0="$t0" -v t1="$t1" \
        'BEGIN { w = t1 - t0; printf "%.0f", (w > 0 && b >= a) ? 100 * (b - a) / hz / w : 0 }')

    # Stop weir: SIGTERM, then up to 15 s for a clean exit.
    local wrc=
    if kill -0 "$wpid" 2>/dev/null; then
        kill -TERM "$wpid"
        for i in $(seq 1 150); do
            kill -0 "$wpid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$wpid" 2>/dev/null; then
            log "$name: weir still running 15 s after SIGTERM; killing it"
            NOTES+=("$name: weir did not exit within 15 s of SIGTERM")
            kill -KILL "$wpid" 2>/dev/null
            FAILED=1
        fi
    fi
    wait "$wpid" 2>/dev/null
    wrc=$?
    WEIR_PID=
    if [ "$wrc" -ne 0 ]; then
        NOTES+=("$name: weir exited with status $wrc after SIGTERM (log: $dir/weir.log)")
        FAILED=1
    fi
    local nerr nwarn
    nerr=$(grep -c '"level":"error"' "$dir/weir.log" 2>/dev/null)
    nwarn=$(grep -c '"level":"warn"' "$dir/weir.log" 2>/dev/null)
    if [ "${nerr:-0}" -gt 0 ] || [ "${nwarn:-0}" -gt 0 ]; then
        NOTES+=("$name: weir logged ${nerr:-0} error and ${nwarn:-0} warning lines, e.g. $(grep -m 1 -E '"level":"(error|warn)"' "$dir/weir.log" | cut -c 1-200)")
    fi

    ROWS+=("| $name | $(fmt_rate "$(median "${rps[@]}")") | $(fmt_num "$(median "${mbps[@]}")" 1) | $(fmt_num "$(median "${wmbps[@]}")" 1) | $(fmt_num "$(median "${p50[@]}")" 3) | $(fmt_num "$(median "${p99[@]}")" 3) | $(fmt_mb "$peak_kb") | $(fmt_mb "$idle_kb") | ${weir_cpu}% | $(fmt_num "$(median "${lcpu[@]}")" 0)% | $ok/$RUNS |")
}

while IFS= read -r line; do
    line=$(trim "${line%%#*}")
    [ -n "$line" ] || continue
    IFS='|' read -r name conf args <<<"$line"
    name=$(trim "$name")
    conf=$(trim "$conf")
    args=$(trim "$args")
    if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$name,"* ]]; then
        continue
    fi
    log "scenario $name: weir -c $conf; weir-loadgen $args"
    run_scenario "$name" "$conf" "$args"
done <<<"$SCENARIOS"

{
    echo "### weir benchmark results"
    echo
    echo "- machine: $NPROC CPUs ($CPU_MODEL), Linux $KERNEL; weir and the load generator share these CPUs"
    echo "- weir: ${WEIR_VERSION:-unknown version}, commit $COMMIT; $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "- $RUNS run(s) of ${DURATION} s per scenario; medians over the successful runs; MB/s = 10^6 bytes/s, RSS MB = MiB"
    echo "- CPU columns are % of one core (the machine has $((NPROC * 100))%)"
    echo
    echo "| scenario | records/s | payload MB/s | wire MB/s | ack p50 ms | ack p99 ms | weir peak RSS MB | weir idle RSS MB | weir CPU | loadgen CPU | runs ok |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for r in "${ROWS[@]}"; do echo "$r"; done
    if [ ${#NOTES[@]} -gt 0 ]; then
        echo
        for n in "${NOTES[@]}"; do echo "- $n"; done
    fi
} >"$RESULTS_MD"

echo
cat "$RESULTS_MD"
echo
log "results written to $RESULTS_MD (per-run JSON: $RUNS_JSONL)"
exit "$FAILED"
