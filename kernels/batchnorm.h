// kernels/batchnorm.h - batch normalisation over the rows of x[M,C] (channels
// last: M = N*H*W for 2-D BN on NHWC, M = N for 1-D BN on [N,C]), optionally
// fused with the ReLU that follows it. CPU kernels in kernels/cpu/batchnorm.cpp.
//
// Shape legend: M rows (everything but the channel dim), C channels.
//
// The op (ops/nn.cpp) runs BN in phases so that per-channel sums can be
// all-reduced across ranks in between (global BN):
//   training forward:  batchnorm_stats -> [all-reduce sum, sumsq, count] ->
//                      mean, var = sumsq/cnt - mean², invstd = 1/sqrt(var+eps)
//                      -> batchnorm_forward
//   eval forward:      batchnorm_forward with the running statistics
//   backward:          batchnorm_backward_reduce -> dγ += Σdy·x̂, dβ += Σdy (local)
//                      -> [all-reduce] -> batchnorm_backward_dx
// x̂ = (x - mean)·invstd,  y = γ·x̂ + β, or y = max(γ·x̂ + β, 0) fused with ReLU.
// Training: dx = γ·invstd·(dy - mean(dy) - x̂·mean(dy·x̂)) with means over the
// global count; eval (statistics constant): pass zeros for both means.
// With the fused ReLU the backward kernels take the op's output y and use
// dy·[y > 0] wherever this says dy (the ReLU's gradient, never materialised).
// gamma/beta null means affine off (γ = 1, β = 0).
//
// Each kernel is one sweep over its arrays: rows are split into one range per
// OpenMP thread, and within a range sums run in T over blocks of rows, added
// into double per block (float sums of a few hundred terms, double across
// blocks); per-thread partials are combined in thread order, so results do
// not depend on scheduling.
//
// Reductions write (=) double-precision per-channel sums; batchnorm_forward
// writes y (=); batchnorm_backward_dx writes (=) or ACCUMULATES (+=) into dx.
#pragma once
#include <cstdint>

namespace simclr::cpu {

// sum[C] = Σ_m x[m,c], sumsq[C] = Σ_m x[m,c]²
template <class T>
void batchnorm_stats(double* sum, double* sumsq, const T* x, int64_t M, int64_t C);

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

// dx[M,C] (+)= gamma[C]·invstd[C]·(g[M,C] - mean_dy[C] - x̂·mean_dy_xhat[C]), g as above;
// += when accumulate, else = (gamma and y may be null)
template <class T>
void batchnorm_backward_dx(T* dx, bool accumulate, const T* dy, const T* x, const T* y, const T* mean,
                           const T* invstd, const T* gamma, const T* mean_dy, const T* mean_dy_xhat, int64_t M,
                           int64_t C);

}  // namespace simclr::cpu
