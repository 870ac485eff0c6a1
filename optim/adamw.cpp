// optim/adamw.cpp - see adamw.h.
#include "optim/adamw.h"

#include <cmath>

namespace simclr {

AdamW::AdamW(const AdamWConfig& cfg, ParamStore& store) : cfg_(cfg), store_(&store) {
  SIMCLR_CHECK(store.materialized(), "AdamW: the parameter store is not materialised");
  SIMCLR_CHECK(store.values().device().is_cpu(), "AdamW: the plain-loop reference runs on the CPU");
  m_ = Tensor::zeros(store.values().shape(), DType::f32);
  v_ = Tensor::zeros(store.values().shape(), DType::f32);
  steps_ = Tensor::zeros({1}, DType::i64);
}

void AdamW::step(double lr) {
  int64_t& t = steps_.data<int64_t>()[0];
  t += 1;
  const double b1 = cfg_.beta1, b2 = cfg_.beta2;
  const double c1 = 1.0 - std::pow(b1, static_cast<double>(t));
  const double c2 = 1.0 - std::pow(b2, static_cast<double>(t));
  float* wbase = store_->values().data<float>();
  const float* gbase = store_->grads().data<float>();
  float* mbase = m_.data<float>();
  float* vbase = v_.data<float>();
  int64_t off = 0;
  for (const Param& p : store_->params()) {
    if (!p.trainable()) continue;
    const int64_t n = p.shape.numel();
    const double wd = (cfg_.decay_excluded && p.excluded_from_adaptation()) ? 0.0 : cfg_.weight_decay;
    for (int64_t i = off; i < off + n; i++) {
      double w = static_cast<double>(wbase[i]) * (1.0 - lr * wd);
      const double g = gbase[i];
      const double m = b1 * mbase[i] + (1 - b1) * g;
      const double v = b2 * vbase[i] + (1 - b2) * g * g;
      mbase[i] = static_cast<float>(m);
      vbase[i] = static_cast<float>(v);
      w -= lr * (m / c1) / (std::sqrt(v / c2) + cfg_.eps);
      wbase[i] = static_cast<float>(w);
    }
    off += n;
  }
}

}  // namespace simclr
