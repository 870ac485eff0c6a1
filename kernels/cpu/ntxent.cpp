// kernels/cpu/ntxent.cpp - the plain, readable reference of NT-Xent
// (kernels/ntxent.h). It is the oracle every CUDA twin is tested against, and
// is itself checked against float64 finite differences (tests/test_ntxent.cpp).
//
// Shape legend: V rows = 2N views, D features, R = r1 - r0 local rows.
//
// Positive layout (the one contract every implementation shares): z stacks
// the two views, [view 1 of images 0..N-1; view 2 of images 0..N-1], so row i
// and row p(i) = (i + N) mod 2N are the two views of one image. p(p(i)) = i.
//
// Everything is accumulated in double, whatever T is. The straightforward way:
//   ẑ = z / max(|z|, eps) for all V rows
//   forward, each local row i: s_ik = ẑ_i·ẑ_k for all k, max over k≠i,
//     lse_i = max + log Σ_{k≠i} exp(s_ik/τ - max),  ℓ_i = lse_i - s_ip/τ
//   backward, each local row j:
//     dẑ_j = dloss/(Vτ) [Σ_{k≠j} (P_jk + P_kj) ẑ_k - 2 ẑ_p(j)]
//     with P_jk = exp(s_jk/τ - lse_j), P_kj = exp(s_kj/τ - lse_k) (lse of all rows given),
//     dz_j += (dẑ_j - ẑ_j (ẑ_j·dẑ_j)) / |z_j|      (dẑ_j / eps when |z_j| <= eps)
#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/check.h"
#include "kernels/ntxent.h"

namespace simclr::cpu {

namespace {

void check_sizes(const char* what, int64_t V, int64_t D, double tau, int64_t r0, int64_t r1) {
  SIMCLR_CHECK(V >= 2 && V % 2 == 0, what, ": the number of rows (views) must be even and >= 2, got ", V);
  SIMCLR_CHECK(D >= 1, what, ": feature dimension must be >= 1, got ", D);
  SIMCLR_CHECK(tau > 0 && std::isfinite(tau), what, ": temperature must be > 0, got ", tau);
  SIMCLR_CHECK(0 <= r0 && r0 <= r1 && r1 <= V, what, ": local rows [", r0, ", ", r1, ") outside [0, ", V, ")");
}

// ẑ[V,D] in double and |z|[V].
template <class T>
void normalise(std::vector<double>& zhat, std::vector<double>& norm, const T* z, int64_t V, int64_t D) {
  zhat.resize(static_cast<size_t>(V * D));
  norm.resize(static_cast<size_t>(V));
#pragma omp parallel for if (V * D > 65536)
  for (int64_t i = 0; i < V; i++) {
    double s = 0;
    for (int64_t c = 0; c < D; c++) s += static_cast<double>(z[i * D + c]) * static_cast<double>(z[i * D + c]);
    norm[i] = std::sqrt(s);
    double inv = 1.0 / std::max(norm[i], kNtxentEps);
    for (int64_t c = 0; c < D; c++) zhat[i * D + c] = static_cast<double>(z[i * D + c]) * inv;
  }
}

// s[V] = ẑ_i · ẑ_k for all k.
void similarity_row(double* s, const std::vector<double>& zhat, int64_t i, int64_t V, int64_t D) {
  const double* a = &zhat[i * D];
  for (int64_t k = 0; k < V; k++) {
    const double* b = &zhat[k * D];
    double acc = 0;
    for (int64_t c = 0; c < D; c++) acc += a[c] * b[c];
    s[k] = acc;
  }
}

}  // namespace

template <class T>
void ntxent_forward(T* row_loss, T* lse, const T* z, int64_t V, int64_t D, double tau, int64_t r0, int64_t r1) {
  check_sizes("ntxent_forward", V, D, tau, r0, r1);
  const int64_t N = V / 2;
  std::vector<double> zhat, norm;
  normalise(zhat, norm, z, V, D);
#pragma omp parallel if ((r1 - r0) * V * D > 65536)
  {
    std::vector<double> s(static_cast<size_t>(V));
#pragma omp for
    for (int64_t i = r0; i < r1; i++) {
      similarity_row(s.data(), zhat, i, V, D);
      double mx = -INFINITY;
      for (int64_t k = 0; k < V; k++)
        if (k != i) mx = std::max(mx, s[k] / tau);
      double sum = 0;
      for (int64_t k = 0; k < V; k++)
        if (k != i) sum += std::exp(s[k] / tau - mx);
      const double l = mx + std::log(sum);
      const int64_t p = (i + N) % V;
      if (lse) lse[i - r0] = static_cast<T>(l);
      if (row_loss) row_loss[i - r0] = static_cast<T>(l - s[p] / tau);
    }
  }
}

template <class T>
void ntxent_backward(T* dz, const T* z, const T* lse, double dloss, int64_t V, int64_t D, double tau, int64_t r0,
                     int64_t r1) {
  check_sizes("ntxent_backward", V, D, tau, r0, r1);
  const int64_t N = V / 2;
  std::vector<double> zhat, norm;
  normalise(zhat, norm, z, V, D);
  const double c = dloss / (static_cast<double>(V) * tau);
#pragma omp parallel if ((r1 - r0) * V * D > 65536)
  {
    std::vector<double> s(static_cast<size_t>(V)), g(static_cast<size_t>(D));
#pragma omp for
    for (int64_t j = r0; j < r1; j++) {
      similarity_row(s.data(), zhat, j, V, D);
      std::fill(g.begin(), g.end(), 0.0);
      for (int64_t k = 0; k < V; k++) {
        if (k == j) continue;
        const double pjk = std::exp(s[k] / tau - static_cast<double>(lse[j]));
        const double pkj = std::exp(s[k] / tau - static_cast<double>(lse[k]));  // s_kj = s_jk
        const double w = pjk + pkj;
        for (int64_t col = 0; col < D; col++) g[col] += w * zhat[k * D + col];
      }
      const int64_t p = (j + N) % V;
      for (int64_t col = 0; col < D; col++) g[col] = c * (g[col] - 2.0 * zhat[p * D + col]);
      // back through ẑ = z / max(|z|, eps)
      const double* zh = &zhat[j * D];
      T* out = dz + (j - r0) * D;
      if (norm[j] > kNtxentEps) {
        double dot = 0;
        for (int64_t col = 0; col < D; col++) dot += zh[col] * g[col];
        for (int64_t col = 0; col < D; col++)
          out[col] = static_cast<T>(static_cast<double>(out[col]) + (g[col] - zh[col] * dot) / norm[j]);
      } else {
        for (int64_t col = 0; col < D; col++)
          out[col] = static_cast<T>(static_cast<double>(out[col]) + g[col] / kNtxentEps);
      }
    }
  }
}

template <class T>
size_t ntxent_loss_workspace_bytes(int64_t, int64_t, int64_t) {
  return 0;
}

template <class T>
void ntxent_loss_forward(T* loss, T* lse, const T* z, void*, int64_t V, int64_t D, double tau, int64_t r0,
                         int64_t r1) {
  std::vector<T> rows(static_cast<size_t>(std::max<int64_t>(r1 - r0, 0)));
  ntxent_forward(rows.data(), lse, z, V, D, tau, r0, r1);
  double s = 0;
  for (const T& l : rows) s += static_cast<double>(l);
  loss[0] = static_cast<T>(s / static_cast<double>(V));
}

template <class T>
void ntxent_loss_backward(T* dz, const T* z, const T* lse, const T* dloss, void*, int64_t V, int64_t D, double tau,
                          int64_t r0, int64_t r1) {
  ntxent_backward(dz, z, lse, static_cast<double>(dloss[0]), V, D, tau, r0, r1);
}

#define INSTANTIATE(T)                                                                                          \
  template size_t ntxent_loss_workspace_bytes<T>(int64_t, int64_t, int64_t);                                   \
  template void ntxent_loss_forward<T>(T*, T*, const T*, void*, int64_t, int64_t, double, int64_t, int64_t);   \
  template void ntxent_loss_backward<T>(T*, const T*, const T*, const T*, void*, int64_t, int64_t, double,     \
                                        int64_t, int64_t);
INSTANTIATE(float)
INSTANTIATE(double)
#undef INSTANTIATE

template void ntxent_forward<float>(float*, float*, const float*, int64_t, int64_t, double, int64_t, int64_t);
template void ntxent_forward<double>(double*, double*, const double*, int64_t, int64_t, double, int64_t, int64_t);
template void ntxent_backward<float>(float*, const float*, const float*, double, int64_t, int64_t, double, int64_t,
                                     int64_t);
template void ntxent_backward<double>(double*, const double*, const double*, double, int64_t, int64_t, double,
                                      int64_t, int64_t);

}  // namespace simclr::cpu
