// optim/adamw.h - AdamW (Loshchilov & Hutter), PyTorch's torch.optim.AdamW
// convention. Plain-loop CPU reference. At step t (1-based):
//   w = w - lr wd w                       (decoupled decay; skipped for BN
//                                          params/biases when decay_excluded)
//   m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
//   w = w - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
#pragma once
#include "optim/optimizer.h"

namespace simclr {

struct AdamWConfig {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
  bool decay_excluded = false;
};

class AdamW : public Optimizer {
 public:
  AdamW(const AdamWConfig& cfg, ParamStore& store);
  void step(double lr) override;
  const char* name() const override { return "adamw"; }
  std::vector<std::pair<std::string, Tensor>> state() override {
    return {{"exp_avg", m_}, {"exp_avg_sq", v_}, {"steps", steps_}};
  }

 private:
  AdamWConfig cfg_;
  ParamStore* store_;
  Tensor m_, v_;  // f32, layout of store.values()
  Tensor steps_;  // i64[1]
};

}  // namespace simclr
