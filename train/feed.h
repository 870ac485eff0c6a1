// train/feed.h - batches onto the training device without stalling it.
//
// Two device buffers are used in turn. For batch k: the copy stream waits
// until the step that read buffer k % 2 two batches ago has finished with it
// (an event, no host wait), copies the host views into it - asynchronously
// when they are in page-locked memory (the loader allocates them there when
// training on a GPU), else with a plain synchronous copy - and the engine
// stream waits for that copy before the step's first kernel. So the copy of
// batch k+1 runs while step k computes. The host batch is kept alive until
// its copy has finished. On the CPU device put() returns the views as they
// are; on the emulated device every copy is done on return (engine/async.h).
#pragma once
#include "engine/async.h"
#include "engine/tensor.h"

namespace simclr {

class DeviceFeeder {
 public:
  explicit DeviceFeeder(Device device) : device_(device) {}
  // The views on the device (valid for the next step that uses them).
  Tensor put(const Tensor& host_views);
  // Call after the step that used the last put() has been issued.
  void issued();

 private:
  struct Slot {
    Tensor host, dev;
    DeviceEvent copied, consumed;
    bool used = false;
  };
  Device device_;
  Slot slots_[2];
  int next_ = 0, last_ = -1;
};

}  // namespace simclr
