// tests/ntxent_case.h - what the emulated (tests/emu/test_ntxent_emu.cpp) and
// the real-GPU (tests/gpu/test_ntxent_gpu.cpp) NT-Xent kernel tests share:
// the case table, the inputs of a case and their float64 CPU reference, and
// the tolerances. Each test file only runs the kernels its own way (host
// buffers under the emulator, device buffers on the GPU).
//
// Inputs: random normal z (V x D), every 5th positive pair made similar
// (a realistic, peaked softmax), rounded to T; the reference sees the rounded
// values in float64. Rows are split over `ranks` simulated ranks unevenly
// (bounds[r] = V r² / ranks²). The backward starts dz at -0.5·(expected
// gradient) rounded to T, so a kernel that overwrites instead of accumulating
// is caught.
//
// Tolerances (with their reasons):
//   bf16: ẑ is rounded to bf16 (2^-9 relative per element), so each
//     similarity is off by at most 2^-8 (Cauchy-Schwarz over unit vectors)
//     and each logit by 2^-8/τ; lse is 1-Lipschitz in the logits (max norm),
//     ℓ_i = lse_i - s_ip/τ moves by at most twice that. The gradient (bf16 G
//     and ẑ_k in the product, 2^-9 each) is held to 1.5e-2 of its largest
//     entry (observed <= 3.3e-3 over the table under emulation).
//   fp32 (split bf16x3): ẑ to ~2^-17, products to ~3·2^-18 per similarity:
//     logits within 2^-15/τ; the gradient within 5e-5 of its largest entry
//     (observed <= 6e-6).
//   The emulator computes exp2 exactly and sums mma products in order; the
//   hardware's ex2.approx (2 ulp) and accumulation order are far inside these.
#pragma once
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <type_traits>
#include <vector>

#include "engine/dtype.h"
#include "kernels/ntxent.h"

namespace ntxent_case {

using simclr::bf16;

inline double value(float x) { return x; }
inline double value(bf16 x) { return static_cast<float>(x); }
template <class T>
T make(double x) {
  if constexpr (std::is_same_v<T, bf16>)
    return bf16(static_cast<float>(x));
  else
    return static_cast<T>(static_cast<float>(x));
}

struct Case {
  int64_t V, D;
  double tau;
  int ksplit;  // 0: auto
  int ranks;   // simulated ranks (1: single device)
};

// The table both suites run (the GPU suite adds larger sizes).
inline const std::vector<Case>& table() {
  static const std::vector<Case> t = {
      // V    D     tau  ksplit ranks
      {2, 3, 0.1, 0, 1},       // one pair: the positive is the only key
      {6, 1, 0.5, 0, 1},       // d = 1: ẑ = ±1
      {6, 64, 0.05, 0, 1},     // one exact chunk
      {130, 3, 0.1, 2, 1},     // 2 row blocks (tail of 2), 3 key tiles (tail of 2), key split
      {130, 128, 0.05, 0, 1},  // the SimCLR head width: bf16 two-chunk slab
      {130, 128, 0.1, 3, 3},   // ... with a key split and 3 uneven ranks
      {130, 64, 0.5, 1, 2},
      {66, 200, 0.1, 2, 1},    // Dp = 256: bf16 resident, fp32 streamed queries
      {34, 300, 0.5, 1, 1},    // Dp = 320: streamed queries, 5 one-chunk slabs
      {258, 130, 0.05, 3, 2},  // 3 row blocks, 5 key tiles, Dp = 192
  };
  return t;
}

// A case's inputs and its float64 reference.
template <class T>
struct Reference {
  std::vector<T> z;                 // V x D, what the kernels read
  std::vector<double> z64;          // the same values
  std::vector<double> lse, dz;      // per-row lse, dL/dz for dloss
  double loss = 0, dloss = 1.7;
  std::vector<int64_t> bounds;      // rank r holds rows [bounds[r], bounds[r+1])
  // dz's starting value for rows [b, b + R) (accumulation check)
  std::vector<T> dz_base(int64_t b, int64_t R, int64_t D) const {
    std::vector<T> base(R * D);
    for (int64_t i = 0; i < R * D; i++) base[i] = make<T>(-0.5 * dz[b * D + i]);
    return base;
  }
};

template <class T>
Reference<T> make_reference(const Case& c, uint64_t seed) {
  const int64_t V = c.V, D = c.D;
  Reference<T> r;
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  r.z.resize(V * D);
  for (auto& x : r.z) x = make<T>(nd(rng));
  for (int64_t i = 0; i < V / 2; i += 5)
    for (int64_t k = 0; k < D; k++) r.z[(i + V / 2) * D + k] = make<T>(value(r.z[i * D + k]) + 0.3 * nd(rng));
  r.z64.resize(V * D);
  for (int64_t i = 0; i < V * D; i++) r.z64[i] = value(r.z[i]);
  std::vector<double> rows(V);
  r.lse.assign(V, 0.0);
  r.dz.assign(V * D, 0.0);
  simclr::cpu::ntxent_forward(rows.data(), r.lse.data(), r.z64.data(), V, D, c.tau, 0, V);
  for (double x : rows) r.loss += x;
  r.loss /= static_cast<double>(V);
  simclr::cpu::ntxent_backward(r.dz.data(), r.z64.data(), r.lse.data(), r.dloss, V, D, c.tau, 0, V);
  r.bounds.resize(c.ranks + 1);
  for (int k = 0; k <= c.ranks; k++) r.bounds[k] = V * k * k / (c.ranks * c.ranks);
  return r;
}

// Errors of one run: loss and lse absolute, gradient relative to its largest
// entry (or to the natural scale dloss/(Vτ|z|) when the true gradient
// vanishes, 2N = 2 and d = 1).
struct Result {
  double loss_err = 0, lse_err = 0, grad_err = 0;
  double gerr = 0, gmax = 0;  // accumulated by add_grad
  // dz_got: rows [b, b + R) after the backward (base + gradient).
  template <class T>
  void add_grad(const Reference<T>& ref, const std::vector<T>& base, const T* dz_got, int64_t b, int64_t R,
                int64_t D) {
    for (int64_t i = 0; i < R * D; i++) {
      const double got = value(dz_got[i]) - value(base[i]), want = ref.dz[b * D + i];
      REQUIRE(std::isfinite(got));
      gmax = std::max(gmax, std::abs(want));
      gerr = std::max(gerr, std::abs(got - want));
    }
  }
  template <class T>
  void finish(const Reference<T>& ref, const Case& c, double loss, const float* lse_all) {
    loss_err = std::abs(loss - ref.loss);
    for (int64_t i = 0; i < c.V; i++) {
      REQUIRE(std::isfinite(lse_all[i]));
      lse_err = std::max(lse_err, std::abs(lse_all[i] - ref.lse[i]));
    }
    double znorm = 0;
    for (double x : ref.z64) znorm += x * x;
    znorm = std::sqrt(znorm / c.V);
    grad_err = gerr / std::max(gmax, ref.dloss / (c.V * c.tau * znorm));
  }
};

// The tolerances above.
template <class T>
void check_result(const Case& c, const Result& r) {
  const bool is_bf16 = std::is_same_v<T, bf16>;
  INFO((is_bf16 ? "bf16" : "fp32") << " 2N=" << c.V << " d=" << c.D << " tau=" << c.tau << " ksplit=" << c.ksplit
                                   << " ranks=" << c.ranks);
  INFO("loss err " << r.loss_err << ", lse err " << r.lse_err << ", grad rel err " << r.grad_err);
  const double logit_tol = (is_bf16 ? std::ldexp(1.0, -8) : std::ldexp(1.0, -15)) / c.tau + 1e-5;
  CHECK(r.lse_err <= logit_tol);
  CHECK(r.loss_err <= 2 * logit_tol);
  CHECK(r.grad_err <= (is_bf16 ? 1.5e-2 : 5e-5));
}

}  // namespace ntxent_case
