// kernels/cuda/batchnorm.cu - the CUDA twins of kernels/cpu/batchnorm.cpp
// (contract: kernels/batchnorm.h), for T = float and bf16 (fp32 arithmetic,
// bf16 only at loads and stores; sums and the running statistics in double).
// Also compiled by the kernel emulator (tests/emu/test_bn_norm_emu.cpp).
//
// Layout x[M,C], channels last. The kernels:
//   bn_partial_kernel   the two reductions (stats: Σ(x-k), Σ(x-k)² with the
//                       shift k = the first row, as the CPU reference;
//                       backward_reduce: Σg, Σg·(x-mean)). Block = 32
//                       channels (a warp reads 32 consecutive channels of a
//                       row: coalesced over C) x 8 row lanes; grid = channel
//                       tiles x row chunks. Each thread sums its rows in
//                       float over groups of kGroup rows, each group added into
//                       a double; the 8 lanes are added in lane order in
//                       double and the block writes one double partial per
//                       (chunk, channel) to a scratch buffer.
//   bn_combine_kernel   per channel: the chunks' partials added in double in a
//                       fixed order (8 lanes over the chunks, then lane
//                       order), then mean = k + S1/M, M2 = S2 - S1²/M, or
//                       Σg·x̂ = Σg·(x-mean)·invstd.
//   bn_merge_stats_kernel: per channel, the ranks' (mean, M2, count) folded in
//                       rank order by Chan's formula (as the CPU reference).
//   No atomics anywhere, and the chunking depends on (M, C) only: results are
//   bitwise reproducible from run to run and from one device to another.
//   bn_finalize_kernel / bn_from_running_kernel / bn_backward_finalize_kernel:
//                       one thread per channel, in double.
//   bn_forward_kernel / bn_backward_dx_kernel: elementwise over M x C, 16-byte
//                       vector loads and stores (4 floats, 8 bf16) when C is a
//                       multiple of the vector and the big arrays are 16-byte
//                       aligned, scalar otherwise; barrier-free.
// The reductions' scratch (n_chunks x 2C doubles, at most ~2 MB or 1/16 of
// x's element count in bytes) is taken with cudaMallocAsync / cudaFreeAsync on
// the stream (the engine's pool keeps freed blocks: no device malloc per call
// after the first step).
#include "kernels/batchnorm.h"

#include <algorithm>
#include <limits>
#include <type_traits>

#include "kernels/cuda/common.cuh"


namespace simclr::SIMCLR_KNS {

namespace {

using bf16_t = __nv_bfloat16;

constexpr int kCh = 32;              // channels per block of the reductions (a warp's lanes)
constexpr int kLanes = 8;            // row lanes per block of the reductions
constexpr int kGroup = 16;           // rows a thread sums in float before adding into double
constexpr int64_t kChunkRows = 256;  // rows per block of the reductions (unless capped)
constexpr int64_t kTargetBlocks = 4096;
constexpr int kThreads = 256;  // elementwise and per-channel kernels
constexpr int64_t kMaxGrid = 1 << 16;

template <class S>
__device__ __forceinline__ S from_double(double x) {
  return from_float<S>(static_cast<float>(x));  // bf16: via float (a second rounding, below bf16's resolution)
}

// VEC consecutive elements, loaded and stored as one access of VEC·sizeof(S) bytes.
template <class S, int VEC>
struct alignas(sizeof(S) * VEC) Pack {
  S v[VEC];
};
template <class S, int VEC>
__device__ __forceinline__ Pack<S, VEC> load_pack(const S* p) {
  return *reinterpret_cast<const Pack<S, VEC>*>(p);
}
template <class S, int VEC>
__device__ __forceinline__ void store_pack(S* p, const Pack<S, VEC>& v) {
  *reinterpret_cast<Pack<S, VEC>*>(p) = v;
}

bool aligned16(const void* p) { return p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Row chunks of the reductions: n chunks of `rows` rows (the last may be
// shorter), a function of (M, C) only.
struct Chunks {
  int64_t n = 0, rows = 0;
};
Chunks row_chunks(int64_t M, int64_t C) {
  const int64_t ctiles = ceil_div(C, kCh);
  const int64_t cap = std::max<int64_t>(8, kTargetBlocks / ctiles);
  Chunks ch;
  ch.n = std::min(ceil_div(M, kChunkRows), cap);
  ch.rows = ch.n > 0 ? ceil_div(M, ch.n) : 0;
  ch.n = ch.rows > 0 ? ceil_div(M, ch.rows) : 0;  // no empty trailing chunk
  return ch;
}

unsigned grid_for(int64_t items) {
  return static_cast<unsigned>(std::clamp<int64_t>(ceil_div(items, kThreads), 1, kMaxGrid));
}

cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

enum Mode { kStats = 0, kBackward = 1 };

// part[chunk][2][C]: the block's (chunk, channel tile) sums. kStats: a = x - k
// (k = x[0, c]), sums a and a²; kBackward: g = dy (masked by y > 0 when y is
// given), a = x - mean, sums g and g·a.
template <class S, int MODE>
__global__ void __launch_bounds__(kCh* kLanes)
    bn_partial_kernel(double* part, const S* x, const S* dy, const S* y, const S* mean, int64_t M, int64_t C,
                      int64_t chunk_rows) {
  SIMCLR_SHARED(double, red, [2][kLanes][kCh]);
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kCh + tx;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * chunk_rows;
  const int64_t m1 = m0 + chunk_rows < M ? m0 + chunk_rows : M;
  double A = 0.0, B = 0.0;
  if (c < C) {
    const float k = MODE == kStats ? to_float(x[c]) : to_float(mean[c]);
    float a = 0.0f, b = 0.0f;
    int n = 0;
    for (int64_t m = m0 + ty; m < m1; m += kLanes) {
      const int64_t i = m * C + c;
      const float d = to_float(x[i]) - k;
      if constexpr (MODE == kStats) {
        a += d;
        b += d * d;
      } else {
        const float g = (y == nullptr || to_float(y[i]) > 0.0f) ? to_float(dy[i]) : 0.0f;
        a += g;
        b += g * d;
      }
      if (++n == kGroup) {
        A += a;
        B += b;
        a = b = 0.0f;
        n = 0;
      }
    }
    A += a;
    B += b;
  }
  red[0][ty][tx] = A;
  red[1][ty][tx] = B;
  __syncthreads();
  if (ty == 0 && c < C) {
    double sa = 0.0, sb = 0.0;
    for (int l = 0; l < kLanes; ++l) {
      sa += red[0][l][tx];
      sb += red[1][l][tx];
    }
    double* p = part + static_cast<int64_t>(blockIdx.y) * 2 * C;
    p[c] = sa;
    p[C + c] = sb;
  }
}

// outa[C], outb[C] from part[n_chunks][2][C] (see the file comment); kStats
// also writes count[0] = M.
template <class S, int MODE>
__global__ void __launch_bounds__(kCh* kLanes)
    bn_combine_kernel(double* outa, double* outb, double* count, const double* part, int64_t n_chunks, const S* x,
                      const S* invstd, int64_t M, int64_t C) {
  SIMCLR_SHARED(double, red, [2][kLanes][kCh]);
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kCh + tx;
  double A = 0.0, B = 0.0;
  if (c < C)
    for (int64_t j = ty; j < n_chunks; j += kLanes) {
      A += part[j * 2 * C + c];
      B += part[j * 2 * C + C + c];
    }
  red[0][ty][tx] = A;
  red[1][ty][tx] = B;
  __syncthreads();
  if (ty == 0 && c < C) {
    double s1 = 0.0, s2 = 0.0;
    for (int l = 0; l < kLanes; ++l) {
      s1 += red[0][l][tx];
      s2 += red[1][l][tx];
    }
    if constexpr (MODE == kStats) {  // mean = k + S1/M, M2 = S2 - S1²/M (zeros for an empty batch)
      const double kc = M > 0 ? static_cast<double>(to_float(x[c])) : 0.0, n = static_cast<double>(M);
      outa[c] = M > 0 ? kc + s1 / n : 0.0;
      const double m2 = M > 0 ? s2 - s1 * s1 / n : 0.0;
      outb[c] = m2 < 0.0 ? 0.0 : m2;
    } else {
      outa[c] = s1;
      outb[c] = s2 * static_cast<double>(to_float(invstd[c]));
    }
  }
  if (MODE == kStats && count != nullptr && blockIdx.x == 0 && tx == 0 && ty == 0) count[0] = static_cast<double>(M);
}

template <class S, int MODE>
void reduce_rows(double* outa, double* outb, double* count, const S* x, const S* dy, const S* y, const S* mean,
                 const S* invstd, int64_t M, int64_t C, cudaStream_t st) {
  SIMCLR_CHECK(M >= 0 && C >= 1, "batch_norm kernels: M = ", M, ", C = ", C);
  const Chunks ch = row_chunks(M, C);
  const unsigned ctiles = static_cast<unsigned>(ceil_div(C, kCh));
  double* part = nullptr;
  if (ch.n > 0) {
    CUDA_CHECK(cudaMallocAsync(&part, static_cast<size_t>(ch.n * 2 * C) * sizeof(double), st));
    launch(bn_partial_kernel<S, MODE>, dim3(ctiles, static_cast<unsigned>(ch.n)), dim3(kCh, kLanes), 0, st, part, x,
           dy, y, mean, M, C, ch.rows);
  }
  launch(bn_combine_kernel<S, MODE>, dim3(ctiles), dim3(kCh, kLanes), 0, st, outa, outb, count,
         static_cast<const double*>(part), ch.n, x, invstd, M, C);
  if (part != nullptr) CUDA_CHECK(cudaFreeAsync(part, st));
}

// ---------------------------------------------------------------- per channel
template <class S, class B>
__global__ void __launch_bounds__(kThreads)
    bn_finalize_kernel(S* mean, S* invstd, B* running_mean, B* running_var, const double* stats, int64_t C,
                       double eps, double momentum) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const double count = stats[2 * C];
  if (!(count > 1)) {  // the CPU throws; a device cannot: NaN statistics, running buffers untouched
    mean[c] = from_float<S>(std::numeric_limits<float>::quiet_NaN());
    invstd[c] = from_float<S>(std::numeric_limits<float>::quiet_NaN());
    return;
  }
  const double m = momentum;
  const double mu = stats[c];
  const double v = stats[C + c] / count;
  const double var = v < 0.0 ? 0.0 : v;  // biased, for normalising (NaN stays NaN, as std::max)
  mean[c] = from_double<S>(mu);
  invstd[c] = from_double<S>(1.0 / sqrt(var + eps));
  if (running_mean != nullptr)
    running_mean[c] = static_cast<B>((1 - m) * static_cast<double>(running_mean[c]) + m * mu);
  if (running_var != nullptr) {
    const double var_unbiased = var * count / (count - 1);
    running_var[c] = static_cast<B>((1 - m) * static_cast<double>(running_var[c]) + m * var_unbiased);
  }
}

__global__ void __launch_bounds__(kThreads)
    bn_merge_stats_kernel(double* stats, const double* parts, int64_t ranks, int64_t C) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c > C) return;
  const int64_t W = 2 * C + 1;
  double n = 0.0, mean = 0.0, m2 = 0.0;
  for (int64_t r = 0; r < ranks; ++r) {
    const double* p = parts + r * W;
    const double nb = p[2 * C];
    if (!(nb > 0.0)) continue;
    const double na = n, nn = na + nb;
    if (c < C) {
      const double delta = p[c] - mean;
      mean += delta * (nb / nn);
      m2 += p[C + c] + delta * delta * (na * nb / nn);
    }
    n = nn;
  }
  if (c < C) {
    stats[c] = mean;
    stats[C + c] = m2;
  } else {
    stats[2 * C] = n;  // thread C writes the count
  }
}

template <class S, class B>
__global__ void __launch_bounds__(kThreads)
    bn_from_running_kernel(S* mean, S* invstd, const B* running_mean, const B* running_var, int64_t C, double eps) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  mean[c] = from_double<S>(static_cast<double>(running_mean[c]));
  invstd[c] = from_double<S>(1.0 / sqrt(static_cast<double>(running_var[c]) + eps));
}

template <class S>
__global__ void __launch_bounds__(kThreads)
    bn_backward_finalize_kernel(S* dgamma, S* dbeta, S* mean_dy, S* mean_dy_xhat, const double* red,
                                const double* red_all, const double* stats, int64_t C) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  if (dgamma != nullptr) dgamma[c] = from_float<S>(to_float(dgamma[c]) + static_cast<float>(red[C + c]));
  if (dbeta != nullptr) dbeta[c] = from_float<S>(to_float(dbeta[c]) + static_cast<float>(red[c]));
  if (mean_dy == nullptr) return;
  if (red_all == nullptr) {  // eval: the statistics are constants
    mean_dy[c] = from_float<S>(0.0f);
    mean_dy_xhat[c] = from_float<S>(0.0f);
    return;
  }
  const double count = stats[2 * C];
  mean_dy[c] = from_double<S>(red_all[c] / count);
  mean_dy_xhat[c] = from_double<S>(red_all[C + c] / count);
}

// ---------------------------------------------------------------- elementwise
// y = (x - mean)·(invstd·γ) + β, then max(·, 0) when relu; VEC elements per
// thread (VEC divides C, so they share a row).
template <class S, int VEC>
__global__ void __launch_bounds__(kThreads)
    bn_forward_kernel(S* y, const S* x, const S* mean, const S* invstd, const S* gamma, const S* beta, int64_t M,
                      int64_t C, bool relu) {
  const int64_t nvec = M * C / VEC;
  for (int64_t v = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; v < nvec;
       v += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = v * VEC, c0 = i % C;
    const Pack<S, VEC> in = load_pack<S, VEC>(x + i);
    Pack<S, VEC> out;
SIMCLR_UNROLL
    for (int j = 0; j < VEC; ++j) {
      const int64_t c = c0 + j;
      const float a = to_float(invstd[c]) * (gamma != nullptr ? to_float(gamma[c]) : 1.0f);
      const float b = beta != nullptr ? to_float(beta[c]) : 0.0f;
      float t = (to_float(in.v[j]) - to_float(mean[c])) * a + b;
      if (relu && t < 0.0f) t = 0.0f;  // NaN stays NaN (as std::max(t, 0) in the reference)
      out.v[j] = from_float<S>(t);
    }
    store_pack<S, VEC>(y + i, out);
  }
}

// dx (+)= k·g + (x - mean)·p + q, k = γ·invstd, p = -k·invstd·mean_dy_xhat,
// q = -k·mean_dy, g = dy (masked by y > 0 when y is given).
template <class S, int VEC>
__global__ void __launch_bounds__(kThreads)
    bn_backward_dx_kernel(S* dx, bool accumulate, const S* dy, const S* x, const S* y, const S* mean,
                          const S* invstd, const S* gamma, const S* mean_dy, const S* mean_dy_xhat, int64_t M,
                          int64_t C) {
  const int64_t nvec = M * C / VEC;
  for (int64_t v = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; v < nvec;
       v += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = v * VEC, c0 = i % C;
    const Pack<S, VEC> xin = load_pack<S, VEC>(x + i), dyin = load_pack<S, VEC>(dy + i);
    Pack<S, VEC> yin{}, out{};
    if (y != nullptr) yin = load_pack<S, VEC>(y + i);
    if (accumulate) out = load_pack<S, VEC>(dx + i);
SIMCLR_UNROLL
    for (int j = 0; j < VEC; ++j) {
      const int64_t c = c0 + j;
      const float is = to_float(invstd[c]);
      const float k = is * (gamma != nullptr ? to_float(gamma[c]) : 1.0f);
      const float p = -k * is * to_float(mean_dy_xhat[c]);
      const float q = -k * to_float(mean_dy[c]);
      const float g = (y == nullptr || to_float(yin.v[j]) > 0.0f) ? to_float(dyin.v[j]) : 0.0f;
      const float t = k * g + (to_float(xin.v[j]) - to_float(mean[c])) * p + q;
      out.v[j] = from_float<S>(accumulate ? to_float(out.v[j]) + t : t);
    }
    store_pack<S, VEC>(dx + i, out);
  }
}

template <class S>
constexpr int kVec = static_cast<int>(16 / sizeof(S));

// ---------------------------------------------------------------- launchers (typed on the device type S)
template <class S>
void stats_impl(double* stats, const S* x, int64_t M, int64_t C, void* stream) {
  reduce_rows<S, kStats>(stats, stats + C, stats + 2 * C, x, static_cast<const S*>(nullptr),
                         static_cast<const S*>(nullptr), static_cast<const S*>(nullptr),
                         static_cast<const S*>(nullptr), M, C, as_stream(stream));
}

void merge_stats_impl(double* stats, const double* parts, int64_t ranks, int64_t C, void* stream) {
  if (C <= 0) return;
  launch_nobarrier(bn_merge_stats_kernel, dim3(grid_for(C + 1)), dim3(kThreads), 0, as_stream(stream), stats, parts,
                   ranks, C);
}

template <class S, class B>
void finalize_impl(S* mean, S* invstd, B* running_mean, B* running_var, const double* stats, int64_t C, double eps,
                   double momentum, void* stream) {
  if (C <= 0) return;
  launch_nobarrier(bn_finalize_kernel<S, B>, dim3(grid_for(C)), dim3(kThreads), 0, as_stream(stream), mean, invstd,
                   running_mean, running_var, stats, C, eps, momentum);
}

template <class S, class B>
void from_running_impl(S* mean, S* invstd, const B* running_mean, const B* running_var, int64_t C, double eps,
                       void* stream) {
  if (C <= 0) return;
  launch_nobarrier(bn_from_running_kernel<S, B>, dim3(grid_for(C)), dim3(kThreads), 0, as_stream(stream), mean,
                   invstd, running_mean, running_var, C, eps);
}

template <class S>
void forward_impl(S* y, const S* x, const S* mean, const S* invstd, const S* gamma, const S* beta, int64_t M,
                  int64_t C, bool relu, void* stream) {
  if (M <= 0 || C <= 0) return;
  constexpr int V = kVec<S>;
  if (C % V == 0 && aligned16(x) && aligned16(y))
    launch_nobarrier(bn_forward_kernel<S, V>, dim3(grid_for(M * C / V)), dim3(kThreads), 0, as_stream(stream), y, x,
                     mean, invstd, gamma, beta, M, C, relu);
  else
    launch_nobarrier(bn_forward_kernel<S, 1>, dim3(grid_for(M * C)), dim3(kThreads), 0, as_stream(stream), y, x,
                     mean, invstd, gamma, beta, M, C, relu);
}

template <class S>
void backward_reduce_impl(double* sum_dy, double* sum_dy_xhat, const S* dy, const S* x, const S* y, const S* mean,
                          const S* invstd, int64_t M, int64_t C, void* stream) {
  reduce_rows<S, kBackward>(sum_dy, sum_dy_xhat, nullptr, x, dy, y, mean, invstd, M, C, as_stream(stream));
}

template <class S>
void backward_finalize_impl(S* dgamma, S* dbeta, S* mean_dy, S* mean_dy_xhat, const double* red,
                            const double* red_all, const double* stats, int64_t C, void* stream) {
  if (C <= 0 || (dgamma == nullptr && dbeta == nullptr && mean_dy == nullptr)) return;
  launch_nobarrier(bn_backward_finalize_kernel<S>, dim3(grid_for(C)), dim3(kThreads), 0, as_stream(stream), dgamma,
                   dbeta, mean_dy, mean_dy_xhat, red, red_all, stats, C);
}

template <class S>
void backward_dx_impl(S* dx, bool accumulate, const S* dy, const S* x, const S* y, const S* mean, const S* invstd,
                      const S* gamma, const S* mean_dy, const S* mean_dy_xhat, int64_t M, int64_t C, void* stream) {
  if (M <= 0 || C <= 0) return;
  constexpr int V = kVec<S>;
  if (C % V == 0 && aligned16(dx) && aligned16(dy) && aligned16(x) && aligned16(y))
    launch_nobarrier(bn_backward_dx_kernel<S, V>, dim3(grid_for(M * C / V)), dim3(kThreads), 0, as_stream(stream),
                     dx, accumulate, dy, x, y, mean, invstd, gamma, mean_dy, mean_dy_xhat, M, C);
  else
    launch_nobarrier(bn_backward_dx_kernel<S, 1>, dim3(grid_for(M * C)), dim3(kThreads), 0, as_stream(stream), dx,
                     accumulate, dy, x, y, mean, invstd, gamma, mean_dy, mean_dy_xhat, M, C);
}


}  // namespace

// ---------------------------------------------------------------- the declared launchers
#define SIMCLR_BN_DEFINE(T)                                                                                          \
  void batchnorm_batch_stats(double* stats, const T* x, int64_t M, int64_t C, void* stream) {                       \
    stats_impl(stats, dev(x), M, C, stream);                                                                        \
  }                                                                                                                 \
  void batchnorm_finalize(T* mean, T* invstd, float* running_mean, float* running_var, const double* stats,          \
                          int64_t C, double eps, double momentum, void* stream) {                                   \
    finalize_impl(dev(mean), dev(invstd), running_mean, running_var, stats, C, eps, momentum, stream);              \
  }                                                                                                                 \
  void batchnorm_finalize(T* mean, T* invstd, double* running_mean, double* running_var, const double* stats,        \
                          int64_t C, double eps, double momentum, void* stream) {                                   \
    finalize_impl(dev(mean), dev(invstd), running_mean, running_var, stats, C, eps, momentum, stream);              \
  }                                                                                                                 \
  void batchnorm_from_running(T* mean, T* invstd, const float* running_mean, const float* running_var, int64_t C,   \
                              double eps, void* stream) {                                                           \
    from_running_impl(dev(mean), dev(invstd), running_mean, running_var, C, eps, stream);                           \
  }                                                                                                                 \
  void batchnorm_from_running(T* mean, T* invstd, const double* running_mean, const double* running_var,            \
                              int64_t C, double eps, void* stream) {                                                \
    from_running_impl(dev(mean), dev(invstd), running_mean, running_var, C, eps, stream);                           \
  }                                                                                                                 \
  void batchnorm_forward(T* y, const T* x, const T* mean, const T* invstd, const T* gamma, const T* beta, int64_t M, \
                         int64_t C, bool relu, void* stream) {                                                      \
    forward_impl(dev(y), dev(x), dev(mean), dev(invstd), dev(gamma), dev(beta), M, C, relu, stream);                \
  }                                                                                                                 \
  void batchnorm_backward_reduce(double* sum_dy, double* sum_dy_xhat, const T* dy, const T* x, const T* y,           \
                                 const T* mean, const T* invstd, int64_t M, int64_t C, void* stream) {              \
    backward_reduce_impl(sum_dy, sum_dy_xhat, dev(dy), dev(x), dev(y), dev(mean), dev(invstd), M, C, stream);       \
  }                                                                                                                 \
  void batchnorm_backward_finalize(T* dgamma, T* dbeta, T* mean_dy, T* mean_dy_xhat, const double* red,              \
                                   const double* red_all, const double* stats, int64_t C, void* stream) {           \
    backward_finalize_impl(dev(dgamma), dev(dbeta), dev(mean_dy), dev(mean_dy_xhat), red, red_all, stats, C,        \
                           stream);                                                                                 \
  }                                                                                                                 \
  void batchnorm_backward_dx(T* dx, bool accumulate, const T* dy, const T* x, const T* y, const T* mean,             \
                             const T* invstd, const T* gamma, const T* mean_dy, const T* mean_dy_xhat, int64_t M,   \
                             int64_t C, void* stream) {                                                             \
    backward_dx_impl(dev(dx), accumulate, dev(dy), dev(x), dev(y), dev(mean), dev(invstd), dev(gamma), dev(mean_dy), \
                     dev(mean_dy_xhat), M, C, stream);                                                              \
  }

SIMCLR_BN_DEFINE(float)
SIMCLR_BN_DEFINE(::simclr::bf16)
#undef SIMCLR_BN_DEFINE

void batchnorm_merge_stats(double* stats, const double* parts, int64_t ranks, int64_t C, void* stream) {
  merge_stats_impl(stats, parts, ranks, C, stream);
}

}  // namespace simclr::SIMCLR_KNS
