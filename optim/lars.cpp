// optim/lars.cpp - LARS over the whole parameter store in one call (see
// lars.h): the plain-loop reference on the CPU, the fused kernels on CUDA.
#include "optim/lars.h"

#include "engine/device.h"

#ifdef SIMCLR_WITH_CUDA
#include <cuda_runtime.h>

#include "engine/cuda_check.h"
#endif

namespace simclr {

namespace {
// A host table copied into a new u8 tensor on `device`.
template <class T>
Tensor upload(const std::vector<T>& table, Device device) {
  const int64_t bytes = static_cast<int64_t>(table.size() * sizeof(T));
  Tensor t = Tensor::empty({bytes}, DType::u8, device);
  copy_bytes(t.data_ptr(), device, table.data(), Device::cpu(), static_cast<size_t>(bytes));
  return t;
}
// The fused LARS launchers of the CUDA backend as built for `device`: the real
// ones on a GPU, the emulated ones on the emulated device (null when not built).
struct LarsLaunchers {
  size_t (*workspace_bytes)(int64_t num_chunks) = nullptr;
  void (*step)(float*, const float*, float*, const LarsSegment*, const LarsChunk*, int64_t, const double*,
               const LarsHyper&, void*, float*, cudaStream_t) = nullptr;
};
LarsLaunchers device_launchers(Device device) {
  LarsLaunchers l;
  if (device.is_cuda()) {
#ifdef SIMCLR_WITH_CUDA
    l.workspace_bytes = &gpu::lars_workspace_bytes;
    l.step = &gpu::lars_step;
#endif
  } else if (device.is_emu()) {
#ifdef SIMCLR_HAVE_EMU
    l.workspace_bytes = &emu::lars_workspace_bytes;
    l.step = &emu::lars_step;
#endif
  }
  return l;
}
}  // namespace

Lars::Lars(const LarsConfig& cfg, ParamStore& store) : cfg_(cfg), store_(&store) {
  SIMCLR_CHECK(store.materialized(), "LARS: the parameter store is not materialised");
  const Device dev = store.values().device();
  momentum_ = Tensor::zeros(store.values().shape(), DType::f32, dev);
  int64_t off = 0;
  for (const Param& p : store.params()) {
    if (!p.trainable()) continue;
    LarsSegment s;
    s.offset = off;
    s.n = p.shape.numel();
    s.adapt = p.excluded_from_adaptation() ? 0 : 1;
    segments_.push_back(s);
    off += s.n;
  }
  SIMCLR_CHECK(off == store.values().numel(), "LARS: the trainable parameters hold ", off,
               " values but the store's buffer ", store.values().numel());
  trust_.assign(segments_.size(), 1.0);
  if (dev.runs_cuda_code()) {
    SIMCLR_CHECK(device_launchers(dev).step != nullptr, "LARS: the parameters are on ", dev.str(),
                 " but this build has no ", dev.is_emu() ? "kernel emulator" : "CUDA backend");
    std::vector<LarsChunk> chunks = lars_chunks(segments_);
    num_chunks_ = static_cast<int64_t>(chunks.size());
    segments_dev_ = upload(segments_, dev);
    chunks_dev_ = upload(chunks, dev);
    workspace_ = Tensor::empty({static_cast<int64_t>(device_launchers(dev).workspace_bytes(num_chunks_))}, DType::u8,
                               dev);
    lr_dev_ = Tensor::zeros({1}, DType::f64, dev);
    trust_dev_ = Tensor::zeros({static_cast<int64_t>(std::max<size_t>(segments_.size(), 1))}, DType::f32, dev);
  }
}

void Lars::step(double lr) {
  const LarsHyper h{cfg_.momentum, cfg_.eta, cfg_.weight_decay, cfg_.nesterov};
  const Device dev = store_->values().device();
  if (segments_.empty()) return;
  if (!dev.runs_cuda_code()) {
    cpu::lars_step(store_->values().data<float>(), store_->grads().data<float>(), momentum_.data<float>(),
                   segments_.data(), static_cast<int>(segments_.size()), lr, h, trust_.data());
    return;
  }
  // The fused kernels (kernels/cuda/lars.cu), on a GPU or under the emulator:
  // stream-ordered, no host wait (a pageable source is staged before the call returns).
  void* stream = nullptr;
  if (dev.is_cuda()) {
#ifdef SIMCLR_WITH_CUDA
    stream = cuda_current_stream(dev.index);
    CUDA_CHECK(cudaMemcpyAsync(lr_dev_.data_ptr(), &lr, sizeof(double), cudaMemcpyHostToDevice,
                               static_cast<cudaStream_t>(stream)));
#endif
  } else {
    copy_bytes(lr_dev_.data_ptr(), dev, &lr, Device::cpu(), sizeof(double));
  }
  device_launchers(dev).step(store_->values().ptr<float>(), store_->grads().ptr<float>(), momentum_.ptr<float>(),
                             static_cast<const LarsSegment*>(segments_dev_.data_ptr()),
                             static_cast<const LarsChunk*>(chunks_dev_.data_ptr()), num_chunks_,
                             lr_dev_.ptr<double>(), h, workspace_.data_ptr(), trust_dev_.ptr<float>(),
                             static_cast<cudaStream_t>(stream));
  trust_stale_ = true;
}

const std::vector<double>& Lars::last_trust() const {
  if (trust_stale_) {
    const std::vector<float> t = trust_dev_.to_floats();
    for (size_t i = 0; i < trust_.size(); i++) trust_[i] = t[i];
    trust_stale_ = false;
  }
  return trust_;
}

}  // namespace simclr
