// kernels/ntxent.h - NT-Xent (SimCLR's normalised temperature-scaled cross
// entropy): the kernel set NtxentKernels<T> (kernels/registry.h), the CPU
// reference (kernels/cpu/ntxent.cpp) and the fused CUDA kernels
// (kernels/cuda/ntxent.cu, which also runs under the kernel emulator).
//
// Shape legend: V rows = 2N views (global), D feature dimension, R = r1 - r0
// local rows (queries) of this rank, Dp = D rounded up to 64.
//
// Layout: z[V,D], rows [0, N) view 1 of images 0..N-1, rows [N, 2N) view 2,
// so the positive of row i is p(i) = (i + N) mod 2N (p is its own inverse).
//   ẑ_i = z_i / max(|z_i|, eps), eps = 1e-12        (NOT normalised on input)
//   s_ik = ẑ_i·ẑ_k                                   (cosine similarity)
//   lse_i = log Σ_{k≠i} exp(s_ik/τ)
//   ℓ_i = lse_i - s_{i,p(i)}/τ,   L = (1/V) Σ_i ℓ_i
//
// Distributed form (built in): a rank owns the rows [r0, r1) of the global V
// and holds ALL V rows of z (all-gathered). Forward gives ℓ and lse of its
// rows; the loss is Σ over ranks of the per-rank partial (1/V)Σ_{local} ℓ_i.
// After the lse of all V rows is all-gathered (V floats), backward gives the
// COMPLETE gradient dL/dz of the local rows (the rows' contributions as keys
// of every other row included), so no gradient of the gathered keys is ever
// all-reduced:
//   dL/dẑ_j = 1/(Vτ) [ Σ_k (P_jk + P_kj) ẑ_k - 2 ẑ_p(j) ],
//   P_jk = exp(s_jk/τ - lse_j) for k≠j, P_jj = 0,  P_kj = exp(s_jk/τ - lse_k),
//   dL/dz_j = (dẑ_j - ẑ_j (ẑ_j·dẑ_j)) / |z_j|   (dẑ_j / eps when |z_j| <= eps).
// With r0 = 0, r1 = V this is the single-device op.
//
// Forwards write (=); backwards ACCUMULATE (+=) into dz.
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "engine/dtype.h"
#include "engine/op_table.h"

namespace simclr {

constexpr double kNtxentEps = 1e-12;  // normalisation floor, as l2_normalize
// The fused kernels use the a-priori bound s <= 1 as the softmax shift
// (kernels/cuda/ntxent.cu explains why); they need τ >= this.
constexpr double kNtxentMinTau = 0.025;

// The one contract of every backend (CPU rows: the reference, no workspace;
// CUDA rows: the fused kernels on the engine's stream of the current device,
// key split chosen automatically). Loss and lse are in Acc: T for f32 and
// f64, f32 for bf16. All pointers are the tensors' memory on their device.
template <class T>
struct NtxentKernels {
  static constexpr Op op = Op::ntxent;
  using Acc = std::conditional_t<std::is_same_v<T, bf16>, float, T>;
  double min_tau;  // the smallest temperature the kernels accept (the op checks it)
  // Bytes of workspace forward and backward need for R = r1 - r0 local rows (0: none).
  size_t (*workspace_bytes)(int64_t V, int64_t D, int64_t R);
  // loss[1] = (1/V) Σ_{i in [r0,r1)} ℓ_i,  lse[R] = lse_i
  void (*forward)(Acc* loss, Acc* lse, const T* z, void* workspace, int64_t V, int64_t D, double tau, int64_t r0,
                  int64_t r1);
  // dz[R,D] += dloss[0] · dL/dz (local rows) from z[V,D] and lse[V] (all rows)
  void (*backward)(T* dz, const T* z, const Acc* lse, const Acc* dloss, void* workspace, int64_t V, int64_t D,
                   double tau, int64_t r0, int64_t r1);
};

}  // namespace simclr

namespace simclr::cpu {

// Reference forward of the local rows [r0, r1): row_loss[R] = ℓ_i,
// lse[R] = lse_i (both may be null). z[V,D] holds all V rows. Accumulates in
// double whatever T is.
template <class T>
void ntxent_forward(T* row_loss, T* lse, const T* z, int64_t V, int64_t D, double tau, int64_t r0, int64_t r1);

// Reference backward: dz[R,D] += dloss · dL/dz_j for the local rows, from z[V,D]
// (all rows) and lse[V] (all rows, e.g. all-gathered).
template <class T>
void ntxent_backward(T* dz, const T* z, const T* lse, double dloss, int64_t V, int64_t D, double tau, int64_t r0,
                     int64_t r1);

// The CPU backend's NtxentKernels<T> functions: the reference above in the
// shared contract (loss[1] = (1/V) Σ of the rows' ℓ_i as T, summed in double
// in row order; dloss read from dloss[0]; no workspace).
template <class T>
size_t ntxent_loss_workspace_bytes(int64_t V, int64_t D, int64_t R);
template <class T>
void ntxent_loss_forward(T* loss, T* lse, const T* z, void* workspace, int64_t V, int64_t D, double tau, int64_t r0,
                         int64_t r1);
template <class T>
void ntxent_loss_backward(T* dz, const T* z, const T* lse, const T* dloss, void* workspace, int64_t V, int64_t D,
                          double tau, int64_t r0, int64_t r1);

}  // namespace simclr::cpu

// ----------------------------------------------------------------- CUDA
// The fused kernels' launchers, declared identically in simclr::gpu (the real
// device, built by nvcc) and simclr::emu (the same .cu run on the CPU by the
// kernel emulator). All pointers are device pointers (host pointers under the
// emulator); `stream` is a cudaStream_t (nullptr = default stream).
//
// fp32 input is not rounded to a single bf16: the prepass splits each
// normalised row into hi = bf16(ẑ) and lo = bf16(ẑ - hi) and the tensor-core
// products use hi·hi + hi·lo + lo·hi ("bf16x3", about 16 mantissa bits, more
// accurate than TF32) at 3x the tensor-core work. bf16 input uses one plane.
//
// Workspace (one device buffer, ntxent_workspace_bytes): ẑ planes
// [planes, V, Dp] bf16, inv_norm[V], spos[V] (s_{i,p(i)}), rk[V rounded up
// to 64] (backward: exp(1/τ - lse_k)), forward partial row sums [ksplit, R],
// backward partial dẑ [ksplit, R, Dp] f32: O(V·D), never O(V²). The kernels
// never read workspace they have not written in the same call.
namespace simclr {

struct NtxentWorkspace {  // byte offsets into the workspace
  size_t zhat = 0, inv_norm = 0, spos = 0, rk = 0, row_partial = 0, grad_partial = 0, total = 0;
};

inline int64_t ntxent_padded_dim(int64_t D) { return (D + 63) / 64 * 64; }

inline NtxentWorkspace ntxent_workspace_layout(int64_t V, int64_t D, int64_t R, int planes, int ksplit) {
  auto up = [](size_t b) { return (b + 255) / 256 * 256; };
  const size_t Dp = static_cast<size_t>(ntxent_padded_dim(D));
  NtxentWorkspace w;
  w.zhat = 0;
  w.inv_norm = w.zhat + up(static_cast<size_t>(planes) * V * Dp * 2);
  w.spos = w.inv_norm + up(V * 4);
  w.rk = w.spos + up(V * 4);
  w.row_partial = w.rk + up(static_cast<size_t>((V + 63) / 64 * 64) * 4);
  w.grad_partial = w.row_partial + up(static_cast<size_t>(ksplit) * R * 4);
  w.total = w.grad_partial + up(static_cast<size_t>(ksplit) * R * Dp * 4);
  return w;
}

}  // namespace simclr

#define SIMCLR_NTXENT_LAUNCHERS                                                                              \
  /* The key-split factor used when ksplit = 0 (auto): enough blocks to fill the device. */                \
  int ntxent_resolve_ksplit(int ksplit, int64_t V, int64_t R);                                             \
  /* Workspace bytes for this call (ksplit already resolved). */                                           \
  size_t ntxent_workspace_bytes(int64_t V, int64_t D, int64_t R, bool fp32_input, int ksplit);             \
  /* loss[1] = (1/V) Σ_{i in [r0,r1)} ℓ_i,  lse[R]  (fp32). */                                             \
  void ntxent_forward(float* loss, float* lse, const float* z, void* workspace, int64_t V, int64_t D,       \
                      double tau, int64_t r0, int64_t r1, int ksplit, void* stream);                        \
  void ntxent_forward(float* loss, float* lse, const ::simclr::bf16* z, void* workspace, int64_t V,         \
                      int64_t D, double tau, int64_t r0, int64_t r1, int ksplit, void* stream);             \
  /* dz[R,D] += dloss[0] · dL/dz (local rows) from z[V,D], lse[V] (global), dloss[1] on the device. */     \
  void ntxent_backward(float* dz, const float* z, const float* lse, const float* dloss, void* workspace,    \
                       int64_t V, int64_t D, double tau, int64_t r0, int64_t r1, int ksplit, void* stream); \
  void ntxent_backward(::simclr::bf16* dz, const ::simclr::bf16* z, const float* lse, const float* dloss,  \
                       void* workspace, int64_t V, int64_t D, double tau, int64_t r0, int64_t r1,          \
                       int ksplit, void* stream);                                                             \
  /* The unfused baseline for bench_ntxent: cuBLAS GEMM of the full V×V similarity matrix, then */            \
  /* separate masked softmax / cross-entropy kernels; the backward forms dS = (softmax -       */             \
  /* onehot)/(Vτ) as a V×V matrix and two cuBLAS GEMMs (a plain loop under the emulator).      */             \
  /* Memory O(V²); the backward reads S from the forward's workspace.                          */             \
  size_t ntxent_unfused_workspace_bytes(int64_t V, int64_t D, bool fp32_input);                               \
  void ntxent_unfused_forward(float* loss, float* lse, const float* z, void* workspace, int64_t V,            \
                              int64_t D, double tau, void* stream);                                           \
  void ntxent_unfused_forward(float* loss, float* lse, const ::simclr::bf16* z, void* workspace,              \
                              int64_t V, int64_t D, double tau, void* stream);                                \
  void ntxent_unfused_backward(float* dz, const float* z, const float* lse, const float* dloss,               \
                               void* workspace, int64_t V, int64_t D, double tau, void* stream);              \
  void ntxent_unfused_backward(::simclr::bf16* dz, const ::simclr::bf16* z, const float* lse,                 \
                               const float* dloss, void* workspace, int64_t V, int64_t D, double tau,         \
                               void* stream);

namespace simclr::gpu {
SIMCLR_NTXENT_LAUNCHERS
}  // namespace simclr::gpu
namespace simclr::emu {
SIMCLR_NTXENT_LAUNCHERS
}  // namespace simclr::emu
