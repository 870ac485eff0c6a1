// tests/emu/test_ntxent_emu.cpp - the special tests of the fused NT-Xent
// CUDA kernels (kernels/cuda/ntxent.cu) under the kernel emulator that are
// not rows of the op table (the table's kernel rows, 2N = 2 .. 1000, d = 1 ..
// 2048, bf16 and fp32, key splits and uneven ranks, run in
// tests/emu/test_op_table_emu.cpp): closed forms (identical and orthogonal
// embeddings), the launchers' argument checks, and the unfused baseline
// against the CPU reference, with guarded, NaN-poisoned buffers
// (tests/guarded.h). 4096 views belong to the GPU suite (tests/gpu).
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "engine/dtype.h"
#include "kernels/ntxent.h"
#include "tests/guarded.h"

namespace emu = simclr::emu;
using simclr::bf16;
using simclr::test::Guarded;

TEST_CASE("ntxent emu: identical embeddings give log(2N-1) and a zero gradient", "[emu][ntxent]") {
  // Closed form: every similarity is 1, so ℓ_i = log(V-1) and dL/dz = 0.
  const int64_t V = 70, D = 40;
  std::vector<float> z(V * D);
  for (int64_t i = 0; i < V; i++)
    for (int64_t k = 0; k < D; k++) z[i * D + k] = (1.0f + 0.5f * (i % 3)) * (0.1f * k - 1.5f);
  for (double tau : {0.05, 0.5}) {
    const int ks = emu::ntxent_resolve_ksplit(0, V, V);
    std::vector<unsigned char> ws(emu::ntxent_workspace_bytes(V, D, V, true, ks), 0xFF);
    std::vector<float> lse(V), dz(V * D, 0.0f);
    float loss = NAN, one = 1.0f;
    emu::ntxent_forward(&loss, lse.data(), z.data(), ws.data(), V, D, tau, 0, V, ks, nullptr);
    CHECK(std::abs(loss - std::log(69.0)) < 1e-4 * tau / 0.05);
    emu::ntxent_backward(dz.data(), z.data(), lse.data(), &one, ws.data(), V, D, tau, 0, V, ks, nullptr);
    float gmax = 0;
    for (float g : dz) gmax = std::max(gmax, std::abs(g));
    CHECK(gmax < 1e-3);  // the true value is 0; the scale of a typical gradient entry here is ~1e-1
  }
}

TEST_CASE("ntxent emu: orthogonal embeddings, closed-form loss and gradient", "[emu][ntxent]") {
  // z_i = a_i e_σ(i): every s_ik = 0 (exact in bf16), ℓ_i = log(V-1) and
  // dL/dz_i = 1/(Vτ a_i) [(2/(V-1)) Σ_{k≠i} e_σ(k) - 2 e_σ(p(i))] (tests/test_ntxent.cpp).
  const int64_t V = 40, D = 70, N = V / 2;
  std::vector<bf16> z(V * D, bf16(0.0f));
  std::vector<int> sigma(V);
  std::vector<float> a(V);
  for (int64_t i = 0; i < V; i++) {
    sigma[i] = static_cast<int>((i * 37 + 11) % D);  // distinct: 37 is invertible mod 70
    a[i] = 0.5f + 0.25f * (i % 5);
    z[i * D + sigma[i]] = bf16(a[i]);
  }
  const double tau = 0.1;
  const int ks = emu::ntxent_resolve_ksplit(2, V, V);
  std::vector<unsigned char> ws(emu::ntxent_workspace_bytes(V, D, V, false, ks), 0xFF);
  std::vector<float> lse(V);
  std::vector<bf16> dz(V * D, bf16(0.0f));
  float loss = NAN, one = 1.0f;
  emu::ntxent_forward(&loss, lse.data(), z.data(), ws.data(), V, D, tau, 0, V, ks, nullptr);
  emu::ntxent_backward(dz.data(), z.data(), lse.data(), &one, ws.data(), V, D, tau, 0, V, ks, nullptr);
  CHECK(std::abs(loss - std::log(39.0)) < 1e-5);
  double err = 0, gmax = 0;
  for (int64_t i = 0; i < V; i++) {
    std::vector<double> want(D, 0.0);
    for (int64_t k = 0; k < V; k++)
      if (k != i) want[sigma[k]] += 2.0 / (V - 1);
    want[sigma[(i + N) % V]] -= 2.0;
    for (int64_t c = 0; c < D; c++) {
      const double w = want[c] / (V * tau * a[i]);
      err = std::max(err, std::abs(static_cast<float>(dz[i * D + c]) - w));
      gmax = std::max(gmax, std::abs(w));
    }
  }
  INFO("rel err " << err / gmax);
  CHECK(err / gmax < 1e-2);  // G (2/(V-1) per key) and the output are rounded to bf16
}

TEST_CASE("ntxent emu: launcher guards", "[emu][ntxent]") {
  std::vector<float> z(8 * 4, 1.0f), lse(8);
  float loss = 0;
  std::vector<unsigned char> ws(emu::ntxent_workspace_bytes(8, 4, 8, true, 1));
  CHECK_THROWS_WITH(emu::ntxent_forward(&loss, lse.data(), z.data(), ws.data(), 8, 4, 0.01, 0, 8, 1, nullptr),
                    Catch::Contains("tau"));
  CHECK_THROWS_WITH(emu::ntxent_forward(&loss, lse.data(), z.data(), ws.data(), 7, 4, 0.1, 0, 7, 1, nullptr),
                    Catch::Contains("even"));
  CHECK_THROWS_WITH(emu::ntxent_forward(&loss, lse.data(), z.data(), ws.data(), 8, 4, 0.1, 0, 8, 0, nullptr),
                    Catch::Contains("ksplit"));
  CHECK_THROWS_WITH(emu::ntxent_forward(&loss, lse.data(), z.data(), ws.data(), 8, 4, 0.1, 3, 9, 1, nullptr),
                    Catch::Contains("local rows"));
  CHECK(emu::ntxent_resolve_ksplit(0, 8192, 8192) == 4);      // 64 row blocks x 4 = 256 of 264 slots (132 SMs)
  CHECK(emu::ntxent_resolve_ksplit(0, 131072, 131072) == 1);  // 1024 row blocks fill the device alone
  CHECK(emu::ntxent_resolve_ksplit(7, 130, 130) == 3);    // at most one split per key tile
}

TEST_CASE("ntxent emu: the unfused baseline (GEMM as a plain loop) matches the CPU reference", "[emu][ntxent]") {
  // Emulated, the cuBLAS calls become a column-major loop with cuBLAS's argument
  // conventions: this checks the baseline's kernels and its GEMM layouts.
  const int64_t V = 70, D = 33;
  const double tau = 0.2;
  std::mt19937_64 rng(9);
  std::normal_distribution<double> nd(0.0, 1.0);
  std::vector<float> z(V * D);
  for (auto& x : z) x = static_cast<float>(nd(rng));
  std::vector<bf16> zb(V * D);
  for (int64_t i = 0; i < V * D; i++) zb[i] = bf16(z[i]);
  for (bool f32 : {true, false}) {
    INFO((f32 ? "fp32" : "bf16"));
    std::vector<double> z64(V * D), rows(V), lse_ref(V), g64(V * D, 0.0);
    for (int64_t i = 0; i < V * D; i++) z64[i] = f32 ? z[i] : static_cast<float>(zb[i]);
    simclr::cpu::ntxent_forward(rows.data(), lse_ref.data(), z64.data(), V, D, tau, 0, V);
    simclr::cpu::ntxent_backward(g64.data(), z64.data(), lse_ref.data(), 1.0, V, D, tau, 0, V);
    double loss_ref = 0;
    for (double r : rows) loss_ref += r / V;
    const Guarded<unsigned char> ws(emu::ntxent_unfused_workspace_bytes(V, D, f32));
    const Guarded<float> loss(1), lse(V);
    float one = 1.0f;
    std::vector<double> g(V * D);
    if (f32) {
      const Guarded<float> dz(V * D, 0);
      emu::ntxent_unfused_forward(loss.data(), lse.data(), z.data(), ws.data(), V, D, tau, nullptr);
      emu::ntxent_unfused_backward(dz.data(), z.data(), lse.data(), &one, ws.data(), V, D, tau, nullptr);
      for (int64_t i = 0; i < V * D; i++) g[i] = dz[i];
      CHECK(dz.guards_intact());
    } else {
      const Guarded<bf16> dz(V * D, 0);
      emu::ntxent_unfused_forward(loss.data(), lse.data(), zb.data(), ws.data(), V, D, tau, nullptr);
      emu::ntxent_unfused_backward(dz.data(), zb.data(), lse.data(), &one, ws.data(), V, D, tau, nullptr);
      for (int64_t i = 0; i < V * D; i++) g[i] = static_cast<float>(dz[i]);
      CHECK(dz.guards_intact());
    }
    CHECK(ws.guards_intact());
    CHECK(loss.guards_intact());
    CHECK(lse.guards_intact());
    // fp32: plain fp32 arithmetic throughout; bf16: ẑ and dS rounded to bf16 (see the fused tolerances)
    const double logit_tol = (f32 ? 1e-5 : std::ldexp(1.0, -8)) / tau;
    CHECK(std::abs(loss[0] - loss_ref) <= 2 * logit_tol);
    for (int64_t i = 0; i < V; i++) CHECK(std::abs(lse[i] - lse_ref[i]) <= logit_tol);
    double e = 0, m = 0;
    for (int64_t i = 0; i < V * D; i++) {
      e = std::max(e, std::abs(g[i] - g64[i]));
      m = std::max(m, std::abs(g64[i]));
    }
    CHECK(e / m <= (f32 ? 1e-5 : 1.5e-2));
  }
}
