// engine/async.h - device work without host waits: events, page-locked host
// memory, stream-ordered copies on the engine stream or a second copy stream,
// and capture of a sequence of device work into a graph that is replayed
// (CUDA graphs).
//
// On a GPU each device has two streams: the engine stream (every op,
// engine/device.h cuda_current_stream) and a copy stream (host-to-device
// batch copies that overlap the step running on the engine stream). Events
// order them without the host waiting.
//
// On the emulated device (engine/dtype.h `emu`) all work runs when it is
// issued, so events are always complete and copies are done on return; but
// capture is emulated faithfully, so that CI finds what would break a CUDA
// graph on a GPU:
//   - while capturing, every kernel launch (kernels/emu/cuda_emu.h), device
//     memset and device-to-device copy is recorded, not run; replay() runs the
//     records in order with the pointers and arguments they were captured with;
//   - a host wait (stream / device / event synchronisation, a synchronous
//     cudaMemcpy, Tensor::item or to_floats) or a copy between host and device
//     memory inside a capture is an error naming the call, as on a GPU
//     (cudaErrorStreamCaptureUnsupported);
//   - memory allocated inside the capture belongs to the graph: a free inside
//     the capture is deferred to the graph's destruction (so replays see the
//     same addresses); memory allocated before the capture and freed inside it,
//     or allocated inside and still alive at its end, is an error (CUDA's
//     graph memory nodes allow neither).
// On the CPU device there is no stream: events are complete, copies are
// memmoves, and capture is an error.
#pragma once
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "engine/tensor.h"

namespace simclr {

// ---------------------------------------------------------------- events
class DeviceEvent {
 public:
  DeviceEvent() = default;         // no device: always complete
  explicit DeviceEvent(Device device);
  ~DeviceEvent();
  DeviceEvent(DeviceEvent&& o) noexcept;
  DeviceEvent& operator=(DeviceEvent&& o) noexcept;
  DeviceEvent(const DeviceEvent&) = delete;
  DeviceEvent& operator=(const DeviceEvent&) = delete;

  void record();              // after the work issued so far on the engine stream
  void record_copy_stream();  // ... on the copy stream
  bool done() const;          // the recorded work has finished (no wait)
  void wait_host() const;     // the host waits for it
  void wait_engine_stream() const;  // later engine-stream work waits for it (no host wait)
  void wait_copy_stream() const;    // later copy-stream work waits for it

 private:
  Device device_;
  void* ev_ = nullptr;  // cudaEvent_t on a GPU
};

// ---------------------------------------------------------------- page-locked host memory
// A CPU tensor in page-locked memory when this build has CUDA and a device
// exists (what an asynchronous host<->device copy needs), else in ordinary
// aligned host memory.
Tensor pinned_empty(const Shape& shape, DType dtype);
bool is_pinned(const Tensor& t);

// ---------------------------------------------------------------- stream-ordered copies
// Like copy_bytes (engine/device.h) but without a host wait: ordered on the
// engine stream of the device side (or on its copy stream), so the host must
// not touch a host buffer until an event recorded after it is done. Host
// buffers must be pinned (pinned_empty) when a GPU is involved.
enum class CopyStream { engine, copy };
void copy_bytes_async(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes,
                      CopyStream on = CopyStream::engine);
void copy_async(Tensor& dst, const Tensor& src, CopyStream on = CopyStream::engine);  // same shape and dtype

// A one-element constant on `device`, made once per (device, dtype, value)
// and kept for the process (never freed: no device memory is released after
// the driver shut down at exit). Device code that needs a constant inside a
// captured step (the autograd seed, BN's counter increment) copies from it on
// the device; the first request must come outside a capture (it is a host
// copy), which the first, eager, training step does.
const Tensor& device_scalar(double value, DType dtype, Device device);

// Device memory the caching pool holds from the driver (cuda: the pool's
// reserved bytes, which grow only when the pool has to ask the driver for
// more; 0 elsewhere). Constant after warm-up when the steps reuse their blocks.
size_t device_pool_reserved_bytes(Device device);

// ---------------------------------------------------------------- capture and replay
class DeviceGraph {
 public:
  DeviceGraph();
  ~DeviceGraph();
  DeviceGraph(DeviceGraph&&) noexcept;
  DeviceGraph& operator=(DeviceGraph&&) noexcept;
  DeviceGraph(const DeviceGraph&) = delete;
  DeviceGraph& operator=(const DeviceGraph&) = delete;

  // Work issued on `device`'s engine stream from begin_capture to end_capture
  // is recorded instead of run. One capture at a time per device; the device
  // must be cuda or emu.
  static void begin_capture(Device device);
  // Ends the capture and instantiates the graph; throws (naming the first
  // violation: a host wait, a host copy, a foreign free, an allocation that
  // outlives the capture) if the capture cannot be replayed.
  static DeviceGraph end_capture(Device device);
  // Ends a capture after an exception without building anything (no throw).
  static void abandon_capture(Device device) noexcept;
  static bool capturing(Device device);

  void replay();  // issues the captured work on the engine stream (no host wait)
  bool empty() const;
  size_t nodes() const;  // recorded operations (emu) or graph nodes (cuda)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Turns an exception inside a capture into its abandonment (the destructor
// abandons unless end() was called).
class CaptureScope {
 public:
  explicit CaptureScope(Device device) : device_(device) { DeviceGraph::begin_capture(device); }
  ~CaptureScope() {
    if (!ended_) DeviceGraph::abandon_capture(device_);
  }
  DeviceGraph end() {
    ended_ = true;
    return DeviceGraph::end_capture(device_);
  }
  CaptureScope(const CaptureScope&) = delete;
  CaptureScope& operator=(const CaptureScope&) = delete;

 private:
  Device device_;
  bool ended_ = false;
};

// ---------------------------------------------------------------- the emulated device's capture
// (engine/async.cpp; called by engine/device.cpp and by the emulator's launch
// and runtime functions, kernels/emu/cuda_emu.{h,cpp})
namespace detail {
bool emu_capturing();
// While capturing: keeps `op` for replay and returns true; else returns false
// (the caller runs the operation itself).
bool emu_capture_record(std::function<void()> op);
// While capturing: a host wait or host copy named `what` breaks the capture;
// returns true (the caller returns cudaErrorStreamCaptureUnsupported or throws).
bool emu_capture_forbid(const std::string& what);
// Allocation bookkeeping while capturing (no-ops otherwise).
void emu_capture_alloc(const void* p, size_t bytes);
// A free while capturing: true when the capture took `release` (run when the
// graph is destroyed); false when not capturing (the caller frees now).
bool emu_capture_free(const void* p, std::function<void()> release);
// Where a pinned block goes when its storage dies (engine/device.cpp): the cache.
void pinned_release(void* p, size_t bytes);
}  // namespace detail

}  // namespace simclr
