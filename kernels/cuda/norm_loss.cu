// kernels/cuda/norm_loss.cu - the CUDA twins of kernels/cpu/norm_loss.cpp
// (contract: kernels/norm_loss.h): row-wise L2 normalisation and softmax
// cross-entropy, for T = float and bf16 (fp32 arithmetic, bf16 only at loads
// and stores; per-row scalars and the loss's mean in double). Also compiled by
// the kernel emulator (tests/emu/test_bn_norm_emu.cpp).
//
//   l2n_*_kernel       one warp per row of x[V,D] (8 rows per block): the
//                      lanes' float sums (Σx², and Σx·dy for backward) combined
//                      by a xor butterfly (every lane gets the same bits), then
//                      the row's coefficients in double:
//                        forward  y = x·(1/max(|x|, eps))
//                        backward dx += dy·(1/|x|) - x·(x·dy/|x|³)  (|x| > eps)
//                                 dx += dy/eps                       (otherwise)
//   ce_rows_kernel     one block (128 threads) per row of logits[N,K]: max,
//                      Σ exp(z - max) in float (fixed-order block reduction),
//                      lse = max + log Σ in double; the row's loss
//                      lse - z[label] (double) into a scratch row_loss[N].
//   ce_mean_kernel     one block: loss[0] = (Σ row_loss in a fixed order, in
//                      double) / N.
//   ce_backward_kernel elementwise: dz += g·exp(z - lse) - g·[k = label],
//                      g = dloss[0]/N (in fp32, as the reference computes it in T).
//   ce_check_kernel    the first row whose label is outside [0, K): an integer
//                      atomicMin (order-independent), read back by the host.
// No float atomics: every result is bitwise reproducible.
#include "kernels/norm_loss.h"

#include <algorithm>
#include <limits>
#include <type_traits>

#include "kernels/cuda/common.cuh"

namespace simclr::SIMCLR_KNS {

namespace {

using bf16_t = __nv_bfloat16;

constexpr int kL2Rows = 8;      // rows (warps) per block of the L2 kernels
constexpr int kCeThreads = 128;  // threads per row of the cross-entropy forward
constexpr int kThreads = 256;    // elementwise kernels and the mean
constexpr int64_t kMaxGrid = 1 << 16;


cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum / max over a block of NT threads, every thread gets the result; red:
// NT/32 values of shared memory. Fixed order: deterministic.
template <int NT, class V>
__device__ V block_sum(V v, V* red) {
  v = warp_sum(v);
  const int warp = static_cast<int>(threadIdx.x) >> 5, lane = static_cast<int>(threadIdx.x) & 31;
  __syncthreads();  // red may still be read by a previous call
  if (lane == 0) red[warp] = v;
  __syncthreads();
  V s = red[0];
  for (int w = 1; w < NT / 32; ++w) s += red[w];
  return s;
}
template <int NT>
__device__ float block_max(float v, float* red) {
  v = warp_max(v);
  const int warp = static_cast<int>(threadIdx.x) >> 5, lane = static_cast<int>(threadIdx.x) & 31;
  __syncthreads();
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float s = red[0];
  for (int w = 1; w < NT / 32; ++w) s = fmaxf(s, red[w]);
  return s;
}

// ---------------------------------------------------------------- L2 normalisation
template <class S>
__global__ void __launch_bounds__(kL2Rows * 32) l2n_forward_kernel(S* y, const S* x, int64_t V, int64_t D, double eps) {
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int64_t v = static_cast<int64_t>(blockIdx.x) * kL2Rows + (threadIdx.x >> 5);
  if (v >= V) return;  // whole warps: the butterfly below has all 32 lanes
  const S* xv = x + v * D;  // [D]
  S* yv = y + v * D;        // [D]
  float ss = 0.0f;
  for (int64_t d = lane; d < D; d += 32) {
    const float t = to_float(xv[d]);
    ss = fmaf(t, t, ss);
  }
  ss = warp_sum(ss);
  const double n = static_cast<double>(sqrtf(ss));
  const float inv = static_cast<float>(1.0 / (n > eps ? n : eps));
  for (int64_t d = lane; d < D; d += 32) yv[d] = from_float<S>(to_float(xv[d]) * inv);
}

template <class S>
__global__ void __launch_bounds__(kL2Rows * 32)
    l2n_backward_kernel(S* dx, const S* dy, const S* x, int64_t V, int64_t D, double eps) {
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int64_t v = static_cast<int64_t>(blockIdx.x) * kL2Rows + (threadIdx.x >> 5);
  if (v >= V) return;
  const S* xv = x + v * D;    // [D]
  const S* dyv = dy + v * D;  // [D]
  S* dxv = dx + v * D;        // [D]
  float ss = 0.0f, xd = 0.0f;
  for (int64_t d = lane; d < D; d += 32) {
    const float t = to_float(xv[d]), g = to_float(dyv[d]);
    ss = fmaf(t, t, ss);
    xd = fmaf(t, g, xd);
  }
  ss = warp_sum(ss);
  xd = warp_sum(xd);
  const double n = static_cast<double>(sqrtf(ss));
  float a, b;  // dx += dy·a - x·b
  if (n > eps) {
    a = static_cast<float>(1.0 / n);
    b = static_cast<float>(static_cast<double>(xd) / (n * n * n));
  } else {
    a = static_cast<float>(1.0 / eps);
    b = 0.0f;
  }
  for (int64_t d = lane; d < D; d += 32)
    dxv[d] = from_float<S>(to_float(dxv[d]) + (to_float(dyv[d]) * a - to_float(xv[d]) * b));
}

// ---------------------------------------------------------------- cross-entropy
template <class S, class L>
__global__ void __launch_bounds__(kCeThreads)
    ce_rows_kernel(double* row_loss, S* lse, const S* logits, const L* labels, int64_t K) {
  SIMCLR_SHARED(float, red, [kCeThreads / 32]);
  const int64_t n = blockIdx.x;
  const S* z = logits + n * K;  // [K]
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t k = threadIdx.x; k < K; k += kCeThreads) m = fmaxf(m, to_float(z[k]));
  m = block_max<kCeThreads>(m, red);
  float s = 0.0f;
  for (int64_t k = threadIdx.x; k < K; k += kCeThreads) s += expf(to_float(z[k]) - m);
  s = block_sum<kCeThreads>(s, static_cast<float*>(red));
  if (threadIdx.x == 0) {
    const double l = static_cast<double>(m) + log(static_cast<double>(s));
    lse[n] = from_float<S>(static_cast<float>(l));
    const int64_t label = static_cast<int64_t>(labels[n]);
    row_loss[n] = label >= 0 && label < K ? l - static_cast<double>(to_float(z[label]))
                                          : std::numeric_limits<double>::quiet_NaN();
  }
}

template <class S>
__global__ void __launch_bounds__(kThreads) ce_mean_kernel(S* loss, const double* row_loss, int64_t N) {
  SIMCLR_SHARED(double, red, [kThreads / 32]);
  double s = 0.0;
  for (int64_t n = threadIdx.x; n < N; n += kThreads) s += row_loss[n];
  s = block_sum<kThreads>(s, static_cast<double*>(red));
  if (threadIdx.x == 0) loss[0] = from_float<S>(static_cast<float>(s / static_cast<double>(N)));
}

// grid: x over the columns, y over the rows (both grid-strided).
template <class S, class L>
__global__ void __launch_bounds__(kThreads)
    ce_backward_kernel(S* dlogits, const S* dloss, const S* logits, const S* lse, const L* labels, int64_t N,
                       int64_t K) {
  const float g = to_float(dloss[0]) / static_cast<float>(N);
  for (int64_t n = blockIdx.y; n < N; n += gridDim.y) {
    const float l = to_float(lse[n]);
    const int64_t label = static_cast<int64_t>(labels[n]);
    const S* z = logits + n * K;  // [K]
    S* dz = dlogits + n * K;      // [K]
    for (int64_t k = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; k < K;
         k += static_cast<int64_t>(gridDim.x) * kThreads) {
      float t = g * expf(to_float(z[k]) - l);
      if (k == label) t -= g;
      dz[k] = from_float<S>(to_float(dz[k]) + t);
    }
  }
}

template <class L>
__global__ void __launch_bounds__(kThreads)
    ce_check_kernel(unsigned long long* first, const L* labels, int64_t N, int64_t K) {
  for (int64_t n = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; n < N;
       n += static_cast<int64_t>(gridDim.x) * kThreads) {
    const int64_t label = static_cast<int64_t>(labels[n]);
    if (label < 0 || label >= K) atomicMin(first, static_cast<unsigned long long>(n));
  }
}

unsigned grid_for(int64_t items, int64_t per_block) {
  return static_cast<unsigned>(std::clamp<int64_t>(ceil_div(items, per_block), 1, kMaxGrid));
}

// ---------------------------------------------------------------- launchers (typed on the device type S)
template <class S>
void l2_forward_impl(S* y, const S* x, int64_t V, int64_t D, double eps, void* stream) {
  if (V <= 0 || D <= 0) return;
  SIMCLR_CHECK(ceil_div(V, kL2Rows) <= 2147483647, "l2_normalize: ", V, " rows");
  launch(l2n_forward_kernel<S>, dim3(static_cast<unsigned>(ceil_div(V, kL2Rows))), dim3(kL2Rows * 32), 0,
         as_stream(stream), y, x, V, D, eps);
}

template <class S>
void l2_backward_impl(S* dx, const S* dy, const S* x, int64_t V, int64_t D, double eps, void* stream) {
  if (V <= 0 || D <= 0) return;
  SIMCLR_CHECK(ceil_div(V, kL2Rows) <= 2147483647, "l2_normalize: ", V, " rows");
  launch(l2n_backward_kernel<S>, dim3(static_cast<unsigned>(ceil_div(V, kL2Rows))), dim3(kL2Rows * 32), 0,
         as_stream(stream), dx, dy, x, V, D, eps);
}

template <class S, class L>
void ce_forward_impl(S* loss, S* lse, const S* logits, const L* labels, int64_t N, int64_t K, void* stream) {
  SIMCLR_CHECK(N >= 1 && N <= 2147483647 && K >= 1, "cross_entropy: logits [", N, ", ", K, "]");
  const cudaStream_t st = as_stream(stream);
  double* row_loss = nullptr;
  CUDA_CHECK(cudaMallocAsync(&row_loss, static_cast<size_t>(N) * sizeof(double), st));
  launch(ce_rows_kernel<S, L>, dim3(static_cast<unsigned>(N)), dim3(kCeThreads), 0, st, row_loss, lse, logits,
         labels, K);
  launch(ce_mean_kernel<S>, dim3(1), dim3(kThreads), 0, st, loss, static_cast<const double*>(row_loss), N);
  CUDA_CHECK(cudaFreeAsync(row_loss, st));
}

template <class S, class L>
void ce_backward_impl(S* dlogits, const S* dloss, const S* logits, const S* lse, const L* labels, int64_t N,
                      int64_t K, void* stream) {
  if (N <= 0 || K <= 0) return;
  const dim3 grid(grid_for(K, kThreads), static_cast<unsigned>(std::min<int64_t>(N, 65535)));
  launch_nobarrier(ce_backward_kernel<S, L>, grid, dim3(kThreads), 0, as_stream(stream), dlogits, dloss, logits, lse,
                   labels, N, K);
}

template <class L>
BadLabel check_labels_impl(const L* labels, int64_t N, int64_t K, void* stream) {
  if (N <= 0) return BadLabel{};
  const cudaStream_t st = as_stream(stream);
  unsigned long long* first = nullptr;
  CUDA_CHECK(cudaMallocAsync(&first, sizeof(unsigned long long), st));
  CUDA_CHECK(cudaMemsetAsync(first, 0xFF, sizeof(unsigned long long), st));  // no bad row yet
  launch_nobarrier(ce_check_kernel<L>, dim3(grid_for(N, kThreads)), dim3(kThreads), 0, st, first, labels, N, K);
  unsigned long long row = 0;
  CUDA_CHECK(cudaMemcpyAsync(&row, first, sizeof row, cudaMemcpyDeviceToHost, st));
  CUDA_CHECK(cudaFreeAsync(first, st));
  CUDA_CHECK(cudaStreamSynchronize(st));
  if (row == ~0ull) return BadLabel{};
  L label{};
  CUDA_CHECK(cudaMemcpyAsync(&label, labels + row, sizeof label, cudaMemcpyDeviceToHost, st));
  CUDA_CHECK(cudaStreamSynchronize(st));
  return BadLabel{static_cast<int64_t>(row), static_cast<int64_t>(label)};
}


}  // namespace

// ---------------------------------------------------------------- the declared launchers
#define SIMCLR_NORM_LOSS_DEFINE_L(T, L)                                                                           \
  void cross_entropy_forward(T* loss, T* lse, const T* logits, const L* labels, int64_t N, int64_t K,             \
                             void* stream) {                                                                      \
    ce_forward_impl(dev(loss), dev(lse), dev(logits), labels, N, K, stream);                                      \
  }                                                                                                               \
  void cross_entropy_backward(T* dlogits, const T* dloss, const T* logits, const T* lse, const L* labels,         \
                              int64_t N, int64_t K, void* stream) {                                               \
    ce_backward_impl(dev(dlogits), dev(dloss), dev(logits), dev(lse), labels, N, K, stream);                      \
  }
#define SIMCLR_NORM_LOSS_DEFINE(T)                                                                                \
  void l2_normalize_forward(T* y, const T* x, int64_t V, int64_t D, double eps, void* stream) {                   \
    l2_forward_impl(dev(y), dev(x), V, D, eps, stream);                                                           \
  }                                                                                                               \
  void l2_normalize_backward(T* dx, const T* dy, const T* x, int64_t V, int64_t D, double eps, void* stream) {    \
    l2_backward_impl(dev(dx), dev(dy), dev(x), V, D, eps, stream);                                                \
  }                                                                                                               \
  SIMCLR_NORM_LOSS_DEFINE_L(T, int32_t)                                                                           \
  SIMCLR_NORM_LOSS_DEFINE_L(T, int64_t)

SIMCLR_NORM_LOSS_DEFINE(float)
SIMCLR_NORM_LOSS_DEFINE(::simclr::bf16)
#undef SIMCLR_NORM_LOSS_DEFINE
#undef SIMCLR_NORM_LOSS_DEFINE_L

BadLabel cross_entropy_check_labels(const int32_t* labels, int64_t N, int64_t K, void* stream) {
  return check_labels_impl(labels, N, K, stream);
}
BadLabel cross_entropy_check_labels(const int64_t* labels, int64_t N, int64_t K, void* stream) {
  return check_labels_impl(labels, N, K, stream);
}

}  // namespace simclr::SIMCLR_KNS
