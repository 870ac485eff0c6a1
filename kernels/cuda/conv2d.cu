// kernels/cuda/conv2d.cu - our 2-D convolution (NHWC activations, OHWI
// weights, no bias; contract: kernels/conv2d.h, Conv2dKernels<T>) as three
// implicit GEMMs on the tiled kernel of kernels/cuda/gemm_tile.cuh. Also
// compiled by the kernel emulator (tests/emu/test_conv_gemm_emu.cpp), where
// these are the CUDA backend's conv2d rows (kernels/cuda/table.cu); on a GPU a
// second implementation beside cuDNN.
//
// P = N·Ho·Wo output pixels, K = kH·kW·C (one OHWI weight row, (kh, kw, c)).
//   forward   y[P,O]      =  col[P,K] · w[O,K]ᵀ
//             col(p, k) = x[n, ho·s-p+kh, wo·s-p+kw, c] (0 outside the image),
//             read in place by the loader (no im2col buffer).
//   dgrad     dx[N·H·W, C] (=|+=) Σ_{k' = (kh,kw,o)} dy'(q, k') · w[o,kh,kw,c]
//             dy'(q, k') = dy[n, (h+p-kh)/s, (w+p-kw)/s, o] when both
//             divisions are exact and land inside [0,Ho)x[0,Wo), else 0: a
//             gather, so each dx element is one sum written once (no col2im
//             scatter, no atomics). With stride s, about (s²-1)/s² of the
//             taps read 0 (wasted work, kept for simplicity).
//   wgrad     dw[O,K] += dyᵀ[O,P] · col[P,K], the sum over P split into fixed
//             chunks (gemm_tile.cuh: fp32 partials in a workspace allocated
//             with cudaMallocAsync on the stream, added in chunk order).
// Indices inside the loaders are int: every tensor (and P, N·H·W) must have
// fewer than 2^31 elements (checked).
#include "kernels/conv2d.h"

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemm_tile.cuh"

namespace simclr::SIMCLR_KNS {

namespace {

using bf16_t = __nv_bfloat16;

struct Geom {
  int H, W, C, O, kH, kW, Ho, Wo, stride, pad;
};

// col(p, k): rows = output pixels, depth = taps (k-contiguous: consecutive c).
template <class T>
struct Im2colPK {
  static constexpr bool k_contiguous = true;
  const T* x;
  Geom g;
  __device__ __forceinline__ float operator()(int p, int k) const {
    const int c = k % g.C, t = k / g.C, kw = t % g.kW, kh = t / g.kW;
    const int wo = p % g.Wo, t2 = p / g.Wo, ho = t2 % g.Ho, n = t2 / g.Ho;
    const int h = ho * g.stride - g.pad + kh, w = wo * g.stride - g.pad + kw;
    if (h < 0 || h >= g.H || w < 0 || w >= g.W) return 0.f;
    return tile::to_f(x[((static_cast<int64_t>(n) * g.H + h) * g.W + w) * g.C + c]);
  }
};
// The same matrix as the weight gradient's B operand: rows = taps, depth = pixels.
template <class T>
struct Im2colKP {
  static constexpr bool k_contiguous = false;
  Im2colPK<T> col;
  __device__ __forceinline__ float operator()(int tap, int p) const { return col(p, tap); }
};

// dy'(q, k'): rows = input pixels q = (n, h, w), depth k' = (kh, kw, o), o fastest.
template <class T>
struct DyGather {
  static constexpr bool k_contiguous = true;
  const T* dy;
  Geom g;
  __device__ __forceinline__ float operator()(int q, int k) const {
    const int o = k % g.O, t = k / g.O, kw = t % g.kW, kh = t / g.kW;
    const int w = q % g.W, t2 = q / g.W, h = t2 % g.H, n = t2 / g.H;
    const int hh = h + g.pad - kh, ww = w + g.pad - kw;
    if (hh < 0 || ww < 0) return 0.f;
    const int ho = hh / g.stride, wo = ww / g.stride;
    if (ho * g.stride != hh || wo * g.stride != ww || ho >= g.Ho || wo >= g.Wo) return 0.f;
    return tile::to_f(dy[((static_cast<int64_t>(n) * g.Ho + ho) * g.Wo + wo) * g.O + o]);
  }
};
// w as the data gradient's B operand: rows = c, depth k' = (kh, kw, o).
template <class T>
struct WeightCK {
  static constexpr bool k_contiguous = false;
  const T* w;
  Geom g;
  __device__ __forceinline__ float operator()(int c, int k) const {
    const int o = k % g.O, t = k / g.O, kw = t % g.kW, kh = t / g.kW;
    return tile::to_f(w[((static_cast<int64_t>(o) * g.kH + kh) * g.kW + kw) * g.C + c]);
  }
};

Geom check_shape(const char* what, const Conv2dShape& s) {
  SIMCLR_CHECK(s.N >= 0 && s.H >= 1 && s.W >= 1 && s.C >= 1 && s.O >= 1 && s.kH >= 1 && s.kW >= 1 &&
                   s.stride >= 1 && s.pad >= 0,
               what, ": bad shape (N ", s.N, ", H ", s.H, ", W ", s.W, ", C ", s.C, ", O ", s.O, ", kernel ", s.kH,
               "x", s.kW, ", stride ", s.stride, ", pad ", s.pad, ")");
  SIMCLR_CHECK(s.H + 2 * s.pad >= s.kH && s.W + 2 * s.pad >= s.kW, what, ": kernel ", s.kH, "x", s.kW,
               " larger than the padded input ", s.H + 2 * s.pad, "x", s.W + 2 * s.pad);
  const int64_t Ho = s.Ho(), Wo = s.Wo(), lim = tile::kMaxIndex;
  SIMCLR_CHECK(s.N * s.H * s.W * s.C <= lim && s.N * Ho * Wo * s.O <= lim && s.O * s.K() <= lim &&
                   s.kH * s.kW * s.O <= lim && s.N * s.H * s.W <= lim,
               what, ": tensors over 2^31 elements");
  return Geom{static_cast<int>(s.H),  static_cast<int>(s.W),  static_cast<int>(s.C),  static_cast<int>(s.O),
              static_cast<int>(s.kH), static_cast<int>(s.kW), static_cast<int>(Ho),   static_cast<int>(Wo),
              static_cast<int>(s.stride), static_cast<int>(s.pad)};
}

template <class T>
void forward_impl(T* y, const T* x, const T* w, const Conv2dShape& s, cudaStream_t stream) {
  const Geom g = check_shape("conv2d_forward_ours", s);
  if (s.N == 0) return;
  SIMCLR_CHECK(y != nullptr && x != nullptr && w != nullptr, "conv2d_forward_ours: null pointer");
  const int64_t P = s.N * s.Ho() * s.Wo(), K = s.K();
  tile::run_gemm(Im2colPK<T>{x, g}, tile::RowK<T>{w, K}, y, s.O, static_cast<const T*>(nullptr), false, P, s.O, K, 1,
                 stream);
}

template <class T>
void backward_impl(T* dx, bool dx_accumulate, T* dw, const T* dy, const T* x, const T* w, const Conv2dShape& s,
                   int ksplit, cudaStream_t stream) {
  const Geom g = check_shape("conv2d_backward_ours", s);
  SIMCLR_CHECK(ksplit >= 0, "conv2d_backward_ours: ksplit = ", ksplit);
  if (s.N == 0 || (dx == nullptr && dw == nullptr)) return;
  SIMCLR_CHECK(dy != nullptr, "conv2d_backward_ours: dy is null");
  if (dx != nullptr) {
    SIMCLR_CHECK(w != nullptr, "conv2d_backward_ours: w is null (needed for dx)");
    tile::run_gemm(DyGather<T>{dy, g}, WeightCK<T>{w, g}, dx, s.C, static_cast<const T*>(nullptr), dx_accumulate,
                   s.N * s.H * s.W, s.C, s.kH * s.kW * s.O, 1, stream);
  }
  if (dw != nullptr) {
    SIMCLR_CHECK(x != nullptr, "conv2d_backward_ours: x is null (needed for dw)");
    const int64_t P = s.N * s.Ho() * s.Wo(), K = s.K();
    tile::run_gemm(tile::KRow<T>{dy, s.O}, Im2colKP<T>{Im2colPK<T>{x, g}}, dw, K, static_cast<const T*>(nullptr),
                   true, s.O, K, P, tile::resolve_splits(ksplit, s.O, K, P), stream);
  }
}

}  // namespace

int conv2d_ours_resolve_ksplit(int ksplit, const Conv2dShape& s) {
  return tile::resolve_splits(ksplit, s.O, s.K(), s.N * s.Ho() * s.Wo());
}

void conv2d_forward_ours(float* y, const float* x, const float* w, const Conv2dShape& s, cudaStream_t stream) {
  forward_impl<float>(y, x, w, s, stream);
}
void conv2d_forward_ours(::simclr::bf16* y, const ::simclr::bf16* x, const ::simclr::bf16* w, const Conv2dShape& s,
                         cudaStream_t stream) {
  forward_impl<bf16_t>(reinterpret_cast<bf16_t*>(y), reinterpret_cast<const bf16_t*>(x),
                       reinterpret_cast<const bf16_t*>(w), s, stream);
}
void conv2d_backward_ours(float* dx, bool dx_accumulate, float* dw, const float* dy, const float* x, const float* w,
                          const Conv2dShape& s, int ksplit, cudaStream_t stream) {
  backward_impl<float>(dx, dx_accumulate, dw, dy, x, w, s, ksplit, stream);
}
void conv2d_backward_ours(::simclr::bf16* dx, bool dx_accumulate, ::simclr::bf16* dw, const ::simclr::bf16* dy,
                          const ::simclr::bf16* x, const ::simclr::bf16* w, const Conv2dShape& s, int ksplit,
                          cudaStream_t stream) {
  backward_impl<bf16_t>(reinterpret_cast<bf16_t*>(dx), dx_accumulate, reinterpret_cast<bf16_t*>(dw),
                        reinterpret_cast<const bf16_t*>(dy), reinterpret_cast<const bf16_t*>(x),
                        reinterpret_cast<const bf16_t*>(w), s, ksplit, stream);
}

}  // namespace simclr::SIMCLR_KNS
