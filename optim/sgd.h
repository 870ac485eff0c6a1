// optim/sgd.h - SGD with momentum, Nesterov and weight decay, PyTorch's
// convention (torch.optim.SGD, dampening 0). Plain-loop CPU reference.
//   g' = g + wd w            (every trainable, unless decay_excluded and the
//                             parameter is BN/bias: then g' = g)
//   b  = momentum b + g'     (b = g' at the first step, as PyTorch)
//   d  = nesterov ? g' + momentum b : b      (momentum 0: d = g')
//   w  = w - lr d
#pragma once
#include "optim/optimizer.h"

namespace simclr {

struct SgdConfig {
  double momentum = 0.9;
  bool nesterov = false;
  double weight_decay = 0.0;
  bool decay_excluded = false;  // skip decay for BN params and biases
};

class Sgd : public Optimizer {
 public:
  Sgd(const SgdConfig& cfg, ParamStore& store);
  void step(double lr) override;
  const char* name() const override { return "sgd"; }
  std::vector<std::pair<std::string, Tensor>> state() override { return {{"momentum", buf_}, {"steps", steps_}}; }

 private:
  SgdConfig cfg_;
  ParamStore* store_;
  Tensor buf_;    // f32, layout of store.values()
  Tensor steps_;  // i64[1], updates done
};

}  // namespace simclr
