#!/usr/bin/env bash
# Builds every libFuzzer target under test/fuzz/ with clang (ASan + UBSan)
# and runs each for SECONDS on a copy of its seed corpus. Exits non-zero
# when a target finds a crash, a leak or a timeout (the input is kept under
# build-fuzz/<target>/).
set -u
cd "$(dirname "$0")/.."
secs=${1:-60}
command -v clang >/dev/null || { apt-get install -y -qq clang >/dev/null 2>&1 || { echo "fuzz: clang is needed" >&2; exit 2; }; }
pkgs="libpcre2-8 zlib libzstd libcrypto msgpack"
src=$(ls aggregator/*.c forward-protocol/*.c outputs/*.c config/*.c buffer/*.c | grep -v -e aggregator/main.c)
flags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -D_GNU_SOURCE -DWEIR_VERSION=\"fuzz\" -I. -pthread"
fail=0; ran=0
for t in test/fuzz/fuzz_*.c; do
  name=$(basename "$t" .c); short=${name#fuzz_}
  out=build-fuzz/$name; mkdir -p "$out/corpus"
  if ! clang $flags $(pkg-config --cflags $pkgs) "$t" $src -o "$out/$name" \
       $(pkg-config --libs $pkgs libevent libevent_pthreads jansson libssl) -lm 2>"$out/build.log"; then
    echo "fuzz: $name does not build (see $out/build.log)"; fail=1; continue
  fi
  [ -d "test/fuzz/corpus/$short" ] && cp -n test/fuzz/corpus/"$short"/* "$out/corpus/" 2>/dev/null
  (cd "$out" && ./"$name" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 corpus >run.log 2>&1)
  rc=$?; ran=$((ran+1))
  runs=$(grep -oE 'Done [0-9]+ runs' "$out/run.log" | grep -oE '[0-9]+' || echo "?")
  if [ $rc -ne 0 ]; then echo "fuzz: $name FAILED after ${secs}s (see $out/run.log)"; fail=1
  else echo "fuzz: $name ok: $runs runs in ${secs}s"; fi
done
echo "fuzz: $ran targets, $((ran - fail)) passed, $fail failed"
exit $fail
