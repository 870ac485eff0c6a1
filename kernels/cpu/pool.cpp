// kernels/cpu/pool.cpp - CPU reference of kernels/pool.h (NHWC max pool and
// global average pool), also instantiated for bf16 (arithmetic in acc_t<T>,
// kernels/cpu/acc.h). Shape legend: see the header. Threads split the batch.
#include "kernels/pool.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/acc.h"

namespace simclr::cpu {

template <class T>
void max_pool2d_forward(T* y, int32_t* arg, const T* x, const Pool2dShape& s) {
  const int64_t H = s.H, W = s.W, C = s.C, Ho = s.Ho(), Wo = s.Wo();
#pragma omp parallel if (s.N * Ho * Wo * C > 32768)
  {
    using A = acc_t<T>;  // T for f32/f64, f32 for bf16 (kernels/cpu/acc.h)
    std::vector<A> best(static_cast<size_t>(C));
    std::vector<int32_t> where(static_cast<size_t>(C));
#pragma omp for
    for (int64_t n = 0; n < s.N; n++) {
      const T* xn = x + n * H * W * C;  // [H,W,C]
      for (int64_t ho = 0; ho < Ho; ho++) {
        for (int64_t wo = 0; wo < Wo; wo++) {
          bool first = true;
          for (int64_t kh = 0; kh < s.k; kh++) {
            const int64_t ih = ho * s.stride - s.pad + kh;
            if (ih < 0 || ih >= H) continue;
            for (int64_t kw = 0; kw < s.k; kw++) {
              const int64_t iw = wo * s.stride - s.pad + kw;
              if (iw < 0 || iw >= W) continue;
              const int32_t pos = static_cast<int32_t>(ih * W + iw);
              const T* v = xn + pos * C;  // [C]
              if (first) {
                for (int64_t c = 0; c < C; c++) best[c] = ld(v[c]), where[c] = pos;
                first = false;
                continue;
              }
              for (int64_t c = 0; c < C; c++) {
                // strictly greater: ties keep the earlier element; NaN wins once and stays
                const A vc = ld(v[c]);
                if (vc > best[c] || (std::isnan(vc) && !std::isnan(best[c]))) best[c] = vc, where[c] = pos;
              }
            }
          }
          const int64_t o = ((n * Ho + ho) * Wo + wo) * C;
          for (int64_t c = 0; c < C; c++) y[o + c] = st<T>(best[c]), arg[o + c] = where[c];
        }
      }
    }
  }
}

template <class T>
void max_pool2d_backward(T* dx, const T* dy, const int32_t* arg, const Pool2dShape& s) {
  const int64_t C = s.C, HoWo = s.Ho() * s.Wo();
#pragma omp parallel for if (s.N * HoWo * C > 32768)
  for (int64_t n = 0; n < s.N; n++) {
    T* dxn = dx + n * s.H * s.W * C;          // [H,W,C]
    const T* dyn = dy + n * HoWo * C;         // [Ho,Wo,C]
    const int32_t* an = arg + n * HoWo * C;   // [Ho,Wo,C]
    for (int64_t i = 0; i < HoWo; i++)
      for (int64_t c = 0; c < C; c++) {
        T& d = dxn[an[i * C + c] * C + c];
        d = st<T>(ld(d) + ld(dyn[i * C + c]));
      }
  }
}

template <class T>
SIMCLR_CPU_CLONES void global_avg_pool_forward(T* y, const T* x, int64_t N, int64_t HW, int64_t C) {
#pragma omp parallel if (N * HW * C > 32768)
  {
    std::vector<double> acc(static_cast<size_t>(C));
#pragma omp for
    for (int64_t n = 0; n < N; n++) {
      std::fill(acc.begin(), acc.end(), 0.0);
      const T* xn = x + n * HW * C;  // [HW,C]
      for (int64_t i = 0; i < HW; i++)
        for (int64_t c = 0; c < C; c++) acc[c] += static_cast<double>(ld(xn[i * C + c]));
      for (int64_t c = 0; c < C; c++) y[n * C + c] = st<T>(acc[c] / static_cast<double>(HW));
    }
  }
}

template <class T>
SIMCLR_CPU_CLONES void global_avg_pool_backward(T* dx, const T* dy, int64_t N, int64_t HW, int64_t C) {
  using A = acc_t<T>;
  const A inv = A(1) / static_cast<A>(HW);
#pragma omp parallel for if (N * HW * C > 32768)
  for (int64_t n = 0; n < N; n++) {
    T* dxn = dx + n * HW * C;   // [HW,C]
    const T* dyn = dy + n * C;  // [C]
    for (int64_t i = 0; i < HW; i++)
      for (int64_t c = 0; c < C; c++) dxn[i * C + c] = st<T>(ld(dxn[i * C + c]) + ld(dyn[c]) * inv);
  }
}

#define INSTANTIATE(T)                                                                      \
  template void max_pool2d_forward<T>(T*, int32_t*, const T*, const Pool2dShape&);          \
  template void max_pool2d_backward<T>(T*, const T*, const int32_t*, const Pool2dShape&);   \
  template void global_avg_pool_forward<T>(T*, const T*, int64_t, int64_t, int64_t);        \
  template void global_avg_pool_backward<T>(T*, const T*, int64_t, int64_t, int64_t);
INSTANTIATE(float)
INSTANTIATE(bf16)  // the CPU backend's bf16 rows
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace simclr::cpu
