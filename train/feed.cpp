// train/feed.cpp - see feed.h.
#include "train/feed.h"

#include "engine/check.h"
#include "engine/device.h"

#include <algorithm>

namespace simclr {

DeviceFeeder::Slot& DeviceFeeder::claim() {
  Slot& s = slots_[next_];
  last_ = next_;
  next_ = 1 - next_;
  if (!s.used) {
    s.copied = DeviceEvent(device_);
    s.consumed = DeviceEvent(device_);
    s.used = true;
  }
  s.copied.wait_host();  // the previous copy from this slot's host batch is done: it may be released
  return s;
}

namespace {
// t with this shape and dtype on `device`, reusing `t` when it already is one.
void ensure(Tensor& t, const Shape& shape, DType dtype, Device device) {
  if (!t.defined() || !(t.shape() == shape) || t.dtype() != dtype) t = Tensor::empty(shape, dtype, device);
}

size_t workspace_bytes(Device d, const AugmentBatch& b) {
#if defined(SIMCLR_HAVE_EMU)
  if (d.is_emu()) return emu::augment_workspace_bytes(b);
#endif
#if defined(SIMCLR_WITH_CUDA)
  if (d.is_cuda()) return gpu::augment_workspace_bytes(b);
#endif
  (void)d;
  (void)b;
  return 0;
}
}  // namespace

Tensor DeviceFeeder::put(const Tensor& host_views) {
  if (!device_.runs_cuda_code() || host_views.device() == device_) return host_views;
  Slot& s = claim();
  ensure(s.dev, host_views.shape(), host_views.dtype(), device_);  // (a smaller last batch)
  s.host = host_views;
  if (is_pinned(host_views)) {
    s.consumed.wait_copy_stream();  // the step two batches ago has finished reading s.dev
    copy_async(s.dev, s.host, CopyStream::copy);
    s.copied.record_copy_stream();
    s.copied.wait_engine_stream();
  } else {
    s.dev.copy_from(s.host);  // pageable memory: a synchronous copy on the engine stream
  }
  return s.dev;
}

Tensor DeviceFeeder::put_augmented(const Tensor& sources, const Tensor& view_params, const AugmentBatch& b,
                                   DType dtype) {
  SIMCLR_CHECK(device_.runs_cuda_code(), "put_augmented: the device ", device_.str(), " does not run CUDA code");
  SIMCLR_CHECK(dtype == DType::f32 || dtype == DType::bf16, "put_augmented: views of ", dtype_name(dtype),
               " (f32 or bf16)");
  SIMCLR_CHECK(sources.dtype() == DType::u8 && view_params.dtype() == DType::u8 &&
                   view_params.nbytes() == static_cast<size_t>(b.views) * sizeof(AugmentView),
               "put_augmented: sources and view_params must be u8, view_params ", b.views, " AugmentView records");
  Slot& s = claim();
  ensure(s.dev_src, sources.shape(), DType::u8, device_);
  ensure(s.dev_params, view_params.shape(), DType::u8, device_);
  s.host = sources;
  s.host_params = view_params;
  if (is_pinned(sources) && is_pinned(view_params)) {
    s.consumed.wait_copy_stream();  // the step two batches ago (and its augmentation) is done with this slot
    copy_async(s.dev_src, s.host, CopyStream::copy);
    copy_async(s.dev_params, s.host_params, CopyStream::copy);
    s.copied.record_copy_stream();
    s.copied.wait_engine_stream();
  } else {
    s.dev_src.copy_from(s.host);
    s.dev_params.copy_from(s.host_params);
  }
  ensure(s.dev, Shape{b.views, b.out_h, b.out_w, b.channels}, dtype, device_);
  ensure(s.workspace, Shape{static_cast<int64_t>(std::max<size_t>(workspace_bytes(device_, b), 1))}, DType::u8, device_);
  const auto* src = static_cast<const uint8_t*>(s.dev_src.data_ptr());
  const auto* views = static_cast<const AugmentView*>(s.dev_params.data_ptr());
  void* out = s.dev.data_ptr();
  void* work = s.workspace.data_ptr();
  if (device_.is_emu()) {
#if defined(SIMCLR_HAVE_EMU)
    if (dtype == DType::f32) emu::augment_views(static_cast<float*>(out), src, views, b, work, nullptr);
    else emu::augment_views(static_cast<bf16*>(out), src, views, b, work, nullptr);
#else
    fail("put_augmented: this build has no kernel emulator");
#endif
  } else {
#if defined(SIMCLR_WITH_CUDA)
    auto* stream = static_cast<cudaStream_t>(cuda_current_stream(device_.index));
    if (dtype == DType::f32) gpu::augment_views(static_cast<float*>(out), src, views, b, work, stream);
    else gpu::augment_views(static_cast<bf16*>(out), src, views, b, work, stream);
#else
    fail("put_augmented: this build has no CUDA");
#endif
  }
  return s.dev;
}

void DeviceFeeder::issued() {
  if (last_ >= 0 && slots_[last_].used) slots_[last_].consumed.record();
}

}  // namespace simclr
