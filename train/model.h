// train/model.h - the model SimCLR trains (encoder + projection head in one
// parameter store) and the optimiser the config names.
#pragma once
#include <memory>

#include "models/head.h"
#include "models/resnet.h"
#include "optim/optimizer.h"
#include "train/grad_buckets.h"
#include "train/run_config.h"

namespace simclr {

// Encoder + head in one ParamStore (contiguous parameters and gradients).
struct SimclrModel {
  ParamStore store;
  std::unique_ptr<ResNet> encoder;
  std::unique_ptr<ProjectionHead> head;  // null when built without the head
  // The step's activation dtype (train.precision): f32, or bf16 (train_step casts
  // the views to bf16 and z back to f32; weights, gradients, optimiser state, BN
  // running statistics and the loss stay f32). bf16 needs a CUDA device (cuda, emu).
  DType compute_dtype = DType::f32;
  // Multi-process steps: the gradient all-reduce in buckets of this size, started during
  // the backward pass (train/grad_buckets.h, train.grad_bucket_mb); 0: one all-reduce
  // of the whole flat gradient after it. `buckets` is made by the first such step.
  size_t grad_bucket_bytes = size_t{25} << 20;
  std::unique_ptr<GradBuckets> buckets;
  SimclrModel(const ResNetConfig& model, const HeadConfig* head_cfg);
  // Deterministic init of every parameter and buffer from seed (on the CPU).
  void init(uint64_t seed);
  // Moves parameters, gradients and buffers to `device` (before the optimiser is made).
  void to(Device device) { store.to(device); }
};

// Describes the model for checkpoints and manifests.
json model_arch_json(const RunConfig& c, const SimclrModel& m);

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& c, ParamStore& store);

}  // namespace simclr
