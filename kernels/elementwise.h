// kernels/elementwise.h - relu, add, scale, reductions and linear: raw-pointer
// kernels. CPU reference in kernels/cpu/elementwise.cpp. Arguments: outputs,
// inputs, sizes. Backward kernels ACCUMULATE (+=) into their gradient outputs
// (relu_backward can also write (=), for a gradient buffer not yet filled).
#pragma once
#include <cstdint>

namespace simclr::cpu {

// y[n] = max(x, 0)
template <class T> void relu_forward(T* y, const T* x, int64_t n);
// dx[n] += dy * (y > 0) when accumulate, else dx[n] = dy * (y > 0)   (y: the forward output)
template <class T> void relu_backward(T* dx, bool accumulate, const T* dy, const T* y, int64_t n);
// y[n] = a + b
template <class T> void add_forward(T* y, const T* a, const T* b, int64_t n);
// y[n] = max(a + b, 0)   (a residual block's sum and ReLU, one sweep)
template <class T> void add_relu_forward(T* y, const T* a, const T* b, int64_t n);
// g = dy * (y > 0); da (+)= g, db (+)= g, each += when its accumulate flag is set,
// else =   (da or db may be null; y: the forward output)
template <class T>
void add_relu_backward(T* da, bool accumulate_a, T* db, bool accumulate_b, const T* dy, const T* y, int64_t n);
// y[n] += s * x
template <class T> void axpy(T* y, const T* x, T s, int64_t n);
// returns Σ a_i r_i (accumulated in double)
template <class T> double dot(const T* a, const T* r, int64_t n);

// y[N,O] = x[N,I] w[O,I]^T + b[O]   (b may be null)
template <class T> void linear_forward(T* y, const T* x, const T* w, const T* b, int64_t N, int64_t I, int64_t O);
// dx[N,I] += dy w; dw[O,I] += dy^T x; db[O] += Σ_n dy   (any output pointer may be null)
template <class T>
void linear_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, int64_t N, int64_t I, int64_t O);

}  // namespace simclr::cpu
