// train/feed.cpp - see feed.h.
#include "train/feed.h"

namespace simclr {

Tensor DeviceFeeder::put(const Tensor& host_views) {
  if (!device_.runs_cuda_code() || host_views.device() == device_) return host_views;
  Slot& s = slots_[next_];
  last_ = next_;
  next_ = 1 - next_;
  if (!s.used) {
    s.copied = DeviceEvent(device_);
    s.consumed = DeviceEvent(device_);
    s.used = true;
  }
  if (!s.dev.defined() || !(s.dev.shape() == host_views.shape()) || s.dev.dtype() != host_views.dtype())
    s.dev = Tensor::empty(host_views.shape(), host_views.dtype(), device_);  // (a smaller last batch)
  s.copied.wait_host();  // the previous copy from this slot's host batch is done: it may be released
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

void DeviceFeeder::issued() {
  if (last_ >= 0 && slots_[last_].used) slots_[last_].consumed.record();
}

}  // namespace simclr
