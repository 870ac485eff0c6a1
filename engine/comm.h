// engine/comm.h - the communicator: what the engine needs from a process
// group. LocalCommunicator is one process; MpiCommunicator (engine/comm_mpi.cpp,
// OpenMPI through the plugin libsimclr_mpi.so) joins the processes a launcher
// started; make_communicator() picks one from the launch environment
// (engine/launch_env.h). NcclCommunicator (engine/comm_nccl_cuda.cpp, CUDA
// builds) runs the collectives of CUDA tensors, bootstrapped over one of these.
//
// Users: global batch norm (all_gather of per-channel (mean, M2, count), merged
// with Chan's formula; all_reduce_sum of the backward's per-channel sums),
// NT-Xent with negatives from every rank (all_gather of z and of the per-row
// log-sum-exp; all_reduce_sum of the loss), gradient averaging (all_reduce_sum
// of the flat gradient), the initial weights (broadcast from rank 0) and the
// trainer's stop agreement (all_reduce_sum of a few flags per step).
//
// Every rank calls the same collectives in the same order with tensors of the
// same shape and dtype. A collective that fails throws simclr::Error naming
// the call and the rank; one that does not complete within the timeout (a peer
// died or hangs) ends the process with that message (engine/comm_mpi.cpp).
#pragma once
#include <memory>
#include <string>

#include "engine/launch_env.h"
#include "engine/tensor.h"

namespace simclr {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const { return "custom"; }  // "local", "mpi", or a test's
  // In place: t = Σ over ranks of t (f32, f64, i32, i64; identical on every rank).
  virtual void all_reduce_sum(Tensor& t) = 0;
  // The same sum, started and not waited for: the gradient buckets
  // (train/grad_buckets.h) start one per bucket during the backward pass and
  // call all_reduce_wait() once after it. t must stay alive and untouched until
  // then. all_reduce_wait() orders every started sum before later work (on a
  // GPU: the engine stream waits for them, no host wait; on the CPU: they are
  // done when it returns). Started sums and the other collectives keep one
  // order, the order of the calls, on every rank. The defaults run the sum at
  // once (MPI on host memory, the tests' communicators).
  virtual void all_reduce_sum_start(Tensor& t) { all_reduce_sum(t); }
  virtual void all_reduce_wait() {}
  // out[size · numel(in)] = concatenation over ranks of in, in rank order (any
  // dtype; out and in of one dtype, out contiguous, e.g. a slice0 of a tensor).
  virtual void all_gather(Tensor& out, const Tensor& in) = 0;
  // t = root's t on every rank. (The defaults fail: a test's communicator that
  // only serves the ops need not implement them; the trainer needs both.)
  virtual void broadcast(Tensor& t, int root);
  virtual void barrier();
  // Seconds a collective may take before the process gives up (0: no limit);
  // returns the previous value. MPI: SIMCLR_COMM_TIMEOUT, default 600 s.
  virtual double set_timeout(double seconds) { return seconds; }
};

// One process, one device: sums are identities, gathers are copies.
class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "local"; }
  void all_reduce_sum(Tensor&) override {}
  void all_gather(Tensor& out, const Tensor& in) override { out.copy_from(in.view(out.shape())); }
  void broadcast(Tensor&, int) override {}
  void barrier() override {}
};

// The communicator of this process: LocalCommunicator for a world of one
// (nothing loaded, MPI or not), else MPI (env.size ranks; checks that MPI's
// rank and size are env's). Throws when the world is larger than one and this
// build has no MPI plugin, or the plugin cannot be loaded (naming the path).
std::unique_ptr<Communicator> make_communicator(const LaunchEnv& env);

// NCCL (CUDA builds: engine/comm_nccl_cuda.cpp): collectives on CUDA tensors of
// GPU `device`, on its engine stream; the unique id is broadcast over
// `bootstrap` (MPI, or LocalCommunicator for one process), which also serves
// CPU tensors. Throws without a usable GPU, and in a build without CUDA.
std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator> bootstrap, int device);
bool nccl_built();

// Whether the MPI plugin can be loaded (why not, otherwise); loads nothing else.
bool mpi_plugin_available(std::string* why = nullptr);

// Scoped timeout change (restored at the end of the scope), e.g. no limit
// while rank 0 alone evaluates and the others wait at the next collective.
class CommTimeout {
 public:
  CommTimeout(Communicator* c, double seconds) : c_(c), old_(c ? c->set_timeout(seconds) : 0) {}
  ~CommTimeout() {
    if (c_) c_->set_timeout(old_);
  }
  CommTimeout(const CommTimeout&) = delete;
  CommTimeout& operator=(const CommTimeout&) = delete;

 private:
  Communicator* c_;
  double old_;
};

}  // namespace simclr
