// data/loader.h - the threaded input pipeline.
//
// Training batches (opt.train = true), the contract the training loop and
// NT-Xent rely on:
//   views   f32 [2N, S, S, C] NHWC: rows [0, N) are view 1 of images 0..N-1,
//           rows [N, 2N) view 2 of the same images, so the positive of row i is
//           row (i + N) mod 2N (ops/ops.h ntxent); each view augmented by
//           data/augment.h and normalised per channel ((x - mean) / std).
//   labels  i64 [N] (-1 for unlabelled data), indices: the N dataset indices.
//   (opt.dtype bf16 / f16: the same values rounded from f32, for a smaller
//   host-to-device copy.)
// Evaluation batches (opt.train = false): views f32 [N, S, S, C], no
// augmentation (data/augment.h eval_view: centred crop of eval_crop_fraction,
// bilinear resize to S x S), same normalisation, dataset order (no shuffle).
//
// Order and determinism: epoch e visits the dataset in the permutation drawn
// from (seed, kStreamShuffle, epoch) (Fisher-Yates, data/rng.h) or in dataset
// order when shuffle is off; batch b of epoch e holds positions
// [b N, (b + 1) N) of it. View v of dataset image i in epoch e uses
// sample_view(cfg, seed, e, i, v). So every batch is a pure function of
// (dataset, config, seed, epoch, batch index): the same whatever the worker
// count, and a resumed run (seek) sees exactly the batches of an uninterrupted
// one. drop_last drops the final partial batch of each epoch; without it the
// last batch is smaller.
//
// Threads: `workers` std::threads each build whole batches (decode, augment,
// normalise) into fresh tensors, at most `prefetch` batches ahead of the
// consumer; next() hands them out in order. workers = 0 builds each batch in
// next() on the calling thread. An exception in a worker reaches the consumer
// as a simclr::Error from next(). The destructor stops and joins the workers,
// dropping prefetched batches. The stream is endless unless max_epochs is set.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "data/data_config.h"
#include "engine/tensor.h"

namespace simclr {

struct LoaderOptions {
  int64_t batch_size = 256;  // N: images per batch (2N views when training)
  uint64_t seed = 0;
  bool train = true;         // two augmented views per image; false: evaluation
  bool shuffle = true;
  bool drop_last = true;
  int workers = 2;
  int prefetch = 4;
  int64_t max_epochs = 0;    // 0: endless
  DType dtype = DType::f32;  // views: f32, or bf16 / f16 (rounded to nearest even from the f32 result)
  bool pinned = false;       // views in page-locked memory (engine/async.h), for asynchronous GPU copies
  // Training batches leave the augmentation to the device (data.augment_on,
  // kernels/cuda/augment.cu via train/feed.h DeviceFeeder::put_augmented):
  // build() gathers the N source images into Batch::sources and draws the 2N
  // ViewParams (sample_view, on the worker threads as ever) into
  // Batch::view_params; Batch::views stays undefined. dtype f32 or bf16.
  bool gpu_augment = false;
  // Multi-process training: batch_size is the GLOBAL batch and this loader builds
  // only rank shard_rank's share of each: of batch b's N images (positions
  // [bN, (b+1)N) of the epoch's order), positions [bN + rN/R, bN + (r+1)N/R) for
  // r = shard_rank, R = shard_count, with the views a single process would give
  // them (view v of image i is still sample_view(seed, epoch, i, v)). So R ranks
  // see together exactly the batches of one process, rank r holding images
  // [rN/R, (r+1)N/R) of each: the order the distributed NT-Xent and global BN
  // assume. Needs batch_size % shard_count == 0 and drop_last (equal shares).
  int shard_rank = 0, shard_count = 1;
};

// Training: from the data config (workers, prefetch, drop_last), shuffled.
LoaderOptions train_loader_options(const DataConfig& cfg, int64_t batch_size, uint64_t seed);
// Evaluation: one pass in dataset order, nothing dropped.
LoaderOptions eval_loader_options(const DataConfig& cfg, int64_t batch_size);

struct Batch {
  Tensor views;                  // train [2N, S, S, C]; eval [N, S, S, C]; f32 (or opt.dtype)
  Tensor labels;                 // i64 [N]
  std::vector<int64_t> indices;  // [N] dataset indices
  int64_t epoch = 0, index = 0;  // where this batch sits in the stream
  // opt.gpu_augment: u8 [bytes] the packed sources (pinned when opt.pinned),
  // u8 [2N * sizeof(AugmentView)] the views' parameters and source offsets
  // (kernels/augment.h), and the batch shape and normalisation.
  Tensor sources, view_params;
  AugmentBatch augment;
  int64_t size() const { return static_cast<int64_t>(indices.size()); }
};

// Position of the next batch next() returns: what a checkpoint stores.
struct LoaderPosition {
  int64_t epoch = 0, batch = 0;
};

struct LoaderStats {
  int64_t batches = 0, views = 0;  // handed out since the start (or the last seek)
  double seconds = 0;               // wall time since then
  double views_per_second = 0;
  double wait_seconds = 0;          // time next() spent waiting for a batch
  int64_t skipped = 0;              // undecodable images replaced (Dataset::skipped)
};

class Loader {
 public:
  Loader(std::shared_ptr<const Dataset> ds, const DataConfig& cfg, const LoaderOptions& opt);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  int64_t batches_per_epoch() const { return batches_per_epoch_; }
  const Dataset& dataset() const { return *ds_; }
  LoaderPosition position() const;
  // Continue from p (drops prefetched batches, restarts the workers).
  void seek(LoaderPosition p);
  // The next batch (blocks until it is ready). Throws simclr::Error on a worker
  // failure or past max_epochs.
  Batch next();
  bool done() const;
  LoaderStats stats() const;

  // Builds batch b of epoch e directly on the calling thread (what the workers
  // run). Public for tests and the preview.
  Batch build(int64_t epoch, int64_t b) const;
  // The visiting order of epoch e (the permutation, or 0..n-1).
  std::vector<int64_t> epoch_order(int64_t epoch) const;

 private:
  struct Slot {
    Batch batch;
    std::string error;  // non-empty: the worker failed
  };
  void start();
  void stop();
  void worker_loop();
  int64_t total_batches() const;  // from the start position; -1 endless
  std::shared_ptr<const std::vector<int64_t>> order_for(int64_t epoch) const;

  std::shared_ptr<const Dataset> ds_;
  DataConfig cfg_;
  LoaderOptions opt_;
  int64_t batches_per_epoch_ = 0;
  int out_size_ = 0;

  // stream position: sequence number s counts batches from start_
  LoaderPosition start_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<int64_t, Slot> ready_;
  int64_t claimed_ = 0;   // next sequence number a worker takes
  int64_t consumed_ = 0;  // next sequence number next() returns
  bool stopping_ = false;
  std::vector<std::thread> threads_;

  mutable std::mutex order_mu_;
  mutable std::map<int64_t, std::shared_ptr<const std::vector<int64_t>>> orders_;

  std::chrono::steady_clock::time_point t0_;
  int64_t views_out_ = 0;
  double wait_seconds_ = 0;
};

}  // namespace simclr
