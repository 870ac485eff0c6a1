// train/finetune.h - SimCLR's semi-supervised evaluation: fine-tune the
// pretrained encoder plus a new linear classifier on a class-balanced
// fraction of the labels (1 % or 10 % in the paper), then top-1/top-5 on the
// test split (docs/evaluation.md).
//
// Protocol (the paper's appendix B.5, scaled to our datasets): the projection
// head dropped (or its first layers kept, as SimCLR v2 does: head_layers), a
// linear layer with bias from h (or that hidden layer) to the classes; SGD with
// Nesterov momentum 0.9, lr 0.05 x batch / 256, no warm-up, cosine decay,
// no weight decay; augmentation: random resized crop and flip only (no colour
// jitter, grayscale or blur); BN in training mode while fine-tuning; 60
// epochs for fractions <= 1 %, 30 above. The same budget and subset from a
// random initialisation is the baseline (--random-init).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "train/checkpoint.h"
#include "train/run_config.h"

namespace simclr {

struct FinetuneOptions {
  double fraction = 0.01;       // of each class's train images (at least one per class)
  std::string subset_file;      // instead of fraction: dataset indices, one per line ('#' comments)
  bool random_init = false;     // the baseline: the same budget from a random encoder
  int head_layers = 0;          // 0: the projection head dropped (v1); k: its first k layers kept (SimCLR v2: 1)
  std::string source;           // the weights' file, for messages
  int64_t epochs = 0;           // 0: 60 for fraction <= 0.01, else 30
  int64_t batch = 256;          // images per step (clipped to the subset)
  double lr = 0;                // 0: 0.05 x batch / 256
  uint64_t seed = 0;
  std::string out_dir;          // subset file and metrics.jsonl go here ("" : nowhere)
  bool quiet = false;
};

struct FinetuneResult {
  double top1 = 0, top5 = 0;    // test split
  double train_top1 = 0;        // on the labelled subset (evaluation mode)
  int64_t labelled = 0, steps = 0, epochs = 0;
  double lr = 0, seconds = 0;
  std::string subset_path;      // where the subset was written (or read)
  json to_json() const;
};

// Class-balanced, seeded: for each class c with n_c train images,
// max(1, round(fraction n_c)) of them, drawn without replacement; sorted.
std::vector<int64_t> balanced_subset(const std::vector<int64_t>& labels, int num_classes, double fraction,
                                     uint64_t seed);

// cfg: the pretraining run's config (model, data; the data section may point
// at another labelled dataset for transfer). ck: the pretrained weights (a
// checkpoint or an export_encoder output), ignored with random_init.
FinetuneResult finetune(const RunConfig& cfg, const Checkpoint* ck, const FinetuneOptions& opt);

}  // namespace simclr
