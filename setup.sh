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
  python3-matplotlib      # simclr report: the plots (tools/report/simclr_report.py)
  python3-pip             # fetches the cuDNN frontend headers from PyPI (below)
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

# The cuDNN frontend (header-only C++ graph API) from PyPI's
# nvidia-cudnn-frontend wheel: only its include/ folder is kept, in the
# git-ignored .deps/cudnn_frontend/include (CMakeLists.txt looks there). Skipped
# when the header is already there; a failed download is a warning, not an
# error: the build then has no cuDNN path (the CUDA convolutions run our own
# kernels) and CMake says so.
CUDNN_FE_VERSION=1.32.0
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
fe_dir="$root/.deps/cudnn_frontend"
if [ ! -f "$fe_dir/include/cudnn_frontend.h" ]; then
  py=""
  for c in python3 /usr/bin/python3; do
    if "$c" -m pip --version >/dev/null 2>&1; then py="$c"; break; fi
  done
  if [ -z "$py" ]; then
    echo "setup: WARNING: no python3 with pip: the cuDNN frontend headers are not installed"
  else
    tmp="$(mktemp -d)"
    echo "setup: fetching nvidia-cudnn-frontend==$CUDNN_FE_VERSION headers into .deps/cudnn_frontend"
    if "$py" -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" \
         "nvidia-cudnn-frontend==$CUDNN_FE_VERSION" >/dev/null 2>&1 ||
       "$py" -m pip download --quiet --no-deps -d "$tmp" \
         "nvidia-cudnn-frontend==$CUDNN_FE_VERSION" >/dev/null 2>&1; then
      "$py" - "$tmp" "$fe_dir" "$CUDNN_FE_VERSION" <<'PY' ||
import glob, os, shutil, sys, tarfile, zipfile
tmp, dest, version = sys.argv[1], sys.argv[2], sys.argv[3]
files = glob.glob(os.path.join(tmp, "*"))
if not files:
    sys.exit("setup: pip downloaded nothing")
archive = files[0]
staging = os.path.join(tmp, "staging")
# A wheel holds include/ at its top; an sdist holds <name>-<version>/include/.
if archive.endswith(".whl"):
    with zipfile.ZipFile(archive) as z:
        names = [n for n in z.namelist() if n.startswith("include/")]
        z.extractall(staging, names)
    inc = os.path.join(staging, "include")
else:
    with tarfile.open(archive) as t:
        members = [m for m in t.getmembers() if "/include/" in m.name and (m.isfile() or m.isdir())]
        t.extractall(staging, members)
    inc = next((os.path.join(r, d) for r, ds, _ in os.walk(staging) for d in ds
                if d == "include" and os.path.isfile(os.path.join(r, d, "cudnn_frontend.h"))), None)
if not inc or not os.path.isfile(os.path.join(inc, "cudnn_frontend.h")):
    sys.exit("setup: no include/cudnn_frontend.h in " + os.path.basename(archive))
shutil.rmtree(dest, ignore_errors=True)
os.makedirs(dest)
shutil.copytree(inc, os.path.join(dest, "include"))
with open(os.path.join(dest, "VERSION"), "w") as f:
    f.write(version + " " + os.path.basename(archive) + "\n")
PY
        echo "setup: WARNING: could not unpack the cuDNN frontend headers: building without the cuDNN path"
    else
      echo "setup: WARNING: pip could not download nvidia-cudnn-frontend: building without the cuDNN path"
    fi
    rm -rf "$tmp"
  fi
fi

# Debian's default libblas.so.3 alternative may be the single-threaded
# reference BLAS; we link OpenBLAS directly (see CMakeLists.txt) and check at
# run time which library is loaded, so nothing to switch here.
echo "setup: all ${#packages[@]} packages present"
