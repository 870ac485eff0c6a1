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
               const LarsHyper&, void*, float*, const float*, cudaStream_t) = nullptr;
  void (*guard)(float*, const float*, cudaStream_t) = nullptr;
};
LarsLaunchers device_launchers(Device device) {
  LarsLaunchers l;
  if (device.is_cuda()) {
#ifdef SIMCLR_WITH_CUDA
    l.workspace_bytes = &gpu::lars_workspace_bytes;
    l.step = &gpu::lars_step;
    l.guard = &gpu::lars_guard;
#endif
  } else if (device.is_emu()) {
#ifdef SIMCLR_HAVE_EMU
    l.workspace_bytes = &emu::lars_workspace_bytes;
    l.step = &emu::lars_step;
    l.guard = &emu::lars_guard;
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
    guard_dev_ = Tensor::zeros({2}, DType::f32, dev);
  }
}

namespace {
void* stream_of(Device dev) {
#ifdef SIMCLR_WITH_CUDA
  if (dev.is_cuda()) return cuda_current_stream(dev.index);
#endif
  (void)dev;
  return nullptr;
}
}  // namespace

void Lars::stage_lr(double lr) {
  staged_lr_ = lr;
  const Device dev = store_->values().device();
  if (!dev.runs_cuda_code()) return;
  if (dev.is_cuda()) {
#ifdef SIMCLR_WITH_CUDA
    // (from pageable memory: staged by the driver before the call returns)
    CUDA_CHECK(cudaMemcpyAsync(lr_dev_.data_ptr(), &lr, sizeof(double), cudaMemcpyHostToDevice,
                               static_cast<cudaStream_t>(stream_of(dev))));
#endif
  } else {
    copy_bytes(lr_dev_.data_ptr(), dev, &lr, Device::cpu(), sizeof(double));
  }
}

bool Lars::guard(const Tensor& loss) {
  const Device dev = store_->values().device();
  if (!dev.runs_cuda_code()) return false;
  SIMCLR_CHECK(loss.device() == dev && loss.dtype() == DType::f32 && loss.numel() == 1, "LARS guard: the loss ",
               loss.describe(), " must be one f32 on ", dev.str());
  device_launchers(dev).guard(guard_dev_.ptr<float>(), loss.ptr<float>(), static_cast<cudaStream_t>(stream_of(dev)));
  return true;
}

void Lars::clear_guard() {
  if (guard_dev_.defined()) guard_dev_.zero_();
}

void Lars::step(double lr) {
  stage_lr(lr);
  step_staged();
}

void Lars::step_staged() {
  const LarsHyper h{cfg_.momentum, cfg_.eta, cfg_.weight_decay, cfg_.nesterov};
  const Device dev = store_->values().device();
  if (segments_.empty()) return;
  if (!dev.runs_cuda_code()) {
    cpu::lars_step(store_->values().data<float>(), store_->grads().data<float>(), momentum_.data<float>(),
                   segments_.data(), static_cast<int>(segments_.size()), staged_lr_, h, trust_.data());
    return;
  }
  // The fused kernels (kernels/cuda/lars.cu), on a GPU or under the emulator:
  // stream-ordered, no host wait; lr from the device scalar stage_lr wrote; no
  // update at all once the guard saw a non-finite loss.
  device_launchers(dev).step(store_->values().ptr<float>(), store_->grads().ptr<float>(), momentum_.ptr<float>(),
                             static_cast<const LarsSegment*>(segments_dev_.data_ptr()),
                             static_cast<const LarsChunk*>(chunks_dev_.data_ptr()), num_chunks_,
                             lr_dev_.ptr<double>(), h, workspace_.data_ptr(), trust_dev_.ptr<float>(),
                             guard_dev_.ptr<float>() + 1, static_cast<cudaStream_t>(stream_of(dev)));
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
