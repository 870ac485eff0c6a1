#!/bin/bash
# benchmarks/fuzz.sh - builds the libFuzzer targets (tests/fuzz/, clang with
# ASan + UBSan, in their own build directory) and runs each for a fixed number
# of executions from its seed corpus (tests/fuzz/corpus/<target>/), then prints
# one line per target: executions, coverage (libFuzzer's cov/ft), corpus size,
# findings and seconds. Any finding (a sanitizer report, a crash, an uncaught
# exception other than simclr::Error, a timeout, running out of memory) is
# kept in $BUILD_DIR/findings/<target>/ and makes the exit status 1.
#
#   benchmarks/fuzz.sh [RUNS] [TARGET ...]     RUNS default 100000; targets:
#       config idx cifar image npy safetensors checkpoint packed (default: all)
#   env: BUILD_DIR (default build-fuzz), CXX (default clang++), JOBS (default 2),
#        FUZZ_FLAGS (extra libFuzzer flags, e.g. -max_total_time=60)
# Reproduce a finding: $BUILD_DIR/fuzz_<target> $BUILD_DIR/findings/<target>/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-100000}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(config idx cifar image npy safetensors checkpoint packed)
BUILD_DIR=${BUILD_DIR:-build-fuzz}
CXX_BIN=${CXX:-clang++}
CC_BIN=${CXX_BIN/clang++/clang}
JOBS=${JOBS:-2}

command -v "$CXX_BIN" > /dev/null || { echo "SKIPPED: no $CXX_BIN (the fuzz targets need clang with libFuzzer)"; exit 0; }
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' > /tmp/simclr-fuzz-probe.$$.cpp
if ! "$CXX_BIN" -fsanitize=fuzzer /tmp/simclr-fuzz-probe.$$.cpp -o /tmp/simclr-fuzz-probe.$$ 2> /dev/null; then
  rm -f /tmp/simclr-fuzz-probe.$$*
  echo "SKIPPED: $CXX_BIN cannot link -fsanitize=fuzzer (no libclang_rt.fuzzer)"
  exit 0
fi
rm -f /tmp/simclr-fuzz-probe.$$*

launcher=()
command -v ccache > /dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S tests/fuzz -B "$BUILD_DIR" -DCMAKE_CXX_COMPILER="$CXX_BIN" -DCMAKE_C_COMPILER="$CC_BIN" "${launcher[@]}" > "$BUILD_DIR.configure.log" 2>&1 ||
    { cat "$BUILD_DIR.configure.log"; exit 1; }
fi
targets_built=()
for t in "${TARGETS[@]}"; do targets_built+=(--target "fuzz_$t"); done
cmake --build "$BUILD_DIR" -j"$JOBS" "${targets_built[@]}" > "$BUILD_DIR/build.log" 2>&1 || { tail -40 "$BUILD_DIR/build.log"; exit 1; }

status=0
printf "%-12s %10s %8s %8s %8s %9s %8s\n" target execs cov ft corpus findings seconds
for t in "${TARGETS[@]}"; do
  work="$BUILD_DIR/corpus/$t" found="$BUILD_DIR/findings/$t" log="$BUILD_DIR/fuzz_$t.log"
  mkdir -p "$work" "$found" "$BUILD_DIR/tmp"
  start=$(date +%s.%N)
  # -fork=0: one process; the work corpus first (new inputs go there), the seeds second (read only)
  set +e
  FUZZ_TMP="$BUILD_DIR/tmp" "$BUILD_DIR/fuzz_$t" -runs="$RUNS" -max_len=65536 -timeout=20 -rss_limit_mb=2560 \
    -malloc_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$found/" ${FUZZ_FLAGS:-} \
    "$work" "tests/fuzz/corpus/$t" > "$log" 2>&1
  rc=$?
  set -e
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(echo "$last" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*' || echo "?")
  ft=$(echo "$last" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*' || echo "?")
  corp=$(echo "$last" | grep -o 'corp: [0-9]*' | grep -o '[0-9]*' || echo "?")
  nfound=$(find "$found" -type f | wc -l)
  printf "%-12s %10s %8s %8s %8s %9s %8.1f\n" "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$nfound" "$secs"
  if [ $rc -ne 0 ] || [ "$nfound" -ne 0 ]; then
    status=1
    echo "  finding (exit $rc): $log"
    grep -E 'ERROR|SUMMARY|terminate|what\(\)' "$log" | head -5 | sed 's/^/    /'
  fi
done
exit $status
