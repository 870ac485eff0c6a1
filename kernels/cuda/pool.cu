// kernels/cuda/pool.cu - CUDA twins of max pooling and global average pooling,
// NHWC (contracts and CPU reference: kernels/pool.h, kernels/cpu/pool.cpp;
// rows in kernels/cuda/table.cu). Also compiled by the kernel emulator
// (tests/emu/test_elementwise_pool_emu.cpp). All kernels are barrier-free and
// use one thread per output element, channels fastest (coalesced).
//
//   max_pool2d_forward   y, arg per (n, ho, wo, c): the window in row-major order,
//                        out-of-image positions skipped, the first in-image
//                        element taken, then one replaced only by a strictly
//                        greater value or by a NaN over a non-NaN (the CPU's
//                        rule: ties keep the earlier element, a NaN wins and
//                        stays); arg = ih*W + iw of the winner.
//   max_pool2d_backward  a gather, per dx element (n, ih, iw, c): the outputs
//                        whose windows contain (ih, iw) are visited in output
//                        order (ho, then wo ascending) and dy is added where arg
//                        points here, onto dx's old value in fp32 - the CPU's
//                        additions in the CPU's order. No atomics, no races.
//   global_avg_pool_forward   per (n, c): Σ over HW in fp32, / HW.
//   global_avg_pool_backward  dx[n,i,c] += dy[n,c] · (1/HW): grid-stride, 16-byte
//                        vectors when the pointers are aligned and C is a multiple
//                        of the vector width.
#include "kernels/pool.h"

#include <algorithm>
#include <type_traits>

#include "kernels/cuda/common.cuh"

// The host compiler of the emulated build does not know the pragma.

namespace simclr::SIMCLR_KNS {

namespace {

using bf16_t = __nv_bfloat16;

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 8192;

__device__ __forceinline__ bool is_nan(float x) { return x != x; }

template <class S>
constexpr int kVec = 16 / static_cast<int>(sizeof(S));

unsigned grid_for(int64_t work) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(ceil_div(work, kThreads), kMaxBlocks)));
}

template <class S>
__global__ void __launch_bounds__(kThreads)
    max_pool_fwd_kernel(S* y, int32_t* arg, const S* x, int64_t N, int64_t H, int64_t W, int64_t C, int64_t k,
                        int64_t stride, int64_t pad, int64_t Ho, int64_t Wo) {
  const int64_t total = N * Ho * Wo * C;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < total; o += step) {
    const int64_t c = o % C;
    int64_t r = o / C;
    const int64_t wo = r % Wo;
    r /= Wo;
    const int64_t ho = r % Ho;
    const int64_t n = r / Ho;
    const S* xn = x + n * H * W * C + c;
    bool first = true;
    S best = S();
    float bestf = 0.0f;
    int32_t where = 0;  // stays 0 only for a window without pixels (the op requires pad <= k/2: never)
    for (int64_t kh = 0; kh < k; kh++) {
      const int64_t ih = ho * stride - pad + kh;
      if (ih < 0 || ih >= H) continue;
      for (int64_t kw = 0; kw < k; kw++) {
        const int64_t iw = wo * stride - pad + kw;
        if (iw < 0 || iw >= W) continue;
        const int64_t pos = ih * W + iw;
        const S v = xn[pos * C];
        const float vf = to_float(v);
        if (first || vf > bestf || (is_nan(vf) && !is_nan(bestf))) {
          best = v;
          bestf = vf;
          where = static_cast<int32_t>(pos);
          first = false;
        }
      }
    }
    y[o] = best;  // the winner itself: no rounding
    arg[o] = where;
  }
}

// Output rows (or columns) whose window covers input row i: [lo, hi], clipped to [0, Ho).
__device__ __forceinline__ void covering(int64_t i, int64_t k, int64_t stride, int64_t pad, int64_t Ho, int64_t& lo,
                                         int64_t& hi) {
  // ho*stride - pad <= i <= ho*stride - pad + k - 1
  const int64_t a = i + pad - k + 1;  // ho >= ceil(a / stride)
  lo = a <= 0 ? 0 : (a + stride - 1) / stride;
  hi = (i + pad) / stride;  // i + pad >= 0
  if (hi > Ho - 1) hi = Ho - 1;
}

template <class S>
__global__ void __launch_bounds__(kThreads)
    max_pool_bwd_kernel(S* dx, const S* dy, const int32_t* arg, int64_t N, int64_t H, int64_t W, int64_t C,
                        int64_t k, int64_t stride, int64_t pad, int64_t Ho, int64_t Wo) {
  const int64_t total = N * H * W * C;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += step) {
    const int64_t c = e % C;
    int64_t r = e / C;
    const int64_t iw = r % W;
    r /= W;
    const int64_t ih = r % H;
    const int64_t n = r / H;
    const int32_t pos = static_cast<int32_t>(ih * W + iw);
    int64_t h0, h1, w0, w1;
    covering(ih, k, stride, pad, Ho, h0, h1);
    covering(iw, k, stride, pad, Wo, w0, w1);
    const int64_t base = n * Ho * Wo * C + c;
    bool hit = false;
    float acc = 0.0f;
    for (int64_t ho = h0; ho <= h1; ho++) {
      for (int64_t wo = w0; wo <= w1; wo++) {
        const int64_t o = base + (ho * Wo + wo) * C;
        if (arg[o] == pos) {
          if (!hit) acc = to_float(dx[e]);
          acc += to_float(dy[o]);
          hit = true;
        }
      }
    }
    if (hit) dx[e] = from_float<S>(acc);  // untouched elements keep their bits (as the CPU leaves them)
  }
}

template <class S>
__global__ void __launch_bounds__(kThreads)
    gap_fwd_kernel(S* y, const S* x, int64_t N, int64_t HW, int64_t C) {
  const int64_t total = N * C;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < total; o += step) {
    const int64_t c = o % C, n = o / C;
    const S* p = x + n * HW * C + c;
    float s = 0.0f;
    for (int64_t i = 0; i < HW; i++) s += to_float(p[i * C]);
    y[o] = from_float<S>(s / static_cast<float>(HW));
  }
}

// dx[e] += dy[n, c] · inv for elements [e, e + V) (V consecutive channels of one pixel).
template <int V, class S>
__device__ __forceinline__ void gap_bwd_apply(S* dx, const S* dy, int64_t e, int64_t HWC, int64_t C, float inv) {
  const int64_t n = e / HWC, c = e % C;
  if constexpr (V == 1) {
    dx[e] = from_float<S>(to_float(dx[e]) + to_float(dy[n * C + c]) * inv);
  } else {
    const float4 rx = *reinterpret_cast<const float4*>(dx + e);
    const float4 rg = *reinterpret_cast<const float4*>(dy + n * C + c);
    S a[V], g[V];
    memcpy(static_cast<void*>(a), &rx, 16);
    memcpy(static_cast<void*>(g), &rg, 16);
SIMCLR_UNROLL
    for (int q = 0; q < V; q++) a[q] = from_float<S>(to_float(a[q]) + to_float(g[q]) * inv);
    float4 out;
    memcpy(&out, static_cast<const void*>(a), 16);
    *reinterpret_cast<float4*>(dx + e) = out;
  }
}

template <class S>
__global__ void __launch_bounds__(kThreads)
    gap_bwd_kernel(S* dx, const S* dy, int64_t N, int64_t HW, int64_t C, float inv, int vec) {
  constexpr int V = kVec<S>;
  const int64_t total = N * HW * C, HWC = HW * C;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (vec) {  // C % V == 0: every vector lies in one pixel; no tail
    for (int64_t v = t; v < total / V; v += step) gap_bwd_apply<V>(dx, dy, v * V, HWC, C, inv);
  } else {
    for (int64_t e = t; e < total; e += step) gap_bwd_apply<1>(dx, dy, e, HWC, C, inv);
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }


void check_shape(const char* what, const Pool2dShape& s) {
  SIMCLR_CHECK(s.N >= 0 && s.H >= 1 && s.W >= 1 && s.C >= 0 && s.k >= 1 && s.stride >= 1 && s.pad >= 0 &&
                   2 * s.pad <= s.k && s.H + 2 * s.pad >= s.k && s.W + 2 * s.pad >= s.k && s.H * s.W <= INT32_MAX,
               what, ": bad shape N ", s.N, " H ", s.H, " W ", s.W, " C ", s.C, " k ", s.k, " stride ", s.stride,
               " pad ", s.pad);
}

template <class S>
void max_pool_fwd(S* y, int32_t* arg, const S* x, const Pool2dShape& s, cudaStream_t st) {
  check_shape("max_pool2d_forward", s);
  const int64_t total = s.N * s.Ho() * s.Wo() * s.C;
  if (total == 0) return;
  launch_nobarrier(max_pool_fwd_kernel<S>, dim3(grid_for(total)), dim3(kThreads), 0, st, y, arg, x, s.N, s.H, s.W,
                   s.C, s.k, s.stride, s.pad, s.Ho(), s.Wo());
}

template <class S>
void max_pool_bwd(S* dx, const S* dy, const int32_t* arg, const Pool2dShape& s, cudaStream_t st) {
  check_shape("max_pool2d_backward", s);
  const int64_t total = s.N * s.H * s.W * s.C;
  if (total == 0 || s.Ho() * s.Wo() == 0) return;
  launch_nobarrier(max_pool_bwd_kernel<S>, dim3(grid_for(total)), dim3(kThreads), 0, st, dx, dy, arg, s.N, s.H,
                   s.W, s.C, s.k, s.stride, s.pad, s.Ho(), s.Wo());
}

template <class S>
void gap_fwd(S* y, const S* x, int64_t N, int64_t HW, int64_t C, cudaStream_t st) {
  SIMCLR_CHECK(N >= 0 && HW >= 1 && C >= 0, "global_avg_pool_forward: N ", N, " HW ", HW, " C ", C);
  if (N * C == 0) return;
  launch_nobarrier(gap_fwd_kernel<S>, dim3(grid_for(N * C)), dim3(kThreads), 0, st, y, x, N, HW, C);
}

template <class S>
void gap_bwd(S* dx, const S* dy, int64_t N, int64_t HW, int64_t C, cudaStream_t st) {
  SIMCLR_CHECK(N >= 0 && HW >= 1 && C >= 0, "global_avg_pool_backward: N ", N, " HW ", HW, " C ", C);
  const int64_t total = N * HW * C;
  if (total == 0) return;
  const bool vec = aligned16(dx) && aligned16(dy) && C % kVec<S> == 0;
  const float inv = 1.0f / static_cast<float>(HW);  // the CPU's T(1) / T(HW)
  launch_nobarrier(gap_bwd_kernel<S>, dim3(grid_for(vec ? total / kVec<S> : total)), dim3(kThreads), 0, st, dx,
                   dy, N, HW, C, inv, vec ? 1 : 0);
}

}  // namespace

#define SIMCLR_POOL_DEFINE(T)                                                                                     \
  void max_pool2d_forward(T* y, int32_t* arg, const T* x, const Pool2dShape& s, cudaStream_t stream) {           \
    max_pool_fwd(dev(y), arg, dev(x), s, stream);                                                                 \
  }                                                                                                               \
  void max_pool2d_backward(T* dx, const T* dy, const int32_t* arg, const Pool2dShape& s, cudaStream_t stream) {   \
    max_pool_bwd(dev(dx), dev(dy), arg, s, stream);                                                               \
  }                                                                                                               \
  void global_avg_pool_forward(T* y, const T* x, int64_t N, int64_t HW, int64_t C, cudaStream_t stream) {        \
    gap_fwd(dev(y), dev(x), N, HW, C, stream);                                                                    \
  }                                                                                                               \
  void global_avg_pool_backward(T* dx, const T* dy, int64_t N, int64_t HW, int64_t C, cudaStream_t stream) {     \
    gap_bwd(dev(dx), dev(dy), N, HW, C, stream);                                                                  \
  }

SIMCLR_POOL_DEFINE(float)
SIMCLR_POOL_DEFINE(::simclr::bf16)
#undef SIMCLR_POOL_DEFINE

}  // namespace simclr::SIMCLR_KNS
