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
// ranks. 4096 views and d = 2048 belong to the GPU suite (tests/gpu).
//
// Tolerances (with their reasons):
//   bf16: ẑ is rounded to bf16 (2^-9 relative per element), so each
//     similarity is off by at most 2^-8 (Cauchy-Schwarz over unit vectors)
//     and each logit by 2^-8/τ; lse is 1-Lipschitz in the logits (max norm),
//     ℓ_i = lse_i - s_ip/τ moves by at most twice that. The gradient (bf16 G
//     and ẑ_k in the product, 2^-9 each) is held to 1.5e-2 of its largest
//     entry (observed <= 3.3e-3 over this table).
//   fp32 (split bf16x3): ẑ to ~2^-17, products to ~3·2^-18 per similarity:
//     logits within 2^-15/τ; the gradient within 5e-5 of its largest entry
//     (observed <= 6e-6).
//   Set NTXENT_EMU_VERBOSE=1 to print the errors of every row.
//   The emulator computes exp2 exactly and sums mma products in order; the
//   hardware's ex2.approx (2 ulp) and accumulation order are far inside these.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/dtype.h"
#include "kernels/ntxent.h"

namespace emu = simclr::emu;
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

double value(float x) { return x; }
double value(bf16 x) { return static_cast<float>(x); }
template <class T>
T make(double x) {
  return static_cast<T>(static_cast<float>(x));
}
template <>
bf16 make<bf16>(double x) {
  return bf16(static_cast<float>(x));
}

struct Case {
  int64_t V, D;
  double tau;
  int ksplit;  // 0: auto
  int ranks;   // simulated ranks (1: single device)
};

struct Result {
  double loss_err = 0, lse_err = 0, grad_err = 0;  // loss/lse: absolute; grad: relative to max |ref|
};

// Runs forward + backward of the emulated kernels on the rows of each
// simulated rank, and compares with the float64 CPU reference.
template <class T>
Result run_case(const Case& c, uint64_t seed) {
  const int64_t V = c.V, D = c.D;
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  // random embeddings; every 5th positive pair made similar (a realistic, peaked softmax)
  std::vector<T> z(V * D);
  for (auto& x : z) x = make<T>(nd(rng));
  for (int64_t i = 0; i < V / 2; i += 5)
    for (int64_t k = 0; k < D; k++) z[(i + V / 2) * D + k] = make<T>(value(z[i * D + k]) + 0.3 * nd(rng));
  std::vector<double> z64(V * D);
  for (int64_t i = 0; i < V * D; i++) z64[i] = value(z[i]);

  // reference
  std::vector<double> rows(V), lse_ref(V), dz_ref(V * D, 0.0);
  simclr::cpu::ntxent_forward(rows.data(), lse_ref.data(), z64.data(), V, D, c.tau, 0, V);
  double loss_ref = 0;
  for (double r : rows) loss_ref += r;
  loss_ref /= static_cast<double>(V);
  const double dloss = 1.7;
  simclr::cpu::ntxent_backward(dz_ref.data(), z64.data(), lse_ref.data(), dloss, V, D, c.tau, 0, V);

  // emulated kernels, rank by rank (uneven split)
  std::vector<int64_t> b(c.ranks + 1);
  for (int r = 0; r <= c.ranks; r++) b[r] = V * r * r / (c.ranks * c.ranks);
  Guarded<T> zg(V * D, 0);
  std::memcpy(zg.data(), z.data(), V * D * sizeof(T));
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
  Result res;
  res.loss_err = std::abs(loss - loss_ref);
  for (int64_t i = 0; i < V; i++) {
    REQUIRE(std::isfinite(lse_all[i]));
    res.lse_err = std::max(res.lse_err, std::abs(lse_all[i] - lse_ref[i]));
  }
  // backward: each rank its own rows, from the gathered lse; dz starts at a known base
  Guarded<float> dl(1, 0);
  dl[0] = static_cast<float>(dloss);
  double gmax = 0, gerr = 0;
  for (int r = 0; r < c.ranks; r++) {
    const int64_t R = b[r + 1] - b[r];
    const int ks = emu::ntxent_resolve_ksplit(c.ksplit, V, R);
    Guarded<unsigned char> ws(emu::ntxent_workspace_bytes(V, D, R, std::is_same_v<T, float>, ks), 0xFF);
    // dz starts at -0.5·(expected), rounded to T: the result must be base + gradient
    Guarded<T> dz(R * D, 0);
    for (int64_t i = 0; i < R * D; i++) dz[i] = make<T>(-0.5 * dz_ref[b[r] * D + i]);
    emu::ntxent_backward(dz.data(), zg.data(), lse_all.data(), dl.data(), ws.data(), V, D, c.tau, b[r], b[r + 1], ks,
                         nullptr);
    REQUIRE(dz.guards_intact());
    REQUIRE(ws.guards_intact());
    for (int64_t i = 0; i < R * D; i++) {
      const double got = value(dz[i]) - value(make<T>(-0.5 * dz_ref[b[r] * D + i])), want = dz_ref[b[r] * D + i];
      REQUIRE(std::isfinite(got));
      gmax = std::max(gmax, std::abs(want));
      gerr = std::max(gerr, std::abs(got - want));
    }
  }
  // relative to the largest entry, or to the natural scale dloss/(Vτ|z|) when
  // the true gradient vanishes (2N = 2, d = 1)
  double znorm = 0;
  for (double x : z64) znorm += x * x;
  znorm = std::sqrt(znorm / V);
  res.grad_err = gerr / std::max(gmax, dloss / (V * c.tau * znorm));
  return res;
}

template <class T>
void check_case(const Case& c, uint64_t seed) {
  const bool is_bf16 = std::is_same_v<T, bf16>;
  INFO((is_bf16 ? "bf16" : "fp32") << " 2N=" << c.V << " d=" << c.D << " tau=" << c.tau << " ksplit=" << c.ksplit
                                   << " ranks=" << c.ranks);
  const Result r = run_case<T>(c, seed);
  if (std::getenv("NTXENT_EMU_VERBOSE")) WARN("errors: loss " << r.loss_err << " lse " << r.lse_err << " grad " << r.grad_err);
  INFO("loss err " << r.loss_err << ", lse err " << r.lse_err << ", grad rel err " << r.grad_err);
  const double logit_tol = (is_bf16 ? std::ldexp(1.0, -8) : std::ldexp(1.0, -15)) / c.tau + 1e-5;
  CHECK(r.lse_err <= logit_tol);
  CHECK(r.loss_err <= 2 * logit_tol);
  CHECK(r.grad_err <= (is_bf16 ? 1.5e-2 : 5e-5));
}

const Case kCases[] = {
    // V    D     tau  ksplit ranks
    {2, 3, 0.1, 0, 1},      // one pair: the positive is the only key
    {6, 1, 0.5, 0, 1},      // d = 1: ẑ = ±1
    {6, 64, 0.05, 0, 1},    // one exact chunk
    {130, 3, 0.1, 2, 1},    // 2 row blocks (tail of 2), 3 key tiles (tail of 2), key split
    {130, 128, 0.05, 0, 1}, // the SimCLR head width: bf16 two-chunk slab
    {130, 128, 0.1, 3, 3},  // ... with a key split and 3 uneven ranks
    {130, 64, 0.5, 1, 2},
    {66, 200, 0.1, 2, 1},   // Dp = 256: bf16 resident, fp32 streamed queries
    {34, 300, 0.5, 1, 1},   // Dp = 320: streamed queries, 5 one-chunk slabs
    {258, 130, 0.05, 3, 2}, // 3 row blocks, 5 key tiles, Dp = 192
};

}  // namespace

TEST_CASE("ntxent emu: bf16 kernels match the CPU reference", "[emu][ntxent]") {
  uint64_t seed = 1;
  for (const Case& c : kCases) check_case<bf16>(c, seed++);
}

TEST_CASE("ntxent emu: fp32 (bf16x3) kernels match the CPU reference", "[emu][ntxent]") {
  uint64_t seed = 100;
  for (const Case& c : kCases) check_case<float>(c, seed++);
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
