// kernels/cuda/gemm.cu - our linear layer: y[N,O] = x[N,I]·wᵀ + b and its
// backward (contract: kernels/elementwise.h, LinearKernels<T> and
// cpu::linear_forward / linear_backward), on the tiled GEMM of
// kernels/cuda/gemm_tile.cuh. Also compiled by the kernel emulator
// (tests/emu/test_conv_gemm_emu.cpp), where these are the CUDA backend's
// linear rows (kernels/cuda/table.cu).
//
//   forward  y  =  x·wᵀ (+ b)     M = N, N' = O, K = I    (both operands k-contiguous)
//   dx      dx +=  dy·w           M = N, N' = I, K = O
//   dw      dw +=  dyᵀ·x          M = O, N' = I, K = N    (split over N: fixed chunks, fp32 partials)
//   db      db +=  Σ_n dy         one thread per column, n in order
#include "kernels/elementwise.h"

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemm_tile.cuh"

namespace simclr::SIMCLR_KNS {

namespace {

using bf16_t = __nv_bfloat16;

// db[o] += Σ_n dy[n, o] (n ascending, fp32).
template <class T>
__global__ void __launch_bounds__(256) linear_bias_grad_kernel(T* db, const T* dy, int64_t N, int64_t O) {
  const int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (o >= O) return;
  float s = tile::to_f(db[o]);
  for (int64_t n = 0; n < N; ++n) s += tile::to_f(dy[n * O + o]);
  tile::store_f(db + o, s);
}

void check_sizes(const char* what, int64_t N, int64_t I, int64_t O) {
  SIMCLR_CHECK(N >= 0 && I >= 0 && O >= 0, what, ": negative size (N ", N, ", I ", I, ", O ", O, ")");
  SIMCLR_CHECK(N * I <= tile::kMaxIndex && N * O <= tile::kMaxIndex && O * I <= tile::kMaxIndex, what,
               ": sizes over 2^31 elements (N ", N, ", I ", I, ", O ", O, ")");
}

template <class T>
void forward_impl(T* y, const T* x, const T* w, const T* b, int64_t N, int64_t I, int64_t O, cudaStream_t stream) {
  check_sizes("linear_forward_ours", N, I, O);
  if (N == 0 || O == 0) return;
  SIMCLR_CHECK(y != nullptr && (I == 0 || (x != nullptr && w != nullptr)), "linear_forward_ours: null pointer");
  tile::run_gemm(tile::RowK<T>{x, I}, tile::RowK<T>{w, I}, y, O, b, false, N, O, I, 1, stream);
}

template <class T>
void backward_impl(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, int64_t N, int64_t I, int64_t O,
                   int ksplit, cudaStream_t stream) {
  check_sizes("linear_backward_ours", N, I, O);
  SIMCLR_CHECK(ksplit >= 0, "linear_backward_ours: ksplit = ", ksplit);
  if (dx == nullptr && dw == nullptr && db == nullptr) return;
  SIMCLR_CHECK(dy != nullptr || N * O == 0, "linear_backward_ours: dy is null");
  if (dx != nullptr && N > 0 && I > 0) {
    SIMCLR_CHECK(w != nullptr || O == 0, "linear_backward_ours: w is null (needed for dx)");
    tile::run_gemm(tile::RowK<T>{dy, O}, tile::KRow<T>{w, I}, dx, I, static_cast<const T*>(nullptr), true, N, I, O,
                   1, stream);
  }
  if (dw != nullptr && O > 0 && I > 0) {
    SIMCLR_CHECK(x != nullptr || N == 0, "linear_backward_ours: x is null (needed for dw)");
    tile::run_gemm(tile::KRow<T>{dy, O}, tile::KRow<T>{x, I}, dw, I, static_cast<const T*>(nullptr), true, O, I, N,
                   tile::resolve_splits(ksplit, O, I, N), stream);
  }
  if (db != nullptr && O > 0) {
    launch_nobarrier(linear_bias_grad_kernel<T>, dim3(static_cast<unsigned>(ceil_div(O, 256))), dim3(256), 0, stream,
                     db, dy, N, O);
  }
}

}  // namespace

int linear_ours_resolve_ksplit(int ksplit, int64_t N, int64_t I, int64_t O) {
  return tile::resolve_splits(ksplit, O, I, N);
}

void linear_forward_ours(float* y, const float* x, const float* w, const float* b, int64_t N, int64_t I, int64_t O,
                         cudaStream_t stream) {
  forward_impl<float>(y, x, w, b, N, I, O, stream);
}
void linear_forward_ours(::simclr::bf16* y, const ::simclr::bf16* x, const ::simclr::bf16* w,
                         const ::simclr::bf16* b, int64_t N, int64_t I, int64_t O, cudaStream_t stream) {
  forward_impl<bf16_t>(reinterpret_cast<bf16_t*>(y), reinterpret_cast<const bf16_t*>(x),
                       reinterpret_cast<const bf16_t*>(w), reinterpret_cast<const bf16_t*>(b), N, I, O, stream);
}
void linear_backward_ours(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w, int64_t N,
                          int64_t I, int64_t O, int ksplit, cudaStream_t stream) {
  backward_impl<float>(dx, dw, db, dy, x, w, N, I, O, ksplit, stream);
}
void linear_backward_ours(::simclr::bf16* dx, ::simclr::bf16* dw, ::simclr::bf16* db, const ::simclr::bf16* dy,
                          const ::simclr::bf16* x, const ::simclr::bf16* w, int64_t N, int64_t I, int64_t O,
                          int ksplit, cudaStream_t stream) {
  backward_impl<bf16_t>(reinterpret_cast<bf16_t*>(dx), reinterpret_cast<bf16_t*>(dw), reinterpret_cast<bf16_t*>(db),
                        reinterpret_cast<const bf16_t*>(dy), reinterpret_cast<const bf16_t*>(x),
                        reinterpret_cast<const bf16_t*>(w), N, I, O, ksplit, stream);
}

}  // namespace simclr::SIMCLR_KNS
