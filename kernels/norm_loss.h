// kernels/norm_loss.h - row-wise L2 normalisation and softmax cross-entropy:
// the kernel sets (kernels/registry.h) and the CPU reference
// (kernels/cpu/norm_loss.cpp).
//
// Shape legend: V rows (views), D feature dimension, N samples, K classes.
//
// L2 normalisation: y_v = x_v / max(|x_v|, eps). Backward (exact, |x_v|
// recomputed from x, nothing saved): dx_v = (dy_v - y_v (y_v·dy_v)) / |x_v|
// when |x_v| > eps, else dy_v / eps (the denominator is the constant eps).
//
// Cross-entropy: loss = (1/N) Σ_n (lse_n - logits[n, labels_n]) with
// lse_n = log Σ_k exp(logits[n,k]), computed stably (max subtracted first).
// The forward saves lse[N]; backward: dlogits += dloss/N·(softmax - onehot).
// Labels (i32 or i64: the set has one group of functions per label type) must
// lie in [0, K): the op runs check_labels first, which returns the first row
// outside (its one host read-back, for the error message).
//
// Forwards write (=); backwards ACCUMULATE (+=) into dx / dlogits. Every
// pointer is the tensor's memory on its device (dloss[1] included).
#pragma once
#include <cstdint>

#include "engine/dtype.h"
#include "engine/op_table.h"

namespace simclr {

template <class T>
struct L2NormalizeKernels {
  static constexpr Op op = Op::l2_normalize;
  void (*forward)(T* y, const T* x, int64_t V, int64_t D, double eps);
  void (*backward)(T* dx, const T* dy, const T* x, int64_t V, int64_t D, double eps);
};

// The first label outside [0, K): its row (-1 when every label is valid) and value.
struct BadLabel {
  int64_t row = -1;
  int64_t label = 0;
};

// The cross-entropy functions for labels of type L (int32_t or int64_t).
template <class T, class L>
struct CrossEntropyLabelKernels {
  BadLabel (*check_labels)(const L* labels, int64_t N, int64_t K);
  void (*forward)(T* loss, T* lse, const T* logits, const L* labels, int64_t N, int64_t K);
  void (*backward)(T* dlogits, const T* dloss, const T* logits, const T* lse, const L* labels, int64_t N, int64_t K);
};

template <class T>
struct CrossEntropyKernels {
  static constexpr Op op = Op::cross_entropy;
  CrossEntropyLabelKernels<T, int32_t> i32;
  CrossEntropyLabelKernels<T, int64_t> i64;
};

}  // namespace simclr

namespace simclr::cpu {

// y[V,D] = x[V,D] / max(|x_v|, eps)
template <class T>
void l2_normalize_forward(T* y, const T* x, int64_t V, int64_t D, double eps);
// dx[V,D] += J(x)ᵀ dy[V,D]
template <class T>
void l2_normalize_backward(T* dx, const T* dy, const T* x, int64_t V, int64_t D, double eps);

// The first n with labels[n] outside [0, K) (L = int32_t or int64_t), or row -1
template <class L>
BadLabel cross_entropy_check_labels(const L* labels, int64_t N, int64_t K);
// loss[1] = mean CE of logits[N,K] against labels[N] (L = int32_t or int64_t); lse[N] saved for backward
template <class T, class L>
void cross_entropy_forward(T* loss, T* lse, const T* logits, const L* labels, int64_t N, int64_t K);
// dlogits[N,K] += dloss[1]/N · (exp(logits - lse[N]) - onehot(labels[N]))
template <class T, class L>
void cross_entropy_backward(T* dlogits, const T* dloss, const T* logits, const T* lse, const L* labels, int64_t N,
                            int64_t K);

}  // namespace simclr::cpu

// ----------------------------------------------------------------- CUDA
// The CUDA twins' launchers (kernels/cuda/norm_loss.cu), declared identically
// in simclr::gpu (nvcc) and simclr::emu (the kernel emulator), for T = float
// and ::simclr::bf16 (fp32 arithmetic, bf16 only at loads and stores), labels
// L = int32_t and int64_t. Same arguments and semantics as the cpu:: functions
// above, plus the stream (a cudaStream_t; nullptr = default stream). All
// pointers are device pointers (host pointers under the emulator).
//   - cross_entropy_check_labels: a kernel finds the first bad row (an integer
//     atomicMin: the result does not depend on the order), then the one host
//     read-back (synchronises `stream`; a second read for the bad label's value).
//   - cross_entropy_forward takes a stream-ordered scratch buffer
//     (cudaMallocAsync) for the per-row losses, summed in double in row order.
//   - The forward and backward kernels never read or write outside the arrays
//     for a label outside [0, K) (the op checks first): such a row's loss is
//     NaN and backward adds no one-hot term for it.
#define SIMCLR_NORM_LOSS_LAUNCHERS_T(T)                                                                         \
  void l2_normalize_forward(T* y, const T* x, int64_t V, int64_t D, double eps, void* stream);                 \
  void l2_normalize_backward(T* dx, const T* dy, const T* x, int64_t V, int64_t D, double eps, void* stream);  \
  void cross_entropy_forward(T* loss, T* lse, const T* logits, const int32_t* labels, int64_t N, int64_t K,     \
                             void* stream);                                                                     \
  void cross_entropy_forward(T* loss, T* lse, const T* logits, const int64_t* labels, int64_t N, int64_t K,     \
                             void* stream);                                                                     \
  void cross_entropy_backward(T* dlogits, const T* dloss, const T* logits, const T* lse, const int32_t* labels, \
                              int64_t N, int64_t K, void* stream);                                              \
  void cross_entropy_backward(T* dlogits, const T* dloss, const T* logits, const T* lse, const int64_t* labels, \
                              int64_t N, int64_t K, void* stream);
#define SIMCLR_NORM_LOSS_LAUNCHERS                                                                    \
  SIMCLR_NORM_LOSS_LAUNCHERS_T(float)                                                                 \
  SIMCLR_NORM_LOSS_LAUNCHERS_T(::simclr::bf16)                                                        \
  ::simclr::BadLabel cross_entropy_check_labels(const int32_t* labels, int64_t N, int64_t K, void* stream); \
  ::simclr::BadLabel cross_entropy_check_labels(const int64_t* labels, int64_t N, int64_t K, void* stream);

namespace simclr::gpu {
SIMCLR_NORM_LOSS_LAUNCHERS
}  // namespace simclr::gpu
namespace simclr::emu {
SIMCLR_NORM_LOSS_LAUNCHERS
}  // namespace simclr::emu
