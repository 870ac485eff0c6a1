// kernels/cpu/elementwise.cpp - CPU reference of kernels/elementwise.h, for
// f32 and f64, and the bf16 kernels of the CPU backend (train.precision bf16):
// the same code over the storage type T, arithmetic in acc_t<T>
// (kernels/cpu/acc.h: T itself for f32/f64, f32 for bf16).
#include "kernels/elementwise.h"

#include <algorithm>
#include <vector>

#include "engine/blas.h"
#include "kernels/cpu/acc.h"

namespace simclr::cpu {

namespace {
// out (+)= dy * (y > 0). dy is loaded unconditionally so that the select
// compiles to a blend: a conditional load does not vectorise without masked
// loads and leaves a branch that mispredicts on about half of the elements.
template <class T>
SIMCLR_CPU_CLONES void relu_grad_into(T* out, bool accumulate, const T* dy, const T* y, int64_t n) {
  using A = acc_t<T>;
  if (!out) return;
  if (accumulate) {
#pragma omp parallel for simd if (n > 32768)
    for (int64_t i = 0; i < n; i++) {
      const A g = ld(dy[i]);
      out[i] = st<T>(ld(out[i]) + (ld(y[i]) > A(0) ? g : A(0)));
    }
  } else {
#pragma omp parallel for simd if (n > 32768)
    for (int64_t i = 0; i < n; i++) {
      const A g = ld(dy[i]);
      out[i] = st<T>(ld(y[i]) > A(0) ? g : A(0));
    }
  }
}

// out (+)= src
template <class T>
SIMCLR_CPU_CLONES void copy_or_add(T* out, bool accumulate, const T* src, int64_t n) {
  if (!out) return;
  if (accumulate) {
#pragma omp parallel for simd if (n > 32768)
    for (int64_t i = 0; i < n; i++) out[i] = st<T>(ld(out[i]) + ld(src[i]));
  } else {
    std::copy(src, src + n, out);
  }
}

// y[n] += s * x
template <class T>
SIMCLR_CPU_CLONES void axpy(T* y, const T* x, acc_t<T> s, int64_t n) {
#pragma omp parallel for simd if (n > 32768)
  for (int64_t i = 0; i < n; i++) y[i] = st<T>(ld(y[i]) + s * ld(x[i]));
}
}  // namespace

template <class T>
SIMCLR_CPU_CLONES void relu_forward(T* y, const T* x, int64_t n) {
#pragma omp parallel for simd if (n > 32768)
  for (int64_t i = 0; i < n; i++) {
    const acc_t<T> v = ld(x[i]);
    y[i] = st<T>(v > acc_t<T>(0) ? v : acc_t<T>(0));
  }
}

template <class T>
void relu_backward(T* dx, bool accumulate, const T* dy, const T* y, int64_t n) {
  relu_grad_into(dx, accumulate, dy, y, n);
}

template <class T>
SIMCLR_CPU_CLONES void add_forward(T* y, const T* a, const T* b, int64_t n) {
#pragma omp parallel for simd if (n > 32768)
  for (int64_t i = 0; i < n; i++) y[i] = st<T>(ld(a[i]) + ld(b[i]));
}

template <class T>
void add_backward(T* da, bool accumulate_a, T* db, bool accumulate_b, const T* dy, int64_t n) {
  copy_or_add(da, accumulate_a, dy, n);
  copy_or_add(db, accumulate_b, dy, n);
}

template <class T>
SIMCLR_CPU_CLONES void add_relu_forward(T* y, const T* a, const T* b, int64_t n) {
#pragma omp parallel for simd if (n > 32768)
  for (int64_t i = 0; i < n; i++) y[i] = st<T>(std::max(ld(a[i]) + ld(b[i]), acc_t<T>(0)));
}

template <class T>
SIMCLR_CPU_CLONES void add_relu_backward(T* da, bool accumulate_a, T* db, bool accumulate_b, const T* dy, const T* y, int64_t n) {
  if (da && db && !accumulate_a && !accumulate_b) {  // the common case: both fresh, one sweep writes both
#pragma omp parallel for simd if (n > 32768)
    for (int64_t i = 0; i < n; i++) {
      using A = acc_t<T>;
      const A g0 = ld(dy[i]);
      const A g = ld(y[i]) > A(0) ? g0 : A(0);
      da[i] = st<T>(g);
      db[i] = st<T>(g);
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
  for (int64_t i = 0; i < n; i++) s += static_cast<double>(ld(a[i])) * static_cast<double>(ld(r[i]));
  y[0] = st<T>(s);
}

template <class T>
void sum_product_backward(T* da, const T* r, const T* dy, int64_t n) {
  axpy(da, r, ld(dy[0]), n);
}

template <class T>
void mean_forward(T* y, const T* x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += static_cast<double>(ld(x[i]));
  y[0] = st<T>(s / static_cast<double>(n));
}

template <class T>
void mean_backward(T* dx, const T* dy, int64_t n) {
  using A = acc_t<T>;
  const A g = ld(dy[0]) / static_cast<A>(n);
  for (int64_t i = 0; i < n; i++) dx[i] = st<T>(ld(dx[i]) + g);
}

template <class T>
SIMCLR_CPU_CLONES void scale_forward(T* y, const T* x, double s, int64_t n) {
  using A = acc_t<T>;
  const A a = static_cast<A>(s);
  // 0 + a·x, not a·x: a zero product is +0, as it always was (y = 0; y += a·x)
#pragma omp parallel for simd if (n > 32768)
  for (int64_t i = 0; i < n; i++) y[i] = st<T>(A(0) + a * ld(x[i]));
}

template <class T>
void scale_backward(T* dx, const T* dy, double s, int64_t n) {
  axpy(dx, dy, static_cast<acc_t<T>>(s), n);
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

// bf16 linear: the operands widened to f32 (exact), the f32 GEMMs (fp32
// accumulation), each result rounded once into bf16; the accumulating outputs
// as y = bf16(f32(y) + f32 result). The head's GEMMs are small (at most a few
// hundred rows and columns), so the widening costs little beside the convolutions.
namespace {
void narrow_into(bf16* y, const std::vector<float>& v, bool accumulate) {
  for (size_t i = 0; i < v.size(); i++) y[i] = st<bf16>(accumulate ? ld(y[i]) + v[i] : v[i]);
}
}  // namespace

template <>
void linear_forward<bf16>(bf16* y, const bf16* x, const bf16* w, const bf16* b, int64_t N, int64_t I, int64_t O) {
  const std::vector<float> xf = widen(x, N * I), wf = widen(w, O * I), bf = widen(b, O);
  std::vector<float> yf(static_cast<size_t>(N * O));
  linear_forward<float>(yf.data(), xf.data(), wf.data(), b ? bf.data() : nullptr, N, I, O);
  narrow_into(y, yf, false);
}

template <>
void linear_backward<bf16>(bf16* dx, bf16* dw, bf16* db, const bf16* dy, const bf16* x, const bf16* w, int64_t N,
                           int64_t I, int64_t O) {
  const std::vector<float> dyf = widen(dy, N * O), xf = widen(dw ? x : nullptr, N * I),
                           wf = widen(dx ? w : nullptr, O * I);
  std::vector<float> dxf(static_cast<size_t>(dx ? N * I : 0)), dwf(static_cast<size_t>(dw ? O * I : 0)),
      dbf(static_cast<size_t>(db ? O : 0));
  linear_backward<float>(dx ? dxf.data() : nullptr, dw ? dwf.data() : nullptr, db ? dbf.data() : nullptr, dyf.data(),
                         xf.data(), wf.data(), N, I, O);
  if (dx) narrow_into(dx, dxf, true);
  if (dw) narrow_into(dw, dwf, true);
  if (db) narrow_into(db, dbf, true);
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
INSTANTIATE(bf16)  // linear: the specialisations above
#undef INSTANTIATE

}  // namespace simclr::cpu
