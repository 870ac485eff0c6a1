// models/resnet.h - the ResNet encoder f of SimCLR, as in torchvision.
//
// Depths 18/34 use basic blocks (two 3x3 convs), 50/101/152 bottlenecks
// (1x1, 3x3, 1x1 with expansion 4, the stride on the 3x3 conv: torchvision's
// "ResNet v1.5"). A block whose stride is not 1 or whose channel count changes
// gets a projection shortcut conv1x1(stride) + BN named `downsample.0/1`.
//
// Width multiplier w scales every channel count: stem and stage widths are
// max(1, round(64 w)), round(128 w), round(256 w), round(512 w) (times 4 at a
// bottleneck's output), as SimCLR's width multiplier does. The encoder output
// h (after global average pooling) has feature_dim() = round(512 w) * expansion.
//
// Stems: "imagenet" = conv 7x7/2 pad 3 + BN + ReLU + max-pool 3x3/2 pad 1;
// "cifar" = conv 3x3/1 pad 1 + BN + ReLU, no max-pool (small images).
//
// Parameter names are exactly torchvision's (conv1.weight, bn1.weight,
// bn1.bias, bn1.running_mean, bn1.running_var, bn1.num_batches_tracked,
// layer1.0.conv1.weight, ..., layer2.0.downsample.0.weight, ...; there is no
// fc). Conv weights are stored OHWI for our NHWC convolution (export converts
// to OIHW); num_batches_tracked is an f32 buffer (export converts to i64).
//
// Initialisation as torchvision: convs kaiming_normal(fan_out, relu), i.e.
// N(0, 2 / (O kH kW)); BN gamma 1, beta 0, running mean 0, var 1; optionally
// the last BN gamma of every residual block 0 (zero_init_residual).
//
// Shape legend: N batch, H/W spatial, C channels (NHWC), F feature dim.
#pragma once
#include <string>
#include <vector>

#include "ops/ops.h"
#include "engine/param.h"

namespace simclr {

struct ResNetConfig {
  int depth = 18;                  // 18, 34, 50, 101, 152
  double width = 1.0;              // channel multiplier (> 0)
  int in_channels = 3;             // 1 or 3
  std::string stem = "imagenet";   // "imagenet" or "cifar"
  bool zero_init_residual = false; // last BN gamma of each block = 0
  double bn_momentum = 0.1;        // PyTorch convention (TF decay 0.9)
  double bn_eps = 1e-5;
  // Multi-process training (model.bn): true ("global") normalises with the
  // statistics of every rank's batch (the step passes its communicator to the
  // encoder's and the head's BN); false ("local") with each rank's own.
  bool global_bn = true;
};

// max(1, round(base * width)).
int64_t scaled_channels(int64_t base, double width);

// One conv (no bias) followed by a BN: indices into the ParamStore.
struct ConvBN {
  size_t conv = 0, gamma = 0, beta = 0, mean = 0, var = 0, count = 0;
  int stride = 1, pad = 0;
};

class ResNet {
 public:
  // Registers every parameter and buffer in `store` (names prefixed with
  // `prefix`, "" for torchvision names). Call store.materialize() and then
  // init() before forward().
  ResNet(const ResNetConfig& cfg, ParamStore& store, const std::string& prefix = "");

  // torchvision's initialisation, deterministic from seed.
  void init(uint64_t seed);

  // x[N,H,W,C_in] -> h[N,F] in x's dtype: f32, or bf16 (the mixed-precision
  // step: every conv weight and BN gamma/beta cast from its f32 master to bf16,
  // the running statistics kept f32; CUDA devices only). training: BN uses batch statistics and updates
  // its running statistics and num_batches_tracked; else the running ones.
  // comm (optional): global BN across ranks.
  Tensor forward(const Tensor& x, bool training, Communicator* comm = nullptr);

  int64_t feature_dim() const { return feature_dim_; }
  // Where its parameters live (inputs of forward() must be there too).
  Device device() const { return store_->device(); }
  const ResNetConfig& config() const { return cfg_; }
  // "resnet18", ...
  std::string arch_name() const { return "resnet" + std::to_string(cfg_.depth); }

 private:
  struct Block {
    ConvBN c1, c2, c3;  // c3 only for bottlenecks
    bool has_down = false;
    ConvBN down;
  };
  ConvBN add_conv_bn(const std::string& conv_name, const std::string& bn_name, int64_t in, int64_t out, int k,
                     int stride, int pad);
  // conv -> BN (-> ReLU fused into the BN when relu)
  Tensor conv_bn(const ConvBN& cb, const Tensor& x, bool training, Communicator* comm, bool relu);

  ResNetConfig cfg_;
  ParamStore* store_;
  std::string prefix_;
  bool bottleneck_ = false;
  ConvBN stem_;
  std::vector<Block> blocks_;
  int64_t feature_dim_ = 0;
};

// Shared by the ResNet and the projection head: BN with training/eval switch
// and the num_batches_tracked counter, optionally followed by a ReLU fused
// into the same op. gamma/beta may be absent (kNoParam).
Tensor apply_batch_norm(ParamStore& store, const Tensor& x, size_t gamma, size_t beta, size_t mean, size_t var,
                        size_t count, bool training, double momentum, double eps, Communicator* comm,
                        bool relu = false);

constexpr size_t kNoParam = static_cast<size_t>(-1);

// The encoder's trainable parameters alone (torchvision names, shapes and
// flags; no buffers), materialised on `device`, values ~ N(0, w_std²) and
// gradients ~ N(0, g_std²) from `seed`: a stand-in model with real shapes for
// optimiser tests and benchmarks (tests/gpu/test_lars_gpu.cpp, bench_lars).
ParamStore resnet_trainables_random(const ResNetConfig& cfg, Device device, uint64_t seed, float w_std = 0.05f,
                                    float g_std = 0.001f);

}  // namespace simclr
