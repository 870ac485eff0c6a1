// engine/async.cpp - see async.h. The CPU and emulated-device halves, and the
// emulated capture; the GPU half is in engine/device_cuda.cpp.
#include "engine/async.h"

#include <atomic>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/check.h"
#include "engine/device.h"

namespace simclr {

#ifdef SIMCLR_WITH_CUDA
// engine/device_cuda.cpp
void* cuda_event_create(int device);
void cuda_event_destroy(void* ev);
void cuda_event_record(void* ev, int device, bool copy_stream);
bool cuda_event_done(void* ev);
void cuda_event_wait_host(void* ev);
void cuda_event_wait_stream(void* ev, int device, bool copy_stream);
void* cuda_host_alloc(size_t bytes);
void cuda_host_free(void* p);
size_t cuda_pool_reserved(int device);
void cuda_copy_async(void* dst, Device dd, const void* src, Device sd, size_t bytes, bool copy_stream);
void cuda_capture_begin(int device);
void* cuda_capture_end(int device, size_t* nodes);
void cuda_capture_abandon(int device) noexcept;
bool cuda_capturing(int device);
void cuda_graph_launch(void* exec, int device);
void cuda_graph_destroy(void* exec) noexcept;
#endif

// ---------------------------------------------------------------- the emulated capture
namespace {
struct EmuCapture {
  std::vector<std::function<void()>> ops;
  std::vector<std::function<void()>> releases;            // deferred frees
  std::unordered_map<const void*, size_t> live;           // allocated inside, not freed yet
  std::string violation;                                  // the first thing that breaks it
};
std::mutex g_emu_mu;
std::atomic<bool> g_emu_capturing{false};
std::unique_ptr<EmuCapture> g_emu;
std::atomic<bool> g_emu_replaying{false};

void run_all(std::vector<std::function<void()>>& fs) noexcept {
  for (auto& f : fs) {
    try {
      f();
    } catch (...) {
    }
  }
  fs.clear();
}
}  // namespace

namespace detail {
bool emu_capturing() { return g_emu_capturing.load(std::memory_order_relaxed); }

bool emu_capture_record(std::function<void()> op) {
  if (!emu_capturing()) return false;
  std::lock_guard<std::mutex> lock(g_emu_mu);
  g_emu->ops.push_back(std::move(op));
  return true;
}

bool emu_capture_forbid(const std::string& what) {
  if (!emu_capturing()) return false;
  std::lock_guard<std::mutex> lock(g_emu_mu);
  if (g_emu->violation.empty()) g_emu->violation = what;
  return true;
}

void emu_capture_alloc(const void* p, size_t bytes) {
  if (!emu_capturing() || p == nullptr) return;
  std::lock_guard<std::mutex> lock(g_emu_mu);
  g_emu->live[p] = bytes;
}

bool emu_capture_free(const void* p, std::function<void()> release) {
  if (!emu_capturing()) return false;
  std::lock_guard<std::mutex> lock(g_emu_mu);
  auto it = g_emu->live.find(p);
  if (it != g_emu->live.end()) {
    g_emu->live.erase(it);
  } else if (g_emu->violation.empty()) {
    g_emu->violation = "a block allocated before the capture was freed inside it (CUDA graphs can only free "
                       "their own allocations): keep every tensor the captured work uses alive across the capture";
  }
  g_emu->releases.push_back(std::move(release));  // replays keep using the address
  return true;
}
}  // namespace detail

// ---------------------------------------------------------------- events
DeviceEvent::DeviceEvent(Device device) : device_(device) {
#ifdef SIMCLR_WITH_CUDA
  if (device.is_cuda()) ev_ = cuda_event_create(device.index);
#endif
}
DeviceEvent::~DeviceEvent() {
#ifdef SIMCLR_WITH_CUDA
  if (ev_) cuda_event_destroy(ev_);
#endif
}
DeviceEvent::DeviceEvent(DeviceEvent&& o) noexcept : device_(o.device_), ev_(std::exchange(o.ev_, nullptr)) {}
DeviceEvent& DeviceEvent::operator=(DeviceEvent&& o) noexcept {
  if (this != &o) {
#ifdef SIMCLR_WITH_CUDA
    if (ev_) cuda_event_destroy(ev_);
#endif
    device_ = o.device_;
    ev_ = std::exchange(o.ev_, nullptr);
  }
  return *this;
}
void DeviceEvent::record() {
#ifdef SIMCLR_WITH_CUDA
  if (ev_) cuda_event_record(ev_, device_.index, false);
#endif
}
void DeviceEvent::record_copy_stream() {
#ifdef SIMCLR_WITH_CUDA
  if (ev_) cuda_event_record(ev_, device_.index, true);
#endif
}
bool DeviceEvent::done() const {
#ifdef SIMCLR_WITH_CUDA
  if (ev_) return cuda_event_done(ev_);
#endif
  return true;
}
void DeviceEvent::wait_host() const {
  if (device_.is_emu()) SIMCLR_CHECK(!detail::emu_capture_forbid("an event's host wait"), "DeviceEvent::wait_host inside a capture");
#ifdef SIMCLR_WITH_CUDA
  if (ev_) cuda_event_wait_host(ev_);
#endif
}
void DeviceEvent::wait_engine_stream() const {
#ifdef SIMCLR_WITH_CUDA
  if (ev_) cuda_event_wait_stream(ev_, device_.index, false);
#endif
}
void DeviceEvent::wait_copy_stream() const {
#ifdef SIMCLR_WITH_CUDA
  if (ev_) cuda_event_wait_stream(ev_, device_.index, true);
#endif
}

// ---------------------------------------------------------------- pinned memory
// Page-locked blocks are slow to get (cudaHostAlloc maps and locks every
// page), and the loader asks for one per batch: freed blocks are kept by size
// and handed out again, up to kPinnedCacheBytes in all.
namespace {
constexpr size_t kPinnedCacheBytes = size_t{4} << 30;
std::mutex g_pinned_mu;
std::multimap<size_t, void*> g_pinned_free;
size_t g_pinned_cached = 0;
}  // namespace

namespace detail {
void pinned_release(void* p, size_t bytes) {
#ifdef SIMCLR_WITH_CUDA
  {
    std::lock_guard<std::mutex> lock(g_pinned_mu);
    if (g_pinned_cached + bytes <= kPinnedCacheBytes) {
      g_pinned_free.emplace(bytes, p);
      g_pinned_cached += bytes;
      return;
    }
  }
  cuda_host_free(p);
#else
  (void)p;
  (void)bytes;
#endif
}
}  // namespace detail

Tensor pinned_empty(const Shape& shape, DType dtype) {
  const size_t bytes = static_cast<size_t>(shape.numel()) * dtype_size(dtype);
#ifdef SIMCLR_WITH_CUDA
  if (bytes > 0 && cuda_available()) {
    auto s = std::make_shared<Storage>();
    s->bytes = bytes;
    s->device = Device::cpu();
    s->pinned = true;
    {
      std::lock_guard<std::mutex> lock(g_pinned_mu);
      auto it = g_pinned_free.find(bytes);
      if (it != g_pinned_free.end()) {
        s->ptr = it->second;
        g_pinned_free.erase(it);
        g_pinned_cached -= bytes;
      }
    }
    if (s->ptr == nullptr) s->ptr = cuda_host_alloc(bytes);
    auto impl = std::make_shared<TensorImpl>();
    impl->storage = std::move(s);
    impl->shape = shape;
    impl->dtype = dtype;
    return Tensor(impl);
  }
#endif
  return Tensor::empty(shape, dtype, Device::cpu());
}

bool is_pinned(const Tensor& t) { return t.defined() && t.storage() && t.storage()->pinned; }

// ---------------------------------------------------------------- copies
void copy_bytes_async(void* dst, Device dd, const void* src, Device sd, size_t bytes, CopyStream on) {
  if (bytes == 0) return;
  if (dd.host_memory() && sd.host_memory()) {
    // cpu and emu: done on issue, as copy_bytes does it (a capture records or refuses it there)
    copy_bytes(dst, dd, src, sd, bytes);
    return;
  }
#ifdef SIMCLR_WITH_CUDA
  cuda_copy_async(dst, dd, src, sd, bytes, on == CopyStream::copy);
#else
  (void)on;
  fail("copy between ", sd.str(), " and ", dd.str(), ": this build has no CUDA backend");
#endif
}

void copy_async(Tensor& dst, const Tensor& src, CopyStream on) {
  SIMCLR_CHECK(dst.shape() == src.shape() && dst.dtype() == src.dtype(), "copy_async: ", src.describe(), " into ",
               dst.describe());
  copy_bytes_async(dst.data_ptr(), dst.device(), src.data_ptr(), src.device(), src.nbytes(), on);
}

size_t device_pool_reserved_bytes(Device device) {
#ifdef SIMCLR_WITH_CUDA
  if (device.is_cuda()) return cuda_pool_reserved(device.index);
#endif
  (void)device;
  return 0;
}

// ---------------------------------------------------------------- constants
const Tensor& device_scalar(double value, DType dtype, Device device) {
  struct Entry {
    double value;
    DType dtype;
    Device device;
    Tensor t;
  };
  static std::mutex mu;
  static auto* cache = new std::deque<Entry>();  // (stable references, never destroyed)
  std::lock_guard<std::mutex> lock(mu);
  for (const Entry& e : *cache)
    if (e.value == value && e.dtype == dtype && e.device == device) return e.t;
  cache->push_back({value, dtype, device, Tensor::full({1}, value, dtype, device)});
  return cache->back().t;
}

// ---------------------------------------------------------------- graphs
struct DeviceGraph::Impl {
  Device device;
  std::vector<std::function<void()>> ops;       // emu
  std::vector<std::function<void()>> releases;  // emu: the graph's memory
  void* exec = nullptr;                         // cuda: cudaGraphExec_t
  size_t nodes = 0;
  ~Impl() {
    run_all(releases);
#ifdef SIMCLR_WITH_CUDA
    if (exec) cuda_graph_destroy(exec);
#endif
  }
};

DeviceGraph::DeviceGraph() = default;
DeviceGraph::~DeviceGraph() = default;
DeviceGraph::DeviceGraph(DeviceGraph&&) noexcept = default;
DeviceGraph& DeviceGraph::operator=(DeviceGraph&&) noexcept = default;

void DeviceGraph::begin_capture(Device device) {
  SIMCLR_CHECK(device.runs_cuda_code(), "graph capture needs a cuda or emu device, not ", device.str());
  if (device.is_emu()) {
    std::lock_guard<std::mutex> lock(g_emu_mu);
    SIMCLR_CHECK(!g_emu_capturing.load(), "graph capture: the emulated device is already capturing");
    SIMCLR_CHECK(!g_emu_replaying.load(), "graph capture: begun while a graph replays");
    g_emu = std::make_unique<EmuCapture>();
    g_emu_capturing = true;
    return;
  }
#ifdef SIMCLR_WITH_CUDA
  cuda_capture_begin(device.index);
#endif
}

bool DeviceGraph::capturing(Device device) {
  if (device.is_emu()) return detail::emu_capturing();
#ifdef SIMCLR_WITH_CUDA
  if (device.is_cuda()) return cuda_capturing(device.index);
#endif
  return false;
}

void DeviceGraph::abandon_capture(Device device) noexcept {
  if (device.is_emu()) {
    std::unique_ptr<EmuCapture> c;
    {
      std::lock_guard<std::mutex> lock(g_emu_mu);
      g_emu_capturing = false;
      c = std::move(g_emu);
    }
    if (c) run_all(c->releases);
    return;
  }
#ifdef SIMCLR_WITH_CUDA
  if (device.is_cuda()) cuda_capture_abandon(device.index);
#endif
}

DeviceGraph DeviceGraph::end_capture(Device device) {
  DeviceGraph g;
  g.impl_ = std::make_unique<Impl>();
  g.impl_->device = device;
  if (device.is_emu()) {
    std::unique_ptr<EmuCapture> c;
    {
      std::lock_guard<std::mutex> lock(g_emu_mu);
      SIMCLR_CHECK(g_emu_capturing.load(), "graph capture: end_capture without begin_capture on emu");
      g_emu_capturing = false;
      c = std::move(g_emu);
    }
    g.impl_->releases = std::move(c->releases);  // freed with the graph, also when we throw below
    if (!c->violation.empty())
      fail("the captured work cannot be replayed as a CUDA graph: ", c->violation, " inside the capture");
    if (!c->live.empty()) {
      size_t bytes = 0;
      for (auto& [p, b] : c->live) bytes += b;
      fail("the captured work cannot be replayed as a CUDA graph: ", c->live.size(), " block(s) (", bytes,
           " bytes) allocated inside the capture are still alive at its end (a graph must free what it allocates)");
    }
    g.impl_->ops = std::move(c->ops);
    g.impl_->nodes = g.impl_->ops.size();
    return g;
  }
#ifdef SIMCLR_WITH_CUDA
  SIMCLR_CHECK(device.is_cuda(), "graph capture needs a cuda or emu device, not ", device.str());
  g.impl_->exec = cuda_capture_end(device.index, &g.impl_->nodes);
  return g;
#else
  fail("graph capture on ", device.str(), ": this build has no CUDA backend");
#endif
}

void DeviceGraph::replay() {
  SIMCLR_CHECK(impl_ != nullptr, "DeviceGraph::replay on an empty graph");
  if (impl_->device.is_emu()) {
    SIMCLR_CHECK(!detail::emu_capturing(), "DeviceGraph::replay inside a capture (nested graphs are not supported)");
    g_emu_replaying = true;
    struct Done {
      ~Done() { g_emu_replaying = false; }
    } done;
    for (auto& op : impl_->ops) op();
    return;
  }
#ifdef SIMCLR_WITH_CUDA
  cuda_graph_launch(impl_->exec, impl_->device.index);
#endif
}

bool DeviceGraph::empty() const { return impl_ == nullptr; }
size_t DeviceGraph::nodes() const { return impl_ ? impl_->nodes : 0; }

}  // namespace simclr
