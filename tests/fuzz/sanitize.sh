#!/bin/bash
# tests/fuzz/sanitize.sh - builds sanitize_tests (tests/fuzz/CMakeLists.txt: a
# chosen subset of the unit tests, clang -O1 with ASan +
# UBSan, no nvcc) in the fuzz build directory, reusing the fuzz targets'
# instrumented reader objects, and runs it. Any sanitizer report stops the
# test binary with a non-zero status (UBSan: -fno-sanitize-recover=all and
# halt_on_error; ASan halts on its first report; LeakSanitizer at exit), so
# the script, and the ctest entry that runs it, fail.
#
#   tests/fuzz/sanitize.sh [CATCH ARGS ...]     default: the tags in SAN_TAGS below
#   env: BUILD_DIR (default build-fuzz), CXX (default clang++), JOBS (default 2)
# The subset and why it was chosen: docs/checkpoint.md, "Sanitizers".
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${BUILD_DIR:-build-fuzz}
CXX_BIN=${CXX:-clang++}
CC_BIN=${CXX_BIN/clang++/clang}
JOBS=${JOBS:-2}
command -v "$CXX_BIN" > /dev/null || { echo "SKIPPED: no $CXX_BIN (the sanitizer build needs clang)"; exit 0; }
launcher=()
command -v ccache > /dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
mkdir -p "$BUILD_DIR"
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S tests/fuzz -B "$BUILD_DIR" -DCMAKE_CXX_COMPILER="$CXX_BIN" -DCMAKE_C_COMPILER="$CC_BIN" "${launcher[@]}" \
    > "$BUILD_DIR.configure.log" 2>&1 || { cat "$BUILD_DIR.configure.log"; exit 1; }
fi
targets=$(cmake --build "$BUILD_DIR" --target help 2> /dev/null || true)
if ! grep -qw sanitize_tests <<< "$targets"; then
  echo "SKIPPED: sanitize_tests is not configured (needs Catch2)"
  exit 0
fi
start=$(date +%s)
cmake --build "$BUILD_DIR" -j"$JOBS" --target sanitize_tests > "$BUILD_DIR/sanitize_build.log" 2>&1 ||
  { tail -40 "$BUILD_DIR/sanitize_build.log"; exit 1; }
built=$(date +%s)
echo "sanitize_tests built in $((built - start)) s"
# the readers, checkpoints, files and locks, tensors and autograd, the op table
# (less its coverage test, which expects the CUDA and emulator tables this build has not)
SAN_TAGS=${SAN_TAGS:-'[reliability],[checkpoint],[data],[tensor],[autograd],[npy],[param],[config],[ops],[optable]~"*every op of the enum has rows*"'}
[ $# -gt 0 ] && SAN_TAGS="$*"
mkdir -p "$BUILD_DIR/test_tmp"
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=0:print_summary=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:print_summary=1}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
status=0
"$BUILD_DIR/sanitize_tests" "$SAN_TAGS" --warn NoTests || status=$?
echo "sanitize_tests ran in $(( $(date +%s) - built )) s (exit $status)"
exit $status
