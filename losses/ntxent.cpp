// losses/ntxent.cpp - the differentiable NT-Xent op (losses/losses.h): the
// pattern of ops/elementwise.cpp over the one NtxentKernels<T> contract
// (kernels/ntxent.h). The CPU rows run the reference (f32/f64, the loss in
// z's dtype, f64 for gradient checks); the CUDA rows run the fused kernels
// (f32/bf16, the loss f32, on the device). Forward saves only the per-row
// log-sum-exp lse[V] for backward; backward recomputes the similarities and
// accumulates into z's gradient. A backend's workspace is allocated here, on
// z's device, for each call.
#include <cmath>
#include <type_traits>

#include "kernels/ntxent.h"
#include "kernels/registry.h"
#include "losses/losses.h"
#include "ops/record.h"

namespace simclr {

namespace {
// `bytes` of scratch on `device`, or none.
Tensor workspace(size_t bytes, Device device) {
  return bytes ? Tensor::empty({static_cast<int64_t>(bytes)}, DType::u8, device) : Tensor();
}
}  // namespace

Tensor ntxent(const Tensor& z, double tau) {
  check_ndim("ntxent", z, 2);
  SIMCLR_CHECK(z.size(0) >= 2 && z.size(0) % 2 == 0, "ntxent: embeddings ", z.describe(),
               " must have an even number >= 2 of rows (two views per image)");
  SIMCLR_CHECK(z.size(1) >= 1, "ntxent: embeddings ", z.describe(), " have no features");
  SIMCLR_CHECK(tau > 0 && std::isfinite(tau), "ntxent: temperature must be > 0, got ", tau);
  const int64_t V = z.size(0), D = z.size(1);
  Tensor loss;
  dispatch<NtxentKernels>(z.device(), z.dtype(), [&](const auto& k, auto tag) {
    using T = decltype(tag);
    using A = typename std::decay_t<decltype(k)>::Acc;
    SIMCLR_CHECK(tau >= k.min_tau, "ntxent: the kernel on ", z.device().str(), " needs tau >= ", k.min_tau, ", got ",
                 tau);
    const Device dev = z.device();
    loss = Tensor::empty({1}, dtype_of<A>::value, dev);
    Tensor lse = Tensor::empty({V}, dtype_of<A>::value, dev);
    {
      Tensor ws = workspace(k.workspace_bytes(V, D, V), dev);
      k.forward(loss.ptr<A>(), lse.ptr<A>(), z.ptr<T>(), ptr_or_null<uint8_t>(ws), V, D, tau, 0, V);
    }
    record_backward("ntxent", loss, {z}, [k, z, lse, tau, V, D, dev](const Tensor& gl) {
      Tensor gz = grad_for(z);
      if (!gz.defined()) return;
      Tensor ws = workspace(k.workspace_bytes(V, D, V), dev);
      k.backward(gz.ptr<T>(), z.ptr<T>(), lse.ptr<A>(), gl.ptr<A>(), ptr_or_null<uint8_t>(ws), V, D, tau, 0, V);
    });
  });
  return loss;
}

}  // namespace simclr
