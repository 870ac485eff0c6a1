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
  // The same update in two halves, for a captured step (engine/async.h): stage_lr
  // puts lr where the update reads it (on a device store: a device scalar,
  // written outside any capture) and step_staged() runs the update with it, so
  // a graph captured around step_staged() replays with each new rate. The
  // defaults keep lr on the host (CPU optimisers cannot be captured anyway).
  virtual void stage_lr(double lr) { staged_lr_ = lr; }
  virtual void step_staged() { step(staged_lr_); }
  // The device step's loss check, without a host wait: records `loss` (one
  // f32 on the store's device) in guard_state() and, when it is not finite,
  // makes this step's update and every later one a no-op until clear_guard().
  // Returns false when the optimiser has no device guard (the caller then
  // checks the loss on the host before the update).
  virtual bool guard(const Tensor& /*loss*/) { return false; }
  // f32[2] on the device: [loss of the last guarded step, 1 when updates are halted].
  virtual Tensor guard_state() const { return {}; }
  virtual void clear_guard() {}
  // "lars", "sgd", "adamw"
  virtual const char* name() const = 0;
  // Named state tensors ("momentum", ...), views into the optimiser's buffers.
  virtual std::vector<std::pair<std::string, Tensor>> state() = 0;

 protected:
  double staged_lr_ = 0;
};

}  // namespace simclr
