#!/bin/bash
# tests/fuzz/sanitize_emu.sh - the kernel emulator's tests (kernel_emu_tests:
# our CUDA kernels run on the CPU) under AddressSanitizer + UBSan, in both
# thread orders. Debian's clang 14 cannot compile the emulator (see
# docs/checkpoint.md, "Sanitizers"), so this is a GCC build of the main
# project with -DSIMCLR_SANITIZE=ON and no nvcc (-DSIMCLR_CUDA=OFF: the .cu
# files are compiled as C++ for the emulator only), in its own build
# directory. Any report stops the binary (halt_on_error; LeakSanitizer at
# exit) and makes the exit status non-zero.
#
#   tests/fuzz/sanitize_emu.sh [CATCH ARGS ...]     default: every emulator test
#   env: BUILD_DIR (default build-asan), JOBS (default: nproc)
# Cost and results: docs/checkpoint.md, "Sanitizers".
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${BUILD_DIR:-build-asan}
JOBS=${JOBS:-$(nproc)}
launcher=()
command -v ccache > /dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSIMCLR_SANITIZE=ON -DSIMCLR_CUDA=OFF \
    -DSIMCLR_MPI=OFF "${launcher[@]}" > "$BUILD_DIR.configure.log" 2>&1 || { cat "$BUILD_DIR.configure.log"; exit 1; }
fi
targets=$(cmake --build "$BUILD_DIR" --target help 2> /dev/null || true)
if ! grep -qw kernel_emu_tests <<< "$targets"; then
  echo "SKIPPED: kernel_emu_tests is not configured (the emulator needs the CUDA toolkit's headers and Boost.Context)"
  exit 0
fi
start=$(date +%s)
cmake --build "$BUILD_DIR" -j"$JOBS" --target kernel_emu_tests > "$BUILD_DIR/sanitize_emu_build.log" 2>&1 ||
  { tail -40 "$BUILD_DIR/sanitize_emu_build.log"; exit 1; }
built=$(date +%s)
echo "kernel_emu_tests (ASan+UBSan) built in $((built - start)) s"
mkdir -p "$BUILD_DIR/test_tmp"
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=0:print_summary=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:print_summary=1}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
status=0
for order in forward reverse; do
  t0=$(date +%s)
  rc=0
  (cd "$BUILD_DIR" && EMU_ORDER=$order ./kernel_emu_tests --warn NoTests "$@") || rc=$?
  echo "kernel_emu_tests EMU_ORDER=$order under ASan+UBSan: exit $rc, $(( $(date +%s) - t0 )) s"
  [ $rc -eq 0 ] || status=$rc
done
exit $status
