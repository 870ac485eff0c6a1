#!/usr/bin/env bash
# Installs every Debian package this project needs. Idempotent: when all are
# present it only runs dpkg-query and returns in well under a second.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  catch2                  # unit tests (Catch2 v2, header-only)
  nlohmann-json3-dev      # configs, manifests, safetensors headers
  libstb-dev              # stb_image / stb_image_write
  libopenblas-openmp-dev  # CPU GEMM, OpenMP-threaded OpenBLAS
  libboost-context-dev    # fibers for the CPU execution of CUDA kernels
  libopenmpi-dev openmpi-bin  # multi-process launch (optional at build time)
  libdnnl-dev             # oneDNN: fast CPU convolutions
  zlib1g-dev              # gzip-compressed IDX files
  python3-numpy           # independent NumPy checks in tests (/usr/bin/python3)
  dataset-fashion-mnist   # the default real dataset
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Debian's default libblas.so.3 alternative may be the single-threaded
# reference BLAS; we link OpenBLAS directly (see CMakeLists.txt) and check at
# run time which library is loaded, so nothing to switch here.
echo "setup: all ${#packages[@]} packages present"
