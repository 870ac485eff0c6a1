// kernels/cpu/cast.cpp - the reference cast kernels (kernels/cast.h).
#include "kernels/cast.h"

#include <type_traits>

namespace simclr::cpu {

namespace {
inline double wide(bf16 v) { return static_cast<double>(static_cast<float>(v)); }
inline double wide(float v) { return v; }
inline double wide(double v) { return v; }
template <class D>
D narrow(double v) {
  if constexpr (std::is_same_v<D, bf16>)
    return bf16(static_cast<float>(v));  // through f32 (kernels/cast.h)
  else
    return static_cast<D>(v);
}
}  // namespace

template <class S, class D>
void cast_kernel(D* y, bool accumulate, const S* x, int64_t n) {
  // f32 and bf16 values are exact in double, so the sum y + x in double and one
  // rounding into D is the sum "in the wider type, rounded once" of the contract
  // (for D = f32 from bf16 / f32: the f32 sum is exact-then-rounded as well).
  for (int64_t i = 0; i < n; i++) {
    const double v = wide(x[i]);
    y[i] = narrow<D>(accumulate ? wide(y[i]) + v : v);
  }
}

#define SIMCLR_CAST_PAIR(S, D) template void cast_kernel<S, D>(D*, bool, const S*, int64_t);
SIMCLR_CAST_PAIR(float, double)
SIMCLR_CAST_PAIR(float, bf16)
SIMCLR_CAST_PAIR(float, float)
SIMCLR_CAST_PAIR(double, float)
SIMCLR_CAST_PAIR(double, bf16)
SIMCLR_CAST_PAIR(double, double)
SIMCLR_CAST_PAIR(bf16, float)
SIMCLR_CAST_PAIR(bf16, double)
SIMCLR_CAST_PAIR(bf16, bf16)
#undef SIMCLR_CAST_PAIR

}  // namespace simclr::cpu
