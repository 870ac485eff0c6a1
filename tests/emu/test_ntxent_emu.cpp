// tests/emu/test_ntxent_emu.cpp - the fused NT-Xent CUDA kernels
// (kernels/cuda/ntxent.cu) executed by the kernel emulator, against the CPU
// reference (kernels/cpu/ntxent.cpp) in float64 on the same (rounded) inputs.
//
// Every call runs with its outputs poisoned (loss and lse filled with NaN,
// the whole workspace with NaN bytes), guard bytes around every buffer, and dz
// pre-filled with a known base (the backward accumulates). The table covers
// 2N = 2 .. 258 with odd tails in rows, keys and features, d = 1 .. 320
// (resident and streamed query tiles, one and two output chunks per slab),
// τ = 0.05 .. 0.5, bf16 and fp32, explicit key splits and uneven simulated
// ranks; then 1000 views and d = 2048. 4096 views belong to the GPU suite
// (tests/gpu), as they take minutes here.
//
// The case table, the inputs, the float64 reference and the tolerances (with
// their reasons) are shared with the GPU suite: tests/ntxent_case.h.
// Set NTXENT_EMU_VERBOSE=1 to print the errors of every case.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/dtype.h"
#include "kernels/ntxent.h"
#include "tests/ntxent_case.h"

namespace emu = simclr::emu;
using namespace ntxent_case;
using simclr::bf16;

namespace {

// A buffer of n T's with 256 guard bytes (0xA5) on each side.
template <class T>
struct Guarded {
  static constexpr size_t kGuard = 256;
  std::vector<unsigned char> raw;
  size_t n;
  Guarded(size_t n_, unsigned char fill) : raw(n_ * sizeof(T) + 2 * kGuard, 0xA5), n(n_) {
    std::memset(raw.data() + kGuard, fill, n * sizeof(T));
  }
  T* data() { return reinterpret_cast<T*>(raw.data() + kGuard); }
  T& operator[](size_t i) { return data()[i]; }
  bool guards_intact() const {
    for (size_t i = 0; i < kGuard; i++)
      if (raw[i] != 0xA5 || raw[raw.size() - 1 - i] != 0xA5) return false;
    return true;
  }
};

// Runs forward + backward of the emulated kernels on the rows of each
// simulated rank, and compares with the float64 CPU reference.
template <class T>
Result run_case(const Case& c, uint64_t seed) {
  const int64_t V = c.V, D = c.D;
  const Reference<T> ref = make_reference<T>(c, seed);
  const std::vector<int64_t>& b = ref.bounds;

  // emulated kernels, rank by rank (uneven split)
  Guarded<T> zg(V * D, 0);
  std::memcpy(zg.data(), ref.z.data(), V * D * sizeof(T));
  Guarded<float> lse_all(V, 0xFF);
  double loss = 0;
  for (int r = 0; r < c.ranks; r++) {
    const int64_t R = b[r + 1] - b[r];
    const int ks = emu::ntxent_resolve_ksplit(c.ksplit, V, R);
    Guarded<unsigned char> ws(emu::ntxent_workspace_bytes(V, D, R, std::is_same_v<T, float>, ks), 0xFF);
    Guarded<float> lg(1, 0xFF), lse(R, 0xFF);
    emu::ntxent_forward(lg.data(), lse.data(), zg.data(), ws.data(), V, D, c.tau, b[r], b[r + 1], ks, nullptr);
    REQUIRE(lg.guards_intact());
    REQUIRE(lse.guards_intact());
    REQUIRE(ws.guards_intact());
    REQUIRE(std::isfinite(lg[0]));
    loss += lg[0];
    for (int64_t i = 0; i < R; i++) lse_all[b[r] + i] = lse[i];
  }
  REQUIRE(zg.guards_intact());
  // backward: each rank its own rows, from the gathered lse; dz starts at a known base
  Guarded<float> dl(1, 0);
  dl[0] = static_cast<float>(ref.dloss);
  Result res;
  for (int r = 0; r < c.ranks; r++) {
    const int64_t R = b[r + 1] - b[r];
    const int ks = emu::ntxent_resolve_ksplit(c.ksplit, V, R);
    Guarded<unsigned char> ws(emu::ntxent_workspace_bytes(V, D, R, std::is_same_v<T, float>, ks), 0xFF);
    const std::vector<T> base = ref.dz_base(b[r], R, D);
    Guarded<T> dz(R * D, 0);
    std::copy(base.begin(), base.end(), dz.data());
    emu::ntxent_backward(dz.data(), zg.data(), lse_all.data(), dl.data(), ws.data(), V, D, c.tau, b[r], b[r + 1], ks,
                         nullptr);
    REQUIRE(dz.guards_intact());
    REQUIRE(ws.guards_intact());
    res.add_grad(ref, base, dz.data(), b[r], R, D);
  }
  res.finish(ref, c, loss, lse_all.data());
  return res;
}

template <class T>
void check_case(const Case& c, uint64_t seed) {
  const Result r = run_case<T>(c, seed);
  if (std::getenv("NTXENT_EMU_VERBOSE"))
    WARN((std::is_same_v<T, bf16> ? "bf16" : "fp32") << " 2N=" << c.V << " d=" << c.D << " tau=" << c.tau
         << ": errors loss " << r.loss_err << " lse " << r.lse_err << " grad " << r.grad_err);
  check_result<T>(c, r);
}


}  // namespace

TEST_CASE("ntxent emu: bf16 kernels match the CPU reference", "[emu][ntxent]") {
  uint64_t seed = 1;
  for (const Case& c : table()) check_case<bf16>(c, seed++);
}

TEST_CASE("ntxent emu: fp32 (bf16x3) kernels match the CPU reference", "[emu][ntxent]") {
  uint64_t seed = 100;
  for (const Case& c : table()) check_case<float>(c, seed++);
}

TEST_CASE("ntxent emu: 1000 views and d = 2048", "[emu][ntxent]") {
  // The larger sizes that still emulate in seconds (4096 views are
  // the GPU suite's): many row blocks and key tiles with tails, 16 feature
  // slabs.
  check_case<bf16>(Case{1000, 128, 0.1, 0, 1}, 300);
  check_case<float>(Case{1000, 64, 0.05, 0, 3}, 301);
  check_case<bf16>(Case{40, 2048, 0.5, 0, 1}, 302);
  check_case<float>(Case{40, 2048, 0.1, 2, 2}, 303);
}

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
    Guarded<unsigned char> ws(emu::ntxent_unfused_workspace_bytes(V, D, f32), 0xFF);
    Guarded<float> loss(1, 0xFF), lse(V, 0xFF);
    float one = 1.0f;
    std::vector<double> g(V * D);
    if (f32) {
      std::vector<float> dz(V * D, 0.0f);
      emu::ntxent_unfused_forward(loss.data(), lse.data(), z.data(), ws.data(), V, D, tau, nullptr);
      emu::ntxent_unfused_backward(dz.data(), z.data(), lse.data(), &one, ws.data(), V, D, tau, nullptr);
      for (int64_t i = 0; i < V * D; i++) g[i] = dz[i];
    } else {
      std::vector<bf16> dz(V * D, bf16(0.0f));
      emu::ntxent_unfused_forward(loss.data(), lse.data(), zb.data(), ws.data(), V, D, tau, nullptr);
      emu::ntxent_unfused_backward(dz.data(), zb.data(), lse.data(), &one, ws.data(), V, D, tau, nullptr);
      for (int64_t i = 0; i < V * D; i++) g[i] = static_cast<float>(dz[i]);
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
