// kernels/pool.h - max pooling and global average pooling, NHWC: the kernel
// sets (kernels/registry.h) and the CPU reference (kernels/cpu/pool.cpp).
//
// Shape legend:
//   N batch, H/W input height/width, C channels, k window side, s stride,
//   p padding, Ho = (H + 2p - k)/s + 1, Wo = (W + 2p - k)/s + 1.
//
// Max pool: y[n,ho,wo,c] = max over the window rows ho*s-p .. +k-1 and columns
// wo*s-p .. +k-1 that lie inside the image (padding never wins; with p <= k/2
// every window holds at least one pixel). Ties go to the first element in
// window order (row-major over the window); a NaN wins (and propagates). The
// forward stores the winner's position ih*W + iw per output (arg), which is
// all the backward needs.
//
// Forward writes its outputs (=). Backward ACCUMULATES (+=) into dx.
#pragma once
#include <cstdint>

#include "engine/op_table.h"

namespace simclr {

struct Pool2dShape {
  int64_t N, H, W, C;
  int64_t k, stride, pad;
  int64_t Ho() const { return (H + 2 * pad - k) / stride + 1; }
  int64_t Wo() const { return (W + 2 * pad - k) / stride + 1; }
};

template <class T>
struct MaxPool2dKernels {
  static constexpr Op op = Op::max_pool2d;
  void (*forward)(T* y, int32_t* arg, const T* x, const Pool2dShape& s);
  void (*backward)(T* dx, const T* dy, const int32_t* arg, const Pool2dShape& s);
};

template <class T>
struct GlobalAvgPoolKernels {
  static constexpr Op op = Op::global_avg_pool;
  void (*forward)(T* y, const T* x, int64_t N, int64_t HW, int64_t C);
  void (*backward)(T* dx, const T* dy, int64_t N, int64_t HW, int64_t C);
};

}  // namespace simclr

namespace simclr::cpu {

using ::simclr::Pool2dShape;

// y[N,Ho,Wo,C], arg[N,Ho,Wo,C] (position in the H*W plane) = maxpool(x[N,H,W,C])
template <class T>
void max_pool2d_forward(T* y, int32_t* arg, const T* x, const Pool2dShape& s);
// dx[N,H,W,C] += dy[N,Ho,Wo,C] routed to arg[N,Ho,Wo,C]
template <class T>
void max_pool2d_backward(T* dx, const T* dy, const int32_t* arg, const Pool2dShape& s);

// y[N,C] = mean over h,w of x[N,H,W,C]   (HW = H*W)
template <class T>
void global_avg_pool_forward(T* y, const T* x, int64_t N, int64_t HW, int64_t C);
// dx[N,H,W,C] += dy[N,C] / HW
template <class T>
void global_avg_pool_backward(T* dx, const T* dy, int64_t N, int64_t HW, int64_t C);

}  // namespace simclr::cpu

// ---- CUDA twins (kernels/cuda/pool.cu): the launchers, declared identically
// in simclr::gpu (nvcc) and simclr::emu (the kernel emulator). Same arguments
// and semantics as the CPU reference above (argmax convention, tie-breaking,
// NaN, padding), plus the stream. T = float or bf16 (sums in fp32, one
// rounding to bf16 at each store). Max pool backward is a gather (each dx
// element adds, in output order, the dy of the windows whose arg points at
// it): no atomics, deterministic. Global average pool sums over HW in fp32.
struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;

#define SIMCLR_POOL_LAUNCHERS_T(T)                                                                          \
  void max_pool2d_forward(T* y, int32_t* arg, const T* x, const ::simclr::Pool2dShape& s,                  \
                          cudaStream_t stream);                                                            \
  void max_pool2d_backward(T* dx, const T* dy, const int32_t* arg, const ::simclr::Pool2dShape& s,         \
                           cudaStream_t stream);                                                           \
  void global_avg_pool_forward(T* y, const T* x, int64_t N, int64_t HW, int64_t C, cudaStream_t stream);   \
  void global_avg_pool_backward(T* dx, const T* dy, int64_t N, int64_t HW, int64_t C, cudaStream_t stream);
#define SIMCLR_POOL_LAUNCHERS SIMCLR_POOL_LAUNCHERS_T(float) SIMCLR_POOL_LAUNCHERS_T(::simclr::bf16)

namespace simclr::gpu {
SIMCLR_POOL_LAUNCHERS
}  // namespace simclr::gpu
namespace simclr::emu {
SIMCLR_POOL_LAUNCHERS
}  // namespace simclr::emu
