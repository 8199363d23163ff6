#!/usr/bin/env bash
# Builds every libFuzzer target under test/fuzz/ with clang (ASan + UBSan)
# and runs each for SECONDS (default 60) on a copy of its seed corpus,
# FUZZ_JOBS (default 2) targets at a time. Exits non-zero when a target finds
# a crash, a leak or a timeout (the input is kept under build-fuzz/<target>/).
# FUZZ_ONLY=fwd_decode runs one target (a glob on the name after fuzz_).
# The library is compiled once (build-fuzz/obj) and linked into each target.
set -u
cd "$(dirname "$0")/.."
secs=${1:-60}
jobs=${FUZZ_JOBS:-2}
command -v clang >/dev/null || { apt-get install -y -qq clang >/dev/null 2>&1 || { echo "fuzz: clang is needed" >&2; exit 2; }; }
# the same sources and libraries as the Makefile's build (plugins in subdirectories included)
src=$(make -s --no-print-directory print-LIB_SRC)
libs=$(make -s --no-print-directory print-LDLIBS)
cflags="-g -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -D_GNU_SOURCE -DWEIR_VERSION=\"fuzz\" -I. -pthread \
  $(pkg-config --cflags $(make -s --no-print-directory print-PKGS))"
mkdir -p build-fuzz/obj
export cflags
# compile the library once, instrumented for coverage but without libFuzzer's main
if ! printf '%s\n' $src | xargs -P "$jobs" -I{} sh -c \
     'o=build-fuzz/obj/$(echo {} | tr / _).o; clang $cflags -fsanitize=fuzzer-no-link -c {} -o "$o"' \
     2>build-fuzz/obj/build.log; then
  echo "fuzz: the library does not build with clang (see build-fuzz/obj/build.log)"; exit 1
fi
objs=$(for s in $src; do echo "build-fuzz/obj/$(echo "$s" | tr / _).o"; done)

run_one() { # target.c -> prints one result line; exit status 0/1
  local t=$1 name short out rc runs
  name=$(basename "$t" .c); short=${name#fuzz_}
  out=build-fuzz/$name; mkdir -p "$out/corpus"
  if ! clang $cflags -fsanitize=fuzzer "$t" $objs -o "$out/$name" $libs 2>"$out/build.log"; then
    echo "fuzz: $name does not build (see $out/build.log)"; return 1
  fi
  [ -d "test/fuzz/corpus/$short" ] && cp -n test/fuzz/corpus/"$short"/* "$out/corpus/" 2>/dev/null
  (cd "$out" && ./"$name" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 corpus >run.log 2>&1)
  rc=$?
  runs=$(grep -oE 'Done [0-9]+ runs' "$out/run.log" | grep -oE '[0-9]+' || echo "?")
  if [ $rc -ne 0 ]; then
    # CI keeps only what is printed: the report's key lines and the input itself
    echo "fuzz: $name FAILED after ${secs}s (see $out/run.log)"
    grep -E '^==[0-9]+==(ERROR|WARNING)|^SUMMARY|^    #[0-3] |runtime error|ALARM|out-of-memory|Test unit written' \
      "$out/run.log" | head -n 24 | sed "s/^/fuzz: $name: /"
    local art
    for art in $(grep -oE 'Test unit written to [^ ]+' "$out/run.log" | awk '{print $5}'); do
      [ -f "$out/$art" ] || continue
      echo "fuzz: $name: input $(basename "$art") ($(stat -c %s "$out/$art") bytes, base64):"
      base64 -w 120 "$out/$art" | head -n 60 | sed "s/^/fuzz: $name: /"
    done
    return 1
  fi
  echo "fuzz: $name ok: $runs runs in ${secs}s"
}
export -f run_one
export secs objs libs

t0=$(date +%s)
results=$(ls test/fuzz/fuzz_${FUZZ_ONLY:-*}.c | xargs -P "$jobs" -I{} bash -c 'run_one {}')
echo "$results"
ran=$(echo "$results" | grep -cE '^fuzz: [a-z_]+ (ok|FAILED|does not build)')
fail=$(echo "$results" | grep -cE '^fuzz: [a-z_]+ (FAILED|does not build)')
echo "fuzz: $ran targets, $((ran - fail)) passed, $fail failed; ${secs}s each, $(( $(date +%s) - t0 ))s wall"
[ "$fail" -eq 0 ]
