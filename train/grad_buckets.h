// train/grad_buckets.h - the gradient all-reduce of a multi-process step in
// buckets that start while the backward pass is still running.
//
// The flat gradient (ParamStore::grads) is cut into buckets: runs of
// parameters that are neighbours in the flat buffer and whose gradients become
// final one after another, at most `bucket_bytes` each (a parameter larger
// than that is a bucket of its own). A bucket's sum is started
// (Communicator::all_reduce_sum_start) as soon as the backward pass has
// finished the last op that adds to any of its gradients, and the step waits
// for all of them (all_reduce_wait) before the optimiser. On a GPU with NCCL
// the sums run on the communicator's stream while the engine stream computes
// the rest of the backward pass; on the CPU (MPI, host memory) each runs when
// it is started, between two ops of the backward pass.
//
// When a gradient is final is learned, not declared: the first backward pass
// (and any whose tape has a different length than the one learned from) runs
// with observation only (engine/grad_hooks.h: which tape node accesses which
// parameter's gradient), then starts every bucket after it. Later passes start
// each bucket right after its node. Every rank learns the same schedule from
// the same tape, so all ranks start the same buckets in the same order. If an
// op still adds to a gradient whose bucket has started (the tape changed
// without changing its length), the step fails with a message naming the
// parameter: a wrong sum is never used.
//
// The result equals one all-reduce of the whole flat gradient after the
// backward pass, element for element (each element is summed over the ranks
// exactly once, by the same collective).
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/comm.h"
#include "engine/grad_hooks.h"
#include "engine/param.h"

namespace simclr {

class GradBuckets final : public GradObserver {
 public:
  // bucket_bytes > 0. The store must be materialized.
  GradBuckets(ParamStore& store, size_t bucket_bytes);

  // backward(loss), the bucket sums over comm started during it (or after it,
  // while learning), and all_reduce_wait(). comm must have more than one rank.
  void backward_and_reduce(const Tensor& loss, Communicator& comm);

  struct Bucket {
    int64_t begin = 0, end = 0;  // element range of the flat gradient
    size_t ready_node = 0;       // starts after this tape node's backward (kAtEnd: after the pass)
    std::vector<size_t> params;  // indices into store.params()
  };
  static constexpr size_t kAtEnd = static_cast<size_t>(-1);

  bool learned() const { return learned_; }
  const std::vector<Bucket>& buckets() const { return buckets_; }
  // Of the last backward_and_reduce: buckets started before the pass's last
  // node (node 0) had run, i.e. overlapping the rest of the pass.
  size_t started_early() const { return started_early_; }
  size_t bucket_bytes() const { return bucket_bytes_; }
  std::string describe() const;  // "12 buckets of <= 25 MiB over 11.2 M gradients"

  void on_grad_access(const TensorImpl* t, size_t node) override;
  void on_node_done(size_t node) override;

 private:
  void map_params();
  void learn();
  void start(size_t b);

  ParamStore* store_;
  size_t bucket_bytes_;
  Communicator* comm_ = nullptr;
  std::unordered_map<const TensorImpl*, size_t> index_;  // parameter value -> index
  std::vector<int64_t> offset_;                           // flat offset of each trainable parameter
  std::vector<size_t> first_node_;                        // smallest node accessing each parameter (learning)
  std::vector<size_t> bucket_of_;                         // parameter -> bucket
  std::vector<Bucket> buckets_;
  std::vector<char> started_;
  size_t next_ = 0;  // the next bucket to start (buckets_ is in start order)
  size_t tape_nodes_ = 0, started_early_ = 0;
  bool learned_ = false, learning_ = false;
};

}  // namespace simclr
