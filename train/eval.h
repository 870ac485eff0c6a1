// train/eval.h - judging an encoder: features, linear probe, kNN monitor.
//
// Features: the encoder output h (after global average pooling) of every image
// of a split, no augmentation (data/loader.h evaluation batches: centred crop
// of eval_crop_fraction, resize, per-channel normalisation), BN in eval mode
// (running statistics), under NoGrad. Raw-pixel features are the same
// normalised evaluation views, flattened.
//
// Linear probe: multinomial logistic regression on the frozen features,
// standardised with the mean and std of the training split:
//   minimise  (1/n) sum_i CE(W x_i + b, y_i) + (lambda/2) |W|^2   (b not decayed)
// trained full-batch with L-BFGS (memory 10, backtracking Armijo line search)
// from zero. lambda is chosen on a held-out part of the training split
// (val_fraction, a seeded random split) from l2_grid (tried from the largest
// down, each warm-started from the previous solution; ties go to the larger
// lambda); the probe is then refit on the whole training split and scored on
// the test split (top-1, top-5).
//
// kNN monitor (Wu et al. 2018, as in the InstDisc / SimCLR repositories):
// features L2-normalised; for each test image the k training images of
// highest cosine similarity s vote for their labels with weight exp(s / T);
// the class with the largest summed weight is the prediction (top-5: the five
// largest).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/data_config.h"
#include "train/run_config.h"
#include "engine/json_config.h"
#include "engine/tensor.h"
#include "models/resnet.h"

namespace simclr {

struct FeatureSet {
  Tensor x;             // f32 [n, d]
  Tensor y;             // i64 [n]
  int num_classes = 0;
  int64_t n() const { return x.size(0); }
  int64_t d() const { return x.size(1); }
};

using ProgressFn = std::function<void(int64_t done, int64_t total)>;

// Encoder features h of every image of ds (eval mode, NoGrad).
FeatureSet encoder_features(ResNet& encoder, std::shared_ptr<const Dataset> ds, const DataConfig& dc, int64_t batch,
                            const ProgressFn& progress = {});
// Normalised evaluation views flattened to S*S*C values.
FeatureSet pixel_features(std::shared_ptr<const Dataset> ds, const DataConfig& dc, int64_t batch);

struct LinearProbeConfig {
  std::vector<double> l2_grid = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1};
  double val_fraction = 0.1;
  int max_iter = 150;
  double tol = 1e-6;  // L-BFGS stops when one iteration lowers the objective by less than tol * |f|
  uint64_t seed = 0;
};

struct LinearProbeResult {
  double top1 = 0, top5 = 0;    // test split, fractions in [0, 1]
  double train_top1 = 0;
  double l2 = 0;                // the chosen lambda
  std::vector<std::pair<double, double>> val_top1;  // (lambda, held-out top-1)
  int iterations = 0;           // L-BFGS iterations of the final fit
  double seconds = 0;
  json to_json() const;
};

LinearProbeResult linear_probe(const FeatureSet& train, const FeatureSet& test, const LinearProbeConfig& cfg);

struct KnnResult {
  double top1 = 0, top5 = 0;
  double seconds = 0;
  int k = 0;  // the neighbours used: the k asked for, or the bank's size when it has fewer images
};
KnnResult knn_eval(const FeatureSet& train, const FeatureSet& test, int k, double temperature);

// ---- whole evaluations on a run config's splits (train split: data.split's
// dataset as configured, test split: "test"; with eval.holdout > 0 the training
// split minus the held-out images and the held-out images, data/holdout.h);
// what `simclr eval`, the trainer and the quickstart run.
struct ProbeReport {
  std::string what;               // "encoder", "random-init encoder", "raw pixels"
  std::string split = "test";     // what it was scored on: "test", or "holdout" (eval.holdout > 0;
                                  // test_images then counts the held-out images)
  LinearProbeResult linear;
  bool has_knn = false;
  KnnResult knn;
  int knn_k_asked = 0;            // eval.knn_k (knn.k is smaller when the bank is)
  double feature_seconds = 0;     // feature extraction wall time
  int64_t train_images = 0, test_images = 0, dim = 0;
  json to_json() const;
};
ProbeReport probe_encoder(ResNet& encoder, const RunConfig& cfg, bool linear, bool knn, const std::string& what,
                          const ProgressFn& progress = {});
ProbeReport probe_pixels(const RunConfig& cfg);

// What the quickstart's evaluation will cost on this machine, measured before
// training so that the epoch choice can leave room for it: `encoders` linear
// probes of an encoder like cfg.model's (feature extraction of the train and
// test splits, timed on two evaluation batches of this machine, the second
// counted: a forecast) plus the raw-pixel probe. Each probe's L-BFGS fits are
// bounded by (grid size + 1) x max_iter x 1.1 evaluations of the objective
// (the 1.1: line-search retries), each timed once at its size (held-out fit
// rows x feature dim x classes); most fits stop earlier, so that part is an
// upper bound.
struct EvalEstimate {
  double features_seconds = 0, probe_seconds = 0;
  double total() const { return features_seconds + probe_seconds; }
};
EvalEstimate estimate_eval_seconds(const RunConfig& cfg, int encoders, bool raw_pixels);

// ---- building blocks (exposed for tests)
// Softmax regression objective and gradient at (W[K,D], b[K]) packed as
// params = [W row-major, b]; x standardised f32 [n, D]. Returns the objective
// (mean cross-entropy + l2/2 |W|^2). Fused and blocked so that x is read from
// memory once per call: the rows are split into min(kSoftmaxWorkers, ceil(n / kSoftmaxBlockRows))
// contiguous ranges ("workers", fixed by n alone), each walked in blocks of
// kSoftmaxBlockRows rows: the block's f32 logits, its softmax / loss / bias
// gradient in double, then its f32 contribution to that worker's gW while the
// block is still in cache; partials are reduced in worker order, so the result
// is bitwise the same for any thread count.
constexpr int64_t kSoftmaxBlockRows = 64;
constexpr int kSoftmaxWorkers = 16;
double softmax_regression_objective(const float* x, const int64_t* y, int64_t n, int64_t D, int K,
                                    const std::vector<double>& params, double l2, std::vector<double>* grad);
// The same with the block size and the most workers chosen (benchmarks).
double softmax_regression_objective_blocked(const float* x, const int64_t* y, int64_t n, int64_t D, int K,
                                            const std::vector<double>& params, double l2, std::vector<double>* grad,
                                            int64_t block, int max_workers);
// The unfused form (logits for all rows with one sgemm, then gW with a second
// one; the loss sum's order follows the thread count): the reference for tests
// and benchmarks. Equal to the fused one up to f32 summation order.
double softmax_regression_objective_reference(const float* x, const int64_t* y, int64_t n, int64_t D, int K,
                                              const std::vector<double>& params, double l2,
                                              std::vector<double>* grad);
// Benchmarks: while on, softmax_regression_objective (and so linear_probe)
// uses the reference form, process-wide.
void use_reference_softmax_objective(bool on);
// Minimises f with L-BFGS from x (in place). Returns the iterations done.
int lbfgs_minimize(const std::function<double(const std::vector<double>&, std::vector<double>*)>& f,
                   std::vector<double>& x, int max_iter, double rel_tol = 1e-7, double grad_tol = 1e-6);

}  // namespace simclr
