// tests/test_ntxent_fast.cpp - the fast fp32 CPU path of NT-Xent
// (kernels/cpu/ntxent_fast.cpp) against the float64 reference
// (kernels/cpu/ntxent.cpp) run on the same (float) values, and the f32 op's
// dispatch to it (kernels/cpu/table.cpp).
//
// Tolerances (fp32 arithmetic against float64; the fast path's errors):
//   ẑ is rounded to float (2^-24 relative) and s = ẑ·ẑ' comes from an fp32
//   GEMM: |δs| <~ (few + √D)·2^-24, about 1e-6 at D = 2048; exp2 is good to
//   2e-7 relative; the row sums are float over <= B keys, then double. So a
//   logit s/τ is off by <~ |δs|/τ and lse, ℓ by about the same: we allow
//   4e-6·(1 + √D/8)/τ (the worst seen over these cases is 1/20 of it), the
//   loss 2x that. The gradient sums V terms W_jk ẑ_k in float (GEMM, then 8
//   worker partials in double): relative to its largest entry (or to the
//   natural scale dloss/(Vτ|z|) where it vanishes) we allow 2e-5·(1 + √D/8)
//   (the worst seen is 1/30 of it). These would miss nothing structural: a dropped
//   diagonal, a missing key side or a wrong α shift is O(1) (see the mutants
//   in the report of this change).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/tensor.h"
#include "kernels/cpu/ntxent_fast.h"
#include "kernels/ntxent.h"
#include "losses/losses.h"

using namespace simclr;
using simclr::cpu::NtxentFastOptions;

namespace {

enum class Kind { gaussian, identical, large, tiny_and_zero };

// z[V,D] in float: Gaussian rows, every 3rd positive pair correlated (a
// peaked softmax); identical: all rows one direction (any scale);
// large: |z| ~ 1e15 with nearly parallel positives (logits near 1/τ);
// tiny_and_zero: rows of norm ~1e-6, one row below eps and one exactly zero.
std::vector<float> make_z(int64_t V, int64_t D, Kind kind, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  std::vector<float> z(static_cast<size_t>(V * D));
  const int64_t N = V / 2;
  if (kind == Kind::identical) {
    std::vector<double> dir(static_cast<size_t>(D));
    for (auto& x : dir) x = nd(rng);
    for (int64_t i = 0; i < V; i++)
      for (int64_t c = 0; c < D; c++) z[i * D + c] = static_cast<float>(dir[c] * (1.0 + 0.25 * (i % 7)));
    return z;
  }
  for (auto& x : z) x = static_cast<float>(nd(rng));
  const double pos = kind == Kind::large ? 0.01 : 0.3;
  for (int64_t i = 0; i < N; i += (kind == Kind::large ? 1 : 3))
    for (int64_t c = 0; c < D; c++) z[(i + N) * D + c] = static_cast<float>(z[i * D + c] + pos * nd(rng));
  const double scale = kind == Kind::large ? 1e15 : kind == Kind::tiny_and_zero ? 1e-6 : 1.0;
  for (auto& x : z) x = static_cast<float>(x * scale);
  if (kind == Kind::tiny_and_zero) {
    for (int64_t c = 0; c < D; c++) z[1 * D + c] = 0.0f;                     // |z| = 0
    for (int64_t c = 0; c < D; c++) z[2 * D + c] = c == 0 ? 1e-13f : 0.0f;   // |z| < eps
  }
  return z;
}

struct Ref {
  std::vector<double> z64, rows, lse, dz;
  double loss = 0, dloss = 1.3;
};

Ref reference(const std::vector<float>& z, int64_t V, int64_t D, double tau) {
  Ref r;
  r.z64.assign(z.begin(), z.end());
  r.rows.resize(V);
  r.lse.resize(V);
  r.dz.assign(static_cast<size_t>(V * D), 0.0);
  cpu::ntxent_forward(r.rows.data(), r.lse.data(), r.z64.data(), V, D, tau, 0, V);
  for (double x : r.rows) r.loss += x;
  r.loss /= static_cast<double>(V);
  cpu::ntxent_backward(r.dz.data(), r.z64.data(), r.lse.data(), r.dloss, V, D, tau, 0, V);
  return r;
}

struct Fast {
  std::vector<float> rows, lse, dz;  // dz: what the backward wrote minus the base it started from
  std::vector<double> grad;          // the same in double
};

// The fast path over `ranks` simulated ranks (uneven bounds V r²/ranks²),
// backward from the gathered lse, dz accumulated onto `base` (empty: 0.25;
// the comparisons start it at -0.5·(expected gradient), a value of the
// gradient's own scale, so an overwrite instead of += shows and nothing is
// lost to rounding when the gradient is tiny, |z| ~ 1e15).
Fast run_fast(const std::vector<float>& z, int64_t V, int64_t D, double tau, double dloss, int ranks,
              const NtxentFastOptions& opt, std::vector<float> base = {}) {
  Fast f;
  f.rows.assign(V, NAN);
  f.lse.assign(V, NAN);
  if (base.empty()) base.assign(static_cast<size_t>(V * D), 0.25f);
  f.dz = base;
  std::vector<int64_t> b(ranks + 1);
  for (int r = 0; r <= ranks; r++) b[r] = V * r * r / (ranks * ranks);
  for (int r = 0; r < ranks; r++)
    cpu::ntxent_fast_forward(f.rows.data() + b[r], f.lse.data() + b[r], z.data(), V, D, tau, b[r], b[r + 1], opt);
  for (int r = 0; r < ranks; r++)
    cpu::ntxent_fast_backward(f.dz.data() + b[r] * D, z.data(), f.lse.data(), dloss, V, D, tau, b[r], b[r + 1], opt);
  f.grad.resize(f.dz.size());
  for (size_t i = 0; i < f.dz.size(); i++) {
    f.grad[i] = static_cast<double>(f.dz[i]) - static_cast<double>(base[i]);
    f.dz[i] -= base[i];
  }
  return f;
}

struct Errors {
  double loss = 0, lse = 0, grad = 0;
};

Errors compare(const Fast& f, const Ref& r, int64_t V, int64_t D, double tau) {
  Errors e;
  double loss = 0;
  for (int64_t i = 0; i < V; i++) {
    REQUIRE(std::isfinite(f.rows[i]));
    REQUIRE(std::isfinite(f.lse[i]));
    loss += f.rows[i];
    e.lse = std::max(e.lse, std::abs(f.lse[i] - r.lse[i]));
  }
  e.loss = std::abs(loss / static_cast<double>(V) - r.loss);
  double gmax = 0, gerr = 0, znorm = 0;
  for (int64_t i = 0; i < V * D; i++) {
    REQUIRE(std::isfinite(f.grad[i]));
    gmax = std::max(gmax, std::abs(r.dz[i]));
    gerr = std::max(gerr, std::abs(f.grad[i] - r.dz[i]));
    znorm += r.z64[i] * r.z64[i];
  }
  znorm = std::max(std::sqrt(znorm / static_cast<double>(V)), 1e-30);
  e.grad = gerr / std::max(gmax, r.dloss / (static_cast<double>(V) * tau * znorm));
  return e;
}

double logit_tol(int64_t D, double tau) { return 4e-6 * (1.0 + std::sqrt(static_cast<double>(D)) / 8.0) / tau; }
double grad_tol(int64_t D) { return 2e-5 * (1.0 + std::sqrt(static_cast<double>(D)) / 8.0); }

void check_case(int64_t V, int64_t D, double tau, int block, Kind kind, int ranks, int threads, bool scalar,
                uint64_t seed) {
  INFO("2N=" << V << " d=" << D << " tau=" << tau << " block=" << block << " kind=" << static_cast<int>(kind)
             << " ranks=" << ranks << " threads=" << threads << " scalar=" << scalar);
  const std::vector<float> z = make_z(V, D, kind, seed);
  const Ref r = reference(z, V, D, tau);
  NtxentFastOptions opt;
  opt.block = block;
  opt.threads = threads;
  opt.scalar = scalar;
  std::vector<float> base(r.dz.size());
  for (size_t i = 0; i < base.size(); i++) base[i] = static_cast<float>(-0.5 * r.dz[i]);
  const Fast f = run_fast(z, V, D, tau, r.dloss, ranks, opt, base);
  const Errors e = compare(f, r, V, D, tau);
  INFO("loss err " << e.loss << ", lse err " << e.lse << ", grad rel err " << e.grad);
  CHECK(e.lse <= logit_tol(D, tau));
  CHECK(e.loss <= 2 * logit_tol(D, tau));
  CHECK(e.grad <= grad_tol(D));
}

}  // namespace

TEST_CASE("ntxent fast: exp2 within 2e-7 relative over the range the tiles use", "[ntxent][fast]") {
  // the tiles evaluate exp2(a·(s-1)) in [-2·log2(e)/kNtxentMinTau, 0] = [-115.4, 0] (and s rounding a hair above 1)
  std::vector<float> x;
  for (double v = -126.0; v <= 1.0; v += 1.0 / 4096) x.push_back(static_cast<float>(v));
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<float> u(-126.0f, 1.0f);
  for (int i = 0; i < 100000; i++) x.push_back(u(rng));
  for (bool simd : {false, true}) {
    if (simd && !cpu::ntxent_fast_has_avx2()) continue;
    std::vector<float> y = x;
    cpu::ntxent_fast_exp2(y.data(), static_cast<int64_t>(y.size()), simd);
    double worst = 0;
    for (size_t i = 0; i < x.size(); i++) {
      const double want = std::exp2(static_cast<double>(x[i]));
      worst = std::max(worst, std::abs(y[i] - want) / want);
    }
    INFO("simd " << simd << ": max relative error " << worst);
    CHECK(worst < 2e-7);  // measured 7.7e-8 (AVX2) / 9.5e-8 (portable)
    // integers are exact (the polynomial is 1 at 0) and the clamp holds below -126
    std::vector<float> k = {0.0f, -1.0f, -37.0f, -126.0f, -200.0f};
    cpu::ntxent_fast_exp2(k.data(), 5, simd);
    CHECK(k[0] == 1.0f);
    CHECK(k[1] == 0.5f);
    CHECK(k[2] == std::ldexp(1.0f, -37));
    CHECK(k[3] == std::ldexp(1.0f, -126));
    CHECK(k[4] == std::ldexp(1.0f, -126));
  }
}

TEST_CASE("ntxent fast: equals the float64 reference over shapes and temperatures", "[ntxent][fast]") {
  struct S {
    int64_t V, D;
    int block;
  };
  // 2N = 2 (one pair, a single key), d = 1 and 2, 2N not a multiple of the tile,
  // tiles smaller than the SIMD width's tail, d = 2048, the default tile at 2N = 512.
  const S shapes[] = {{2, 3, 256}, {6, 1, 4},   {10, 2, 3},   {130, 33, 32}, {300, 7, 64},
                      {66, 2048, 16}, {96, 64, 40}, {512, 128, 256}};
  uint64_t seed = 1;
  for (const S& s : shapes)
    for (double tau : {0.05, 0.1, 0.5}) check_case(s.V, s.D, tau, s.block, Kind::gaussian, 1, 2, false, seed++);
  // the smallest temperature the fast path takes, and the portable loops
  check_case(300, 16, kNtxentMinTau, 64, Kind::gaussian, 1, 2, false, 91);
  check_case(300, 16, kNtxentMinTau, 64, Kind::large, 1, 2, false, 92);
  check_case(130, 33, 0.1, 32, Kind::gaussian, 1, 2, true, 93);
}

TEST_CASE("ntxent fast: identical, large-magnitude and tiny/zero embeddings", "[ntxent][fast]") {
  for (double tau : {0.05, 0.5}) {
    check_case(200, 16, tau, 64, Kind::identical, 1, 2, false, 11);
    check_case(200, 16, tau, 64, Kind::large, 1, 2, false, 12);
    check_case(200, 16, tau, 64, Kind::tiny_and_zero, 1, 2, false, 13);
  }
  // identical rows: every logit is 1/τ, so ℓ = log(V-1) exactly and the gradient ~ 0
  const int64_t V = 200, D = 16;
  const std::vector<float> z = make_z(V, D, Kind::identical, 11);
  NtxentFastOptions opt;
  opt.block = 64;
  const Fast f = run_fast(z, V, D, 0.05, 1.0, 1, opt, std::vector<float>(static_cast<size_t>(V * D), 0.0f));
  for (int64_t i = 0; i < V; i++) CHECK(std::abs(f.rows[i] - std::log(static_cast<double>(V - 1))) < 2e-4);
  double gmax = 0;
  for (float g : f.dz) gmax = std::max(gmax, static_cast<double>(std::abs(g)));
  CHECK(gmax < 1e-3 * (1.0 / (V * 0.05)));  // vs the natural scale dloss/(Vτ|z|), |z| >= 1 here
}

TEST_CASE("ntxent fast: the distributed form (row offsets) matches the reference", "[ntxent][fast][distributed]") {
  // uneven rank bounds V r²/ranks²: local blocks next to remote blocks on both sides
  for (int ranks : {2, 3, 5}) {
    check_case(300, 9, 0.1, 64, Kind::gaussian, ranks, 2, false, 21 + ranks);
    check_case(130, 33, 0.05, 32, Kind::gaussian, ranks, 1, false, 31 + ranks);
  }
  // a rank without rows writes nothing
  const std::vector<float> z = make_z(40, 5, Kind::gaussian, 3);
  std::vector<float> lse(40, 7.0f), dz(200, 7.0f);
  cpu::ntxent_fast_forward(nullptr, lse.data(), z.data(), 40, 5, 0.1, 13, 13);
  cpu::ntxent_fast_backward(dz.data(), z.data(), lse.data(), 1.0, 40, 5, 0.1, 13, 13);
  CHECK(lse == std::vector<float>(40, 7.0f));
  CHECK(dz == std::vector<float>(200, 7.0f));
}

TEST_CASE("ntxent fast: bitwise the same for 1, 2 and 3 threads", "[ntxent][fast]") {
  const int64_t V = 520, D = 40;
  const std::vector<float> z = make_z(V, D, Kind::gaussian, 41);
  for (int ranks : {1, 3}) {
    NtxentFastOptions opt;
    opt.block = 64;
    opt.threads = 1;
    const Fast one = run_fast(z, V, D, 0.1, 1.7, ranks, opt);
    for (int t : {2, 3}) {
      opt.threads = t;
      const Fast more = run_fast(z, V, D, 0.1, 1.7, ranks, opt);
      INFO("threads " << t << " ranks " << ranks);
      CHECK(more.rows == one.rows);
      CHECK(more.lse == one.lse);
      CHECK(more.dz == one.dz);
    }
  }
}

TEST_CASE("ntxent fast: the f32 op dispatches to it from 2N = 512, the reference below", "[ntxent][fast]") {
  auto op = [](const std::vector<float>& z, int64_t V, int64_t D, double tau, std::vector<float>& grad) {
    Tensor x = Tensor::from_vector(z, {V, D}).set_requires_grad();
    Tensor l = ntxent(x, tau);
    backward(l);
    grad = x.grad().to_floats();
    return static_cast<float>(l.item());
  };
  const int64_t D = 24;
  for (int64_t V : {cpu::kNtxentFastMinRows - 2, cpu::kNtxentFastMinRows}) {
    for (double tau : {0.1, 0.02}) {  // 0.02 < kNtxentMinTau: the reference at any size
      INFO("2N=" << V << " tau=" << tau);
      const std::vector<float> z = make_z(V, D, Kind::gaussian, 51);
      std::vector<float> g;
      const float loss = op(z, V, D, tau, g);
      const bool eligible = V >= cpu::kNtxentFastMinRows && tau >= kNtxentMinTau;
      CHECK(cpu::ntxent_fast_eligible(V, tau) == eligible);
      const char* env = std::getenv("SIMCLR_CPU_NTXENT");  // =reference: the op runs the reference
      const bool fast = eligible && !(env && std::string(env) == "reference");
      // what each path gives, computed directly
      std::vector<float> rows(V), lse(V), dz(static_cast<size_t>(V * D), 0.0f);
      if (fast) {
        cpu::ntxent_fast_forward(rows.data(), lse.data(), z.data(), V, D, tau, 0, V);
        cpu::ntxent_fast_backward(dz.data(), z.data(), lse.data(), 1.0, V, D, tau, 0, V);
      } else {
        cpu::ntxent_forward(rows.data(), lse.data(), z.data(), V, D, tau, 0, V);
        cpu::ntxent_backward(dz.data(), z.data(), lse.data(), 1.0, V, D, tau, 0, V);
      }
      double s = 0;
      for (float r : rows) s += r;
      CHECK(loss == static_cast<float>(s / static_cast<double>(V)));
      CHECK(g == dz);
    }
  }
  // the fast path itself refuses a temperature below its bound
  const std::vector<float> z = make_z(8, 3, Kind::gaussian, 1);
  std::vector<float> lse(8);
  CHECK_THROWS_WITH(cpu::ntxent_fast_forward(nullptr, lse.data(), z.data(), 8, 3, 0.02, 0, 8),
                    Catch::Contains("tau >= "));
}
