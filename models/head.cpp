// models/head.cpp - see head.h.
#include "models/head.h"

#include <cmath>

#include "engine/profile.h"
#include "models/init.h"
#include "models/resnet.h"

namespace simclr {

ProjectionHead::ProjectionHead(const HeadConfig& cfg, int64_t in_dim, ParamStore& store, const std::string& prefix)
    : cfg_(cfg), store_(&store) {
  SIMCLR_CHECK(cfg.depth >= 1 && cfg.depth <= 4, "head: depth ", cfg.depth, " is out of range [1, 4]");
  SIMCLR_CHECK(cfg.out >= 1 && cfg.hidden >= 0, "head: bad widths (hidden ", cfg.hidden, ", out ", cfg.out, ")");
  const int64_t hidden = cfg.hidden > 0 ? cfg.hidden : in_dim;
  int idx = 0;  // nn.Sequential index
  int64_t in = in_dim;
  for (int l = 0; l < cfg.depth; l++) {
    Layer L;
    L.last = l == cfg.depth - 1;
    L.in = in;
    L.out = L.last ? cfg.out : hidden;
    const uint32_t H = kIsHead;
    L.weight = store.add(prefix + std::to_string(idx++) + ".weight", {L.out, L.in}, kTrainable | H);
    L.bias = L.gamma = L.beta = L.mean = L.var = L.count = kNoParam;
    if (cfg.bn) {
      const std::string b = prefix + std::to_string(idx++);
      L.gamma = store.add(b + ".weight", {L.out}, kTrainable | kIsBN | H);
      if (!L.last) L.beta = store.add(b + ".bias", {L.out}, kTrainable | kIsBN | H);
      L.mean = store.add(b + ".running_mean", {L.out}, kIsBuffer | kIsBN | H);
      L.var = store.add(b + ".running_var", {L.out}, kIsBuffer | kIsBN | H);
      L.count = store.add(b + ".num_batches_tracked", {1}, kIsBuffer | kIsBN | H);
    } else {
      L.bias = store.add(prefix + std::to_string(idx - 1) + ".bias", {L.out}, kTrainable | kIsBias | H);
    }
    if (!L.last) idx++;  // the ReLU's slot
    layers_.push_back(L);
    in = L.out;
  }
}

void ProjectionHead::init(uint64_t seed) {
  SIMCLR_CHECK(store_->materialized(), "ProjectionHead::init before ParamStore::materialize()");
  auto& ps = store_->params();
  auto uniform = [&](size_t i, double bound) {
    Param& p = ps[i];
    Tensor host = p.value.device().is_cpu() ? p.value : Tensor::empty(p.shape, DType::f32);
    init_uniform(host, -bound, bound, seed, hash_name(p.name.c_str()));
    if (!p.value.device().is_cpu()) p.value.copy_from(host);
  };
  for (const Layer& L : layers_) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(L.in));
    uniform(L.weight, bound);
    if (L.bias != kNoParam) uniform(L.bias, bound);
    if (L.gamma != kNoParam) ps[L.gamma].value.fill(1.0);
    if (L.beta != kNoParam) ps[L.beta].value.fill(0.0);
    if (L.mean != kNoParam) ps[L.mean].value.fill(0.0);
    if (L.var != kNoParam) ps[L.var].value.fill(1.0);
    if (L.count != kNoParam) ps[L.count].value.fill(0.0);
  }
}

int64_t ProjectionHead::width_after(int layers) const {
  if (layers < 0 || layers >= static_cast<int>(layers_.size())) return layers_.back().out;
  return layers == 0 ? layers_.front().in : layers_[static_cast<size_t>(layers - 1)].out;
}

Tensor ProjectionHead::forward(const Tensor& h, bool training, Communicator* comm, int layers) {
  auto& ps = store_->params();
  Tensor x = h;
  SIMCLR_CHECK(layers <= static_cast<int>(layers_.size()), "projection head: ", layers, " layers asked of ",
               layers_.size());
  const size_t n = layers < 0 ? layers_.size() : static_cast<size_t>(layers);
  for (size_t li = 0; li < n; li++) {
    const Layer& L = layers_[li];
    {
      OpTimer t("linear");
      // weights in x's dtype (bf16 copies of the f32 masters under bf16; the masters otherwise)
      x = linear(x, cast(ps[L.weight].value, x.dtype()), L.bias == kNoParam ? Tensor() : cast(ps[L.bias].value, x.dtype()));
    }
    if (cfg_.bn) {
      x = apply_batch_norm(*store_, x, L.gamma, L.beta, L.mean, L.var, L.count, training, cfg_.bn_momentum,
                           cfg_.bn_eps, comm, /*relu=*/!L.last);
    } else if (!L.last) {
      OpTimer t("relu");
      x = relu(x);
    }
  }
  return x;
}

}  // namespace simclr
