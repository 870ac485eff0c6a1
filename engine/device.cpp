// engine/device.cpp - CPU allocator, cross-device copies, and the CUDA stubs
// of a build without CUDA (engine/device_cuda.cpp has the real ones).
#include "engine/device.h"

#include <cblas.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace simclr {

namespace {
std::atomic<size_t> g_live{0}, g_peak{0}, g_count{0};
constexpr size_t kAlign = 64;
}  // namespace

#ifdef SIMCLR_WITH_CUDA
void* cuda_alloc(size_t bytes, int device);    // engine/device_cuda.cpp
void cuda_free(void* p, size_t bytes, int device);
void cuda_copy(void* dst, Device dd, const void* src, Device sd, size_t bytes);
void cuda_zero(void* dst, int device, size_t bytes);
#endif

std::shared_ptr<Storage> allocate_storage(size_t bytes, Device device) {
  auto s = std::make_shared<Storage>();
  s->bytes = bytes;
  s->device = device;
  if (bytes == 0) return s;
  if (device.is_cpu()) {
    size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
    s->ptr = std::aligned_alloc(kAlign, rounded);
    SIMCLR_CHECK(s->ptr != nullptr, "out of host memory allocating ", bytes, " bytes");
    size_t live = (g_live += bytes);
    g_count++;
    size_t peak = g_peak.load();
    while (live > peak && !g_peak.compare_exchange_weak(peak, live)) {
    }
  } else {
#ifdef SIMCLR_WITH_CUDA
    s->ptr = cuda_alloc(bytes, device.index);
#else
    fail("cannot allocate on ", device.str(), ": this build has no CUDA backend");
#endif
  }
  return s;
}

void free_storage(Storage& s) {
  if (!s.ptr) return;
  if (s.device.is_cpu()) {
    std::free(s.ptr);
    g_live -= s.bytes;
  } else {
#ifdef SIMCLR_WITH_CUDA
    cuda_free(s.ptr, s.bytes, s.device.index);
#endif
  }
  s.ptr = nullptr;
}

Storage::~Storage() {
  // A wrapped (non-owning) storage has bytes == 0.
  if (bytes) free_storage(*this);
}

AllocStats cpu_alloc_stats() { return {g_live.load(), g_peak.load(), g_count.load()}; }

void copy_bytes(void* dst, Device dd, const void* src, Device sd, size_t bytes) {
  if (bytes == 0) return;
  if (dd.is_cpu() && sd.is_cpu()) {
    std::memmove(dst, src, bytes);
    return;
  }
#ifdef SIMCLR_WITH_CUDA
  cuda_copy(dst, dd, src, sd, bytes);
#else
  fail("copy between ", sd.str(), " and ", dd.str(), ": this build has no CUDA backend");
#endif
}

void fill_bytes_zero(void* dst, Device dev, size_t bytes) {
  if (bytes == 0) return;
  if (dev.is_cpu()) {
    std::memset(dst, 0, bytes);
    return;
  }
#ifdef SIMCLR_WITH_CUDA
  cuda_zero(dst, dev.index, bytes);
#else
  fail("zero on ", dev.str(), ": this build has no CUDA backend");
#endif
}

#ifndef SIMCLR_WITH_CUDA
bool cuda_available() { return false; }
int cuda_device_count() { return 0; }
std::string cuda_unavailable_reason() { return "this build has no CUDA backend (SIMCLR_CUDA=OFF or nvcc not found)"; }
std::string cuda_device_name(int) { fail("no CUDA backend in this build"); }
void cuda_synchronize(int) { fail("no CUDA backend in this build"); }
void* cuda_current_stream(int) { fail("no CUDA backend in this build"); }
size_t cuda_peak_bytes(int) { fail("no CUDA backend in this build"); }
void cuda_reset_peak(int) { fail("no CUDA backend in this build"); }
#endif

std::string blas_info() {
  // openblas_get_config() only exists in OpenBLAS: linking it proves which
  // library we built against; the run-time check below catches a different
  // libopenblas.so.0 being swapped in through the alternatives system.
  const char* cfg = openblas_get_config();
  std::string s = cfg ? cfg : "";
  SIMCLR_CHECK(s.find("OpenBLAS") != std::string::npos,
               "the loaded BLAS is not OpenBLAS (", s, "): install libopenblas-openmp-dev");
  int par = openblas_get_parallel();  // 0 sequential, 1 pthreads, 2 OpenMP
  const char* kind = par == 2 ? "OpenMP" : par == 1 ? "pthreads" : "sequential";
  return detail::cat(s, " (", kind, ", ", openblas_get_num_threads(), " threads)");
}

}  // namespace simclr
