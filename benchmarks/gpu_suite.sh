#!/usr/bin/env bash
# benchmarks/gpu_suite.sh - the one GPU validation run of this project.
#
# On a GPU machine with no network (CUDA toolkit, maybe PyTorch, but probably
# none of setup.sh's Debian -dev packages) it configures and builds the
# project with CUDA, then runs, in order of value: the op test table on the
# GPU, the whole SimCLR step on the GPU against the CPU, the rest of
# gpu_tests, compute-sanitizer memcheck on a short test, the training-step
# benchmark against PyTorch on the same GPU (ResNet-18 CIFAR stem at 32^2,
# ResNet-50 at 224^2), then the NT-Xent checks and benchmarks. Every log goes
# under $OUT as it is written; $OUT/summary.txt lists each step and its
# status, so a run cut off by the device window still reports what ran.
# `all` is sized for ONE call of at most 9 minutes (SUITE_BUDGET_S, default
# 500 s of the suite's own time): a step that would start after the budget is
# recorded as "skipped: out of time" instead of run.
#
#   benchmarks/gpu_suite.sh bundle [DIR]
#       Run HERE (a Debian machine where ./setup.sh has run): copies what the
#       build needs and a bare GPU machine lacks into DIR (default .device,
#       git-ignored, ~45 MiB) laid out like a /usr prefix: headers (nlohmann,
#       stb, Catch2, zlib, cblas, the Boost.Context header closure), CMake
#       package files (nlohmann_json, Catch2, Boost), and the shared libraries
#       (OpenBLAS-OpenMP + libgfortran/libquadmath, Boost.Context, zlib;
#       glibc >= 2.34). Carry DIR to the GPU machine.
#   benchmarks/gpu_suite.sh [STAGE]          (on the GPU machine)
#       STAGE: check | configure | build | test | stepbench | augment | bench | compare | all (default all).
#       check: report the toolchain and every dependency (found where / MISSING);
#       every other stage runs check first and stops if something required is
#       missing. Stages can run as separate commands: the build directory stays.
#
# Environment:
#   OUT                   log folder                     (default ./gpu_suite_out)
#   SIMCLR_DEVICE_PREFIX  the carried prefix             (default <repo>/.device)
#   BUILD_DIR             build directory                (default <repo>/build-gpu)
#   JOBS                  build parallelism              (default nproc)
#   PYTHON                python with torch for compare  (default python3)
#   SIMCLR_COMMIT         commit to record when there is no .git
#   QUICK=1               bench: skip the fp32 sweep and the ksplit scan; compare: 8192 only
#   COMPARE_SIZES         2N values of the compare stage  (default "8192 32768 131072")
#   ALLOW_NO_GPU=1        check/configure/build without a GPU (to try the carried prefix)
#   SUITE_BUDGET_S        seconds after which no new step starts (default 500)
#   CUDA_ARCHS            architectures to build (default: the GPU's, else 90)
# Where a dependency is looked for, in order: $SIMCLR_DEVICE_PREFIX, /usr,
# /usr/local, $CONDA_PREFIX, the CUDA toolkit, and (cuDNN, NCCL) the nvidia-*
# wheels next to PyTorch.
set -uo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
stage="${1:-all}"

# ------------------------------------------------------------------ bundle (run here)
if [ "$stage" = "bundle" ]; then
  set -e
  dst="${2:-$repo/.device}"
  mkdir -p "$dst"
  dst="$(cd "$dst" && pwd)"
  lib="$dst/lib/x86_64-linux-gnu"
  mkdir -p "$dst/include" "$lib/cmake" "$dst/lib/cmake" "$dst/share/cmake"
  echo "bundle: into $dst"
  cp -r /usr/include/nlohmann /usr/include/stb /usr/include/catch2 "$dst/include/"
  cp -r /usr/share/cmake/nlohmann_json "$dst/share/cmake/"
  cp -r /usr/lib/cmake/Catch2 "$dst/lib/cmake/"
  cp /usr/lib/libCatch2WithMain.a "$dst/lib/"  # referenced by the Catch2 package (unused here)
  cp /usr/include/zlib.h /usr/include/zconf.h "$dst/include/"
  cp -L /usr/lib/x86_64-linux-gnu/libz.so "$lib/libz.so.1"
  ln -sf libz.so.1 "$lib/libz.so"
  cp /usr/include/x86_64-linux-gnu/openblas-openmp/{cblas.h,openblas_config.h} "$dst/include/"
  cp -L /usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so "$lib/libopenblas.so.0"
  ln -sf libopenblas.so.0 "$lib/libopenblas.so"
  for so in libgfortran.so.5 libquadmath.so.0; do cp -L "/usr/lib/x86_64-linux-gnu/$so" "$lib/"; done
  # Boost.Context: the headers the emulator actually includes, the library, the CMake package
  (cd "$repo" && g++ -std=c++20 -DSIMCLR_EMU=1 -I. -isystem /usr/local/cuda/include -M kernels/emu/cuda_emu.cpp) |
    tr ' \\' '\n\n' | grep '^/usr/include/boost/' | sort -u | while read -r h; do
      mkdir -p "$dst/include/$(dirname "${h#/usr/include/}")"
      cp "$h" "$dst/include/${h#/usr/include/}"
    done
  # ... plus whole config/predef/context trees, in case another g++ selects other config headers
  for d in config predef context; do cp -r "/usr/include/boost/$d" "$dst/include/boost/"; done
  cp -L /usr/lib/x86_64-linux-gnu/libboost_context.so.1.74.0 "$lib/"
  ln -sf libboost_context.so.1.74.0 "$lib/libboost_context.so"
  bc=/usr/lib/x86_64-linux-gnu/cmake
  cp -r "$bc/Boost-1.74.0" "$bc/boost_headers-1.74.0" "$bc/BoostDetectToolset-1.74.0.cmake" "$lib/cmake/"
  mkdir -p "$lib/cmake/boost_context-1.74.0"
  cp "$bc/boost_context-1.74.0/"{boost_context-config.cmake,boost_context-config-version.cmake,libboost_context-variant-shared.cmake} \
    "$lib/cmake/boost_context-1.74.0/"
  # the cuDNN C++ frontend headers (setup.sh puts them in .deps/, from PyPI; the GPU machine has no network)
  if [ -f "$repo/.deps/cudnn_frontend/include/cudnn_frontend.h" ]; then
    mkdir -p "$dst/deps"
    cp -r "$repo/.deps/cudnn_frontend" "$dst/deps/"
  else
    echo "bundle: WARNING: no cuDNN frontend in .deps/ (run ./setup.sh): the GPU build would use our convolutions only"
  fi
  (cd "$repo" && git rev-parse HEAD 2>/dev/null || echo unknown) > "$dst/COMMIT"
  echo "bundle: done, $(du -sh "$dst" | cut -f1) (commit $(cat "$dst/COMMIT"))"
  exit 0
fi

case "$stage" in
  check | configure | build | test | stepbench | augment | bench | compare | all) ;;
  -h | --help) sed -n '2,/^set -uo/p' "$0" | grep '^#'; exit 0 ;;
  *) echo "error: unknown stage '$stage' (check|build|test|bench|compare|all|bundle)" >&2; exit 2 ;;
esac

OUT="${OUT:-$PWD/gpu_suite_out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
PREFIX="${SIMCLR_DEVICE_PREFIX:-$repo/.device}"
BUILD_DIR="${BUILD_DIR:-$repo/build-gpu}"
JOBS="${JOBS:-$(nproc)}"
PYTHON="${PYTHON:-python3}"
summary="$OUT/summary.txt"
log="$OUT/suite_${stage}.log"
exec > >(tee -a "$log") 2>&1

note() { echo "$*" | tee -a "$summary" >/dev/null; echo "$*"; }
BUDGET="${SUITE_BUDGET_S:-500}"
# step NAME LOGFILE CMD...: runs CMD, output to $OUT/LOGFILE (and the console), records the status;
# past the budget it records "skipped: out of time" and returns 0 without running CMD.
step() {
  local name="$1" file="$2"
  shift 2
  if [ "$SECONDS" -ge "$BUDGET" ]; then
    note "$(printf '%-44s skipped: out of time (%ds of %ds used)' "$name" "$SECONDS" "$BUDGET")"
    return 0
  fi
  echo "---- $name: $*"
  local t0=$SECONDS
  "$@" 2>&1 | tee "$OUT/$file"
  local rc=${PIPESTATUS[0]}
  note "$(printf '%-44s %s  (%ds, log %s)' "$name" "$([ "$rc" = 0 ] && echo ok || echo "FAILED rc=$rc")" $((SECONDS - t0)) "$file")"
  return "$rc"
}

# ------------------------------------------------------------------ dependency search
search_dirs=("$PREFIX" /usr /usr/local)
[ -n "${CONDA_PREFIX:-}" ] && search_dirs+=("$CONDA_PREFIX")
cuda_home="${CUDA_HOME:-/usr/local/cuda}"
[ -d "$cuda_home" ] && search_dirs+=("$cuda_home")
nvidia_wheels=""
if command -v "$PYTHON" >/dev/null 2>&1; then
  nvidia_wheels="$("$PYTHON" - 2>/dev/null <<'PY'
import importlib.util, os
for m in ("nvidia.cudnn", "nvidia.nccl"):
    try:
        s = importlib.util.find_spec(m)
        if s and s.submodule_search_locations:
            print(list(s.submodule_search_locations)[0])
    except Exception:
        pass
PY
)"
fi
# find_file REL_GLOB...: first existing path below a search dir (or a wheel dir)
find_in() {
  local d pat f
  for d in "${search_dirs[@]}" $nvidia_wheels; do
    for pat in "$@"; do
      for f in $d/$pat; do
        [ -e "$f" ] && { echo "$f"; return 0; }
      done
    done
  done
  return 1
}

missing=()
optional_missing=()
cmake_args=()
ld_dirs=()
report() {  # report NAME REQUIRED(yes|no) VALUE-or-empty HINT
  if [ -n "$3" ]; then
    printf '  %-22s %s\n' "$1" "$3"
  else
    printf '  %-22s MISSING%s  (%s)\n' "$1" "$([ "$2" = yes ] && echo "" || echo " (optional)")" "$4"
    if [ "$2" = yes ]; then missing+=("$1"); else optional_missing+=("$1"); fi
  fi
}

check_deps() {
  echo "== toolchain and dependencies (prefix $PREFIX)"
  local v
  # toolchain
  local nvcc=""
  nvcc="$(command -v nvcc || true)"
  [ -z "$nvcc" ] && [ -x "$cuda_home/bin/nvcc" ] && nvcc="$cuda_home/bin/nvcc"
  report nvcc yes "${nvcc:+$nvcc ($("$nvcc" --version | grep -o 'release [0-9.]*'))}" "CUDA toolkit"
  [ -n "$nvcc" ] && cmake_args+=("-DCMAKE_CUDA_COMPILER=$nvcc")
  v="$(cmake --version 2>/dev/null | head -1 | grep -o '[0-9][0-9.]*' || true)"
  if [ -n "$v" ] && printf '3.24\n%s\n' "$v" | sort -V -C; then report cmake yes "cmake $v" ""; else
    report cmake yes "" "need cmake >= 3.24, found '${v:-none}'"; fi
  v="$(g++ -dumpfullversion 2>/dev/null || true)"
  if [ -n "$v" ] && printf '11\n%s\n' "$v" | sort -V -C; then report "g++" yes "g++ $v" ""; else
    report "g++" yes "" "need g++ >= 11 (C++20), found '${v:-none}'"; fi
  if echo 'int main(){return 0;}' | g++ -fopenmp -x c++ - -o /dev/null 2>/dev/null; then report OpenMP yes "g++ -fopenmp links" ""; else
    report OpenMP yes "" "g++ -fopenmp does not link (libgomp missing)"; fi
  # header/CMake packages
  local f
  f="$(find_in share/cmake/nlohmann_json/nlohmann_jsonConfig.cmake lib/cmake/nlohmann_json/nlohmann_jsonConfig.cmake 'lib/*/cmake/nlohmann_json/nlohmann_jsonConfig.cmake' || true)"
  report "nlohmann_json" yes "$f" "nlohmann/json.hpp + its CMake package: run 'gpu_suite.sh bundle' on a Debian machine"
  [ -n "$f" ] && cmake_args+=("-Dnlohmann_json_DIR=$(dirname "$f")")
  f="$(find_in include/stb/stb_image.h include/stb_image.h || true)"
  report stb yes "$f" "stb_image.h"
  [ -n "$f" ] && cmake_args+=("-DSTB_INCLUDE_DIR=$(dirname "$f")")
  f="$(find_in lib/cmake/Catch2/Catch2Config.cmake 'lib/*/cmake/Catch2/Catch2Config.cmake' share/Catch2/cmake/Catch2Config.cmake || true)"
  if [ -n "$f" ] && ! grep -q 'PACKAGE_VERSION "2\.' "$(dirname "$f")/Catch2ConfigVersion.cmake" 2>/dev/null; then f=""; fi
  report "Catch2 v2" yes "$f" "catch2/catch.hpp + Catch2Config.cmake (v2)"
  [ -n "$f" ] && cmake_args+=("-DCatch2_DIR=$(dirname "$f")")
  local zi zl
  zi="$(find_in include/zlib.h || true)"
  zl="$(find_in lib/x86_64-linux-gnu/libz.so lib/x86_64-linux-gnu/libz.so.1 lib64/libz.so lib/libz.so lib64/libz.so.1 || true)"
  [ -z "$zl" ] && [ -e /lib/x86_64-linux-gnu/libz.so.1 ] && zl=/lib/x86_64-linux-gnu/libz.so.1
  report zlib yes "$([ -n "$zi" ] && [ -n "$zl" ] && echo "$zi, $zl")" "zlib.h and libz.so"
  [ -n "$zi" ] && [ -n "$zl" ] && cmake_args+=("-DZLIB_INCLUDE_DIR=$(dirname "$zi")" "-DZLIB_LIBRARY=$zl")
  local bi bl
  bi="$(find_in include/cblas.h include/x86_64-linux-gnu/openblas-openmp/cblas.h include/openblas/cblas.h || true)"
  bl="$(find_in lib/x86_64-linux-gnu/libopenblas.so lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so lib64/libopenblas.so lib/libopenblas.so || true)"
  report OpenBLAS yes "$([ -n "$bi" ] && [ -n "$bl" ] && echo "$bl")" "cblas.h + libopenblas.so (+ libgfortran.so.5): the CPU GEMM (engine/blas.cpp)"
  [ -n "$bi" ] && [ -n "$bl" ] && cmake_args+=("-DOPENBLAS_INCLUDE_DIR=$(dirname "$bi")" "-DOPENBLAS_LIBRARY=$bl") && ld_dirs+=("$(dirname "$bl")")
  f="$(find_in 'lib/x86_64-linux-gnu/cmake/Boost-*/BoostConfig.cmake' 'lib/cmake/Boost-*/BoostConfig.cmake' 'lib64/cmake/Boost-*/BoostConfig.cmake' || true)"
  if [ -n "$f" ] && ! ls "$(dirname "$(dirname "$f")")"/boost_context-*/boost_context-config.cmake >/dev/null 2>&1; then f=""; fi
  report "Boost.Context" yes "$f" "fibers of the kernel emulator; the top-level CMakeLists requires it"
  if [ -n "$f" ]; then
    cmake_args+=("-DBoost_DIR=$(dirname "$f")" "-DBoost_NO_SYSTEM_PATHS=ON")
    ld_dirs+=("$(dirname "$(dirname "$(dirname "$f")")")")
  fi
  local ci cl
  ci="$(find_in include/cudnn.h 'include/*/cudnn.h' || true)"
  cl="$(find_in lib64/libcudnn.so lib/x86_64-linux-gnu/libcudnn.so lib/libcudnn.so 'lib/libcudnn.so.[0-9]' 'lib64/libcudnn.so.[0-9]' 'lib/x86_64-linux-gnu/libcudnn.so.[0-9]' || true)"
  report cuDNN yes "$([ -n "$ci" ] && [ -n "$cl" ] && echo "$cl")" "cudnn.h + libcudnn.so (the CUDA build links it; the nvidia-cudnn wheel of PyTorch has both)"
  [ -n "$ci" ] && [ -n "$cl" ] && cmake_args+=("-DCUDNN_INCLUDE_DIR=$(dirname "$ci")" "-DCUDNN_LIBRARY=$cl") && ld_dirs+=("$(dirname "$cl")")
  cl="$(find_in lib64/libnccl.so lib/x86_64-linux-gnu/libnccl.so lib/libnccl.so 'lib/libnccl.so.[0-9]' 'lib64/libnccl.so.[0-9]' 'lib/x86_64-linux-gnu/libnccl.so.[0-9]' || true)"
  report NCCL yes "$cl" "libnccl.so (the CUDA build links it; the nvidia-nccl wheel of PyTorch has it)"
  [ -n "$cl" ] && cmake_args+=("-DNCCL_LIBRARY=$cl") && ld_dirs+=("$(dirname "$cl")")
  # the GPU itself and the optional tools
  local smi
  smi="$(nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1 || true)"
  arch="$(echo "$smi" | awk -F', ' '{print $2}' | tr -d '.')"
  if [ -z "$smi" ] && [ -x "$cuda_home/bin/__nvcc_device_query" ]; then  # no nvidia-smi: ask the toolkit
    arch="$("$cuda_home/bin/__nvcc_device_query" 2>/dev/null | tr ',' '\n' | sort -u | head -1 || true)"
    [ -n "$arch" ] && smi="compute capability $arch (from __nvcc_device_query)"
  fi
  report GPU "$([ "${ALLOW_NO_GPU:-0}" = 1 ] && echo no || echo yes)" "$smi" "neither nvidia-smi nor __nvcc_device_query sees a GPU"
  arch="${CUDA_ARCHS:-${arch:-90}}"
  cmake_args+=("-DSIMCLR_CUDA_ARCHS=$arch")
  v="$("$PYTHON" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2>/dev/null || true)"
  report "PyTorch ($PYTHON)" no "$v" "compare stage only"
  v="$(/usr/bin/python3 -c 'import numpy; print(numpy.__version__)' 2>/dev/null || true)"
  report "numpy (/usr/bin/python3)" no "$v" "not needed on the GPU machine"
  [ -d "$PREFIX/lib/x86_64-linux-gnu" ] && ld_dirs+=("$PREFIX/lib/x86_64-linux-gnu")
  local d uniq=""
  for d in "${ld_dirs[@]}"; do case ":$uniq:" in *":$d:"*) ;; *) uniq="${uniq:+$uniq:}$d" ;; esac; done
  export LD_LIBRARY_PATH="$uniq${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "  LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  if [ ${#missing[@]} -gt 0 ]; then
    note "MISSING (required): ${missing[*]}"
    if [ "${missing[*]}" != GPU ]; then
      note "  Fix: on a Debian machine with ./setup.sh done, run 'benchmarks/gpu_suite.sh bundle' and carry .device/"
      note "  (or point SIMCLR_DEVICE_PREFIX at a prefix holding them). See docs/validation.md."
    fi
    return 1
  fi
  [ ${#optional_missing[@]} -gt 0 ] && note "missing (optional): ${optional_missing[*]}"
  return 0
}

env_report() {
  {
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $(cd "$repo" && git rev-parse HEAD 2>/dev/null || echo "${SIMCLR_COMMIT:-$(cat "$PREFIX/COMMIT" 2>/dev/null || echo unknown)} (no .git)")"
    echo "host: $(uname -a)"
    nvidia-smi 2>&1 | head -20
    echo "cpus: $(nproc)"
  } > "$OUT/env.txt"
  cat "$OUT/env.txt"
}

# ------------------------------------------------------------------ stages
do_configure() {
  # the carried cuDNN frontend headers go where CMakeLists.txt looks for them
  if [ ! -f "$repo/.deps/cudnn_frontend/include/cudnn_frontend.h" ] && [ -d "$PREFIX/deps/cudnn_frontend" ]; then
    mkdir -p "$repo/.deps" && cp -r "$PREFIX/deps/cudnn_frontend" "$repo/.deps/"
  fi
  step "configure (CUDA, $BUILD_DIR)" configure.log \
    cmake -S "$repo" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DSIMCLR_CUDA=ON "${cmake_args[@]}"
}

do_build() {
  do_configure || return 1
  # what the GPU run needs; kernel_emu_tests and unit_tests run in CI on every commit
  local targets=(gpu_tests bench_train_step bench_ntxent bench_lars bench_augment)
  [ "${WITH_EMU_TESTS:-0}" = 1 ] && grep -q '^kernel_emu_tests:' "$BUILD_DIR/Makefile" 2>/dev/null && targets+=(kernel_emu_tests)
  step "build ${targets[*]}" build.log cmake --build "$BUILD_DIR" --target "${targets[@]}" -j"$JOBS"
}

# gpu_tests in order of value: the op table (every CUDA kernel against the CPU reference), the
# whole step against the CPU step, then everything else; a SKIPPED line means no usable GPU.
do_test() {
  local rc=0 t="$BUILD_DIR/gpu_tests"
  [ -x "$t" ] || { note "gpu_tests not built: run the build stage"; return 1; }
  step "gpu_tests: op table on the GPU" gpu_tests_optable.log "$t" "[optable]" --durations yes || rc=1
  step "gpu_tests: the whole step, GPU vs CPU" gpu_tests_step.log env STEP_EMU_VERBOSE=1 "$t" "[step]" --durations yes || rc=1
  step "gpu_tests: the rest" gpu_tests_rest.log "$t" "~[optable]~[step]~[augment]" --durations yes || rc=1
  if cat "$OUT"/gpu_tests_*.log 2>/dev/null | grep -q "SKIPPED:"; then note "gpu_tests: SKIPPED lines found: the GPU was not usable"; rc=1; fi
  local cs=""
  cs="$(command -v compute-sanitizer || true)"
  [ -z "$cs" ] && [ -x "$cuda_home/bin/compute-sanitizer" ] && cs="$cuda_home/bin/compute-sanitizer"
  if [ -n "$cs" ]; then
    step "compute-sanitizer memcheck: device tests" sanitizer_memcheck.log \
      "$cs" --tool memcheck --error-exitcode 3 --leak-check full "$t" "[device]" || rc=1
  else
    note "compute-sanitizer not found: memcheck not run"; rc=1
  fi
  if [ "${WITH_EMU_TESTS:-0}" = 1 ] && [ -x "$BUILD_DIR/kernel_emu_tests" ]; then
    for order in forward reverse; do
      step "kernel_emu_tests (EMU_ORDER=$order)" "kernel_emu_tests_$order.log" env EMU_ORDER=$order "$BUILD_DIR/kernel_emu_tests" || rc=1
    done
  else
    note "kernel_emu_tests: run in CI on every commit (WITH_EMU_TESTS=1 builds and runs them here too)"
  fi
  return $rc
}

# The augmentation kernels (issue 15): gpu_tests "[augment]" against the CPU
# reference, then bench_augment (CPU reference on all cores vs the CUDA
# kernels, 32/96/224) and torchvision v2 on GPU tensors (augment_torch.py).
do_augment() {
  local rc=0 t="$BUILD_DIR/gpu_tests" b="$BUILD_DIR/bench_augment"
  [ -x "$t" ] && [ -x "$b" ] || { note "gpu_tests / bench_augment not built: run the build stage"; return 1; }
  step "gpu_tests: augmentation kernels vs CPU" gpu_tests_augment.log "$t" "[augment]" --durations yes || rc=1
  if grep -q "SKIPPED:" "$OUT/gpu_tests_augment.log" 2>/dev/null; then note "gpu_tests [augment]: SKIPPED: the GPU was not usable"; rc=1; fi
  step "bench_augment f32 (32, 96, 224)" bench_augment_f32.log "$b" --iters 5 || rc=1
  step "bench_augment bf16 (32, 96, 224)" bench_augment_bf16.log "$b" --dtype bf16 --iters 5 || rc=1
  step "augment_torch.py torchvision v2 (cuda)" augment_torch.log "$PYTHON" "$repo/benchmarks/augment_torch.py" --device cuda --iters 5 || rc=1
  return $rc
}

# The training step against PyTorch on the same GPU (issue 13's targets):
# ResNet-18 CIFAR stem 32x32x3, 512 views, fp32, eager and as a CUDA graph (the
# target: graph >= 2x PyTorch eager), and ours vs cuDNN convolutions;
# ResNet-50 at 224x224x3, 512 views, bf16 and fp32 against PyTorch AMP bf16 and eager fp32.
do_step_bench() {
  local rc=0 b="$BUILD_DIR/bench_train_step"
  [ -x "$b" ] || { note "bench_train_step not built: run the build stage"; return 1; }
  local r18=(--depth 18 --width 1 --stem cifar --channels 3 --size 32 --views 512)
  local r50=(--depth 50 --width 1 --stem imagenet --channels 3 --size 224 --views 512)
  step "step bench: ResNet-18/32 ours (cuDNN)" step_r18_ours.log "$b" "${r18[@]}" --device cuda --steps 20 --warmup 3 || rc=1
  step "step bench: ResNet-18/32 ours (cuDNN, CUDA graph)" step_r18_graph.log "$b" "${r18[@]}" --device cuda --cuda-graph --steps 20 --warmup 3 --no-profile || rc=1
  step "step bench: ResNet-18/32 PyTorch eager" step_r18_torch.log "$PYTHON" "$repo/benchmarks/train_step_torch.py" "${r18[@]}" --device cuda --steps 20 --warmup 3 || rc=1
  step "step bench: ResNet-18/32 ours (our convs)" step_r18_ourconv.log "$b" "${r18[@]}" --device cuda --conv-impl ours --steps 10 --warmup 2 --no-profile || rc=1
  step "step bench: ResNet-50/224 ours (cuDNN bf16)" step_r50_ours_bf16.log "$b" "${r50[@]}" --device cuda --precision bf16 --steps 5 --warmup 2 || rc=1
  step "step bench: ResNet-50/224 ours (cuDNN fp32)" step_r50_ours.log "$b" "${r50[@]}" --device cuda --steps 5 --warmup 2 --no-profile || rc=1
  step "step bench: ResNet-50/224 PyTorch AMP bf16" step_r50_torch_amp.log "$PYTHON" "$repo/benchmarks/train_step_torch.py" "${r50[@]}" --device cuda --amp --steps 5 --warmup 2 || rc=1
  step "step bench: ResNet-50/224 PyTorch eager fp32" step_r50_torch.log "$PYTHON" "$repo/benchmarks/train_step_torch.py" "${r50[@]}" --device cuda --steps 5 --warmup 2 || rc=1
  return $rc
}

do_bench() {
  local rc=0 b="$BUILD_DIR/bench_ntxent"
  [ -x "$b" ] || { note "bench_ntxent not built: run the build stage"; return 1; }
  # correctness against the float64 CPU reference at several sizes (exit 1 on a tolerance miss)
  local cfg
  for cfg in "8192 128 bf16 0.1" "8192 128 fp32 0.1" "4096 2048 bf16 0.1" "1000 64 fp32 0.05" "16384 128 bf16 0.5"; do
    set -- $cfg
    step "bench_ntxent --check 2N=$1 d=$2 $3 tau=$4" "bench_check_$1_$2_$3.log" \
      "$b" --n "$1" --d "$2" --dtype "$3" --tau "$4" --check --json --iters 20 --warmup 5 || rc=1
  done
  # the memory target: 2N = 131072, d = 128 in < 1 GiB extra (fused)
  step "bench_ntxent 2N=131072 d=128 bf16 (memory target)" bench_131072.log \
    "$b" --n 131072 --d 128 --dtype bf16 --json --iters 10 --warmup 2 || rc=1
  local extra
  extra="$(grep '"impl":"fused","pass":"fwd+bwd"' "$OUT/bench_131072.log" | grep -o '"extra_bytes":[0-9]*' | cut -d: -f2)"
  if [ -n "$extra" ] && [ "$extra" -lt 1073741824 ]; then note "memory target 2N=131072 d=128: fused extra $((extra / 1048576)) MiB < 1024 MiB: ok"
  else note "memory target 2N=131072 d=128: FAILED (extra bytes '${extra:-none}')"; rc=1; fi
  step "bench_ntxent --sweep bf16 d=128" sweep_bf16_d128.log "$b" --sweep --d 128 --dtype bf16 --json --iters 20 --warmup 5 || rc=1
  if [ "${QUICK:-0}" != 1 ]; then
    step "bench_ntxent --sweep fp32 d=128" sweep_fp32_d128.log "$b" --sweep --d 128 --dtype fp32 --json --iters 10 --warmup 3 || rc=1
    step "bench_ntxent 2N=8192 d=128 bf16 ksplit 1..8" bench_ksplit.log bash -c \
      "for k in 1 2 3 4 5 6 8; do '$b' --n 8192 --d 128 --ksplit \$k --no-unfused --iters 30 --warmup 5 | grep -E 'ksplit|fwd|bwd'; done" || rc=1
  fi
  # the fused LARS step against per-tensor launches (ResNet-50 and ResNet-18 encoders)
  if [ -x "$BUILD_DIR/bench_lars" ]; then
    step "bench_lars ResNet-50" bench_lars_r50.log "$BUILD_DIR/bench_lars" --depth 50 --iters 50 --warmup 5 || rc=1
    step "bench_lars ResNet-18" bench_lars_r18.log "$BUILD_DIR/bench_lars" --depth 18 --iters 50 --warmup 5 || rc=1
  else
    note "bench_lars not built: run the build stage"; rc=1
  fi
  return $rc
}

do_compare() {
  local sizes="${COMPARE_SIZES:-8192 32768 131072}"
  [ "${QUICK:-0}" = 1 ] && sizes="8192"
  local commit
  commit="$(cd "$repo" && git rev-parse --short=12 HEAD 2>/dev/null || echo "${SIMCLR_COMMIT:-$(cut -c1-12 "$PREFIX/COMMIT" 2>/dev/null)}")"
  step "compare: ours / unfused / PyTorch eager / torch.compile (bf16)" compare_bf16.log \
    env SIZES="$sizes" D=128 DTYPE=bf16 OUT="$OUT" PYTHON="$PYTHON" COMMIT="$commit" "$repo/benchmarks/ntxent_compare.sh" "$BUILD_DIR"
  local rc=$?
  if [ "${QUICK:-0}" != 1 ]; then
    step "compare: fp32, 2N=8192" compare_fp32.log \
      env SIZES="8192" D=128 DTYPE=fp32 OUT="$OUT" PYTHON="$PYTHON" COMMIT="$commit" "$repo/benchmarks/ntxent_compare.sh" "$BUILD_DIR" || rc=1
  fi
  return $rc
}

echo "== gpu_suite.sh $stage: logs in $OUT"
env_report
check_deps || { note "stage $stage: stopped, required dependencies missing"; exit 1; }
[ "$stage" = check ] && exit 0
status=0
case "$stage" in
  configure) do_configure || status=1 ;;
  build) do_build || status=1 ;;
  test) do_test || status=1 ;;
  stepbench) do_step_bench || status=1 ;;
  augment) do_augment || status=1 ;;
  bench) do_bench || status=1 ;;
  compare) do_compare || status=1 ;;
  all)
    do_build || { note "build failed: stopping"; exit 1; }
    do_test || status=1
    do_augment || status=1
    do_step_bench || status=1
    QUICK=1 do_bench || status=1
    QUICK=1 do_compare || status=1
    ;;
esac
note "== gpu_suite.sh $stage finished: $([ $status = 0 ] && echo ok || echo 'FAILURES (see above)')"
exit $status
