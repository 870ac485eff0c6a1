// tests/emu/test_bn_norm_emu.cpp - the CUDA backend's batch-norm, L2-normalise
// and cross-entropy rows (kernels/cuda/table.cu -> kernels/cuda/batchnorm.cu,
// kernels/cuda/norm_loss.cu) under the kernel emulator, each function of the
// shared contract (kernels/batchnorm.h, kernels/norm_loss.h) against the CPU
// backend's float64 row on the same rounded inputs. Outputs live in guarded
// buffers (tests/guarded.h): '=' outputs start as NaN (an element not written
// shows up), '+=' outputs start at a known value, and every guard is checked.
//
// Tolerances are bounds on the fp32 arithmetic of the kernels (u = 2^-24, the
// unit roundoff of float) times the magnitudes that enter each result, plus
// the rounding of the stored result to T: twice T's unit roundoff (f32 2^-23,
// bf16 2^-7), since the value being rounded is itself slightly off (fp32, or
// double with another rounding order) and may cross a rounding boundary.
// Each is stated where it is used. BN_VERBOSE=1 prints each check's worst
// error/tolerance.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/batchnorm.h"
#include "kernels/norm_loss.h"
#include "kernels/registry.h"
#include "tests/emu/emu_row.h"
#include "tests/guarded.h"

using namespace simclr;
using test::Guarded;

namespace {

std::string g_case;  // the running case, for BN_VERBOSE
constexpr double kU = 0x1p-24;  // unit roundoff of float
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

template <class T>
constexpr double out_tol() {  // relative error of storing a computed result as T (see above)
  return std::is_same_v<T, float> ? 0x1p-23 : 0x1p-7;
}
template <class T>
const char* tname() {
  return std::is_same_v<T, float> ? "f32" : "bf16";
}

template <class T>
double d(T v) {
  return static_cast<double>(static_cast<float>(v));
}
template <class T>
std::vector<double> to_d(const std::vector<T>& v) {
  std::vector<double> r(v.size());
  for (size_t i = 0; i < v.size(); i++) r[i] = d(v[i]);
  return r;
}
template <class T>
std::vector<T> to_t(const std::vector<double>& v) {
  std::vector<T> r(v.size());
  for (size_t i = 0; i < v.size(); i++) r[i] = T(static_cast<float>(v[i]));
  return r;
}

using test::emu_row;

// Every |got - ref| <= tol (NaN fails unless both are NaN); reports the worst.
void expect_close(const std::string& what, const std::vector<double>& got, const std::vector<double>& ref,
                  const std::vector<double>& tol) {
  REQUIRE(got.size() == ref.size());
  REQUIRE(tol.size() == ref.size());
  size_t bad = 0, worst = 0;
  double worst_ratio = -1;
  for (size_t i = 0; i < ref.size(); i++) {
    if (std::isnan(got[i]) && std::isnan(ref[i])) continue;
    const double e = std::abs(got[i] - ref[i]);
    const double r = std::isnan(e) ? std::numeric_limits<double>::infinity() : e / tol[i];
    if (!(e <= tol[i])) bad++;
    if (r > worst_ratio) worst_ratio = r, worst = i;
  }
  INFO(what << ": " << bad << " of " << ref.size() << " outside tolerance; worst [" << worst << "] got "
            << got[worst] << " ref " << ref[worst] << " tol " << tol[worst] << " (error/tol " << worst_ratio << ")");
  CHECK(bad == 0);
  if (std::getenv("BN_VERBOSE") != nullptr)
    std::printf("%-24s worst error/tol %.3f  (%s)\n", what.c_str(), worst_ratio, g_case.c_str());
}

template <class T>
void expect_guards(const std::string& what, const Guarded<T>& g) {
  INFO(what);
  CHECK(g.guards_intact());
}

// ======================================================================= batch norm
enum class Running { none, f32, f64 };

struct BnCase {
  int64_t M, C;
  double offset = 0;  // x = offset + per-channel mean + noise
  bool training = true, relu = false, affine = true;
  Running running = Running::none;
  bool accumulate = false;  // backward_dx: += onto 0.5, else =
  bool misaligned = false;  // y and dx one element off 16-byte alignment (the scalar path)
  double eps = 1e-5, momentum = 0.1;
};

std::string describe(const BnCase& c) {
  return "M " + std::to_string(c.M) + " C " + std::to_string(c.C) + " offset " + std::to_string(c.offset) +
         (c.training ? " training" : " eval") + (c.relu ? " relu" : "") + (c.affine ? " affine" : "") +
         (c.running == Running::none ? "" : c.running == Running::f32 ? " running f32" : " running f64") +
         (c.accumulate ? " dx+=" : " dx=") + (c.misaligned ? " misaligned" : "");
}

// The running functions of a set for buffers of type B.
template <class B, class K>
const auto& running_of(const K& k) {
  if constexpr (std::is_same_v<B, float>)
    return k.running_f32;
  else
    return k.running_f64;
}

template <class T, class B>
void check_bn(const BnCase& c) {
  INFO(tname<T>() << " " << describe(c));
  g_case = tname<T>() + std::string(" ") + describe(c);
  const int64_t M = c.M, C = c.C, n = M * C;
  const auto& k = emu_row<BatchNormKernels, T>();
  const auto& ref = kernels_for<BatchNormKernels, double>(Device::cpu());
  const auto& kr = running_of<B>(k);
  const auto& rr = running_of<B>(ref);
  const bool running = c.running != Running::none;
  std::mt19937 rng(static_cast<uint32_t>(M * 7919 + C * 31 + (c.relu ? 1 : 0) + (c.affine ? 2 : 0)));
  std::normal_distribution<double> nd;
  std::uniform_real_distribution<double> ud(0.5, 1.5);

  // ---- inputs, rounded to T; the reference reads the same values in double
  std::vector<double> chan_mean(C), chan_std(C);
  for (int64_t j = 0; j < C; j++) chan_mean[j] = c.offset + nd(rng), chan_std[j] = ud(rng) * (j % 3 + 1);
  std::vector<double> xv(n), dyv(n), gv(C), bv(C), rmv(C), rvv(C);
  for (int64_t i = 0; i < n; i++) xv[i] = chan_mean[i % C] + chan_std[i % C] * nd(rng), dyv[i] = nd(rng);
  for (int64_t j = 0; j < C; j++) gv[j] = ud(rng), bv[j] = 0.3 * nd(rng), rmv[j] = nd(rng), rvv[j] = ud(rng);
  const std::vector<T> xt = to_t<T>(xv), dyt = to_t<T>(dyv), gt = to_t<T>(gv), bt = to_t<T>(bv);
  const std::vector<double> x = to_d(xt), dy = to_d(dyt), gam = to_d(gt), bet = to_d(bt);
  Guarded<T> gx(xt), gdy(dyt), ggam(gt), gbet(bt);
  const T* gamma_p = c.affine ? ggam.data() : nullptr;
  const T* beta_p = c.affine ? gbet.data() : nullptr;
  const double* rgamma = c.affine ? gam.data() : nullptr;
  const double* rbeta = c.affine ? bet.data() : nullptr;

  // ---- stats (training) ----------------------------------------------------
  std::vector<double> ref_stats(2 * C + 1);
  ref.stats(ref_stats.data(), x.data(), M, C);
  if (c.training) {
    Guarded<double> st(2 * C + 1);  // NaN
    k.stats(st.data(), gx.data(), M, C);
    expect_guards("stats", st);
    const std::vector<double> got = st.get();
    CHECK(got[2 * C] == static_cast<double>(M));
    // stats = [mean | M2 | count]. Bound: the kernel sums d = x - k (k =
    // x[0,c]) in float over groups of <= 16 rows (each group sum off by <=
    // 15u Σ|d|, d and d² rounded: u each), then in double; mean = k + S1/M,
    // M2 = S2 - S1²/M in double: S1's error e1 <= 20u Σ|d| moves S1²/M by
    // <= 2|S1| e1 / M <= 40u (Σ|d|)²/M. Unshifted float sums of x² at offset
    // 1000 (Σx²/M ~ 1e6, off by >= u of that per group) would miss M2/M (the
    // variance, ~1-10) by O(0.1-1).
    std::vector<double> tol(2 * C + 1, 0.0);
    std::vector<double> sad(C, 0.0), sd2(C, 0.0);
    for (int64_t i = 0; i < n; i++) {
      const double dd = x[i] - x[i % C];
      sad[i % C] += std::abs(dd), sd2[i % C] += dd * dd;
    }
    for (int64_t j = 0; j < C; j++) {
      tol[j] = 20 * kU * sad[j] / M + 1e-15 * std::abs(ref_stats[j]);
      tol[C + j] = 50 * kU * (sd2[j] + sad[j] * sad[j] / M) + 1e-14 * ref_stats[C + j];
    }
    expect_close("stats", got, ref_stats, tol);
  }

  // ---- finalize / from_running -> mean, invstd ----------------------------
  Guarded<T> gmean(C), ginv(C);  // NaN
  std::vector<double> ref_mean(C), ref_inv(C);
  std::vector<B> rm0 = to_t<B>(rmv), rv0 = to_t<B>(rvv);
  if (c.training) {
    Guarded<B> grm(rm0), grv(rv0);
    std::vector<B> rrm = rm0, rrv = rv0;
    kr.finalize(gmean.data(), ginv.data(), running ? grm.data() : nullptr, running ? grv.data() : nullptr,
                ref_stats.data(), C, c.eps, c.momentum);
    rr.finalize(ref_mean.data(), ref_inv.data(), running ? rrm.data() : nullptr, running ? rrv.data() : nullptr,
                ref_stats.data(), C, c.eps, c.momentum);
    expect_guards("finalize running_mean", grm);
    expect_guards("finalize running_var", grv);
    // Running buffers: the same double formula on both sides, stored as B
    // (nvcc may contract a·b + c into an fma: one double rounding apart,
    // which can move the f32 result by one rounding): 2u for f32, 1e-15 for f64.
    const double btol = std::is_same_v<B, float> ? 2 * kU : 1e-15;
    std::vector<double> tm(C), tv(C);
    for (int64_t j = 0; j < C; j++) tm[j] = btol * std::abs(static_cast<double>(rrm[j])), tv[j] = btol * static_cast<double>(rrv[j]);
    auto as_d = [](const std::vector<B>& v) { return std::vector<double>(v.begin(), v.end()); };
    expect_close("running_mean", as_d(grm.get()), as_d(rrm), tm);
    expect_close("running_var", as_d(grv.get()), as_d(rrv), tv);
    if (!running) {  // untouched (and not read) without running buffers
      CHECK(as_d(grm.get()) == as_d(rm0));
      CHECK(as_d(rrm) == as_d(rm0));
    }
  } else {
    Guarded<B> grm(rm0), grv(rv0);
    kr.from_running(gmean.data(), ginv.data(), grm.data(), grv.data(), C, c.eps);
    rr.from_running(ref_mean.data(), ref_inv.data(), rm0.data(), rv0.data(), C, c.eps);
  }
  expect_guards("mean", gmean);
  expect_guards("invstd", ginv);
  {
    // Computed in double on both sides; only the storing as T differs.
    std::vector<double> tm(C), ti(C);
    for (int64_t j = 0; j < C; j++)
      tm[j] = out_tol<T>() * std::abs(ref_mean[j]), ti[j] = out_tol<T>() * std::abs(ref_inv[j]);
    expect_close("mean", to_d(gmean.get()), ref_mean, tm);
    expect_close("invstd", to_d(ginv.get()), ref_inv, ti);
  }
  // From here on both sides use the kernel's mean and invstd (as T).
  const std::vector<double> mean = to_d(gmean.get()), inv = to_d(ginv.get());

  // ---- forward ----------------------------------------------------------------
  Guarded<T> gy(n + 1);  // NaN; misaligned: the payload starts one element in
  T* y_p = gy.data() + (c.misaligned ? 1 : 0);
  k.forward(y_p, gx.data(), gmean.data(), ginv.data(), gamma_p, beta_p, M, C, c.relu);
  expect_guards("forward y", gy);
  std::vector<double> ref_y(n);
  ref.forward(ref_y.data(), x.data(), mean.data(), inv.data(), rgamma, rbeta, M, C, c.relu);
  const std::vector<T> yall = gy.get();
  std::vector<T> yt(yall.begin() + (c.misaligned ? 1 : 0), yall.begin() + (c.misaligned ? 1 : 0) + n);
  CHECK(std::isnan(static_cast<float>(yall[c.misaligned ? 0 : n])));  // the spare element stays unwritten
  {
    // a = invstd·γ, x - mean, the product, + β: 4 fp32 roundings (5u margin)
    // of the magnitudes |x - mean|·|a| + |β|, then the storing as T.
    std::vector<double> tol(n);
    for (int64_t i = 0; i < n; i++) {
      const int64_t j = i % C;
      const double a = inv[j] * (c.affine ? gam[j] : 1.0), b = c.affine ? bet[j] : 0.0;
      tol[i] = 5 * kU * (std::abs(x[i] - mean[j]) * std::abs(a) + std::abs(b)) + out_tol<T>() * std::abs(ref_y[i]);
    }
    expect_close("forward y", to_d(yt), ref_y, tol);
  }
  const std::vector<double> y = to_d(yt);  // the op's output, what backward reads with the fused ReLU
  Guarded<T> gyin(yt);
  const T* ym_p = c.relu ? gyin.data() : nullptr;
  const double* rym = c.relu ? y.data() : nullptr;

  // ---- backward_reduce ------------------------------------------------------
  Guarded<double> gred(2 * C);  // NaN
  k.backward_reduce(gred.data(), gred.data() + C, gdy.data(), gx.data(), ym_p, gmean.data(), ginv.data(), M, C);
  expect_guards("backward_reduce", gred);
  std::vector<double> ref_red(2 * C);
  ref.backward_reduce(ref_red.data(), ref_red.data() + C, dy.data(), x.data(), rym, mean.data(), inv.data(), M, C);
  {
    // Σg exact terms, Σg·(x - mean) with x - mean and the product rounded
    // (2u) and float group sums (15u): 20u of the sums of magnitudes.
    std::vector<double> tol(2 * C, 0.0);
    for (int64_t i = 0; i < n; i++) {
      const int64_t j = i % C;
      const double g = (!c.relu || y[i] > 0) ? dy[i] : 0.0;
      tol[j] += 20 * kU * std::abs(g);
      tol[C + j] += 20 * kU * std::abs(g * (x[i] - mean[j])) * inv[j];
    }
    for (int64_t j = 0; j < 2 * C; j++) tol[j] += 1e-14 * std::abs(ref_red[j]);
    expect_close("backward_reduce", gred.get(), ref_red, tol);
  }

  // ---- backward_finalize (from the reference's sums: one rank, red_all = red)
  const std::vector<double> red_all = ref_red;
  Guarded<T> gdg(to_t<T>(std::vector<double>(C, 0.25))), gdb(to_t<T>(std::vector<double>(C, -0.25)));
  Guarded<T> gmdy(C), gmdyx(C);  // NaN
  k.backward_finalize(c.affine ? gdg.data() : nullptr, c.affine ? gdb.data() : nullptr, gmdy.data(), gmdyx.data(),
                      ref_red.data(), c.training ? red_all.data() : nullptr, c.training ? ref_stats.data() : nullptr,
                      C);
  std::vector<double> rdg(C, 0.25), rdb(C, -0.25), rmdy(C), rmdyx(C);
  ref.backward_finalize(c.affine ? rdg.data() : nullptr, c.affine ? rdb.data() : nullptr, rmdy.data(), rmdyx.data(),
                        ref_red.data(), c.training ? red_all.data() : nullptr, c.training ? ref_stats.data() : nullptr,
                        C);
  expect_guards("dgamma", gdg);
  expect_guards("dbeta", gdb);
  expect_guards("mean_dy", gmdy);
  expect_guards("mean_dy_xhat", gmdyx);
  {
    // dγ = 0.25 + float(Σ): two fp32 roundings of |0.25| + |Σ|; then T.
    std::vector<double> tg(C), tb(C), tm(C), tx(C);
    for (int64_t j = 0; j < C; j++) {
      tg[j] = 2 * kU * (0.25 + std::abs(ref_red[C + j])) + out_tol<T>() * std::abs(rdg[j]);
      tb[j] = 2 * kU * (0.25 + std::abs(ref_red[j])) + out_tol<T>() * std::abs(rdb[j]);
      tm[j] = out_tol<T>() * std::abs(rmdy[j]);  // double on both sides, then T
      tx[j] = out_tol<T>() * std::abs(rmdyx[j]);
    }
    if (c.affine) {
      expect_close("dgamma", to_d(gdg.get()), rdg, tg);
      expect_close("dbeta", to_d(gdb.get()), rdb, tb);
    } else {
      CHECK(to_d(gdg.get()) == std::vector<double>(C, 0.25));  // not passed: untouched
    }
    expect_close("mean_dy", to_d(gmdy.get()), rmdy, tm);
    expect_close("mean_dy_xhat", to_d(gmdyx.get()), rmdyx, tx);
    if (!c.training) {
      CHECK(to_d(gmdy.get()) == std::vector<double>(C, 0.0));
      CHECK(to_d(gmdyx.get()) == std::vector<double>(C, 0.0));
    }
  }
  // mean_dy null (no dx wanted): only dγ, dβ are written.
  if (c.affine) {
    Guarded<T> g2(to_t<T>(std::vector<double>(C, 0.25)));
    k.backward_finalize(g2.data(), nullptr, nullptr, nullptr, ref_red.data(), red_all.data(), ref_stats.data(), C);
    expect_guards("dgamma only", g2);
    CHECK(to_d(g2.get()) == to_d(gdg.get()));
  }
  const std::vector<double> mdy = to_d(gmdy.get()), mdyx = to_d(gmdyx.get());

  // ---- backward_dx ------------------------------------------------------------
  const double dx0 = 0.5;
  Guarded<T> gdx(n + 1, c.accumulate ? 0 : Guarded<T>::kPoison);
  if (c.accumulate) gdx.put(to_t<T>(std::vector<double>(n + 1, dx0)));
  T* dx_p = gdx.data() + (c.misaligned ? 1 : 0);
  k.backward_dx(dx_p, c.accumulate, gdy.data(), gx.data(), ym_p, gmean.data(), ginv.data(), gamma_p, gmdy.data(),
                gmdyx.data(), M, C);
  expect_guards("backward_dx", gdx);
  std::vector<double> ref_dx(n, c.accumulate ? dx0 : kNaN);
  ref.backward_dx(ref_dx.data(), c.accumulate, dy.data(), x.data(), rym, mean.data(), inv.data(), rgamma, mdy.data(),
                  mdyx.data(), M, C);
  {
    const std::vector<T> all = gdx.get();
    const std::vector<T> dxt(all.begin() + (c.misaligned ? 1 : 0), all.begin() + (c.misaligned ? 1 : 0) + n);
    const double spare = d(all[c.misaligned ? 0 : n]);
    if (c.accumulate)
      CHECK(spare == dx0);
    else
      CHECK(std::isnan(spare));
    // k = γ·invstd, p = -k·invstd·mdyx, q = -k·mdy (up to 3 roundings each),
    // the three products and two sums: 10u of |k g| + |(x-mean) p| + |q|,
    // u of the accumulated 0.5; then T.
    std::vector<double> tol(n);
    for (int64_t i = 0; i < n; i++) {
      const int64_t j = i % C;
      const double kk = inv[j] * (c.affine ? gam[j] : 1.0);
      const double g = (!c.relu || y[i] > 0) ? dy[i] : 0.0;
      tol[i] = 10 * kU * (std::abs(kk * g) + std::abs((x[i] - mean[j]) * kk * inv[j] * mdyx[j]) + std::abs(kk * mdy[j])) +
               (c.accumulate ? kU * dx0 : 0.0) + out_tol<T>() * std::abs(ref_dx[i]);
    }
    expect_close("backward_dx", to_d(dxt), ref_dx, tol);
  }
}

template <class T>
void check_bn_case(const BnCase& c) {
  if (c.running == Running::f64)
    check_bn<T, double>(c);
  else
    check_bn<T, float>(c);
}

// ======================================================================= L2 normalise
template <class T>
void check_l2(int64_t V, int64_t D, double eps, bool tiny_row, bool zero_row) {
  INFO(tname<T>() << " l2_normalize V " << V << " D " << D << " eps " << eps << (tiny_row ? " tiny row 1" : "")
                  << (zero_row ? " zero last row" : ""));
  g_case = tname<T>() + std::string(" l2 ") + std::to_string(V) + "x" + std::to_string(D);
  const auto& k = emu_row<L2NormalizeKernels, T>();
  const auto& ref = kernels_for<L2NormalizeKernels, double>(Device::cpu());
  const int64_t n = V * D;
  std::mt19937 rng(static_cast<uint32_t>(V * 1009 + D));
  std::normal_distribution<double> nd;
  std::vector<double> xv(n), dyv(n);
  for (int64_t i = 0; i < n; i++) xv[i] = nd(rng), dyv[i] = nd(rng);
  if (tiny_row)
    for (int64_t j = 0; j < D; j++) xv[D + j] *= 1e-3 * eps;  // |x_1| << eps: the clamp
  if (zero_row)
    for (int64_t j = 0; j < D; j++) xv[(V - 1) * D + j] = 0.0;
  const std::vector<T> xt = to_t<T>(xv), dyt = to_t<T>(dyv);
  const std::vector<double> x = to_d(xt), dy = to_d(dyt);
  Guarded<T> gx(xt), gdy(dyt), gy(n);  // y: NaN
  k.forward(gy.data(), gx.data(), V, D, eps);
  expect_guards("l2 forward", gy);
  std::vector<double> ref_y(n);
  ref.forward(ref_y.data(), x.data(), V, D, eps);
  std::vector<double> norm(V, 0.0), sxdy(V, 0.0);
  for (int64_t i = 0; i < n; i++) norm[i / D] += x[i] * x[i], sxdy[i / D] += std::abs(x[i] * dy[i]);
  for (auto& v : norm) v = std::sqrt(v);
  {
    // Σx² in float over D terms: relative error <= D·u, so |x| and 1/|x| are
    // off by <= (D/2 + 2)u; the product one more: (D + 4)u of |y|; then T.
    std::vector<double> tol(n);
    for (int64_t i = 0; i < n; i++) tol[i] = (D + 4) * kU * std::abs(ref_y[i]) + out_tol<T>() * std::abs(ref_y[i]);
    expect_close("l2 forward", to_d(gy.get()), ref_y, tol);
  }
  const double dx0 = 0.5;
  Guarded<T> gdx(to_t<T>(std::vector<double>(n, dx0)));
  k.backward(gdx.data(), gdy.data(), gx.data(), V, D, eps);
  expect_guards("l2 backward", gdx);
  std::vector<double> ref_dx(n, dx0);
  ref.backward(ref_dx.data(), dy.data(), x.data(), V, D, eps);
  {
    // dx = dy/|x| - x (x·dy)/|x|³: |x| and x·dy are float sums of D terms
    // (relative D·u of Σx², and D·u of Σ|x·dy| absolute), the coefficients,
    // products and sums a few more: (D + 8)u of the two terms' magnitudes;
    // u of the accumulated 0.5 (and of the result); then T. Clamped rows:
    // dy/eps, two roundings.
    std::vector<double> tol(n);
    for (int64_t i = 0; i < n; i++) {
      const int64_t v = i / D;
      const double nv = norm[v];
      const double mag = nv > eps ? (D + 8) * kU * (std::abs(dy[i]) / nv + std::abs(x[i]) * sxdy[v] / (nv * nv * nv))
                                  : 3 * kU * std::abs(dy[i]) / eps;
      tol[i] = mag + 2 * kU * (dx0 + std::abs(ref_dx[i])) + out_tol<T>() * std::abs(ref_dx[i]);
    }
    expect_close("l2 backward", to_d(gdx.get()), ref_dx, tol);
  }
}

// ======================================================================= cross-entropy
template <class L, class K>
const auto& labels_of(const K& k) {
  if constexpr (std::is_same_v<L, int32_t>)
    return k.i32;
  else
    return k.i64;
}

template <class T, class L>
void check_ce(int64_t N, int64_t K, double offset, double spread) {
  INFO(tname<T>() << " cross_entropy N " << N << " K " << K << " labels " << (sizeof(L) == 4 ? "i32" : "i64")
                  << " logits " << offset << " + " << spread << "·N(0,1)");
  g_case = tname<T>() + std::string(" ce ") + std::to_string(N) + "x" + std::to_string(K);
  const auto& k = labels_of<L>(emu_row<CrossEntropyKernels, T>());
  const auto& ref = labels_of<L>(kernels_for<CrossEntropyKernels, double>(Device::cpu()));
  const int64_t n = N * K;
  std::mt19937 rng(static_cast<uint32_t>(N * 613 + K));
  std::normal_distribution<double> nd;
  std::vector<double> zv(n);
  for (auto& v : zv) v = offset + spread * nd(rng);
  std::vector<L> labels(N);
  for (int64_t i = 0; i < N; i++) labels[i] = static_cast<L>((i * 7 + 3) % K);
  const std::vector<T> zt = to_t<T>(zv);
  const std::vector<double> z = to_d(zt);
  Guarded<T> gz(zt);
  Guarded<L> glab(labels);

  // ---- check_labels: all valid
  {
    const BadLabel b = k.check_labels(glab.data(), N, K);
    CHECK(b.row == -1);
    CHECK(ref.check_labels(labels.data(), N, K).row == -1);
  }
  // ---- forward
  Guarded<T> gloss(1), glse(N);  // NaN
  k.forward(gloss.data(), glse.data(), gz.data(), glab.data(), N, K);
  expect_guards("ce loss", gloss);
  expect_guards("ce lse", glse);
  double ref_loss = kNaN;
  std::vector<double> ref_lse(N);
  ref.forward(&ref_loss, ref_lse.data(), z.data(), labels.data(), N, K);
  // lse: z - max rounded (u|z - max| relative on each exp term), expf (2 ulp
  // = 4u), the float sum of K terms (K·u): the sum is off by (K + 4 + range)u
  // relatively, lse by as much absolutely; then T (of |lse|).
  std::vector<double> lse_err(N);
  for (int64_t r = 0; r < N; r++) {
    double mx = z[r * K], mn = z[r * K];
    for (int64_t j = 0; j < K; j++) mx = std::max(mx, z[r * K + j]), mn = std::min(mn, z[r * K + j]);
    lse_err[r] = (K + 4 + (mx - mn)) * kU;
  }
  {
    std::vector<double> tol(N);
    for (int64_t r = 0; r < N; r++) tol[r] = lse_err[r] + out_tol<T>() * std::abs(ref_lse[r]);
    expect_close("ce lse", to_d(glse.get()), ref_lse, tol);
    double worst = 0;
    for (double e : lse_err) worst = std::max(worst, e);
    // The loss: the mean of (lse - z[label]) in double, each off by its lse's
    // error; then T.
    expect_close("ce loss", to_d(gloss.get()), {ref_loss}, {worst + out_tol<T>() * std::abs(ref_loss)});
  }
  // ---- backward (from the kernel's lse, dloss = 0.7, onto 0.5)
  const std::vector<double> lse = to_d(glse.get());
  const double dx0 = 0.5;
  Guarded<T> gdloss(to_t<T>({0.7})), gdz(to_t<T>(std::vector<double>(n, dx0)));
  const double dloss = d(gdloss.get()[0]);
  k.backward(gdz.data(), gdloss.data(), gz.data(), glse.data(), glab.data(), N, K);
  expect_guards("ce backward", gdz);
  std::vector<double> ref_dz(n, dx0);
  ref.backward(ref_dz.data(), &dloss, z.data(), lse.data(), labels.data(), N, K);
  {
    // g = dloss/N (u), z - lse (u|z - lse| relative on the exp), expf (4u),
    // the product and the one-hot subtraction (2u): (|z - lse| + 8)u of
    // g·exp(z - lse), 2u of |g|, u of the accumulated 0.5 and result; then T.
    const double g = dloss / static_cast<double>(N);
    std::vector<double> tol(n);
    for (int64_t i = 0; i < n; i++) {
      const int64_t r = i / K;
      const double e = std::exp(z[i] - lse[r]);
      tol[i] = (std::abs(z[i] - lse[r]) + 8) * kU * std::abs(g) * e + 2 * kU * std::abs(g) +
               2 * kU * (dx0 + std::abs(ref_dz[i])) + out_tol<T>() * std::abs(ref_dz[i]);
    }
    expect_close("ce backward", to_d(gdz.get()), ref_dz, tol);
  }
  // ---- labels outside [0, K): the first bad row and its value (as the CPU);
  // the kernels stay inside the arrays (loss NaN, no one-hot term).
  if (N >= 3) {
    std::vector<L> bad = labels;
    bad[1] = static_cast<L>(K);
    bad[N - 1] = static_cast<L>(-1);
    Guarded<L> gbad(bad);
    const BadLabel b = k.check_labels(gbad.data(), N, K), rb = ref.check_labels(bad.data(), N, K);
    CHECK(b.row == 1);
    CHECK(b.label == K);
    CHECK(b.row == rb.row);
    CHECK(b.label == rb.label);
    std::vector<L> last = labels;
    last[N - 1] = static_cast<L>(-5);
    Guarded<L> glast(last);
    const BadLabel bl = k.check_labels(glast.data(), N, K);
    CHECK(bl.row == N - 1);
    CHECK(bl.label == -5);

    Guarded<T> l2(1), lse2(N);
    k.forward(l2.data(), lse2.data(), gz.data(), gbad.data(), N, K);
    expect_guards("ce loss, bad labels", l2);
    expect_guards("ce lse, bad labels", lse2);
    CHECK(std::isnan(d(l2.get()[0])));
    Guarded<T> dz2(to_t<T>(std::vector<double>(n, dx0)));
    k.backward(dz2.data(), gdloss.data(), gz.data(), glse.data(), gbad.data(), N, K);
    expect_guards("ce backward, bad labels", dz2);
    const std::vector<double> got = to_d(dz2.get()), good = to_d(gdz.get());
    // Row 1 gets the softmax term only (no one-hot at K, none elsewhere):
    // every element of row 1 at or above the good result's non-label ones.
    for (int64_t j = 0; j < K; j++) {
      if (j == static_cast<int64_t>(labels[1])) {
        CHECK(got[K + j] > good[K + j]);  // the good run subtracted g here
      } else {
        CHECK(got[K + j] == good[K + j]);
      }
    }
  }
}

}  // namespace

TEST_CASE("emu bn: the CUDA batch-norm row against the CPU float64 row", "[emu][bn]") {
  // 2-D BN shapes (M = N·H·W) and 1-D ones (M = N), C odd, = 1, and multiples
  // of the 16-byte vectors (the vector path: C % 4 for f32, C % 8 for bf16).
  const std::vector<BnCase> cases = {
      {.M = 98, .C = 13, .relu = true, .affine = true, .running = Running::f32},  // 2x7x7x13
      {.M = 98, .C = 13, .relu = false, .affine = false, .running = Running::f64, .accumulate = true},
      {.M = 600, .C = 40, .relu = true, .affine = true, .accumulate = true},  // 3 row chunks, 2 channel tiles
      {.M = 300, .C = 16, .offset = 1000, .relu = false, .affine = true, .running = Running::f64},  // mean >> std
      {.M = 2000, .C = 3, .offset = -500, .relu = true, .affine = false, .running = Running::f32},  // 8 chunks
      {.M = 50, .C = 1, .relu = true, .affine = true, .running = Running::f32},
      {.M = 2, .C = 24, .relu = false, .affine = true, .running = Running::f64, .accumulate = true},  // 1-D, batch 2
      {.M = 20, .C = 16, .relu = true, .affine = true, .running = Running::f32, .misaligned = true},
      {.M = 45, .C = 8, .training = false, .relu = true, .affine = true, .running = Running::f32},
      {.M = 1, .C = 8, .training = false, .relu = false, .affine = true, .running = Running::f64,
       .accumulate = true},  // eval, batch 1
  };
  for (const BnCase& c : cases) {
    check_bn_case<float>(c);
    check_bn_case<bf16>(c);
  }
}

TEST_CASE("emu bn: one value per channel (count 1) gives NaN statistics, running buffers untouched",
          "[emu][bn]") {
  // The CPU throws; a kernel cannot, and the op checks the count first
  // whenever it knows it (kernels/batchnorm.h).
  const int64_t C = 5;
  std::vector<float> x = {1, 2, 3, 4, 5};
  std::vector<double> xd(x.begin(), x.end());
  const auto& k = emu_row<BatchNormKernels, float>();
  const auto& ref = kernels_for<BatchNormKernels, double>(Device::cpu());
  Guarded<double> st(2 * C + 1);
  k.stats(st.data(), x.data(), 1, C);
  const std::vector<double> s = st.get();
  CHECK(s[2 * C] == 1.0);
  for (int64_t j = 0; j < C; j++) CHECK(s[j] == xd[j]);     // mean
  for (int64_t j = 0; j < C; j++) CHECK(s[C + j] == 0.0);   // M2
  std::vector<double> rm(C, 0.5), rv(C, 2.0), mean(C), inv(C);
  CHECK_THROWS(ref.running_f64.finalize(mean.data(), inv.data(), rm.data(), rv.data(), s.data(), C, 1e-5, 0.1));
  Guarded<float> gm(C), gi(C), grm(std::vector<float>(C, 0.5f)), grv(std::vector<float>(C, 2.0f));
  k.running_f32.finalize(gm.data(), gi.data(), grm.data(), grv.data(), s.data(), C, 1e-5, 0.1);
  for (float v : gm.get()) CHECK(std::isnan(v));
  for (float v : gi.get()) CHECK(std::isnan(v));
  CHECK(grm.get() == std::vector<float>(C, 0.5f));
  CHECK(grv.get() == std::vector<float>(C, 2.0f));
  CHECK(grm.guards_intact());
  CHECK(gm.guards_intact());
}

TEST_CASE("emu bn: the statistics are bitwise reproducible", "[emu][bn]") {
  const int64_t M = 700, C = 35;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  std::vector<float> x(M * C);
  for (auto& v : x) v = 3 + nd(rng);
  const auto& k = emu_row<BatchNormKernels, float>();
  std::vector<double> a(2 * C + 1, kNaN), b(2 * C + 1, kNaN);
  k.stats(a.data(), x.data(), M, C);
  k.stats(b.data(), x.data(), M, C);
  CHECK(a == b);
}

TEST_CASE("emu bn: the CUDA L2-normalise row against the CPU float64 row", "[emu][bn]") {
  check_l2<float>(5, 7, 1e-12, false, false);
  check_l2<float>(9, 33, 1e-12, false, true);  // 2 blocks, lanes loop over D, a zero row
  check_l2<float>(3, 4, 1e-3, true, false);    // row 1 shorter than eps (the clamp)
  check_l2<float>(1, 13, 1e-12, false, false);
  check_l2<float>(17, 128, 1e-12, false, false);
  check_l2<bf16>(9, 33, 1e-12, false, true);
  check_l2<bf16>(3, 4, 1e-3, true, false);
  check_l2<bf16>(17, 128, 1e-12, false, false);
}

TEST_CASE("emu bn: the CUDA cross-entropy row against the CPU float64 row", "[emu][bn]") {
  check_ce<float, int32_t>(6, 5, 0, 1);
  check_ce<float, int64_t>(6, 5, 0, 1);
  check_ce<float, int64_t>(1, 10, 0, 2);
  check_ce<float, int32_t>(13, 2, 0, 1);
  check_ce<float, int64_t>(5, 300, 50, 3);  // K over the block's 128 threads; large logits (the max shift)
  check_ce<float, int32_t>(3, 1, 0, 1);     // one class: loss 0, gradient 0
  check_ce<bf16, int32_t>(6, 5, 0, 1);
  check_ce<bf16, int64_t>(5, 300, 50, 3);
}

TEST_CASE("emu bn: merge_stats (global BN's Chan merge) against the CPU row", "[emu][bn]") {
  // Ranks' [mean | M2 | count] blocks, unequal counts and an empty rank; C = 300 spans two
  // blocks of the per-channel kernel (thread C writes the count). Both sides fold in double in
  // rank order; nvcc may contract a·b + c into an fma, so 1e-14 relative, not bitwise.
  const int64_t C = 300, R = 4;
  const double counts[R] = {37, 0, 5, 1200};
  std::mt19937 rng(9);
  std::normal_distribution<double> nd;
  std::vector<double> parts(static_cast<size_t>(R * (2 * C + 1)));
  for (int64_t r = 0; r < R; r++) {
    double* p = parts.data() + r * (2 * C + 1);
    for (int64_t c = 0; c < C; c++) {
      p[c] = counts[r] > 0 ? 50 + nd(rng) : 0;
      p[C + c] = counts[r] > 0 ? counts[r] * (1 + 0.5 * std::abs(nd(rng))) : 0;
    }
    p[2 * C] = counts[r];
  }
  const auto& k = emu_row<BatchNormKernels, float>();
  const auto& ref = kernels_for<BatchNormKernels, double>(Device::cpu());
  std::vector<double> want(2 * C + 1);
  ref.merge_stats(want.data(), parts.data(), R, C);
  Guarded<double> got(2 * C + 1);  // NaN-filled: every element must be written
  k.merge_stats(got.data(), parts.data(), R, C);
  expect_guards("merge_stats", got);
  const std::vector<double> g = got.get();
  CHECK(g[2 * C] == 1242);
  std::vector<double> tol(2 * C + 1);
  for (int64_t i = 0; i <= 2 * C; i++) tol[i] = 1e-14 * std::abs(want[i]);
  expect_close("merged stats", g, want, tol);
}
