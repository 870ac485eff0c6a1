// kernels/cpu/acc.h - the arithmetic type of a CPU kernel's element type.
//
// The CPU kernels of kernels/cpu/{elementwise,pool,batchnorm}.cpp are written
// once over the storage type T and compute in acc_t<T>: T itself for float
// and double (so those instantiations are exactly the code they always were),
// float for bf16 (bf16 loads widen exactly, stores round once to nearest
// even: the convention of the CUDA twins, kernels/cuda/*.cu, so the op
// table's bf16 tolerances and their reasons hold on both backends).
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "engine/dtype.h"

// SIMCLR_CPU_CLONES on a kernel: GCC compiles it twice, for baseline x86-64
// and for x86-64-v4 (AVX-512), and the loader picks the one the CPU runs
// (ifunc). The files using it are compiled with -ffp-contract=off
// (CMakeLists.txt), so the AVX-512 clone performs the same IEEE operations on
// each element as the baseline one (no fused multiply-adds): the same bits,
// twice the lanes. Other compilers (clang in the fuzz and sanitizer builds)
// get the baseline only.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SIMCLR_CPU_CLONES __attribute__((target_clones("default", "arch=x86-64-v4")))
#else
#define SIMCLR_CPU_CLONES
#endif

namespace simclr::cpu {

template <class T>
struct acc {
  using type = T;
};
template <>
struct acc<bf16> {
  using type = float;
};
template <class T>
using acc_t = typename acc<T>::type;

// f32 -> bf16 bits, round to nearest even, NaN kept quiet: the same bits as
// engine/dtype.h's bf16(float), written without a branch so that loops of
// stores vectorise (a select instead of the if/else).
inline uint16_t bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const uint32_t quiet = (u >> 16) | 0x40u;
  return static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? quiet : rounded);
}

// A load in the arithmetic type (exact), and a store rounding into T.
template <class T>
inline acc_t<T> ld(T v) {
  return static_cast<acc_t<T>>(v);
}
template <class T, class A>
inline T st(A v) {
  if constexpr (std::is_same_v<T, bf16>) {
    bf16 b;
    b.bits = bf16_bits(static_cast<float>(v));
    return b;
  } else
    return static_cast<T>(v);
}

// The f32 copy of n bf16 values (exact); empty for a null x. The bf16 paths that
// run an f32 kernel on widened operands (linear, the convolution fallback) use it.
inline std::vector<float> widen(const bf16* x, int64_t n) {
  std::vector<float> v(static_cast<size_t>(x ? n : 0));
#pragma omp parallel for simd if (n > 65536)
  for (int64_t i = 0; i < (x ? n : 0); i++) v[i] = ld(x[i]);
  return v;
}

}  // namespace simclr::cpu
