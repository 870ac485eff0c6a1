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
//
// put_augmented() is the same for a batch whose views the device makes
// (data.augment_on = gpu; the loader's workers gathered the sources and drew
// the parameters, data/loader.h LoaderOptions::gpu_augment): the sources and
// the parameter table go over on the copy stream, and the augmentation
// kernels (kernels/cuda/augment.cu, emulated on emu) run on the engine stream
// after the copy's event, into the slot's view buffer. With the two slots,
// batch k+1's copy overlaps step k; the host never waits for the device
// except for the copy that used the same slot two batches ago.
#pragma once
#include "engine/async.h"
#include "engine/tensor.h"
#include "kernels/augment.h"

namespace simclr {

class DeviceFeeder {
 public:
  explicit DeviceFeeder(Device device) : device_(device) {}
  // The views on the device (valid for the next step that uses them).
  Tensor put(const Tensor& host_views);
  // Views [b.views, b.out_h, b.out_w, b.channels] of `dtype` (f32 or bf16)
  // made on the device from host u8 `sources` and the u8 table of
  // AugmentView `view_params` (pinned: asynchronous copies). Device: cuda or emu.
  Tensor put_augmented(const Tensor& sources, const Tensor& view_params, const AugmentBatch& b, DType dtype);
  // Call after the step that used the last put() has been issued.
  void issued();

 private:
  struct Slot {
    Tensor host, dev;
    Tensor host_params, dev_src, dev_params, workspace;  // put_augmented
    DeviceEvent copied, consumed;
    bool used = false;
  };
  Device device_;
  Slot& claim();  // the next slot, its previous host copy finished
  Slot slots_[2];
  int next_ = 0, last_ = -1;
};

}  // namespace simclr
