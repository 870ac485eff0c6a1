// kernels/cuda/cast.cu - CUDA twins of the cast kernels f32 <-> bf16
// (contract and CPU reference: kernels/cast.h, kernels/cpu/cast.cpp; rows in
// kernels/cuda/table.cu). One barrier-free grid-stride kernel, scalar loads
// (a cast is a small part of the step; the conversions are the point here).
// Arithmetic in f32: the accumulating form adds in f32 (exact-then-rounded,
// as the reference's double sum rounded to f32) and rounds once into the
// target (RNE, __float2bfloat16_rn); bit-identical to the CPU reference.
#include "kernels/cast.h"

#include <algorithm>
#include <type_traits>

#include "kernels/cuda/common.cuh"

namespace simclr::SIMCLR_KNS {

namespace {

using bf16_t = __nv_bfloat16;
constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;


template <class S, class D>
__global__ void __launch_bounds__(kThreads) cast_kernel(D* y, const S* x, int64_t n, int accumulate) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const float v = to_float(x[i]);
    y[i] = from_float<D>(accumulate ? to_float(y[i]) + v : v);
  }
}

template <class S, class D>
void run_cast(D* y, const S* x, int64_t n, bool accumulate, cudaStream_t stream) {
  SIMCLR_CHECK(n >= 0, "cast kernel: n = ", n);
  if (n == 0) return;
  const int64_t blocks = std::min<int64_t>(ceil_div(n, kThreads), kMaxBlocks);
  launch_nobarrier(cast_kernel<S, D>, dim3(static_cast<unsigned>(blocks)), dim3(kThreads), 0, stream, y, x, n,
                   accumulate ? 1 : 0);
}

}  // namespace

void cast_f32_to_bf16(::simclr::bf16* y, bool accumulate, const float* x, int64_t n, cudaStream_t s) {
  run_cast(reinterpret_cast<bf16_t*>(y), x, n, accumulate, s);
}
void cast_bf16_to_f32(float* y, bool accumulate, const ::simclr::bf16* x, int64_t n, cudaStream_t s) {
  run_cast(y, reinterpret_cast<const bf16_t*>(x), n, accumulate, s);
}

}  // namespace simclr::SIMCLR_KNS
