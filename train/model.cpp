// train/model.cpp - see model.h.
#include "train/model.h"

#include "optim/adamw.h"
#include "optim/lars.h"
#include "optim/sgd.h"

namespace simclr {

SimclrModel::SimclrModel(const ResNetConfig& model, const HeadConfig* head_cfg) {
  encoder = std::make_unique<ResNet>(model, store);
  if (head_cfg) head = std::make_unique<ProjectionHead>(*head_cfg, encoder->feature_dim(), store);
  store.materialize();
}

void SimclrModel::init(uint64_t seed) {
  encoder->init(seed);
  if (head) head->init(seed);
}

json model_arch_json(const RunConfig& c, const SimclrModel& m) {
  return {{"encoder", m.encoder->arch_name()},
          {"depth", c.model.depth},
          {"width", c.model.width},
          {"stem", c.model.stem},
          {"in_channels", c.model.in_channels},
          {"image_size", c.data.image_size},
          {"feature_dim", m.encoder->feature_dim()},
          {"mean", c.data.mean},
          {"std", c.data.std},
          {"layout", "NHWC activations, OHWI conv weights, OI linear weights"},
          {"head", {{"depth", c.head.depth}, {"hidden", c.head.hidden}, {"out", c.head.out}, {"bn", c.head.bn}}}};
}

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& c, ParamStore& store) {
  if (c.name == "lars") {
    LarsConfig l;
    l.momentum = c.momentum;
    l.eta = c.eta;
    l.weight_decay = c.weight_decay;
    l.nesterov = c.nesterov;
    return std::make_unique<Lars>(l, store);
  }
  if (c.name == "sgd") {
    SgdConfig s;
    s.momentum = c.momentum;
    s.nesterov = c.nesterov;
    s.weight_decay = c.weight_decay;
    s.decay_excluded = true;
    return std::make_unique<Sgd>(s, store);
  }
  AdamWConfig a;
  a.beta1 = c.beta1;
  a.beta2 = c.beta2;
  a.eps = c.eps;
  a.weight_decay = c.weight_decay;
  a.decay_excluded = true;
  return std::make_unique<AdamW>(a, store);
}

}  // namespace simclr
