// losses/ntxent.cpp - the differentiable NT-Xent op (losses/losses.h): the
// pattern of ops/elementwise.cpp over the one NtxentKernels<T> contract
// (kernels/ntxent.h). The CPU rows run the reference (f32/f64, the loss in
// z's dtype, f64 for gradient checks); the CUDA rows run the fused kernels
// (f32/bf16, the loss f32, on the device). Forward saves only the per-row
// log-sum-exp lse[V] for backward; backward recomputes the similarities and
// accumulates into z's gradient. A backend's workspace is allocated here, on
// z's device, for each call. With a communicator of more than one rank, the
// distributed form (losses.h, kernels/ntxent.h): z and lse all-gathered, the
// loss all-reduced, each rank's gradient complete for its own rows.
#include <cmath>
#include <type_traits>

#include "kernels/ntxent.h"
#include "kernels/registry.h"
#include "engine/autograd.h"
#include "losses/losses.h"
#include "ops/record.h"

namespace simclr {

namespace {
// `bytes` of scratch on `device`, or none.
Tensor workspace(size_t bytes, Device device) {
  return bytes ? Tensor::empty({static_cast<int64_t>(bytes)}, DType::u8, device) : Tensor();
}
}  // namespace

namespace {

// The distributed form (losses.h): comm->size() = R > 1, z this rank's [2B, D].
Tensor ntxent_distributed(const Tensor& z, double tau, Communicator* comm) {
  const int64_t R = comm->size(), r = comm->rank();
  const int64_t B = z.size(0) / 2, D = z.size(1), N = R * B, V = 2 * N;
  // This rank's rows of the global layout: view 1 [rB, rB+B), view 2 [N+rB, N+rB+B).
  const int64_t a0 = r * B, b0 = N + r * B;
  Tensor loss;
  dispatch<NtxentKernels>(z.device(), z.dtype(), [&](const auto& k, auto tag) {
    using T = decltype(tag);
    using A = typename std::decay_t<decltype(k)>::Acc;
    const DType adt = dtype_of<A>::value;
    SIMCLR_CHECK(tau >= k.min_tau, "ntxent: the kernel on ", z.device().str(), " needs tau >= ", k.min_tau, ", got ",
                 tau);
    const Device dev = z.device();
    // ---- the global z: view 1 of every rank, then view 2 of every rank
    Tensor zg = Tensor::empty({V, D}, z.dtype(), dev);
    {
      Tensor out1 = zg.slice0(0, N), out2 = zg.slice0(N, V);
      comm->all_gather(out1, z.slice0(0, B));
      comm->all_gather(out2, z.slice0(B, 2 * B));
    }
    // ---- this rank's rows: the two partial losses (each (1/V) Σ ℓ_i) and their lse
    Tensor parts = Tensor::empty({2}, adt, dev);
    Tensor lse = Tensor::empty({2 * B}, adt, dev);  // [view-1 rows | view-2 rows]
    {
      Tensor ws = workspace(k.workspace_bytes(V, D, B), dev);
      k.forward(parts.ptr<A>(), lse.ptr<A>(), zg.ptr<T>(), ptr_or_null<uint8_t>(ws), V, D, tau, a0, a0 + B);
      k.forward(parts.ptr<A>() + 1, lse.ptr<A>() + B, zg.ptr<T>(), ptr_or_null<uint8_t>(ws), V, D, tau, b0, b0 + B);
    }
    comm->all_reduce_sum(parts);  // [Σ_r view-1 partials, Σ_r view-2 partials]: the same on every rank
    Tensor lse_all = Tensor::empty({V}, adt, dev);  // in the global row order
    {
      Tensor out1 = lse_all.slice0(0, N), out2 = lse_all.slice0(N, V);
      comm->all_gather(out1, lse.slice0(0, B));
      comm->all_gather(out2, lse.slice0(B, 2 * B));
    }
    {
      NoGrad ng;
      loss = add(parts.slice0(0, 1), parts.slice0(1, 2));  // the global loss, on the device
    }
    record_backward("ntxent", loss, {z}, [k, z, zg, lse_all, tau, V, D, B, a0, b0, dev](const Tensor& gl) {
      Tensor gz = grad_for(z);
      if (!gz.defined()) return;
      Tensor ws = workspace(k.workspace_bytes(V, D, B), dev);
      T* g = gz.ptr<T>();  // [2B, D]: rows [0, B) are global rows a0.., [B, 2B) global rows b0..
      k.backward(g, zg.ptr<T>(), lse_all.ptr<A>(), gl.ptr<A>(), ptr_or_null<uint8_t>(ws), V, D, tau, a0, a0 + B);
      k.backward(g + B * D, zg.ptr<T>(), lse_all.ptr<A>(), gl.ptr<A>(), ptr_or_null<uint8_t>(ws), V, D, tau, b0,
                 b0 + B);
    });
  });
  return loss;
}

}  // namespace

Tensor ntxent(const Tensor& z, double tau, Communicator* comm) {
  check_ndim("ntxent", z, 2);
  SIMCLR_CHECK(z.size(0) >= 2 && z.size(0) % 2 == 0, "ntxent: embeddings ", z.describe(),
               " must have an even number >= 2 of rows (two views per image)");
  SIMCLR_CHECK(z.size(1) >= 1, "ntxent: embeddings ", z.describe(), " have no features");
  SIMCLR_CHECK(tau > 0 && std::isfinite(tau), "ntxent: temperature must be > 0, got ", tau);
  if (comm != nullptr && comm->size() > 1) return ntxent_distributed(z, tau, comm);
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
