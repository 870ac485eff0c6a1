// optim/sgd.cpp - see sgd.h.
#include "optim/sgd.h"

namespace simclr {

Sgd::Sgd(const SgdConfig& cfg, ParamStore& store) : cfg_(cfg), store_(&store) {
  SIMCLR_CHECK(store.materialized(), "SGD: the parameter store is not materialised");
  SIMCLR_CHECK(store.values().device().is_cpu(), "SGD: the plain-loop reference runs on the CPU");
  SIMCLR_CHECK(!cfg.nesterov || cfg.momentum > 0, "SGD: Nesterov momentum needs momentum > 0");
  buf_ = Tensor::zeros(store.values().shape(), DType::f32);
  steps_ = Tensor::zeros({1}, DType::i64);
}

void Sgd::step(double lr) {
  float* wbase = store_->values().data<float>();
  const float* gbase = store_->grads().data<float>();
  float* bbase = buf_.data<float>();
  int64_t& steps = steps_.data<int64_t>()[0];
  const double m = cfg_.momentum;
  int64_t off = 0;
  for (const Param& p : store_->params()) {
    if (!p.trainable()) continue;
    const int64_t n = p.shape.numel();
    float* w = wbase + off;
    const float* g = gbase + off;
    float* b = bbase + off;
    off += n;
    const double wd = (cfg_.decay_excluded && p.excluded_from_adaptation()) ? 0.0 : cfg_.weight_decay;
    for (int64_t i = 0; i < n; i++) {
      double gi = static_cast<double>(g[i]) + wd * static_cast<double>(w[i]);
      double d = gi;
      if (m != 0) {
        double bi = steps == 0 ? gi : m * static_cast<double>(b[i]) + gi;
        b[i] = static_cast<float>(bi);
        d = cfg_.nesterov ? gi + m * bi : bi;
      }
      w[i] = static_cast<float>(static_cast<double>(w[i]) - lr * d);
    }
  }
  steps += 1;
}

}  // namespace simclr
