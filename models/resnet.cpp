// models/resnet.cpp - see resnet.h.
#include "models/resnet.h"

#include <cmath>
#include <random>
#include <vector>

#include "engine/async.h"
#include "engine/autograd.h"
#include "engine/profile.h"
#include "models/init.h"

namespace simclr {

int64_t scaled_channels(int64_t base, double width) {
  return std::max<int64_t>(1, std::llround(static_cast<double>(base) * width));
}

Tensor apply_batch_norm(ParamStore& store, const Tensor& x, size_t gamma, size_t beta, size_t mean, size_t var,
                        size_t count, bool training, double momentum, double eps, Communicator* comm,
                        bool relu) {
  auto& ps = store.params();
  BatchNormOptions opt;
  opt.training = training;
  opt.momentum = momentum;
  opt.eps = eps;
  opt.comm = comm;
  opt.relu = relu;
  // gamma/beta in x's dtype (bf16 copies of the f32 masters under bf16; the
  // f32 tensors themselves otherwise); the running statistics stay f32.
  Tensor g = gamma == kNoParam ? Tensor() : cast(ps[gamma].value, x.dtype());
  Tensor b = beta == kNoParam ? Tensor() : cast(ps[beta].value, x.dtype());
  Tensor y;
  {
    OpTimer t(relu ? "batch_norm+relu" : "batch_norm");
    y = batch_norm(x, g, b, ps[mean].value, ps[var].value, opt);
  }
  if (training && count != kNoParam) {
    // num_batches_tracked: a one-element counter (f32 buffer; exact to 2^24).
    Tensor c = ps[count].value;
    if (c.device().is_cpu()) {
      c.data<float>()[0] += 1.0f;
    } else {
      // On the device, without a host round trip (a captured step replays it): c += 1.
      c.copy_from(add(c, device_scalar(1.0, DType::f32, c.device())));
    }
  }
  return y;
}

ConvBN ResNet::add_conv_bn(const std::string& conv_name, const std::string& bn_name, int64_t in, int64_t out, int k,
                           int stride, int pad) {
  ConvBN cb;
  const std::string c = prefix_ + conv_name, b = prefix_ + bn_name;
  cb.conv = store_->add(c + ".weight", {out, k, k, in}, kTrainable);
  cb.gamma = store_->add(b + ".weight", {out}, kTrainable | kIsBN);
  cb.beta = store_->add(b + ".bias", {out}, kTrainable | kIsBN);
  cb.mean = store_->add(b + ".running_mean", {out}, kIsBuffer | kIsBN);
  cb.var = store_->add(b + ".running_var", {out}, kIsBuffer | kIsBN);
  cb.count = store_->add(b + ".num_batches_tracked", {1}, kIsBuffer | kIsBN);
  cb.stride = stride;
  cb.pad = pad;
  return cb;
}

ResNet::ResNet(const ResNetConfig& cfg, ParamStore& store, const std::string& prefix)
    : cfg_(cfg), store_(&store), prefix_(prefix) {
  std::vector<int> layers;
  switch (cfg.depth) {
    case 18: layers = {2, 2, 2, 2}; break;
    case 34: layers = {3, 4, 6, 3}; break;
    case 50: layers = {3, 4, 6, 3}; break;
    case 101: layers = {3, 4, 23, 3}; break;
    case 152: layers = {3, 8, 36, 3}; break;
    default: fail("resnet: depth ", cfg.depth, " is not one of 18, 34, 50, 101, 152");
  }
  SIMCLR_CHECK(cfg.width > 0 && cfg.width <= 64, "resnet: width multiplier ", cfg.width, " is out of range (0, 64]");
  SIMCLR_CHECK(cfg.in_channels == 1 || cfg.in_channels == 3, "resnet: in_channels must be 1 or 3, got ",
               cfg.in_channels);
  SIMCLR_CHECK(cfg.stem == "imagenet" || cfg.stem == "cifar", "resnet: stem must be \"imagenet\" or \"cifar\", got \"",
               cfg.stem, "\"");
  bottleneck_ = cfg.depth >= 50;
  const int64_t expansion = bottleneck_ ? 4 : 1;

  int64_t inplanes = scaled_channels(64, cfg.width);
  if (cfg.stem == "imagenet")
    stem_ = add_conv_bn("conv1", "bn1", cfg.in_channels, inplanes, 7, 2, 3);
  else
    stem_ = add_conv_bn("conv1", "bn1", cfg.in_channels, inplanes, 3, 1, 1);

  for (int li = 0; li < 4; li++) {
    const int64_t planes = scaled_channels(64 << li, cfg.width);
    for (int bi = 0; bi < layers[li]; bi++) {
      const int stride = (li > 0 && bi == 0) ? 2 : 1;
      const std::string p = "layer" + std::to_string(li + 1) + "." + std::to_string(bi) + ".";
      Block b;
      if (bottleneck_) {
        b.c1 = add_conv_bn(p + "conv1", p + "bn1", inplanes, planes, 1, 1, 0);
        b.c2 = add_conv_bn(p + "conv2", p + "bn2", planes, planes, 3, stride, 1);
        b.c3 = add_conv_bn(p + "conv3", p + "bn3", planes, planes * expansion, 1, 1, 0);
      } else {
        b.c1 = add_conv_bn(p + "conv1", p + "bn1", inplanes, planes, 3, stride, 1);
        b.c2 = add_conv_bn(p + "conv2", p + "bn2", planes, planes, 3, 1, 1);
      }
      if (stride != 1 || inplanes != planes * expansion) {
        b.has_down = true;
        b.down = add_conv_bn(p + "downsample.0", p + "downsample.1", inplanes, planes * expansion, 1, stride, 0);
      }
      blocks_.push_back(b);
      inplanes = planes * expansion;
    }
  }
  feature_dim_ = inplanes;
}

void ResNet::init(uint64_t seed) {
  SIMCLR_CHECK(store_->materialized(), "ResNet::init before ParamStore::materialize()");
  auto& ps = store_->params();
  auto init_cb = [&](const ConvBN& cb, bool zero_gamma) {
    Param& w = ps[cb.conv];
    const double fan_out = static_cast<double>(w.shape[0] * w.shape[1] * w.shape[2]);
    Tensor host = w.value.device().is_cpu() ? w.value : Tensor::empty(w.shape, DType::f32);
    init_normal(host, std::sqrt(2.0 / fan_out), seed, hash_name(w.name.c_str()));
    if (!w.value.device().is_cpu()) w.value.copy_from(host);
    ps[cb.gamma].value.fill(zero_gamma ? 0.0 : 1.0);
    ps[cb.beta].value.fill(0.0);
    ps[cb.mean].value.fill(0.0);
    ps[cb.var].value.fill(1.0);
    ps[cb.count].value.fill(0.0);
  };
  init_cb(stem_, false);
  for (const Block& b : blocks_) {
    init_cb(b.c1, false);
    if (bottleneck_) {
      init_cb(b.c2, false);
      init_cb(b.c3, cfg_.zero_init_residual);
    } else {
      init_cb(b.c2, cfg_.zero_init_residual);
    }
    if (b.has_down) init_cb(b.down, false);
  }
}

Tensor ResNet::conv_bn(const ConvBN& cb, const Tensor& x, bool training, Communicator* comm, bool relu) {
  Tensor y;
  {
    OpTimer t("conv2d");
    // the weight in x's dtype: a bf16 copy of the f32 master under bf16 (its gradient flows
    // back through the cast into the f32 gradient), the master itself otherwise
    y = conv2d(x, cast(store_->params()[cb.conv].value, x.dtype()), cb.stride, cb.pad);
  }
  return apply_batch_norm(*store_, y, cb.gamma, cb.beta, cb.mean, cb.var, cb.count, training, cfg_.bn_momentum,
                          cfg_.bn_eps, comm, relu);
}

namespace {
Tensor timed_add_relu(const Tensor& a, const Tensor& b) {
  OpTimer t("add_relu");
  return add_relu(a, b);
}
}  // namespace

Tensor ResNet::forward(const Tensor& x, bool training, Communicator* comm) {
  SIMCLR_CHECK(x.ndim() == 4 && x.size(3) == cfg_.in_channels, "resnet: expected input [N, H, W, ",
               cfg_.in_channels, "], got ", x.describe());
  // ReLUs are fused into the BN before them (BatchNormOptions::relu) and into
  // the residual add (add_relu): the same values and gradients as separate ops.
  Tensor h = conv_bn(stem_, x, training, comm, /*relu=*/true);
  if (cfg_.stem == "imagenet") {
    OpTimer t("max_pool2d");
    h = max_pool2d(h, 3, 2, 1);
  }
  for (const Block& b : blocks_) {
    Tensor y = conv_bn(b.c1, h, training, comm, true);
    if (bottleneck_) {
      y = conv_bn(b.c2, y, training, comm, true);
      y = conv_bn(b.c3, y, training, comm, false);
    } else {
      y = conv_bn(b.c2, y, training, comm, false);
    }
    Tensor identity = b.has_down ? conv_bn(b.down, h, training, comm, false) : h;
    h = timed_add_relu(y, identity);
  }
  OpTimer t("global_avg_pool");
  return global_avg_pool(h);
}

ParamStore resnet_trainables_random(const ResNetConfig& cfg, Device device, uint64_t seed, float w_std,
                                    float g_std) {
  ParamStore proto;
  ResNet net(cfg, proto);
  ParamStore s;
  for (const Param& p : proto.params())
    if (p.trainable()) s.add(p.name, p.shape, p.flags);
  s.materialize(device);
  const int64_t n = s.values().numel();
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> w(n), g(n);
  for (int64_t i = 0; i < n; i++) {
    w[i] = w_std * nd(rng);
    g[i] = g_std * nd(rng);
  }
  s.values().copy_from(Tensor::from_vector(w, {n}));
  s.grads().copy_from(Tensor::from_vector(g, {n}));
  return s;
}

}  // namespace simclr
