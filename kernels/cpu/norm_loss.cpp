// kernels/cpu/norm_loss.cpp - CPU reference of kernels/norm_loss.h (row-wise
// L2 normalisation, softmax cross-entropy). Shape legend: see the header.
// Row sums are accumulated in double.
#include "kernels/norm_loss.h"

#include <algorithm>
#include <cmath>

namespace simclr::cpu {

namespace {
template <class T>
double row_norm(const T* x, int64_t D) {  // x[D]
  double s = 0;
  for (int64_t d = 0; d < D; d++) s += static_cast<double>(x[d]) * static_cast<double>(x[d]);
  return std::sqrt(s);
}
}  // namespace

template <class T>
void l2_normalize_forward(T* y, const T* x, int64_t V, int64_t D, double eps) {
#pragma omp parallel for if (V * D > 32768)
  for (int64_t v = 0; v < V; v++) {
    const T* xv = x + v * D;  // [D]
    T* yv = y + v * D;        // [D]
    const double inv = 1.0 / std::max(row_norm(xv, D), eps);
    for (int64_t d = 0; d < D; d++) yv[d] = static_cast<T>(static_cast<double>(xv[d]) * inv);
  }
}

template <class T>
void l2_normalize_backward(T* dx, const T* dy, const T* x, int64_t V, int64_t D, double eps) {
#pragma omp parallel for if (V * D > 32768)
  for (int64_t v = 0; v < V; v++) {
    const T* xv = x + v * D;    // [D]
    const T* dyv = dy + v * D;  // [D]
    T* dxv = dx + v * D;        // [D]
    const double n = row_norm(xv, D);
    if (n > eps) {
      double ydy = 0;  // y·dy with y = x/n
      for (int64_t d = 0; d < D; d++) ydy += static_cast<double>(xv[d]) * static_cast<double>(dyv[d]);
      ydy /= n;
      for (int64_t d = 0; d < D; d++)
        dxv[d] += static_cast<T>((static_cast<double>(dyv[d]) - static_cast<double>(xv[d]) / n * ydy) / n);
    } else {
      for (int64_t d = 0; d < D; d++) dxv[d] += static_cast<T>(static_cast<double>(dyv[d]) / eps);
    }
  }
}

template <class L>
BadLabel cross_entropy_check_labels(const L* labels, int64_t N, int64_t K) {
  for (int64_t n = 0; n < N; n++)
    if (labels[n] < 0 || labels[n] >= K) return BadLabel{n, static_cast<int64_t>(labels[n])};
  return BadLabel{};
}

template <class T, class L>
void cross_entropy_forward(T* loss, T* lse, const T* logits, const L* labels, int64_t N, int64_t K) {
  double total = 0;
#pragma omp parallel for reduction(+ : total) if (N * K > 32768)
  for (int64_t n = 0; n < N; n++) {
    const T* z = logits + n * K;  // [K]
    double m = static_cast<double>(z[0]);
    for (int64_t k = 1; k < K; k++) m = std::max(m, static_cast<double>(z[k]));
    double s = 0;
    for (int64_t k = 0; k < K; k++) s += std::exp(static_cast<double>(z[k]) - m);
    const double l = m + std::log(s);
    lse[n] = static_cast<T>(l);
    total += l - static_cast<double>(z[labels[n]]);
  }
  loss[0] = static_cast<T>(total / static_cast<double>(N));
}

template <class T, class L>
void cross_entropy_backward(T* dlogits, const T* dloss, const T* logits, const T* lse, const L* labels, int64_t N,
                            int64_t K) {
  const T g = dloss[0] / static_cast<T>(N);
#pragma omp parallel for if (N * K > 32768)
  for (int64_t n = 0; n < N; n++) {
    const T* z = logits + n * K;  // [K]
    T* dz = dlogits + n * K;      // [K]
    for (int64_t k = 0; k < K; k++) dz[k] += g * std::exp(z[k] - lse[n]);
    dz[labels[n]] -= g;
  }
}

#define INSTANTIATE(T)                                                                              \
  template void l2_normalize_forward<T>(T*, const T*, int64_t, int64_t, double);                    \
  template void l2_normalize_backward<T>(T*, const T*, const T*, int64_t, int64_t, double);         \
  template void cross_entropy_forward<T, int32_t>(T*, T*, const T*, const int32_t*, int64_t, int64_t); \
  template void cross_entropy_forward<T, int64_t>(T*, T*, const T*, const int64_t*, int64_t, int64_t); \
  template void cross_entropy_backward<T, int32_t>(T*, const T*, const T*, const T*, const int32_t*, int64_t, \
                                                   int64_t);                                        \
  template void cross_entropy_backward<T, int64_t>(T*, const T*, const T*, const T*, const int64_t*, int64_t, \
                                                   int64_t);
INSTANTIATE(float)
INSTANTIATE(double)
template BadLabel cross_entropy_check_labels<int32_t>(const int32_t*, int64_t, int64_t);
template BadLabel cross_entropy_check_labels<int64_t>(const int64_t*, int64_t, int64_t);
#undef INSTANTIATE

}  // namespace simclr::cpu
