// train/run_config.h - the full configuration of a training run
// (`simclr train run.json`), read strictly: unknown keys, wrong types and
// out-of-range values throw simclr::Error naming the key path
// (engine/json_config.h). docs/config.md lists every key with its type,
// default and range.
//
//   {
//     "data":      { ... }                      data/data_config.h (docs/data.md)
//     "model":     { "arch", "width", "stem", "zero_init_residual", "bn_momentum", "bn_eps" }
//     "head":      { "depth", "hidden", "out", "bn" }
//     "loss":      { "temperature" }
//     "optimizer": { "name", "lr", "lr_scaling", "momentum", "weight_decay", "eta", "nesterov",
//                    "beta1", "beta2", "eps" }
//     "schedule":  { "warmup_epochs" }
//     "train":     { "epochs", "batch", "seed", "device", "threads", "run_dir", "checkpoint_every",
//                    "keep_last", "log_interval", "max_steps", "profile" }
//     "eval":      { "knn_every", "knn_k", "knn_temperature", "linear_at_end", "raw_pixels",
//                    "random_init", "l2_grid", "val_fraction", "max_iter", "batch",
//                    "holdout", "holdout_seed" }
//   }
#pragma once
#include <string>
#include <vector>

#include "data/data_config.h"
#include "engine/json_config.h"
#include "models/head.h"
#include "models/resnet.h"

namespace simclr {

struct OptimizerConfig {
  std::string name = "lars";         // lars | sgd | adamw
  double lr = 0.3;                   // base rate before scaling
  std::string lr_scaling = "linear"; // linear (lr * batch / 256) | sqrt (lr * sqrt(batch)) | none
  double momentum = 0.9;
  double weight_decay = 1e-6;
  double eta = 0.001;                // LARS trust coefficient
  bool nesterov = false;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // AdamW
};

struct TrainConfig {
  int64_t epochs = 100;
  int64_t batch = 256;          // images per step (2 x batch views)
  uint64_t seed = 0;
  std::string device = "auto";  // auto | cpu | cuda | cuda:k | emu (the emulated test device)
  std::string precision = "fp32";  // fp32 | tf32 (CUDA convolutions and GEMMs with TF32 inputs) | bf16
  std::string conv_impl = "cudnn"; // CUDA convolutions: cudnn | ours (our implicit-GEMM kernels)
  bool deterministic = false;      // CUDA: only deterministic cuDNN engines (bit-identical reruns)
  bool cuda_graph = false;         // cuda/emu: capture the step after warm-up and replay it (train/step.h)
  double grad_bucket_mb = 25;      // multi-process: gradient all-reduce buckets started during backward
                                   // (train/grad_buckets.h); 0: one all-reduce after the backward pass
  int threads = 0;              // CPU threads (0: all cores)
  std::string run_dir = "runs/simclr";
  int64_t checkpoint_every = 1; // epochs (0: only at the end)
  int keep_last = 3;
  int64_t log_interval = 50;    // steps between plain log lines (non-TTY) and metrics lines
  int64_t max_steps = 0;        // stop after this many steps (0: all epochs); the schedule still spans all epochs
  bool profile = false;         // per-op timing report at the end
};

struct EvalConfig {
  int64_t knn_every = 0;        // epochs between kNN monitors (0: never during training)
  int knn_k = 200;
  double knn_temperature = 0.1;
  bool linear_at_end = true;    // linear probe after training
  bool raw_pixels = false;      // also a raw-pixel linear probe at the end
  bool random_init = false;     // also a random-init encoder probe at the end
  std::vector<double> l2_grid = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1};  // L2 strengths tried on the held-out split
  double val_fraction = 0.1;    // held-out part of the train split for choosing L2
  int max_iter = 150;           // L-BFGS iterations per fit (each also stops at a relative decrease < 1e-6)
  int64_t batch = 512;          // feature-extraction batch
  double holdout = 0;           // fraction of the training split held out for choosing a recipe (data/holdout.h):
                                // removed from pretraining and the probes' training set, the probes score on it,
                                // the test split is never opened; 0: off (the probes score on the test split)
  uint64_t holdout_seed = 0;    // seed of the held-out selection (independent of train.seed)
};

struct RunConfig {
  DataConfig data;
  ResNetConfig model;
  HeadConfig head;
  double temperature = 0.5;
  OptimizerConfig optimizer;
  double warmup_epochs = 10;  // config default: min(10, epochs / 10)
  TrainConfig train;
  EvalConfig eval;
};

// Parses a whole run config (JSON object) strictly.
RunConfig parse_run_config(const json& root);
// Reads the file, applies the --set overrides in order, parses. Errors name
// the file or the key path.
RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides, json* resolved = nullptr);
// Every key with its resolved value (what the run directory and checkpoints keep).
json run_config_to_json(const RunConfig& c);

// Checks the dataset paths of the pretraining split (and the test split when
// an evaluation needs it) before any work starts.
void check_run_paths(const RunConfig& c);

// Keys that may differ between a checkpoint's config and a resumed run's
// (logging, checkpoint cadence, threads, device, loader workers, evaluation).
// Returns "" when the two resolved configs agree on every other key, else the
// first differing key path with both values.
std::string config_mismatch(const json& saved, const json& now);

// The embedded config of `simclr quickstart` (Fashion-MNIST, ResNet-18 CIFAR
// stem width 0.25): see docs/results.md.
json quickstart_config();

}  // namespace simclr
