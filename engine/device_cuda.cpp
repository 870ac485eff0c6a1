// engine/device_cuda.cpp - CUDA services: device discovery, the stream-ordered
// caching allocator (cudaMallocAsync on the device's default pool with the
// release threshold at its maximum, so freed memory stays cached and the
// per-step allocation sequence replays identically), copies, the per-device
// stream. Compiled only with the CUDA backend.
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
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
  cudaStream_t stream = nullptr;       // the engine stream
  cudaStream_t copy_stream = nullptr;  // host<->device batch copies (engine/async.h)
  std::atomic<size_t> live{0}, peak{0};
  bool ready = false;
  // While the engine stream is being captured (engine/async.h): the blocks
  // allocated inside the capture and not freed yet, the blocks allocated
  // before it that it tried to free (freed after it ends), the first violation.
  bool capturing = false;
  std::unordered_map<void*, size_t> capture_live;
  std::vector<void*> capture_foreign_frees;
  std::string capture_violation;
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
    CUDA_CHECK(cudaStreamCreateWithFlags(&s.copy_stream, cudaStreamNonBlocking));
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
  if (s.capturing) s.capture_live[p] = bytes;  // a graph allocation node
  size_t live = (s.live += bytes);
  size_t peak = s.peak.load();
  while (live > peak && !s.peak.compare_exchange_weak(peak, live)) {
  }
  return p;
}

void cuda_free(void* p, size_t bytes, int device) {
  DeviceState& s = state(device);
  cudaSetDevice(device);
  if (s.capturing) {
    if (s.capture_live.erase(p) == 0) {
      // Not a graph allocation: a free node cannot free it. Freed after the capture, which fails.
      if (s.capture_violation.empty())
        s.capture_violation = "a block allocated before the capture was freed inside it (" + std::to_string(bytes) +
                              " bytes): keep every tensor the captured work uses alive across the capture";
      s.capture_foreign_frees.push_back(p);
      s.live -= bytes;
      return;
    }
  }
  cudaFreeAsync(p, s.stream);  // no throw from a destructor path
  s.live -= bytes;
}

void cuda_copy(void* dst, Device dd, const void* src, Device sd, size_t bytes) {
  int dev = dd.is_cuda() ? dd.index : sd.index;
  DeviceState& s = state(dev);
  const bool device_only = dd.is_cuda() && sd.is_cuda();
  if (s.capturing && !device_only) {
    if (s.capture_violation.empty()) s.capture_violation = "a synchronous copy between host and device memory";
    fail("a copy between ", sd.str(), " and ", dd.str(), " (", bytes,
         " bytes, e.g. Tensor::item or to_floats) inside a captured step: a CUDA graph cannot wait for the host");
  }
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, s.stream));
  // Device to device is ordered on the stream like every op: no host wait.
  if (!device_only) CUDA_CHECK(cudaStreamSynchronize(s.stream));
}

void cuda_zero(void* dst, int device, size_t bytes) {
  CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, state(device).stream));
}

// ---- engine/async.h: events, pinned memory, asynchronous copies, graphs
void* cuda_event_create(int device) {
  state(device);
  CUDA_CHECK(cudaSetDevice(device));
  cudaEvent_t e = nullptr;
  CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  return e;
}
void cuda_event_destroy(void* ev) { cudaEventDestroy(static_cast<cudaEvent_t>(ev)); }
void cuda_event_record(void* ev, int device, bool copy_stream) {
  DeviceState& s = state(device);
  CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(ev), copy_stream ? s.copy_stream : s.stream));
}
bool cuda_event_done(void* ev) {
  const cudaError_t e = cudaEventQuery(static_cast<cudaEvent_t>(ev));
  if (e == cudaErrorNotReady) {
    cudaGetLastError();
    return false;
  }
  CUDA_CHECK(e);
  return true;
}
void cuda_event_wait_host(void* ev) { CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(ev))); }
void cuda_event_wait_stream(void* ev, int device, bool copy_stream) {
  DeviceState& s = state(device);
  CUDA_CHECK(cudaStreamWaitEvent(copy_stream ? s.copy_stream : s.stream, static_cast<cudaEvent_t>(ev), 0));
}
void* cuda_host_alloc(size_t bytes) {
  void* p = nullptr;
  const cudaError_t e = cudaHostAlloc(&p, bytes, cudaHostAllocDefault);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    fail("out of page-locked host memory allocating ", bytes, " bytes (", bytes >> 20,
         " MiB): lower the batch size (train.batch) or the image size");
  }
  CUDA_CHECK(e);
  return p;
}
void cuda_host_free(void* p) { cudaFreeHost(p); }
void cuda_copy_async(void* dst, Device dd, const void* src, Device sd, size_t bytes, bool copy_stream) {
  const int dev = dd.is_cuda() ? dd.index : sd.index;
  DeviceState& s = state(dev);
  if (s.capturing && !(dd.is_cuda() && sd.is_cuda()) && s.capture_violation.empty())
    s.capture_violation = "a copy between host and device memory";
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, copy_stream ? s.copy_stream : s.stream));
}

size_t cuda_pool_reserved(int device) {
  state(device);
  cudaMemPool_t pool;
  CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
  uint64_t v = 0;
  CUDA_CHECK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &v));
  return static_cast<size_t>(v);
}

void cuda_capture_begin(int device) {
  DeviceState& s = state(device);
  SIMCLR_CHECK(!s.capturing, "graph capture: cuda:", device, " is already capturing");
  CUDA_CHECK(cudaSetDevice(device));
  CUDA_CHECK(cudaStreamBeginCapture(s.stream, cudaStreamCaptureModeThreadLocal));
  s.capturing = true;
  s.capture_live.clear();
  s.capture_foreign_frees.clear();
  s.capture_violation.clear();
}
bool cuda_capturing(int device) { return state(device).capturing; }

namespace {
// Ends the capture on s (the graph or null), then frees what was deferred.
cudaGraph_t end_capture_state(DeviceState& s, cudaError_t* err) {
  cudaGraph_t g = nullptr;
  *err = cudaStreamEndCapture(s.stream, &g);
  if (*err != cudaSuccess) cudaGetLastError();
  s.capturing = false;
  for (void* p : s.capture_foreign_frees) cudaFreeAsync(p, s.stream);
  s.capture_foreign_frees.clear();
  return g;
}
}  // namespace

void cuda_capture_abandon(int device) noexcept {
  DeviceState& s = states()[device];
  if (!s.capturing) return;
  cudaError_t e;
  cudaGraph_t g = end_capture_state(s, &e);
  if (g) cudaGraphDestroy(g);
  s.capture_live.clear();
}

void* cuda_capture_end(int device, size_t* nodes) {
  DeviceState& s = state(device);
  SIMCLR_CHECK(s.capturing, "graph capture: end_capture without begin_capture on cuda:", device);
  cudaError_t e;
  cudaGraph_t g = end_capture_state(s, &e);
  struct GraphGuard {
    cudaGraph_t g;
    ~GraphGuard() {
      if (g) cudaGraphDestroy(g);
    }
  } guard{g};
  if (!s.capture_violation.empty())
    fail("the captured work cannot be replayed as a CUDA graph: ", s.capture_violation, " inside the capture");
  if (e != cudaSuccess)
    fail("the capture of the step on cuda:", device, " failed: ", cudaGetErrorString(e),
         " (a host wait or an unsupported call inside the captured work)");
  if (!s.capture_live.empty()) {
    size_t bytes = 0;
    for (auto& [p, b] : s.capture_live) bytes += b;
    s.capture_live.clear();
    fail("the captured work cannot be replayed as a CUDA graph: ", bytes,
         " bytes allocated inside the capture are still alive at its end (a graph must free what it allocates)");
  }
  size_t n = 0;
  CUDA_CHECK(cudaGraphGetNodes(g, nullptr, &n));
  *nodes = n;
  cudaGraphExec_t exec = nullptr;
  CUDA_CHECK(cudaGraphInstantiate(&exec, g, 0));
  return exec;
}
void cuda_graph_launch(void* exec, int device) {
  CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec), state(device).stream));
}
void cuda_graph_destroy(void* exec) noexcept { cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec)); }

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
