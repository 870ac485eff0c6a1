// engine/param.h - named parameters and buffers in contiguous storage.
//
// A model registers every tensor it owns under a dotted torchvision-style name
// ("layer1.0.conv1.weight", "bn1.running_mean") with flags, then calls
// materialize(): all trainable parameters become views into ONE contiguous
// value buffer, their gradients views into ONE contiguous gradient buffer
// (zeroing is one memset, a gradient all-reduce is one call, LARS runs over
// one buffer), and buffers (running statistics, counters) into a third.
// Checkpoints, export and the optimiser's exclusion rules read the names and
// flags; nothing else needs to know the model's structure.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace simclr {

enum ParamFlags : uint32_t {
  kTrainable = 1u << 0,  // has a gradient; updated by the optimiser
  kIsBN = 1u << 1,       // batch-norm gamma/beta (excluded from LARS decay/adaptation)
  kIsBias = 1u << 2,     // a bias (excluded from LARS decay/adaptation)
  kIsBuffer = 1u << 3,   // running_mean / running_var / num_batches_tracked
  kIsHead = 1u << 4,     // belongs to the projection head (dropped on export)
};

struct Param {
  std::string name;
  Shape shape;
  DType dtype = DType::f32;
  uint32_t flags = 0;
  Tensor value;  // view into the store's buffer after materialize()
  Tensor grad;   // view into the gradient buffer (trainable only)
  bool trainable() const { return flags & kTrainable; }
  // LARS/weight-decay exclusion: BN parameters and biases.
  bool excluded_from_adaptation() const { return flags & (kIsBN | kIsBias); }
};

class ParamStore {
 public:
  // Register a tensor; returns its index. Names must be unique.
  size_t add(const std::string& name, const Shape& shape, uint32_t flags, DType dtype = DType::f32);
  // Allocate the contiguous buffers on `device` and bind values/grads as views.
  // Each parameter's value tensor gets requires_grad (trainable) and its grad
  // slot bound to its gradient view, so backward accumulates in place.
  void materialize(Device device = Device::cpu());
  bool materialized() const { return materialized_; }
  // Moves the three buffers to `device` (a copy; values, gradients and buffers
  // keep their contents) and rebinds every parameter's views: parameter
  // tensors taken before the call keep pointing at the old buffers.
  void to(Device device);
  Device device() const;

  std::vector<Param>& params() { return params_; }
  const std::vector<Param>& params() const { return params_; }
  Param& get(const std::string& name);
  const Param& get(const std::string& name) const;
  const Param* find(const std::string& name) const;
  Tensor& operator[](const std::string& name) { return get(name).value; }

  Tensor& values() { return values_; }    // flat f32, all trainables
  Tensor& grads() { return grads_; }      // flat f32, same layout as values()
  Tensor& buffers() { return buffers_; }  // flat f32, running stats etc.
  size_t num_trainable() const;           // elements
  void zero_grad();
  // Make every trainable's grad slot point at its view again (after an op
  // replaced it) - called by zero_grad().
  void rebind_grads();

 private:
  std::vector<Param> params_;
  void bind_views();
  Tensor values_, grads_, buffers_;
  bool materialized_ = false;
};

}  // namespace simclr
