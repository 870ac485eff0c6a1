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
