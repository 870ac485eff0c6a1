// engine/comm_nccl_cuda.cpp - the NCCL communicator (engine/comm.h
// make_nccl_communicator): collectives on CUDA tensors, stream-ordered with
// the kernels before and after them (no host synchronisation).
//
// Every NCCL call of this communicator is issued on one stream of its own, the
// comm stream, in the order of the calls, so the order of NCCL operations is
// the same on every rank whatever overlaps what (NCCL needs that; two streams
// on one communicator could interleave differently per rank and hang). Each
// call first makes the comm stream wait for the engine stream's work so far
// (an event). all_reduce_sum, all_gather and broadcast then make the engine
// stream wait for the call (the results are used next); all_reduce_sum_start
// does not, so a gradient bucket's sum runs while the backward pass goes on,
// and all_reduce_wait makes the engine stream wait for everything started.
// The tensors of a started sum are the parameter store's flat gradients: they
// live for the whole run, so the stream-ordered allocator cannot hand their
// memory to anything else meanwhile. The unique id is made by rank 0 and
// broadcast over the bootstrap communicator (MPI, or the local one for a
// single process); tensors on the CPU go to the bootstrap communicator.
// Built with the CUDA backend only (a *_cuda.cpp file). Every NCCL call is
// checked; an error names the call, the rank and NCCL's message.
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>

#include "engine/check.h"
#include "engine/comm.h"
#include "engine/cuda_check.h"
#include "engine/device.h"

namespace simclr {

namespace {

ncclDataType_t nccl_type(DType dt) {
  switch (dt) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::bf16: return ncclBfloat16;
    case DType::f16: return ncclFloat16;
    case DType::i32: return ncclInt32;
    case DType::i64: return ncclInt64;
    case DType::u8: return ncclUint8;
    default: fail("NCCL: unsupported dtype ", dtype_name(dt));
  }
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(std::unique_ptr<Communicator> boot, int device) : boot_(std::move(boot)), device_(device) {
    ncclUniqueId id;
    std::memset(&id, 0, sizeof id);
    if (boot_->rank() == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    Tensor idt = Tensor::empty({static_cast<int64_t>(sizeof id)}, DType::u8);
    std::memcpy(idt.data_ptr(), &id, sizeof id);
    boot_->broadcast(idt, 0);
    std::memcpy(&id, idt.data_ptr(), sizeof id);
    CUDA_CHECK(cudaSetDevice(device_));
    check(ncclCommInitRank(&comm_, boot_->size(), id, boot_->rank()), "ncclCommInitRank");
    CUDA_CHECK(cudaStreamCreateWithFlags(&comm_stream_, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&engine_done_, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&comm_done_, cudaEventDisableTiming));
  }
  ~NcclCommunicator() override {
    if (comm_stream_ != nullptr) {
      cudaStreamSynchronize(comm_stream_);
      cudaStreamDestroy(comm_stream_);
    }
    if (engine_done_ != nullptr) cudaEventDestroy(engine_done_);
    if (comm_done_ != nullptr) cudaEventDestroy(comm_done_);
    if (comm_ != nullptr) ncclCommDestroy(comm_);
  }

  int rank() const override { return boot_->rank(); }
  int size() const override { return boot_->size(); }
  std::string backend() const override { return "nccl"; }
  double set_timeout(double s) override { return boot_->set_timeout(s); }

  void all_reduce_sum(Tensor& t) override {
    if (!on_gpu(t, "ncclAllReduce")) return boot_->all_reduce_sum(t);
    start_all_reduce(t);
    engine_waits();
  }
  void all_reduce_sum_start(Tensor& t) override {
    if (!on_gpu(t, "ncclAllReduce")) return boot_->all_reduce_sum(t);
    start_all_reduce(t);
    started_ = true;
  }
  void all_reduce_wait() override {
    if (started_) engine_waits();
  }
  void all_gather(Tensor& out, const Tensor& in) override {
    SIMCLR_CHECK(out.dtype() == in.dtype() && out.numel() == in.numel() * size(), "NCCL all_gather on rank ", rank(),
                 ": out ", out.describe(), " must hold ", size(), " x in ", in.describe());
    if (!on_gpu(in, "ncclAllGather")) return boot_->all_gather(out, in);
    SIMCLR_CHECK(out.device() == in.device(), "NCCL all_gather on rank ", rank(), ": out ", out.describe(),
                 " and in ", in.describe(), " on different devices");
    comm_waits();
    check(ncclAllGather(in.data_ptr(), out.data_ptr(), static_cast<size_t>(in.numel()), nccl_type(in.dtype()), comm_,
                        comm_stream_),
          "ncclAllGather", in);
    engine_waits();
  }
  void broadcast(Tensor& t, int root) override {
    if (!on_gpu(t, "ncclBroadcast")) return boot_->broadcast(t, root);
    comm_waits();
    check(ncclBroadcast(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t.dtype()), root, comm_,
                        comm_stream_),
          "ncclBroadcast", t);
    engine_waits();
  }
  void barrier() override {
    if (started_) engine_waits();
    CUDA_CHECK(cudaStreamSynchronize(comm_stream_));
    cuda_synchronize(device_);
    boot_->barrier();
  }

 private:
  // true: a tensor on this communicator's GPU; false: on the CPU (the bootstrap's); else an error
  bool on_gpu(const Tensor& t, const char* call) const {
    if (t.device().is_cpu()) return false;
    SIMCLR_CHECK(t.device().is_cuda() && t.device().index == device_, call, " on rank ", rank(), ": tensor ",
                 t.describe(), " is not on this rank's GPU cuda:", device_);
    return true;
  }
  cudaStream_t stream() const { return static_cast<cudaStream_t>(cuda_current_stream(device_)); }
  // The comm stream waits for the engine stream's work issued so far.
  void comm_waits() {
    CUDA_CHECK(cudaEventRecord(engine_done_, stream()));
    CUDA_CHECK(cudaStreamWaitEvent(comm_stream_, engine_done_, 0));
  }
  // The engine stream waits for the comm stream's work issued so far.
  void engine_waits() {
    CUDA_CHECK(cudaEventRecord(comm_done_, comm_stream_));
    CUDA_CHECK(cudaStreamWaitEvent(stream(), comm_done_, 0));
    started_ = false;
  }
  void start_all_reduce(Tensor& t) {
    comm_waits();
    check(ncclAllReduce(t.data_ptr(), t.data_ptr(), static_cast<size_t>(t.numel()), nccl_type(t.dtype()), ncclSum,
                        comm_, comm_stream_),
          "ncclAllReduce", t);
  }
  void check(ncclResult_t rc, const char* call, const Tensor& t = Tensor()) const {
    SIMCLR_CHECK(rc == ncclSuccess, call, " failed on rank ", boot_->rank(), " of ", boot_->size(),
                 t.defined() ? " (" + t.describe() + ")" : std::string(), ": ", ncclGetErrorString(rc),
                 rc == ncclSystemError || rc == ncclRemoteError ? " (a peer may have died)" : "");
  }

  std::unique_ptr<Communicator> boot_;
  int device_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t comm_stream_ = nullptr;
  cudaEvent_t engine_done_ = nullptr, comm_done_ = nullptr;
  bool started_ = false;  // sums started that the engine stream does not wait for yet
};

}  // namespace

bool nccl_built() { return true; }

std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator> bootstrap, int device) {
  SIMCLR_CHECK(bootstrap != nullptr, "make_nccl_communicator: no bootstrap communicator");
  SIMCLR_CHECK(cuda_available(), "NCCL communicator: no usable GPU (", cuda_unavailable_reason(), ")");
  SIMCLR_CHECK(device >= 0 && device < cuda_device_count(), "NCCL communicator: GPU ", device, " does not exist (",
               cuda_device_count(), " present)");
  return std::make_unique<NcclCommunicator>(std::move(bootstrap), device);
}

}  // namespace simclr
