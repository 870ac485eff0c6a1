// kernels/cpu/elementwise.cpp - CPU reference of kernels/elementwise.h.
#include "kernels/elementwise.h"

#include <algorithm>

#include "engine/blas.h"

namespace simclr::cpu {

namespace {
// out (+)= dy * (y > 0). dy is loaded unconditionally so that the select
// compiles to a blend: a conditional load does not vectorise without masked
// loads and leaves a branch that mispredicts on about half of the elements.
template <class T>
void relu_grad_into(T* out, bool accumulate, const T* dy, const T* y, int64_t n) {
  if (!out) return;
  if (accumulate) {
#pragma omp parallel for simd if (n > 32768)
    for (int64_t i = 0; i < n; i++) {
      const T g = dy[i];
      out[i] += y[i] > T(0) ? g : T(0);
    }
  } else {
#pragma omp parallel for simd if (n > 32768)
    for (int64_t i = 0; i < n; i++) {
      const T g = dy[i];
      out[i] = y[i] > T(0) ? g : T(0);
    }
  }
}

// out (+)= src
template <class T>
void copy_or_add(T* out, bool accumulate, const T* src, int64_t n) {
  if (!out) return;
  if (accumulate) {
#pragma omp parallel for simd if (n > 32768)
    for (int64_t i = 0; i < n; i++) out[i] += src[i];
  } else {
    std::copy(src, src + n, out);
  }
}

// y[n] += s * x
template <class T>
void axpy(T* y, const T* x, T s, int64_t n) {
#pragma omp parallel for simd if (n > 32768)
  for (int64_t i = 0; i < n; i++) y[i] += s * x[i];
}
}  // namespace

template <class T>
void relu_forward(T* y, const T* x, int64_t n) {
#pragma omp parallel for simd if (n > 32768)
  for (int64_t i = 0; i < n; i++) y[i] = x[i] > T(0) ? x[i] : T(0);
}

template <class T>
void relu_backward(T* dx, bool accumulate, const T* dy, const T* y, int64_t n) {
  relu_grad_into(dx, accumulate, dy, y, n);
}

template <class T>
void add_forward(T* y, const T* a, const T* b, int64_t n) {
#pragma omp parallel for simd if (n > 32768)
  for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

template <class T>
void add_backward(T* da, bool accumulate_a, T* db, bool accumulate_b, const T* dy, int64_t n) {
  copy_or_add(da, accumulate_a, dy, n);
  copy_or_add(db, accumulate_b, dy, n);
}

template <class T>
void add_relu_forward(T* y, const T* a, const T* b, int64_t n) {
#pragma omp parallel for simd if (n > 32768)
  for (int64_t i = 0; i < n; i++) y[i] = std::max(a[i] + b[i], T(0));
}

template <class T>
void add_relu_backward(T* da, bool accumulate_a, T* db, bool accumulate_b, const T* dy, const T* y, int64_t n) {
  if (da && db && !accumulate_a && !accumulate_b) {  // the common case: both fresh, one sweep writes both
#pragma omp parallel for simd if (n > 32768)
    for (int64_t i = 0; i < n; i++) {
      const T g0 = dy[i];
      const T g = y[i] > T(0) ? g0 : T(0);
      da[i] = g;
      db[i] = g;
    }
    return;
  }
  relu_grad_into(da, accumulate_a, dy, y, n);
  relu_grad_into(db, accumulate_b, dy, y, n);
}

template <class T>
void sum_product_forward(T* y, const T* a, const T* r, int64_t n) {
  double s = 0;
#pragma omp parallel for reduction(+ : s) if (n > 32768)
  for (int64_t i = 0; i < n; i++) s += static_cast<double>(a[i]) * static_cast<double>(r[i]);
  y[0] = static_cast<T>(s);
}

template <class T>
void sum_product_backward(T* da, const T* r, const T* dy, int64_t n) {
  axpy(da, r, dy[0], n);
}

template <class T>
void mean_forward(T* y, const T* x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += static_cast<double>(x[i]);
  y[0] = static_cast<T>(s / static_cast<double>(n));
}

template <class T>
void mean_backward(T* dx, const T* dy, int64_t n) {
  const T g = dy[0] / static_cast<T>(n);
  for (int64_t i = 0; i < n; i++) dx[i] += g;
}

template <class T>
void scale_forward(T* y, const T* x, double s, int64_t n) {
  const T a = static_cast<T>(s);
  // 0 + a·x, not a·x: a zero product is +0, as it always was (y = 0; y += a·x)
#pragma omp parallel for simd if (n > 32768)
  for (int64_t i = 0; i < n; i++) y[i] = T(0) + a * x[i];
}

template <class T>
void scale_backward(T* dx, const T* dy, double s, int64_t n) {
  axpy(dx, dy, static_cast<T>(s), n);
}

template <class T>
void linear_forward(T* y, const T* x, const T* w, const T* b, int64_t N, int64_t I, int64_t O) {
  if (b) {
    for (int64_t n = 0; n < N; n++)
      for (int64_t o = 0; o < O; o++) y[n * O + o] = b[o];
  }
  gemm<T>(false, true, N, O, I, T(1), x, I, w, I, b ? T(1) : T(0), y, O);
}

template <class T>
void linear_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, int64_t N, int64_t I,
                     int64_t O) {
  if (dx) gemm<T>(false, false, N, I, O, T(1), dy, O, w, I, T(1), dx, I);
  if (dw) gemm<T>(true, false, O, I, N, T(1), dy, O, x, I, T(1), dw, I);
  if (db) {
    for (int64_t n = 0; n < N; n++)
      for (int64_t o = 0; o < O; o++) db[o] += dy[n * O + o];
  }
}

#define INSTANTIATE(T)                                                                            \
  template void relu_forward<T>(T*, const T*, int64_t);                                          \
  template void relu_backward<T>(T*, bool, const T*, const T*, int64_t);                          \
  template void add_forward<T>(T*, const T*, const T*, int64_t);                                 \
  template void add_backward<T>(T*, bool, T*, bool, const T*, int64_t);                          \
  template void add_relu_forward<T>(T*, const T*, const T*, int64_t);                           \
  template void add_relu_backward<T>(T*, bool, T*, bool, const T*, const T*, int64_t);           \
  template void sum_product_forward<T>(T*, const T*, const T*, int64_t);                         \
  template void sum_product_backward<T>(T*, const T*, const T*, int64_t);                        \
  template void mean_forward<T>(T*, const T*, int64_t);                                          \
  template void mean_backward<T>(T*, const T*, int64_t);                                         \
  template void scale_forward<T>(T*, const T*, double, int64_t);                                 \
  template void scale_backward<T>(T*, const T*, double, int64_t);                                \
  template void linear_forward<T>(T*, const T*, const T*, const T*, int64_t, int64_t, int64_t);  \
  template void linear_backward<T>(T*, T*, T*, const T*, const T*, const T*, int64_t, int64_t, int64_t);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

}  // namespace simclr::cpu
