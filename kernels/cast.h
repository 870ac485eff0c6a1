// kernels/cast.h - cast: element type conversion (the mixed-precision step's
// bf16 activations and weights from f32 masters, and back).
//
// CastKernels<T>: T is the SOURCE element type; one function per target type,
//   y[n] = convert(x[n])              when accumulate is false
//   y[n] = convert(float(y) + x[n])   when accumulate is true (the backward:
//                                      dx += cast(dy) into x's dtype; the sum is
//                                      formed in the wider of the two types and
//                                      rounded once into y's type)
// A null function: the backend has no kernel for that pair. The identity
// (T to T) is never called (the op returns its input).
// Rounding: to bf16 round-to-nearest-even (engine/dtype.h bf16, CUDA's
// __float2bfloat16_rn); f64 to bf16 goes through f32 (two roundings, on every
// backend the same); to f32 from f64 one rounding; widening is exact.
#pragma once
#include <cstdint>

#include "engine/dtype.h"
#include "engine/op_table.h"

struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;

namespace simclr {

template <class T>
struct CastKernels {
  static constexpr Op op = Op::cast;
  void (*to_f32)(float* y, bool accumulate, const T* x, int64_t n);
  void (*to_f64)(double* y, bool accumulate, const T* x, int64_t n);
  void (*to_bf16)(bf16* y, bool accumulate, const T* x, int64_t n);
};

}  // namespace simclr

namespace simclr::cpu {
// The reference (kernels/cpu/cast.cpp): S, D in {float, double, bf16}.
template <class S, class D>
void cast_kernel(D* y, bool accumulate, const S* x, int64_t n);
}  // namespace simclr::cpu

// ---- CUDA twins (kernels/cuda/cast.cu): f32 <-> bf16.
#define SIMCLR_CAST_LAUNCHERS                                                                          \
  void cast_f32_to_bf16(::simclr::bf16* y, bool accumulate, const float* x, int64_t n, cudaStream_t s); \
  void cast_bf16_to_f32(float* y, bool accumulate, const ::simclr::bf16* x, int64_t n, cudaStream_t s);
namespace simclr::gpu { SIMCLR_CAST_LAUNCHERS }
namespace simclr::emu { SIMCLR_CAST_LAUNCHERS }
