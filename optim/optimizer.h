// optim/optimizer.h - the interface every optimiser implements.
//
// An optimiser updates the trainable parameters of one ParamStore from their
// gradients (ParamStore::grads(), the same flat layout as values()). Its state
// (momentum, Adam moments, step counter) lives in flat buffers of the same
// layout, exposed by name for checkpoints: state() returns views that a
// checkpoint can read and load_state() writes into.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "engine/param.h"

namespace simclr {

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update with learning rate lr (already scheduled).
  virtual void step(double lr) = 0;
  // "lars", "sgd", "adamw"
  virtual const char* name() const = 0;
  // Named state tensors ("momentum", ...), views into the optimiser's buffers.
  virtual std::vector<std::pair<std::string, Tensor>> state() = 0;
};

}  // namespace simclr
