// kernels/batchnorm.h - batch normalisation over the rows of x[M,C] (channels
// last: M = N*H*W for 2-D BN on NHWC, M = N for 1-D BN on [N,C]), optionally
// fused with the ReLU that follows it: the kernel set BatchNormKernels<T>
// (kernels/registry.h) and the CPU reference (kernels/cpu/batchnorm.cpp).
//
// Shape legend: M rows (everything but the channel dim), C channels.
//
// The op (ops/nn.cpp) runs BN in phases, every phase a kernel, so that the
// per-channel statistics can be gathered across ranks in between (global BN)
// without a host round trip:
//   training forward:  stats -> [all-gather, merge_stats] -> finalize -> forward
//     stats[2C+1] = [mean C | M2 C | count]     (count = M; M2 = Σ(x - mean)²; an empty
//                                                batch gives zeros)
//     merge_stats: R ranks' stats blocks [R][2C+1] -> the stats of the concatenated batch,
//               by Chan's parallel Welford formula folded in rank order (so every rank gets
//               the same bits; ranks may have different counts, empty ones add nothing):
//               n = na + nb, δ = mean_b - mean_a, mean = mean_a + δ·nb/n,
//               M2 = M2_a + M2_b + δ²·na·nb/n. The variance is never rebuilt from
//               Σx² - (Σx)²/n across ranks (nor from 1/invstd² - eps).
//     finalize: mean, var = M2/count (biased), invstd = 1/sqrt(var + eps); running
//               statistics (when given):
//               r_mean = (1-m)·r_mean + m·mean, r_var = (1-m)·r_var + m·var·count/(count-1)
//               (PyTorch's convention: the unbiased variance), in double, stored in
//               the buffers' own dtype (f32 or f64, whatever x's dtype: running_f32 / running_f64)
//   eval forward:      from_running (mean = r_mean, invstd = 1/sqrt(r_var + eps)) -> forward
//   backward:          backward_reduce -> [all-reduce a copy] -> backward_finalize -> backward_dx
//     red[2C] = [Σg C | Σg·x̂ C] (this rank's rows);
//     backward_finalize: dγ += Σg·x̂, dβ += Σg from the LOCAL sums (the gradient
//     all-reduce sums the ranks' shares), mean_dy = Σg/count, mean_dy_xhat =
//     Σg·x̂/count from the ALL-REDUCED sums (training), zeros in eval (the
//     statistics are constants)
// x̂ = (x - mean)·invstd,  y = γ·x̂ + β, or y = max(γ·x̂ + β, 0) fused with ReLU.
// Training: dx = γ·invstd·(g - mean(g) - x̂·mean(g·x̂)) with means over the
// global count; eval: both means are zero. g = dy, or dy·[y > 0] with the fused
// ReLU (the backward kernels take the op's output y; the ReLU's gradient is
// never materialised). gamma/beta null means affine off (γ = 1, β = 0).
//
// Each sweep kernel is one pass over its arrays: rows are split into one range
// per OpenMP thread, and within a range sums run in T over blocks of rows,
// added into double per block (float sums of a few hundred terms, double
// across blocks); per-thread partials are combined in thread order, so results
// do not depend on scheduling. The finalize kernels are O(C).
//
// Reductions write (=) double-precision per-channel sums; batchnorm_forward
// writes y (=); batchnorm_backward_dx writes (=) or ACCUMULATES (+=) into dx.
// Every pointer is the tensor's memory on its device.
#pragma once
#include <cstdint>

#include "engine/dtype.h"
#include "engine/op_table.h"

namespace simclr {

// The functions on the running statistics, for buffers of element type B.
template <class T, class B>
struct BatchNormRunningKernels {
  void (*finalize)(T* mean, T* invstd, B* running_mean, B* running_var, const double* stats, int64_t C, double eps,
                   double momentum);
  void (*from_running)(T* mean, T* invstd, const B* running_mean, const B* running_var, int64_t C, double eps);
};

template <class T>
struct BatchNormKernels {
  static constexpr Op op = Op::batch_norm;
  void (*stats)(double* stats, const T* x, int64_t M, int64_t C);
  void (*merge_stats)(double* stats, const double* parts, int64_t ranks, int64_t C);
  BatchNormRunningKernels<T, float> running_f32;  // running buffers (or none) of dtype f32
  BatchNormRunningKernels<T, double> running_f64;
  void (*forward)(T* y, const T* x, const T* mean, const T* invstd, const T* gamma, const T* beta, int64_t M,
                  int64_t C, bool relu);
  void (*backward_reduce)(double* sum_dy, double* sum_dy_xhat, const T* dy, const T* x, const T* y, const T* mean,
                          const T* invstd, int64_t M, int64_t C);
  void (*backward_finalize)(T* dgamma, T* dbeta, T* mean_dy, T* mean_dy_xhat, const double* red,
                            const double* red_all, const double* stats, int64_t C);
  void (*backward_dx)(T* dx, bool accumulate, const T* dy, const T* x, const T* y, const T* mean, const T* invstd,
                      const T* gamma, const T* mean_dy, const T* mean_dy_xhat, int64_t M, int64_t C);
};

}  // namespace simclr

namespace simclr::cpu {

// sum[C] = Σ_m x[m,c], sumsq[C] = Σ_m x[m,c]²
template <class T>
void batchnorm_stats(double* sum, double* sumsq, const T* x, int64_t M, int64_t C);
// stats[2C+1] = [mean C | M2 C | M]   (from the sums of x - x[0,c], as batchnorm_stats)
template <class T>
void batchnorm_batch_stats(double* stats, const T* x, int64_t M, int64_t C);
// stats[2C+1] = the merge of parts[ranks][2C+1] (Chan's formula in rank order, see above)
void batchnorm_merge_stats(double* stats, const double* parts, int64_t ranks, int64_t C);

// From stats[2C+1] (merged: count = stats[2C] > 1): mean[C], invstd[C] (=),
// and, when running_mean/running_var are not null, their update (see above).
// Fails when count <= 1 (no variance to estimate).
template <class T, class B>
void batchnorm_finalize(T* mean, T* invstd, B* running_mean, B* running_var, const double* stats, int64_t C,
                        double eps, double momentum);
// mean[C] = running_mean, invstd[C] = 1/sqrt(running_var + eps)   (=, computed in double)
template <class T, class B>
void batchnorm_from_running(T* mean, T* invstd, const B* running_mean, const B* running_var, int64_t C, double eps);

// y[M,C] = (x[M,C] - mean[C])·invstd[C]·gamma[C] + beta[C], then max(·, 0) when relu
// (gamma, beta may be null)
template <class T>
void batchnorm_forward(T* y, const T* x, const T* mean, const T* invstd, const T* gamma, const T* beta, int64_t M,
                       int64_t C, bool relu);

// sum_dy[C] = Σ_m g[m,c], sum_dy_xhat[C] = Σ_m g[m,c]·x̂[m,c], g = dy·[y > 0] when
// y (the fused BN+ReLU output) is given, else g = dy
template <class T>
void batchnorm_backward_reduce(double* sum_dy, double* sum_dy_xhat, const T* dy, const T* x, const T* y,
                               const T* mean, const T* invstd, int64_t M, int64_t C);

// From red[2C] = [Σg | Σg·x̂] of this rank: dgamma[C] += Σg·x̂, dbeta[C] += Σg
// (each may be null). From red_all[2C] (red summed over the ranks) and count =
// stats[2C]: mean_dy[C] = Σg/count, mean_dy_xhat[C] = Σg·x̂/count (=), or zeros
// when red_all is null (eval); skipped when mean_dy is null (no dx wanted).
template <class T>
void batchnorm_backward_finalize(T* dgamma, T* dbeta, T* mean_dy, T* mean_dy_xhat, const double* red,
                                 const double* red_all, const double* stats, int64_t C);

// dx[M,C] (+)= gamma[C]·invstd[C]·(g[M,C] - mean_dy[C] - x̂·mean_dy_xhat[C]), g as above;
// += when accumulate, else = (gamma and y may be null)
template <class T>
void batchnorm_backward_dx(T* dx, bool accumulate, const T* dy, const T* x, const T* y, const T* mean,
                           const T* invstd, const T* gamma, const T* mean_dy, const T* mean_dy_xhat, int64_t M,
                           int64_t C);

}  // namespace simclr::cpu

// ----------------------------------------------------------------- CUDA
// The CUDA twins' launchers (kernels/cuda/batchnorm.cu), declared identically
// in simclr::gpu (nvcc) and simclr::emu (the kernel emulator), for T = float
// and ::simclr::bf16 (fp32 arithmetic, bf16 only at loads and stores; the
// double stats / red buffers and f32/f64 running buffers as in the contract).
// Same arguments and semantics as the cpu:: functions above, plus the stream
// (a cudaStream_t; nullptr = default stream). All pointers are device pointers
// (host pointers under the emulator). Differences a device forces:
//   - the reductions take a stream-ordered scratch buffer (cudaMallocAsync on
//     `stream`) for their per-(row chunk, channel) partials;
//   - batchnorm_merge_stats: one thread per channel (the same fold, in double);
//   - batchnorm_finalize cannot throw when count = stats[2C] <= 1: it writes
//     NaN to mean[C] and invstd[C] and leaves the running buffers untouched
//     (the op checks count > 1 on the host whenever it knows the count).
#define SIMCLR_BN_LAUNCHERS_T(T)                                                                                 \
  void batchnorm_batch_stats(double* stats, const T* x, int64_t M, int64_t C, void* stream);                    \
  void batchnorm_finalize(T* mean, T* invstd, float* running_mean, float* running_var, const double* stats,      \
                          int64_t C, double eps, double momentum, void* stream);                                 \
  void batchnorm_finalize(T* mean, T* invstd, double* running_mean, double* running_var, const double* stats,    \
                          int64_t C, double eps, double momentum, void* stream);                                 \
  void batchnorm_from_running(T* mean, T* invstd, const float* running_mean, const float* running_var,           \
                              int64_t C, double eps, void* stream);                                              \
  void batchnorm_from_running(T* mean, T* invstd, const double* running_mean, const double* running_var,         \
                              int64_t C, double eps, void* stream);                                              \
  void batchnorm_forward(T* y, const T* x, const T* mean, const T* invstd, const T* gamma, const T* beta,         \
                         int64_t M, int64_t C, bool relu, void* stream);                                         \
  void batchnorm_backward_reduce(double* sum_dy, double* sum_dy_xhat, const T* dy, const T* x, const T* y,       \
                                 const T* mean, const T* invstd, int64_t M, int64_t C, void* stream);            \
  void batchnorm_backward_finalize(T* dgamma, T* dbeta, T* mean_dy, T* mean_dy_xhat, const double* red,          \
                                   const double* red_all, const double* stats, int64_t C, void* stream);         \
  void batchnorm_backward_dx(T* dx, bool accumulate, const T* dy, const T* x, const T* y, const T* mean,         \
                             const T* invstd, const T* gamma, const T* mean_dy, const T* mean_dy_xhat,           \
                             int64_t M, int64_t C, void* stream);
#define SIMCLR_BN_LAUNCHERS          \
  SIMCLR_BN_LAUNCHERS_T(float)       \
  SIMCLR_BN_LAUNCHERS_T(::simclr::bf16) \
  void batchnorm_merge_stats(double* stats, const double* parts, int64_t ranks, int64_t C, void* stream);

namespace simclr::gpu {
SIMCLR_BN_LAUNCHERS
}  // namespace simclr::gpu
namespace simclr::emu {
SIMCLR_BN_LAUNCHERS
}  // namespace simclr::emu
