// optim/lars.cpp - the plain-loop LARS reference (see lars.h).
#include "optim/lars.h"

#include <cmath>

namespace simclr {

Lars::Lars(const LarsConfig& cfg, ParamStore& store) : cfg_(cfg), store_(&store) {
  SIMCLR_CHECK(store.materialized(), "LARS: the parameter store is not materialised");
  SIMCLR_CHECK(store.values().device().is_cpu(), "LARS: the plain-loop reference runs on the CPU, parameters are on ",
               store.values().device().str());
  momentum_ = Tensor::zeros(store.values().shape(), DType::f32, store.values().device());
}

void Lars::step(double lr) {
  float* wbase = store_->values().data<float>();
  const float* gbase = store_->grads().data<float>();
  float* vbase = momentum_.data<float>();
  const double m = cfg_.momentum, wd = cfg_.weight_decay, eta = cfg_.eta;
  trust_.clear();
  int64_t off = 0;
  for (const Param& p : store_->params()) {
    if (!p.trainable()) continue;
    const int64_t n = p.shape.numel();
    float* w = wbase + off;
    const float* g = gbase + off;
    float* v = vbase + off;
    off += n;
    const bool adapt = !p.excluded_from_adaptation();
    double lr_w = lr, trust = 1.0;
    if (adapt) {
      double wn = 0, gn = 0;
      for (int64_t i = 0; i < n; i++) {
        double gi = static_cast<double>(g[i]) + wd * static_cast<double>(w[i]);
        wn += static_cast<double>(w[i]) * w[i];
        gn += gi * gi;
      }
      wn = std::sqrt(wn);
      gn = std::sqrt(gn);
      if (wn > 0 && gn > 0) trust = eta * wn / gn;
      lr_w = lr * trust;
    }
    trust_.push_back(trust);
    const double dw = adapt ? wd : 0.0;
    for (int64_t i = 0; i < n; i++) {
      const double gi = static_cast<double>(g[i]) + dw * static_cast<double>(w[i]);
      const double vi = m * static_cast<double>(v[i]) + lr_w * gi;
      v[i] = static_cast<float>(vi);
      const double update = cfg_.nesterov ? m * vi + lr_w * gi : vi;
      w[i] = static_cast<float>(static_cast<double>(w[i]) - update);
    }
  }
}

}  // namespace simclr
