// kernels/norm_loss.h - row-wise L2 normalisation and softmax cross-entropy.
// CPU reference in kernels/cpu/norm_loss.cpp.
//
// Shape legend: V rows (views), D feature dimension, N samples, K classes.
//
// L2 normalisation: y_v = x_v / max(|x_v|, eps). Backward (exact, |x_v|
// recomputed from x, nothing saved): dx_v = (dy_v - y_v (y_v·dy_v)) / |x_v|
// when |x_v| > eps, else dy_v / eps (the denominator is the constant eps).
//
// Cross-entropy: loss = (1/N) Σ_n (lse_n - logits[n, labels_n]) with
// lse_n = log Σ_k exp(logits[n,k]), computed stably (max subtracted first).
// The forward saves lse[N]; backward: dlogits += dloss/N·(softmax - onehot).
// Labels must lie in [0, K) (the op checks them before calling).
//
// Forwards write (=); backwards ACCUMULATE (+=) into dx / dlogits.
#pragma once
#include <cstdint>

namespace simclr::cpu {

// y[V,D] = x[V,D] / max(|x_v|, eps)
template <class T>
void l2_normalize_forward(T* y, const T* x, int64_t V, int64_t D, double eps);
// dx[V,D] += J(x)ᵀ dy[V,D]
template <class T>
void l2_normalize_backward(T* dx, const T* dy, const T* x, int64_t V, int64_t D, double eps);

// loss[1] = mean CE of logits[N,K] against labels[N] (L = int32_t or int64_t); lse[N] saved for backward
template <class T, class L>
void cross_entropy_forward(T* loss, T* lse, const T* logits, const L* labels, int64_t N, int64_t K);
// dlogits[N,K] += dloss[1]/N · (exp(logits - lse[N]) - onehot(labels[N]))
template <class T, class L>
void cross_entropy_backward(T* dlogits, const T* dloss, const T* logits, const T* lse, const L* labels, int64_t N,
                            int64_t K);

}  // namespace simclr::cpu
