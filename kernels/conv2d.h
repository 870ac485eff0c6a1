// kernels/conv2d.h - 2-D convolution, NHWC activations, OHWI weights, no bias:
// the kernel set Conv2dKernels<T> (kernels/registry.h) and the CPU kernels.
// CPU reference in kernels/cpu/conv2d.cpp.
//
// Shape legend:
//   N batch, H/W input height/width, C input channels, O output channels,
//   kH/kW kernel size, s stride, p zero padding (same on all four sides),
//   Ho = (H + 2p - kH)/s + 1, Wo = (W + 2p - kW)/s + 1,
//   K = kH*kW*C (one im2col row: a receptive field in (kh, kw, c) order,
//   which is exactly one OHWI weight row, so w is the matrix [O, K]).
//
//   y[n,ho,wo,o] = Σ_{kh,kw,c} x[n, ho*s-p+kh, wo*s-p+kw, c] · w[o,kh,kw,c]
//   (x outside the image reads as 0).
//
// Method: im2col + GEMM. For one chunk of images, col[P,K] (P = images·Ho·Wo
// output pixels) holds the receptive fields, then y[P,O] = col · wᵀ,
// dw[O,K] += dyᵀ · col, dcol[P,K] = dy · w and col2im scatters dcol into dx.
// A 1x1 kernel with stride 1 and no padding needs no im2col: x is already
// col and dx is dcol, so the GEMMs read x and accumulate into dx directly.
// Threads: images are split into one contiguous range per OpenMP thread; each
// thread works on chunks of its images with a private col buffer (about
// 1 MiB) and single-threaded GEMMs (OpenBLAS runs single-threaded inside a
// parallel region); dw is reduced from per-thread partial sums in thread
// order, so results do not depend on scheduling. With fewer images than
// threads (batch 1) the images run one after another with multi-threaded
// GEMMs instead. The kernels allocate their scratch themselves.
//
// Forward writes y (=). Backward ACCUMULATES (+=) into dx and dw; either may
// be null (not needed).
//
// The fast path (kernels/cpu/conv2d_dnnl.cpp): oneDNN's convolution for f32,
// used by the CPU backend's rows (conv2d_forward_cpu / conv2d_backward_cpu)
// whenever conv2d_fast_available() and oneDNN serves the shape; the reference
// above stays the oracle it is tested against (and serves f64). Setting the
// environment variable SIMCLR_CPU_CONV=reference makes the op use the
// reference everywhere (debugging, benchmarks).
#pragma once
#include <cstdint>
#include <string>

#include "engine/dtype.h"
#include "engine/op_table.h"

struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;

namespace simclr {

struct Conv2dShape {
  int64_t N, H, W, C;  // input
  int64_t O, kH, kW;   // weight [O,kH,kW,C]
  int64_t stride, pad;
  int64_t Ho() const { return (H + 2 * pad - kH) / stride + 1; }
  int64_t Wo() const { return (W + 2 * pad - kW) / stride + 1; }
  int64_t K() const { return kH * kW * C; }
  bool is_pointwise() const { return kH == 1 && kW == 1 && stride == 1 && pad == 0; }
};

template <class T>
struct Conv2dKernels {
  static constexpr Op op = Op::conv2d;
  // y[N,Ho,Wo,O] = conv(x, w)   (=)
  void (*forward)(T* y, const T* x, const T* w, const Conv2dShape& s);
  // dw += ∂L/∂w; dx += ∂L/∂x when dx_accumulate, else dx = ∂L/∂x (dx and/or dw may be null)
  void (*backward)(T* dx, bool dx_accumulate, T* dw, const T* dy, const T* x, const T* w, const Conv2dShape& s);
};

}  // namespace simclr

namespace simclr::cpu {

using ::simclr::Conv2dShape;

// y[N,Ho,Wo,O] = conv(x[N,H,W,C], w[O,kH,kW,C])
template <class T>
void conv2d_forward(T* y, const T* x, const T* w, const Conv2dShape& s);

// dx[N,H,W,C] += ∂L/∂x, dw[O,kH,kW,C] += ∂L/∂w  given dy[N,Ho,Wo,O]
// (dx and/or dw may be null; x is read only when dw is wanted, w only for dx)
template <class T>
void conv2d_backward(T* dx, T* dw, const T* dy, const T* x, const T* w, const Conv2dShape& s);

// ---- the CPU backend's kernel set: the fast path for f32 when
// conv2d_fast_available() and conv2d_fast_supports(s), else the reference
// (which accumulates, so a dx to be written is zeroed first). bf16
// (train.precision bf16): oneDNN's bf16 kernels when conv2d_fast_available()
// and conv2d_fast_supports(s, bf16); otherwise the operands widened to f32
// (exact), the f32 path, each result rounded once into bf16 (dx, dw: bf16(old +
// f32 gradient)); either way fp32 accumulation and bf16 results.
template <class T>
void conv2d_forward_cpu(T* y, const T* x, const T* w, const Conv2dShape& s);
template <class T>
void conv2d_backward_cpu(T* dx, bool dx_accumulate, T* dw, const T* dy, const T* x, const T* w, const Conv2dShape& s);

// ---- fast path (f32)
// True when this build has oneDNN and SIMCLR_CPU_CONV is not "reference".
bool conv2d_fast_available();
// True when oneDNN has an implementation for this shape in this dtype (f32, or
// bf16: only an optimised one, AVX512-BF16/AMX; built once and cached; the op
// runs the reference otherwise, for bf16 the f32 path on widened operands).
bool conv2d_fast_supports(const Conv2dShape& s, DType dtype = DType::f32);
// y[N,Ho,Wo,O] = conv(x[N,H,W,C], w[O,kH,kW,C])   (=)
void conv2d_forward_fast(float* y, const float* x, const float* w, const Conv2dShape& s);
// bf16: bf16 operands, fp32 accumulation, y rounded once; dw += the f32 weight gradient (one rounding)
void conv2d_forward_fast(bf16* y, const bf16* x, const bf16* w, const Conv2dShape& s);
// dw[O,kH,kW,C] += ∂L/∂w; dx[N,H,W,C] += ∂L/∂x when dx_accumulate, else dx = ∂L/∂x
// (dx and/or dw may be null).
void conv2d_backward_fast(float* dx, bool dx_accumulate, float* dw, const float* dy, const float* x, const float* w,
                          const Conv2dShape& s);
void conv2d_backward_fast(bf16* dx, bool dx_accumulate, bf16* dw, const bf16* dy, const bf16* x, const bf16* w,
                          const Conv2dShape& s);
// True when oneDNN has optimised bf16 convolution kernels on this CPU
// (AVX512-BF16 or AMX; probed on a small 3x3 shape) and SIMCLR_CPU_CONV is not
// "reference": train.precision bf16 is then faster than fp32 on the CPU.
bool conv2d_fast_bf16_here();
// Which oneDNN implementations serve this shape (benchmarks, logs).
std::string conv2d_fast_info(const Conv2dShape& s, DType dtype = DType::f32);

}  // namespace simclr::cpu

// ---- our CUDA kernels (kernels/cuda/conv2d.cu; also run under the kernel
// emulator): implicit GEMM with 64x64 output tiles, a K loop over 16, fp32
// accumulation and one rounding at the store (bf16: bf16 operands, fp32 sums).
//   forward         y[P,O] = col(x)[P,K] · w[O,K]ᵀ                (P = N·Ho·Wo)
//   backward data   dx[N·H·W, C] = Σ_{kh,kw,o} dy[n, (h+p-kh)/s, (w+p-kw)/s, o] · w[o,kh,kw,c]
//                   (taps that do not land on an output pixel read 0; each dx
//                   element is written once: no scatter, no atomics)
//   backward filter dw[O,K] += dyᵀ[O,P] · col(x)[P,K]; the sum over P is cut
//                   into `ksplit` fixed ranges whose fp32 partials go to a
//                   workspace (cudaMallocAsync on the stream) and are added in
//                   split order by a second kernel: deterministic, and the same
//                   result for a given (shape, ksplit). ksplit = 0: automatic
//                   (conv2d_ours_resolve_ksplit, a function of the shape only).
// Device pointers (host memory under the emulator); the contract of
// Conv2dKernels<T> (dw +=; dx += when dx_accumulate else =; either may be null).
#define SIMCLR_CONV2D_OURS_LAUNCHERS                                                                              \
  int conv2d_ours_resolve_ksplit(int ksplit, const ::simclr::Conv2dShape& s);                                    \
  void conv2d_forward_ours(float* y, const float* x, const float* w, const ::simclr::Conv2dShape& s,             \
                           cudaStream_t stream);                                                                 \
  void conv2d_forward_ours(::simclr::bf16* y, const ::simclr::bf16* x, const ::simclr::bf16* w,                  \
                           const ::simclr::Conv2dShape& s, cudaStream_t stream);                                 \
  void conv2d_backward_ours(float* dx, bool dx_accumulate, float* dw, const float* dy, const float* x,           \
                            const float* w, const ::simclr::Conv2dShape& s, int ksplit, cudaStream_t stream);    \
  void conv2d_backward_ours(::simclr::bf16* dx, bool dx_accumulate, ::simclr::bf16* dw,                          \
                            const ::simclr::bf16* dy, const ::simclr::bf16* x, const ::simclr::bf16* w,          \
                            const ::simclr::Conv2dShape& s, int ksplit, cudaStream_t stream);

namespace simclr::gpu { SIMCLR_CONV2D_OURS_LAUNCHERS }
namespace simclr::emu { SIMCLR_CONV2D_OURS_LAUNCHERS }
// ---- CUDA: the cuDNN path (kernels/cuda/conv2d_cudnn.cu; the real build only,
// not the emulator). The Conv2dKernels contract above plus the stream the
// work is issued on (the engine passes cuda_current_stream of the current
// device); all pointers are device memory of the current device, x/y/dx/dy
// NHWC and w/dw OHWI (cuDNN's KRSC), contiguous.
//   forward: y = conv(x, w)                                   (=)
//   backward: dw += ∂L/∂w; dx += ∂L/∂x when dx_accumulate, else dx = ∂L/∂x
//             (dx and/or dw may be null; x is read only for dw, w only for dx)
// T = float or bf16, accumulation in fp32; float uses TF32 only under
// CudaMath::tf32, and deterministic engines only under cuda_deterministic()
// (engine/device.h). cuDNN's convolution nodes cannot accumulate (their beta
// is fixed at 0), so a += result is computed into a stream-ordered temporary
// and added by a small kernel (for bf16: rounded to bf16, then added and
// rounded again). Plans are built once per (device, direction, dtype, math,
// determinism, shape, pointer alignment) and kept in an LRU cache of 256
// plans; workspaces come from the stream-ordered pool. Errors name the cuDNN
// call, its status and the shape. In a build without the cuDNN frontend
// (setup.sh installs it) conv2d_cudnn_available() is false and every call
// throws "built without the cuDNN frontend".
#if defined(SIMCLR_WITH_CUDA) && !defined(SIMCLR_EMU)
struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;

namespace simclr::gpu {

struct CudnnPlanCacheStats {
  int64_t hits = 0, misses = 0, entries = 0, capacity = 0;
};

#define SIMCLR_CONV2D_CUDNN_LAUNCHERS                                                                         \
  bool conv2d_cudnn_available();                                                                              \
  void conv2d_forward_cudnn(float* y, const float* x, const float* w, const ::simclr::Conv2dShape& s,         \
                            cudaStream_t stream);                                                             \
  void conv2d_forward_cudnn(::simclr::bf16* y, const ::simclr::bf16* x, const ::simclr::bf16* w,              \
                            const ::simclr::Conv2dShape& s, cudaStream_t stream);                             \
  void conv2d_backward_cudnn(float* dx, bool dx_accumulate, float* dw, const float* dy, const float* x,        \
                             const float* w, const ::simclr::Conv2dShape& s, cudaStream_t stream);            \
  void conv2d_backward_cudnn(::simclr::bf16* dx, bool dx_accumulate, ::simclr::bf16* dw,                       \
                             const ::simclr::bf16* dy, const ::simclr::bf16* x, const ::simclr::bf16* w,       \
                             const ::simclr::Conv2dShape& s, cudaStream_t stream);                            \
  /* The plan cache (all devices): hits and misses since the start or the last clear. */                     \
  CudnnPlanCacheStats conv2d_cudnn_cache_stats();                                                             \
  void conv2d_cudnn_cache_clear();
SIMCLR_CONV2D_CUDNN_LAUNCHERS

}  // namespace simclr::gpu
#endif
