// kernels/cpu/batchnorm.cpp - CPU reference of kernels/batchnorm.h.
// Shape legend: M rows, C channels (channels last). Threads split the rows;
// per-channel sums are reduced from per-thread partials in thread order, so
// results do not depend on scheduling.
#include "kernels/batchnorm.h"

#include <omp.h>

#include <algorithm>
#include <vector>

namespace simclr::cpu {

namespace {

constexpr int64_t kParallelMin = 32768;  // elements below which one thread does it

int row_threads(int64_t M, int64_t C) {
  return M * C > kParallelMin ? std::max(1, std::min<int>(omp_get_max_threads(), static_cast<int>(M))) : 1;
}

// Two per-channel double sums a[C], b[C] over rows: f(m, a, b) adds row m.
template <class F>
void reduce_rows(double* a, double* b, int64_t M, int64_t C, F&& f) {
  const int nt = row_threads(M, C);
  std::vector<double> part(static_cast<size_t>(nt * 2 * C), 0.0);  // [nt][2][C]
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num();
    double* pa = part.data() + t * 2 * C;  // [C]
    double* pb = pa + C;                   // [C]
    const int64_t begin = M * t / nt, end = M * (t + 1) / nt;
    for (int64_t m = begin; m < end; m++) f(m, pa, pb);
  }
  for (int64_t c = 0; c < C; c++) {
    double sa = 0, sb = 0;
    for (int t = 0; t < nt; t++) sa += part[t * 2 * C + c], sb += part[t * 2 * C + C + c];
    a[c] = sa;
    b[c] = sb;
  }
}

}  // namespace

template <class T>
void batchnorm_stats(double* sum, double* sumsq, const T* x, int64_t M, int64_t C) {
  reduce_rows(sum, sumsq, M, C, [&](int64_t m, double* s, double* ss) {
    const T* xm = x + m * C;  // [C]
    for (int64_t c = 0; c < C; c++) {
      const double v = static_cast<double>(xm[c]);
      s[c] += v;
      ss[c] += v * v;
    }
  });
}

template <class T>
void batchnorm_forward(T* y, const T* x, const T* mean, const T* invstd, const T* gamma, const T* beta, int64_t M,
                       int64_t C) {
  std::vector<T> a(static_cast<size_t>(C)), b(static_cast<size_t>(C));  // y = (x - mean)·a + b
  for (int64_t c = 0; c < C; c++) {
    a[c] = invstd[c] * (gamma ? gamma[c] : T(1));
    b[c] = beta ? beta[c] : T(0);
  }
#pragma omp parallel for if (M * C > kParallelMin)
  for (int64_t m = 0; m < M; m++) {
    const T* xm = x + m * C;  // [C]
    T* ym = y + m * C;        // [C]
    for (int64_t c = 0; c < C; c++) ym[c] = (xm[c] - mean[c]) * a[c] + b[c];
  }
}

template <class T>
void batchnorm_backward_reduce(double* sum_dy, double* sum_dy_xhat, const T* dy, const T* x, const T* mean,
                               const T* invstd, int64_t M, int64_t C) {
  reduce_rows(sum_dy, sum_dy_xhat, M, C, [&](int64_t m, double* sd, double* sdx) {
    const T* xm = x + m * C;    // [C]
    const T* dym = dy + m * C;  // [C]
    for (int64_t c = 0; c < C; c++) {
      const double g = static_cast<double>(dym[c]);
      const double xhat = (static_cast<double>(xm[c]) - static_cast<double>(mean[c])) * static_cast<double>(invstd[c]);
      sd[c] += g;
      sdx[c] += g * xhat;
    }
  });
}

template <class T>
void batchnorm_backward_dx(T* dx, const T* dy, const T* x, const T* mean, const T* invstd, const T* gamma,
                           const T* mean_dy, const T* mean_dy_xhat, int64_t M, int64_t C) {
  std::vector<T> k(static_cast<size_t>(C));  // γ·invstd
  for (int64_t c = 0; c < C; c++) k[c] = invstd[c] * (gamma ? gamma[c] : T(1));
#pragma omp parallel for if (M * C > kParallelMin)
  for (int64_t m = 0; m < M; m++) {
    const T* xm = x + m * C;    // [C]
    const T* dym = dy + m * C;  // [C]
    T* dxm = dx + m * C;        // [C]
    for (int64_t c = 0; c < C; c++) {
      const T xhat = (xm[c] - mean[c]) * invstd[c];
      dxm[c] += k[c] * (dym[c] - mean_dy[c] - xhat * mean_dy_xhat[c]);
    }
  }
}

#define INSTANTIATE(T)                                                                                        \
  template void batchnorm_stats<T>(double*, double*, const T*, int64_t, int64_t);                            \
  template void batchnorm_forward<T>(T*, const T*, const T*, const T*, const T*, const T*, int64_t, int64_t); \
  template void batchnorm_backward_reduce<T>(double*, double*, const T*, const T*, const T*, const T*, int64_t, \
                                             int64_t);                                                        \
  template void batchnorm_backward_dx<T>(T*, const T*, const T*, const T*, const T*, const T*, const T*,      \
                                         const T*, int64_t, int64_t);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace simclr::cpu
