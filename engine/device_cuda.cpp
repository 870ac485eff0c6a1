// engine/device_cuda.cpp - CUDA services: device discovery, the stream-ordered
// caching allocator (cudaMallocAsync on the device's default pool with the
// release threshold at its maximum, so freed memory stays cached and the
// per-step allocation sequence replays identically), copies, the per-device
// stream. Compiled only with the CUDA backend.
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "engine/cuda_check.h"
#include "engine/device.h"

namespace simclr {

namespace detail {
void cuda_fail(const char* lib, const char* call, const char* msg, const char* file, int line) {
  int dev = -1;
  cudaGetDevice(&dev);
  fail(lib, " error: ", msg, " in ", call, " (", file, ":", line, ", device ", dev, ")");
}
}  // namespace detail

namespace {
struct DeviceState {
  cudaStream_t stream = nullptr;
  std::atomic<size_t> live{0}, peak{0};
  bool ready = false;
};
std::mutex g_mu;
std::vector<DeviceState>& states() {
  static std::vector<DeviceState> s(64);
  return s;
}
DeviceState& state(int device) {
  SIMCLR_CHECK(device >= 0 && device < cuda_device_count(), "cuda:", device, " does not exist (",
               cuda_device_count(), " devices)");
  DeviceState& s = states()[device];
  std::lock_guard<std::mutex> lock(g_mu);
  if (!s.ready) {
    CUDA_CHECK(cudaSetDevice(device));
    CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
    cudaMemPool_t pool;
    CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
    uint64_t threshold = UINT64_MAX;
    CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
    s.ready = true;
  }
  return s;
}
}  // namespace

bool cuda_available() { return cuda_device_count() > 0; }

int cuda_device_count() {
  static int n = [] {
    int c = 0;
    if (cudaGetDeviceCount(&c) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return c;
  }();
  return n;
}

std::string cuda_unavailable_reason() {
  int c = 0;
  cudaError_t e = cudaGetDeviceCount(&c);
  cudaGetLastError();
  if (e != cudaSuccess) return std::string("no CUDA device: ") + cudaGetErrorString(e);
  if (c == 0) return "no CUDA device present";
  return "";
}

std::string cuda_device_name(int device) {
  cudaDeviceProp p{};
  CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  return p.name;
}

void cuda_synchronize(int device) {
  CUDA_CHECK(cudaSetDevice(device));
  CUDA_CHECK(cudaStreamSynchronize(state(device).stream));
}

void* cuda_current_stream(int device) { return state(device).stream; }

size_t cuda_peak_bytes(int device) { return state(device).peak.load(); }
void cuda_reset_peak(int device) {
  DeviceState& s = state(device);
  s.peak = s.live.load();
}

void* cuda_alloc(size_t bytes, int device) {
  DeviceState& s = state(device);
  CUDA_CHECK(cudaSetDevice(device));
  void* p = nullptr;
  const cudaError_t e = cudaMallocAsync(&p, bytes, s.stream);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear the sticky-free error state of the allocation
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    fail("out of GPU memory on cuda:", device, " allocating ", bytes, " bytes (", bytes >> 20, " MiB; the engine holds ",
         s.live.load() >> 20, " MiB, peak ", s.peak.load() >> 20, " MiB; the device has ", free_b >> 20, " of ",
         total_b >> 20, " MiB free): lower the batch size (train.batch) or the image size");
  }
  CUDA_CHECK(e);
  size_t live = (s.live += bytes);
  size_t peak = s.peak.load();
  while (live > peak && !s.peak.compare_exchange_weak(peak, live)) {
  }
  return p;
}

void cuda_free(void* p, size_t bytes, int device) {
  DeviceState& s = state(device);
  cudaSetDevice(device);
  cudaFreeAsync(p, s.stream);  // no throw from a destructor path
  s.live -= bytes;
}

void cuda_copy(void* dst, Device dd, const void* src, Device sd, size_t bytes) {
  int dev = dd.is_cuda() ? dd.index : sd.index;
  cudaStream_t st = state(dev).stream;
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, st));
  CUDA_CHECK(cudaStreamSynchronize(st));
}

void cuda_zero(void* dst, int device, size_t bytes) {
  CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, state(device).stream));
}

// ---- CUDA library settings (engine/device.h)
namespace {
std::atomic<CudaMath> g_cuda_math{CudaMath::fp32};
std::atomic<bool> g_cuda_deterministic{false};
std::atomic<ConvImpl> g_cuda_conv_impl{ConvImpl::cudnn};
}  // namespace

void set_cuda_math(CudaMath math) { g_cuda_math.store(math, std::memory_order_relaxed); }
CudaMath cuda_math() { return g_cuda_math.load(std::memory_order_relaxed); }
void set_cuda_deterministic(bool on) { g_cuda_deterministic.store(on, std::memory_order_relaxed); }
bool cuda_deterministic() { return g_cuda_deterministic.load(std::memory_order_relaxed); }
void set_cuda_conv_impl(ConvImpl impl) { g_cuda_conv_impl.store(impl, std::memory_order_relaxed); }
ConvImpl cuda_conv_impl() { return g_cuda_conv_impl.load(std::memory_order_relaxed); }

}  // namespace simclr
