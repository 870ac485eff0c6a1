// engine/comm.h - the communicator: what the engine needs from a process
// group. A single-process LocalCommunicator now; MPI (CPU) and NCCL (GPU)
// implementations come with the multi-node issue and plug in here.
//
// Users: global batch norm (all_reduce_sum of per-channel statistics),
// NT-Xent with negatives from every rank (all_gather of z and of the per-row
// log-sum-exp), gradient averaging (all_reduce_sum of the flat gradient).
#pragma once
#include "engine/tensor.h"

namespace simclr {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // In place: t = Σ over ranks of t.
  virtual void all_reduce_sum(Tensor& t) = 0;
  // out[size * rows(in)] = concatenation over ranks of in, rank order.
  virtual void all_gather(Tensor& out, const Tensor& in) = 0;
};

// One process, one device: sums are identities, gathers are copies.
class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void all_reduce_sum(Tensor&) override {}
  void all_gather(Tensor& out, const Tensor& in) override { out.copy_from(in); }
};

}  // namespace simclr
