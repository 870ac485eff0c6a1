// tests/test_kernels_finalize.cpp - the small kernels that replaced host loops
// in the op bodies, called through the CPU backend's table rows (what the op
// runs), against float64 closed forms computed here from the raw inputs:
//   - batch norm's statistics and finalize (mean, biased variance, inverse
//     std, PyTorch's running update with the UNBIASED variance and momentum),
//     the eval conversion of the running statistics, the backward finalize
//     (dγ, dβ from the local sums, mean(dy), mean(dy·x̂) from the summed ones);
//   - cross-entropy's label check (first bad row and its value).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <type_traits>
#include <vector>

#include "kernels/batchnorm.h"
#include "kernels/norm_loss.h"
#include "kernels/registry.h"

using namespace simclr;

namespace {

std::vector<double> uniform(size_t n, uint32_t seed, double lo, double hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(n);
  for (double& e : v) e = u(rng);
  return v;
}

template <class T>
std::vector<T> as(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

// Relative tolerance of a T result computed in double and rounded once
// (float: a few ulps at 2^-24; double: sums of ~100 terms).
template <class T>
constexpr double kTol = std::is_same_v<T, float> ? 4e-7 : 1e-13;
// What follows from the batch sums: the stats kernel sums T values in T over
// blocks of rows (float: 37 terms, about 37 ulps of the shifted values' scale,
// relative to max(1, |value|) below; double: exact enough for 1e-12).
template <class T>
constexpr double kStatsTol = std::is_same_v<T, float> ? 1e-5 : 1e-12;

template <class T>
void check_close(const T* got, const std::vector<double>& want, double tol, const char* what) {
  for (size_t c = 0; c < want.size(); c++) {
    INFO(what << "[" << c << "] = " << static_cast<double>(got[c]) << ", expected " << want[c]);
    CHECK(std::abs(static_cast<double>(got[c]) - want[c]) <= tol * std::max(1.0, std::abs(want[c])));
  }
}

// The running-statistics functions of k for buffers of type B.
template <class B, class K>
const auto& running_of(const K& k) {
  if constexpr (std::is_same_v<B, float>)
    return k.running_f32;
  else
    return k.running_f64;
}

template <class T, class B>
void check_bn_finalize() {
  const auto& k = kernels_for<BatchNormKernels, T>(Device::cpu());
  const auto& kr = running_of<B>(k);
  const int64_t M = 37, C = 5;  // odd sizes; channel means far from 0 (the stats kernel shifts)
  std::vector<double> xd = uniform(static_cast<size_t>(M * C), 1, -1, 1);
  for (int64_t m = 0; m < M; m++)
    for (int64_t c = 0; c < C; c++) xd[m * C + c] = 3.0 * static_cast<double>(c) - 4.0 + (c + 1) * xd[m * C + c];
  const std::vector<T> x = as<T>(xd);

  // closed forms from the rounded inputs
  std::vector<double> mu(C, 0.0), var(C, 0.0);
  for (int64_t c = 0; c < C; c++) {
    for (int64_t m = 0; m < M; m++) mu[c] += static_cast<double>(x[m * C + c]) / M;
    for (int64_t m = 0; m < M; m++) var[c] += std::pow(static_cast<double>(x[m * C + c]) - mu[c], 2) / M;
  }

  std::vector<double> stats(2 * C + 1, std::numeric_limits<double>::quiet_NaN());
  k.stats(stats.data(), x.data(), M, C);
  CHECK(stats[2 * C] == M);
  std::vector<double> m2(C);  // stats = [mean | M2 = Σ(x - mean)² | count]
  for (int64_t c = 0; c < C; c++) m2[c] = var[c] * M;
  check_close(stats.data(), mu, kStatsTol<T>, "mean");
  check_close(stats.data() + C, m2, kStatsTol<T>, "M2");

  const double eps = 1e-3, momentum = 0.3;
  const std::vector<double> rm0 = uniform(C, 2, -1, 1), rv0 = uniform(C, 3, 0.5, 2);
  std::vector<B> rm = as<B>(rm0), rv = as<B>(rv0);
  std::vector<T> mean(C), invstd(C);
  kr.finalize(mean.data(), invstd.data(), rm.data(), rv.data(), stats.data(), C, eps, momentum);
  std::vector<double> want_invstd(C), want_rm(C), want_rv(C);
  for (int64_t c = 0; c < C; c++) {
    want_invstd[c] = 1 / std::sqrt(var[c] + eps);
    want_rm[c] = (1 - momentum) * static_cast<double>(B(rm0[c])) + momentum * mu[c];
    want_rv[c] = (1 - momentum) * static_cast<double>(B(rv0[c])) + momentum * var[c] * M / (M - 1);  // unbiased
  }
  const double tol = std::max(kStatsTol<T>, kTol<B>);
  check_close(mean.data(), mu, tol, "mean");
  check_close(invstd.data(), want_invstd, tol, "invstd");
  check_close(rm.data(), want_rm, tol, "running_mean");
  check_close(rv.data(), want_rv, tol, "running_var");

  // no running buffers: the same statistics, nothing else written
  std::vector<T> mean2(C), invstd2(C);
  kr.finalize(mean2.data(), invstd2.data(), nullptr, nullptr, stats.data(), C, eps, momentum);
  CHECK(mean2 == mean);
  CHECK(invstd2 == invstd);

  // two "ranks" of 15 and 22 rows: their stats gathered and merged (global BN) give the whole batch's
  const int64_t M1 = 15;
  std::vector<double> parts(2 * (2 * C + 1)), s1(2 * C + 1);
  k.stats(parts.data(), x.data(), M1, C);
  k.stats(parts.data() + 2 * C + 1, x.data() + M1 * C, M - M1, C);
  k.merge_stats(s1.data(), parts.data(), 2, C);
  CHECK(s1[2 * C] == M);
  std::vector<B> rm2 = as<B>(rm0), rv2 = as<B>(rv0);
  kr.finalize(mean2.data(), invstd2.data(), rm2.data(), rv2.data(), s1.data(), C, eps, momentum);
  check_close(mean2.data(), mu, tol, "two-rank mean");
  check_close(invstd2.data(), want_invstd, tol, "two-rank invstd");
  check_close(rv2.data(), want_rv, tol, "two-rank running_var");

  // one value per channel: no variance to estimate
  std::vector<double> one(2 * C + 1, 0.0);
  one[2 * C] = 1;
  CHECK_THROWS_WITH(kr.finalize(mean.data(), invstd.data(), rm.data(), rv.data(), one.data(), C, eps, momentum),
                    Catch::Contains("more than one value per channel, got 1"));

  // eval: the running statistics as x's dtype
  kr.from_running(mean.data(), invstd.data(), rm.data(), rv.data(), C, eps);
  std::vector<double> rmd(C), rvi(C);
  for (int64_t c = 0; c < C; c++) rmd[c] = rm[c], rvi[c] = 1 / std::sqrt(static_cast<double>(rv[c]) + eps);
  check_close(mean.data(), rmd, kTol<T>, "eval mean");
  check_close(invstd.data(), rvi, kTol<T>, "eval invstd");
}

template <class T>
void check_bn_backward_finalize() {
  const auto& k = kernels_for<BatchNormKernels, T>(Device::cpu());
  const int64_t C = 6;
  const std::vector<double> red = uniform(2 * C, 4, -3, 3);      // this rank's [Σg | Σg·x̂]
  const std::vector<double> other = uniform(2 * C, 5, -3, 3);    // another rank's
  std::vector<double> red_all(2 * C), stats(2 * C + 1, 0.0);
  for (int64_t i = 0; i < 2 * C; i++) red_all[i] = red[i] + other[i];
  stats[2 * C] = 2 * 40;  // two ranks of 40 rows
  const std::vector<double> g0 = uniform(C, 6, -1, 1), b0 = uniform(C, 7, -1, 1);
  std::vector<T> dg = as<T>(g0), db = as<T>(b0), mdy(C), mdyx(C);
  k.backward_finalize(dg.data(), db.data(), mdy.data(), mdyx.data(), red.data(), red_all.data(), stats.data(), C);
  std::vector<double> want_dg(C), want_db(C), want_mdy(C), want_mdyx(C);
  for (int64_t c = 0; c < C; c++) {
    want_dg[c] = static_cast<double>(T(g0[c])) + red[C + c];  // the LOCAL share: the gradient all-reduce sums ranks
    want_db[c] = static_cast<double>(T(b0[c])) + red[c];
    want_mdy[c] = red_all[c] / 80;  // the GLOBAL means
    want_mdyx[c] = red_all[C + c] / 80;
  }
  check_close(dg.data(), want_dg, kTol<T> * 4, "dgamma");
  check_close(db.data(), want_db, kTol<T> * 4, "dbeta");
  check_close(mdy.data(), want_mdy, kTol<T>, "mean_dy");
  check_close(mdyx.data(), want_mdyx, kTol<T>, "mean_dy_xhat");

  // eval (statistics constant): zero means; without gamma/beta only the means are written
  k.backward_finalize(nullptr, nullptr, mdy.data(), mdyx.data(), red.data(), nullptr, nullptr, C);
  CHECK(mdy == std::vector<T>(C, T(0)));
  CHECK(mdyx == std::vector<T>(C, T(0)));
  // no dx wanted (no means): dγ still accumulates its local share
  std::vector<T> dg2 = as<T>(g0);
  k.backward_finalize(dg2.data(), nullptr, nullptr, nullptr, red.data(), red_all.data(), stats.data(), C);
  check_close(dg2.data(), want_dg, kTol<T> * 4, "dgamma (no dx)");
}

template <class L>
void check_labels() {
  const auto& k = kernels_for<CrossEntropyKernels, float>(Device::cpu());
  const auto& kl = [&]() -> const auto& {
    if constexpr (std::is_same_v<L, int32_t>)
      return k.i32;
    else
      return k.i64;
  }();
  const std::vector<L> ok = {0, 4, 2, 3, 1};
  CHECK(kl.check_labels(ok.data(), 5, 5).row == -1);
  const std::vector<L> bad = {0, 4, 5, -1, 7};  // rows 2, 3 and 4 are outside [0, 5): the first is reported
  const BadLabel b = kl.check_labels(bad.data(), 5, 5);
  CHECK(b.row == 2);
  CHECK(b.label == 5);
  const std::vector<L> neg = {0, -1};
  CHECK(kl.check_labels(neg.data(), 2, 5).row == 1);
  CHECK(kl.check_labels(neg.data(), 2, 5).label == -1);
  CHECK(kl.check_labels(neg.data(), 1, 5).row == -1);  // only N labels are read
}

}  // namespace

TEST_CASE("kernels: batch-norm statistics and finalize against float64 closed forms", "[kernels][bn]") {
  check_bn_finalize<double, double>();
  check_bn_finalize<double, float>();
  check_bn_finalize<float, float>();
  check_bn_finalize<float, double>();
}

TEST_CASE("kernels: batch-norm backward finalize (local dγ/dβ, global means)", "[kernels][bn]") {
  check_bn_backward_finalize<double>();
  check_bn_backward_finalize<float>();
}

TEST_CASE("kernels: cross-entropy label check returns the first bad row", "[kernels][ce]") {
  check_labels<int32_t>();
  check_labels<int64_t>();
}
