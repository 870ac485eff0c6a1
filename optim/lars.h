// optim/lars.h - LARS exactly as the official SimCLR (tf2/lars_optimizer.py,
// classic momentum). This file is the plain-loop CPU reference.
//
// For each trainable parameter w with gradient g:
//   not excluded:  g' = g + wd w
//                  trust = eta |w| / |g'|  when |w| > 0 and |g'| > 0, else 1
//                  lr_w = lr trust
//   excluded (BN gamma/beta and biases, Param::excluded_from_adaptation()):
//                  g' = g, lr_w = lr      (no weight decay, no adaptation)
//   v = momentum v + lr_w g'
//   w = w - v                          (nesterov: w = w - (momentum v + lr_w g'))
// Norms are L2 over the whole tensor, accumulated in double. The momentum
// buffer v is one contiguous buffer with the layout of ParamStore::values().
// Defaults: momentum 0.9, eta 0.001, weight decay 1e-6.
//
// One step runs over the whole store at once (contract: kernels/lars.h): on
// the CPU the plain-loop reference kernels/cpu/lars.cpp, on a CUDA store the
// fused kernels of kernels/cuda/lars.cu (two launches for the whole model;
// the learning rate goes through a device scalar, so the step can be part of
// a captured CUDA graph).
#pragma once
#include "kernels/lars.h"
#include "optim/optimizer.h"

namespace simclr {

struct LarsConfig {
  double momentum = 0.9;
  double eta = 0.001;
  double weight_decay = 1e-6;
  bool nesterov = false;
};

class Lars : public Optimizer {
 public:
  Lars(const LarsConfig& cfg, ParamStore& store);
  void step(double lr) override;
  void stage_lr(double lr) override;
  void step_staged() override;
  bool guard(const Tensor& loss) override;
  Tensor guard_state() const override { return guard_dev_; }
  void clear_guard() override;
  const char* name() const override { return "lars"; }
  std::vector<std::pair<std::string, Tensor>> state() override { return {{"momentum", momentum_}}; }
  // Trust ratio of each trainable parameter at the last step (1 for excluded
  // ones), in ParamStore order of the trainables - for logs and tests. On a
  // CUDA store this copies them from the device (and waits for the step).
  const std::vector<double>& last_trust() const;
  // The segment table (one per trainable parameter, store order; kernels/lars.h).
  const std::vector<LarsSegment>& segments() const { return segments_; }

 private:
  LarsConfig cfg_;
  ParamStore* store_;
  Tensor momentum_;  // f32, same layout as store.values()
  std::vector<LarsSegment> segments_;  // one per trainable parameter, in store order
  mutable std::vector<double> trust_;
  // CUDA store only: the tables, the workspace, lr and trust on the device
  int64_t num_chunks_ = 0;
  Tensor segments_dev_, chunks_dev_, workspace_, lr_dev_, trust_dev_;
  Tensor guard_dev_;  // f32[2]: [last loss, halted] (optimizer.h guard)
  mutable bool trust_stale_ = false;
};

}  // namespace simclr
