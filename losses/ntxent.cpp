// losses/ntxent.cpp - the differentiable NT-Xent op (ops/ops.h).
//
// CPU, f32/f64: the reference kernels (kernels/cpu/ntxent.cpp); the loss has
// z's dtype (f64 for gradient checks). CUDA, f32/bf16: the fused kernels
// (kernels/cuda/ntxent.cu); the loss is f32 and stays on the device.
// Forward saves only the per-row log-sum-exp lse[V] for backward; backward
// recomputes the similarities tile by tile and accumulates into z's gradient.
#include <cmath>

#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/dispatch.h"
#include "engine/op_table.h"
#include "losses/losses.h"
#include "kernels/ntxent.h"

namespace simclr {

namespace {

Tensor ntxent_cpu(const Tensor& z, double tau) {
  const int64_t V = z.size(0), D = z.size(1);
  Tensor loss = Tensor::empty({1}, z.dtype());
  Tensor lse = Tensor::empty({V}, z.dtype());
  dispatch_cpu_float(z.dtype(), [&](auto tag) {
    using T = decltype(tag);
    Tensor rows = Tensor::empty({V}, z.dtype());
    cpu::ntxent_forward(rows.data<T>(), lse.data<T>(), z.data<T>(), V, D, tau, 0, V);
    double s = 0;
    for (int64_t i = 0; i < V; i++) s += static_cast<double>(rows.data<T>()[i]);
    loss.data<T>()[0] = static_cast<T>(s / static_cast<double>(V));
  });
  if (needs_grad({z})) {
    loss.set_requires_grad();
    record("ntxent", [z, lse, loss, tau, V, D]() {
      Tensor gl = loss.grad(), gz = grad_for(z);
      if (!gl.defined() || !gz.defined()) return;
      dispatch_cpu_float(z.dtype(), [&](auto tag) {
        using T = decltype(tag);
        cpu::ntxent_backward(gz.data<T>(), z.data<T>(), lse.data<T>(), static_cast<double>(gl.data<T>()[0]), V, D,
                             tau, 0, V);
      });
    });
  }
  return loss;
}

#ifdef SIMCLR_WITH_CUDA
Tensor ntxent_cuda(const Tensor& z, double tau) {
  SIMCLR_CHECK(tau >= kNtxentMinTau, "ntxent: the fused CUDA kernel needs tau >= ", kNtxentMinTau, ", got ", tau);
  const int64_t V = z.size(0), D = z.size(1);
  const Device dev = z.device();
  void* stream = cuda_current_stream(dev.index);
  const bool f32 = z.dtype() == DType::f32;
  const int ksplit = gpu::ntxent_resolve_ksplit(0, V, V);
  Tensor loss = Tensor::empty({1}, DType::f32, dev);
  Tensor lse = Tensor::empty({V}, DType::f32, dev);
  {
    Tensor ws = Tensor::empty({static_cast<int64_t>(gpu::ntxent_workspace_bytes(V, D, V, f32, ksplit))}, DType::u8,
                              dev);
    if (f32)
      gpu::ntxent_forward(loss.data<float>(), lse.data<float>(), z.data<float>(), ws.data_ptr(), V, D, tau, 0, V,
                          ksplit, stream);
    else
      gpu::ntxent_forward(loss.data<float>(), lse.data<float>(), z.data<bf16>(), ws.data_ptr(), V, D, tau, 0, V,
                          ksplit, stream);
  }
  if (needs_grad({z})) {
    loss.set_requires_grad();
    record("ntxent", [z, lse, loss, tau, V, D, f32, ksplit, dev, stream]() {
      Tensor gl = loss.grad(), gz = grad_for(z);
      if (!gl.defined() || !gz.defined()) return;
      SIMCLR_CHECK(gl.dtype() == DType::f32 && gl.device() == dev, "ntxent backward: loss gradient ", gl.describe(),
                   " is not f32 on ", dev.str());
      Tensor ws = Tensor::empty({static_cast<int64_t>(gpu::ntxent_workspace_bytes(V, D, V, f32, ksplit))},
                                DType::u8, dev);
      if (f32)
        gpu::ntxent_backward(gz.data<float>(), z.data<float>(), lse.data<float>(), gl.data<float>(), ws.data_ptr(),
                             V, D, tau, 0, V, ksplit, stream);
      else
        gpu::ntxent_backward(gz.data<bf16>(), z.data<bf16>(), lse.data<float>(), gl.data<float>(), ws.data_ptr(), V,
                             D, tau, 0, V, ksplit, stream);
    });
  }
  return loss;
}
#endif

}  // namespace

Tensor ntxent(const Tensor& z, double tau) {
  check_supported(Op::ntxent, z.device(), z.dtype());
  check_ndim("ntxent", z, 2);
  SIMCLR_CHECK(z.size(0) >= 2 && z.size(0) % 2 == 0, "ntxent: embeddings ", z.describe(),
               " must have an even number >= 2 of rows (two views per image)");
  SIMCLR_CHECK(z.size(1) >= 1, "ntxent: embeddings ", z.describe(), " have no features");
  SIMCLR_CHECK(tau > 0 && std::isfinite(tau), "ntxent: temperature must be > 0, got ", tau);
  if (z.device().is_cpu()) return ntxent_cpu(z, tau);
#ifdef SIMCLR_WITH_CUDA
  return ntxent_cuda(z, tau);
#else
  fail("ntxent on ", z.device().str(), ": this build has no CUDA backend");
#endif
}

}  // namespace simclr
