// engine/device.cpp - CPU allocator, cross-device copies, and the CUDA stubs
// of a build without CUDA (engine/device_cuda.cpp has the real ones).
#include "engine/device.h"

#include <cblas.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/async.h"

namespace simclr {

namespace {
std::atomic<size_t> g_live{0}, g_peak{0}, g_count{0};
constexpr size_t kAlign = 64;

// ---- debug mode (engine/device.h): block layout
//   base: [kGuard guard bytes][bytes payload][guard to the end of the rounding]
// payload = base + kGuard stays 64-byte aligned; the after-guard is 64..127 bytes.
constexpr size_t kGuard = 64;
constexpr unsigned char kGuardByte = 0xA5, kPoisonByte = 0xFF;
std::atomic<bool> g_debug{false};
std::atomic<size_t> g_debug_blocks{0};  // live debug blocks: free's fast path when 0
struct DebugBlock {
  unsigned char* base;
  size_t bytes, total;
};
std::mutex g_debug_mu;
std::unordered_map<void*, DebugBlock>& debug_blocks() {  // payload pointer -> block
  static std::unordered_map<void*, DebugBlock> m;
  return m;
}
std::vector<std::string>& freed_broken() {  // blocks freed with a broken guard since the last check
  static std::vector<std::string> v;
  return v;
}

size_t debug_total(size_t bytes) { return kGuard + (bytes + kGuard + kAlign - 1) / kAlign * kAlign; }

// "" when both guards are intact, else what is broken.
std::string guard_damage(const DebugBlock& b) {
  auto rel = [](size_t i) { return static_cast<long long>(i) - static_cast<long long>(kGuard); };
  for (size_t i = 0; i < kGuard; i++)
    if (b.base[i] != kGuardByte)
      return detail::cat("block of ", b.bytes, " bytes: guard before it broken at byte ", rel(i),
                         " (relative to the block start)");
  for (size_t i = kGuard + b.bytes; i < b.total; i++)
    if (b.base[i] != kGuardByte)
      return detail::cat("block of ", b.bytes, " bytes: guard after it broken at byte ", rel(i),
                         " (relative to the block start; the block ends at byte ", b.bytes, ")");
  return "";
}

void* debug_alloc(size_t bytes) {
  const size_t total = debug_total(bytes);
  auto* base = static_cast<unsigned char*>(std::aligned_alloc(kAlign, total));
  if (!base) return nullptr;
  std::memset(base, kGuardByte, total);
  std::memset(base + kGuard, kPoisonByte, bytes);
  void* p = base + kGuard;
  std::lock_guard<std::mutex> lock(g_debug_mu);
  debug_blocks()[p] = DebugBlock{base, bytes, total};
  g_debug_blocks++;
  return p;
}

// Frees p if it is a debug block (verifying its guards first); false otherwise.
bool debug_free(void* p) {
  if (g_debug_blocks.load(std::memory_order_relaxed) == 0) return false;
  std::lock_guard<std::mutex> lock(g_debug_mu);
  auto it = debug_blocks().find(p);
  if (it == debug_blocks().end()) return false;
  const std::string damage = guard_damage(it->second);
  if (!damage.empty()) freed_broken().push_back("freed " + damage);
  std::free(it->second.base);
  debug_blocks().erase(it);
  g_debug_blocks--;
  return true;
}
}  // namespace

void set_cpu_alloc_debug(bool on) { g_debug.store(on, std::memory_order_relaxed); }
bool cpu_alloc_debug() { return g_debug.load(std::memory_order_relaxed); }

size_t cpu_alloc_check() {
  std::lock_guard<std::mutex> lock(g_debug_mu);
  std::vector<std::string> bad;
  bad.swap(freed_broken());
  for (const auto& [p, b] : debug_blocks()) {
    const std::string damage = guard_damage(b);
    if (!damage.empty()) bad.push_back("live " + damage);
  }
  if (!bad.empty()) {
    std::string msg = detail::cat("cpu allocator debug check: ", bad.size(), " broken guard(s): ");
    for (size_t i = 0; i < bad.size(); i++) msg += (i ? "; " : "") + bad[i];
    fail(msg);
  }
  return debug_blocks().size();
}

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
  if (device.host_memory()) {  // cpu, and the emulated device (engine/dtype.h)
    if (g_debug.load(std::memory_order_relaxed)) {
      s->ptr = debug_alloc(bytes);
    } else {
      size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
      s->ptr = std::aligned_alloc(kAlign, rounded);
    }
    SIMCLR_CHECK(s->ptr != nullptr, "out of host memory allocating ", bytes, " bytes");
    if (device.is_emu()) detail::emu_capture_alloc(s->ptr, bytes);  // engine/async.h
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
  if (s.pinned) {
    detail::pinned_release(s.ptr, s.bytes);
  } else if (s.device.host_memory()) {
    void* p = s.ptr;
    const size_t bytes = s.bytes;
    auto release = [p, bytes] {
      if (!debug_free(p)) std::free(p);
      g_live -= bytes;
    };
    // A graph being captured on the emulated device keeps its blocks (engine/async.h).
    if (!(s.device.is_emu() && detail::emu_capture_free(p, release))) release();
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
// Sets the peak to the bytes live now: one step's peak (train/memory.cpp declares it,
// to keep engine/device.h, which every file includes, unchanged).
void cpu_alloc_reset_peak() { g_peak.store(g_live.load()); }

void copy_bytes(void* dst, Device dd, const void* src, Device sd, size_t bytes) {
  if (bytes == 0) return;
  if (dd.host_memory() && sd.host_memory()) {
    if ((dd.is_emu() || sd.is_emu()) && detail::emu_capturing()) {
      // Inside a capture (engine/async.h): device-to-device is recorded, a host copy breaks it.
      if (dd.is_emu() && sd.is_emu()) {
        detail::emu_capture_record([dst, src, bytes] { std::memmove(dst, src, bytes); });
        return;
      }
      detail::emu_capture_forbid("a synchronous copy between host and device memory");
      fail("a copy between ", sd.str(), " and ", dd.str(), " (", bytes,
           " bytes, e.g. Tensor::item or to_floats) inside a captured step: a CUDA graph cannot wait for the host");
    }
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
  if (dev.host_memory()) {
    if (dev.is_emu() && detail::emu_capture_record([dst, bytes] { std::memset(dst, 0, bytes); })) return;
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
// The library settings are only stored (nothing reads them without CUDA).
namespace {
std::atomic<CudaMath> g_cuda_math{CudaMath::fp32};
std::atomic<bool> g_cuda_deterministic{false};
std::atomic<ConvImpl> g_cuda_conv_impl{ConvImpl::cudnn};
}  // namespace
void set_cuda_math(CudaMath math) { g_cuda_math.store(math); }
CudaMath cuda_math() { return g_cuda_math.load(); }
void set_cuda_deterministic(bool on) { g_cuda_deterministic.store(on); }
bool cuda_deterministic() { return g_cuda_deterministic.load(); }
void set_cuda_conv_impl(ConvImpl impl) { g_cuda_conv_impl.store(impl); }
ConvImpl cuda_conv_impl() { return g_cuda_conv_impl.load(); }
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
