// kernels/elementwise.h - relu, add, add_relu, the one-element reductions
// (sum_product, mean), scale and linear.
//
// For each op: its kernel set (the struct template, one function per phase;
// kernels/registry.h explains how sets become table rows and how an op body
// calls them) and the raw-pointer contract of each function, below in the
// CPU reference (kernels/cpu/elementwise.cpp, rows in kernels/cpu/table.cpp).
// Every pointer is the tensor's memory on its device (Tensor::ptr<T>()),
// one-element operands included (the reductions write y[1], the backwards read
// dy[1] where it lives), so a device twin needs no host round trip.
// Arguments: outputs, inputs, sizes. Backward kernels ACCUMULATE (+=) into
// their gradient outputs; those with an `accumulate` flag write (=) instead
// when it is false (a gradient buffer not filled yet).
#pragma once
#include <cstdint>

#include "engine/dtype.h"
#include "engine/op_table.h"

struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;

namespace simclr {

template <class T>
struct ReluKernels {
  static constexpr Op op = Op::relu;
  void (*forward)(T* y, const T* x, int64_t n);
  void (*backward)(T* dx, bool accumulate, const T* dy, const T* y, int64_t n);
};

template <class T>
struct AddKernels {
  static constexpr Op op = Op::add;
  void (*forward)(T* y, const T* a, const T* b, int64_t n);
  void (*backward)(T* da, bool accumulate_a, T* db, bool accumulate_b, const T* dy, int64_t n);
};

template <class T>
struct AddReluKernels {
  static constexpr Op op = Op::add_relu;
  void (*forward)(T* y, const T* a, const T* b, int64_t n);
  void (*backward)(T* da, bool accumulate_a, T* db, bool accumulate_b, const T* dy, const T* y, int64_t n);
};

template <class T>
struct SumProductKernels {
  static constexpr Op op = Op::sum_product;
  void (*forward)(T* y, const T* a, const T* r, int64_t n);
  void (*backward)(T* da, const T* r, const T* dy, int64_t n);
};

template <class T>
struct MeanKernels {
  static constexpr Op op = Op::mean;
  void (*forward)(T* y, const T* x, int64_t n);
  void (*backward)(T* dx, const T* dy, int64_t n);
};

template <class T>
struct ScaleKernels {
  static constexpr Op op = Op::scale;
  void (*forward)(T* y, const T* x, double s, int64_t n);
  void (*backward)(T* dx, const T* dy, double s, int64_t n);
};

template <class T>
struct LinearKernels {
  static constexpr Op op = Op::linear;
  void (*forward)(T* y, const T* x, const T* w, const T* b, int64_t N, int64_t I, int64_t O);
  void (*backward)(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, int64_t N, int64_t I, int64_t O);
};

}  // namespace simclr

namespace simclr::cpu {

// y[n] = max(x, 0)
template <class T> void relu_forward(T* y, const T* x, int64_t n);
// dx[n] += dy * (y > 0) when accumulate, else dx[n] = dy * (y > 0)   (y: the forward output)
template <class T> void relu_backward(T* dx, bool accumulate, const T* dy, const T* y, int64_t n);
// y[n] = a + b
template <class T> void add_forward(T* y, const T* a, const T* b, int64_t n);
// da (+)= dy, then db (+)= dy, each += when its accumulate flag is set, else =
// (da or db may be null; da == db (add(x, x)) is allowed: the second share accumulates)
template <class T> void add_backward(T* da, bool accumulate_a, T* db, bool accumulate_b, const T* dy, int64_t n);
// y[n] = max(a + b, 0)   (a residual block's sum and ReLU, one sweep)
template <class T> void add_relu_forward(T* y, const T* a, const T* b, int64_t n);
// g = dy * (y > 0); da (+)= g, then db (+)= g, each += when its accumulate flag is set,
// else =   (da or db may be null, da == db allowed as for add; y: the forward output)
template <class T>
void add_relu_backward(T* da, bool accumulate_a, T* db, bool accumulate_b, const T* dy, const T* y, int64_t n);
// y[1] = Σ a_i r_i (accumulated in double)
template <class T> void sum_product_forward(T* y, const T* a, const T* r, int64_t n);
// da[n] += dy[0] · r
template <class T> void sum_product_backward(T* da, const T* r, const T* dy, int64_t n);
// y[1] = (Σ x_i) / n, summed in double in index order
template <class T> void mean_forward(T* y, const T* x, int64_t n);
// dx[n] += dy[0] / n
template <class T> void mean_backward(T* dx, const T* dy, int64_t n);
// y[n] = T(s) · x
template <class T> void scale_forward(T* y, const T* x, double s, int64_t n);
// dx[n] += T(s) · dy
template <class T> void scale_backward(T* dx, const T* dy, double s, int64_t n);

// y[N,O] = x[N,I] w[O,I]^T + b[O]   (b may be null)
template <class T> void linear_forward(T* y, const T* x, const T* w, const T* b, int64_t N, int64_t I, int64_t O);
// dx[N,I] += dy w; dw[O,I] += dy^T x; db[O] += Σ_n dy   (any output pointer may be null)
template <class T>
void linear_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, int64_t N, int64_t I, int64_t O);

}  // namespace simclr::cpu

// ---- CUDA twins (kernels/cuda/elementwise.cu) of relu, add, add_relu,
// sum_product, mean and scale: the launchers, declared identically in
// simclr::gpu (nvcc) and simclr::emu (the kernel emulator). Same arguments and
// semantics as the CPU reference above, plus the stream; all pointers device
// pointers (host pointers under the emulator). T = float or bf16: arithmetic in
// fp32, one rounding to bf16 at each store (bf16: scale uses float(s), mean's
// backward float(dy[0]) / float(n)). The reductions (sum_product, mean) add in
// double in a fixed order (per-block partials, then one block: the same bits
// every run) and write (=) y[0].
#define SIMCLR_ELEMENTWISE_LAUNCHERS_T(T)                                                                   \
  void relu_forward(T* y, const T* x, int64_t n, cudaStream_t stream);                                     \
  void relu_backward(T* dx, bool accumulate, const T* dy, const T* y, int64_t n, cudaStream_t stream);     \
  void add_forward(T* y, const T* a, const T* b, int64_t n, cudaStream_t stream);                          \
  void add_backward(T* da, bool accumulate_a, T* db, bool accumulate_b, const T* dy, int64_t n,            \
                    cudaStream_t stream);                                                                  \
  void add_relu_forward(T* y, const T* a, const T* b, int64_t n, cudaStream_t stream);                     \
  void add_relu_backward(T* da, bool accumulate_a, T* db, bool accumulate_b, const T* dy, const T* y,      \
                         int64_t n, cudaStream_t stream);                                                  \
  void sum_product_forward(T* y, const T* a, const T* r, int64_t n, cudaStream_t stream);                  \
  void sum_product_backward(T* da, const T* r, const T* dy, int64_t n, cudaStream_t stream);               \
  void mean_forward(T* y, const T* x, int64_t n, cudaStream_t stream);                                     \
  void mean_backward(T* dx, const T* dy, int64_t n, cudaStream_t stream);                                  \
  void scale_forward(T* y, const T* x, double s, int64_t n, cudaStream_t stream);                          \
  void scale_backward(T* dx, const T* dy, double s, int64_t n, cudaStream_t stream);
#define SIMCLR_ELEMENTWISE_LAUNCHERS \
  SIMCLR_ELEMENTWISE_LAUNCHERS_T(float) SIMCLR_ELEMENTWISE_LAUNCHERS_T(::simclr::bf16)

namespace simclr::gpu {
SIMCLR_ELEMENTWISE_LAUNCHERS
}  // namespace simclr::gpu
namespace simclr::emu {
SIMCLR_ELEMENTWISE_LAUNCHERS
}  // namespace simclr::emu

// ---- our CUDA kernels for linear (kernels/cuda/gemm.cu; also run under the
// kernel emulator): tiled GEMM, 64x64 output tiles, K loop over 16, fp32
// accumulation, one rounding at the store (bf16: bf16 operands, fp32 sums).
// The contract of LinearKernels<T> / cpu::linear_forward / linear_backward:
// y = x wᵀ + b (b may be null); dx += dy w, dw += dyᵀ x, db += Σ_n dy (each
// may be null). dw's sum over N is cut into `ksplit` fixed ranges (fp32
// partials in a cudaMallocAsync workspace, added in split order: deterministic);
// ksplit = 0: automatic (linear_ours_resolve_ksplit, a function of the shape).
// db: one thread per output column summing over n in order.
#define SIMCLR_LINEAR_OURS_LAUNCHERS                                                                              \
  int linear_ours_resolve_ksplit(int ksplit, int64_t N, int64_t I, int64_t O);                                   \
  void linear_forward_ours(float* y, const float* x, const float* w, const float* b, int64_t N, int64_t I,        \
                           int64_t O, cudaStream_t stream);                                                      \
  void linear_forward_ours(::simclr::bf16* y, const ::simclr::bf16* x, const ::simclr::bf16* w,                  \
                           const ::simclr::bf16* b, int64_t N, int64_t I, int64_t O, cudaStream_t stream);       \
  void linear_backward_ours(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,     \
                            int64_t N, int64_t I, int64_t O, int ksplit, cudaStream_t stream);                   \
  void linear_backward_ours(::simclr::bf16* dx, ::simclr::bf16* dw, ::simclr::bf16* db,                          \
                            const ::simclr::bf16* dy, const ::simclr::bf16* x, const ::simclr::bf16* w,          \
                            int64_t N, int64_t I, int64_t O, int ksplit, cudaStream_t stream);

namespace simclr::gpu { SIMCLR_LINEAR_OURS_LAUNCHERS }
namespace simclr::emu { SIMCLR_LINEAR_OURS_LAUNCHERS }
// ---- CUDA: the cuBLASLt path of linear (kernels/cuda/linear_cublaslt.cu; the
// real build only, not the emulator). The LinearKernels contract above plus
// the stream the work is issued on; all pointers are device memory of the
// current device, row-major and contiguous.
//   forward:  y[N,O] = x[N,I] w[O,I]^T + b[O]             (=; b may be null)
//   backward: dx[N,I] += dy w; dw[O,I] += dy^T x; db[O] += Σ_n dy   (+=; any
//             output may be null)
// One cuBLASLt matmul per product (forward with CUBLASLT_EPILOGUE_BIAS; the
// backward ones with beta = 1), db by a fixed-order column reduction (so it is
// deterministic and accumulates, which the BGRADB epilogue does not). T = float
// or bf16, accumulation in fp32; float uses TF32 only under CudaMath::tf32
// (engine/device.h). One cuBLASLt handle per device; the matmul descriptors
// and the heuristic's algorithm are cached per (device, product, dtype, math,
// determinism, shape, pointer alignment) in an LRU cache of 256 entries;
// workspaces come from the stream-ordered pool.
#if defined(SIMCLR_WITH_CUDA) && !defined(SIMCLR_EMU)
struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;

namespace simclr::gpu {

struct CublasLtCacheStats {
  int64_t hits = 0, misses = 0, entries = 0, capacity = 0;
};

#define SIMCLR_LINEAR_CUBLASLT_LAUNCHERS                                                                       \
  void linear_forward_cublaslt(float* y, const float* x, const float* w, const float* b, int64_t N, int64_t I, \
                               int64_t O, cudaStream_t stream);                                                 \
  void linear_forward_cublaslt(::simclr::bf16* y, const ::simclr::bf16* x, const ::simclr::bf16* w,            \
                               const ::simclr::bf16* b, int64_t N, int64_t I, int64_t O, cudaStream_t stream); \
  void linear_backward_cublaslt(float* dx, float* dw, float* db, const float* dy, const float* x,              \
                                const float* w, int64_t N, int64_t I, int64_t O, cudaStream_t stream);         \
  void linear_backward_cublaslt(::simclr::bf16* dx, ::simclr::bf16* dw, ::simclr::bf16* db,                     \
                                const ::simclr::bf16* dy, const ::simclr::bf16* x, const ::simclr::bf16* w,     \
                                int64_t N, int64_t I, int64_t O, cudaStream_t stream);                         \
  /* The matmul cache (all devices): hits and misses since the start or the last clear. */                    \
  CublasLtCacheStats linear_cublaslt_cache_stats();                                                             \
  void linear_cublaslt_cache_clear();
SIMCLR_LINEAR_CUBLASLT_LAUNCHERS

}  // namespace simclr::gpu
#endif
