// tests/test_eval.cpp - the evaluation building blocks: L-BFGS, the softmax
// regression objective and gradient (finite differences), the linear probe
// and the kNN monitor on hand-checkable data.
#include <omp.h>

#include <cmath>
#include <cstring>
#include <tuple>

#include "helpers.h"
#include "train/eval.h"

using namespace simclr;

TEST_CASE("eval: L-BFGS minimises the Rosenbrock function", "[eval]") {
  auto f = [](const std::vector<double>& x, std::vector<double>* g) {
    double a = 1 - x[0], b = x[1] - x[0] * x[0];
    if (g) *g = {-2 * a - 400 * x[0] * b, 200 * b};
    return a * a + 100 * b * b;
  };
  std::vector<double> x = {-1.2, 1.0};
  int it = lbfgs_minimize(f, x, 500, 1e-14, 1e-9);
  CHECK(it < 500);
  CHECK(x[0] == Approx(1.0).margin(1e-5));
  CHECK(x[1] == Approx(1.0).margin(1e-5));
}

TEST_CASE("eval: softmax regression gradient against central differences", "[eval]") {
  const int64_t n = 7, D = 3;
  const int K = 4;
  Tensor X = simclr::test::rand_tensor({n, D}, 1, -1, 1, DType::f32);
  std::vector<int64_t> y = {0, 1, 2, 3, 1, 2, 0};
  std::vector<double> p(K * D + K);
  for (size_t i = 0; i < p.size(); i++) p[i] = 0.3 * std::sin(1.7 * static_cast<double>(i));
  std::vector<double> g;
  const double l2 = 0.05;
  double f0 = softmax_regression_objective(X.data<float>(), y.data(), n, D, K, p, l2, &g);
  CHECK(std::isfinite(f0));
  for (size_t i = 0; i < p.size(); i++) {
    std::vector<double> a = p, b = p;
    a[i] += 1e-3, b[i] -= 1e-3;
    double num = (softmax_regression_objective(X.data<float>(), y.data(), n, D, K, a, l2, nullptr) -
                  softmax_regression_objective(X.data<float>(), y.data(), n, D, K, b, l2, nullptr)) / 2e-3;
    INFO("parameter " << i);
    CHECK(g[i] == Approx(num).margin(2e-5));  // f32 logits: finite differences to ~1e-5
  }
  // at zero parameters the loss is log(K)
  std::vector<double> zero(p.size(), 0.0);
  CHECK(softmax_regression_objective(X.data<float>(), y.data(), n, D, K, zero, l2, nullptr) ==
        Approx(std::log(4.0)).epsilon(1e-6));
}

namespace {
// Gaussian blobs: class c centred at 3 e_c in D dimensions (+ noise).
FeatureSet blobs(int64_t n, int64_t D, int K, double noise, uint64_t seed) {
  FeatureSet fs;
  fs.x = simclr::test::rand_tensor({n, D}, seed, -noise, noise, DType::f32);
  fs.y = Tensor::empty({n}, DType::i64);
  fs.num_classes = K;
  for (int64_t i = 0; i < n; i++) {
    int c = static_cast<int>(i % K);
    fs.y.data<int64_t>()[i] = c;
    fs.x.data<float>()[i * D + c] += 3.0f;
  }
  return fs;
}
}  // namespace

TEST_CASE("eval: linear probe separates separable classes, picks an L2, reports top-5", "[eval]") {
  FeatureSet tr = blobs(600, 8, 6, 1.0, 3), te = blobs(300, 8, 6, 1.0, 4);
  LinearProbeConfig cfg;
  LinearProbeResult r = linear_probe(tr, te, cfg);
  CHECK(r.top1 > 0.99);
  CHECK(r.top5 == 1.0);
  CHECK(r.val_top1.size() == cfg.l2_grid.size());
  CHECK(r.val_top1.front().first == 1e-1);  // largest first
  // pure noise labels: at chance level (1/6), far from separable
  FeatureSet noise = blobs(600, 8, 6, 1.0, 5);
  for (int64_t i = 0; i < noise.n(); i++) noise.x.data<float>()[i * 8 + i % 6] -= 3.0f;
  LinearProbeResult c = linear_probe(noise, blobs(300, 8, 6, 1.0, 6), cfg);
  CHECK(c.top1 < 0.35);
}

TEST_CASE("eval: kNN votes with exp(s/T) over the k nearest by cosine", "[eval]") {
  // train: three points of class 0 near (1,0), one of class 1 at (0,1)
  FeatureSet tr;
  tr.x = Tensor::from_vector<float>({1, 0.1f, 1, -0.1f, 2, 0, 0, 1}, {4, 2});
  tr.y = Tensor::from_vector<int64_t>({0, 0, 0, 1}, {4});
  tr.num_classes = 2;
  FeatureSet te;
  te.x = Tensor::from_vector<float>({0.1f, 1, 5, 0.2f}, {2, 2});
  te.y = Tensor::from_vector<int64_t>({1, 0}, {2});
  te.num_classes = 2;
  // k = 1: nearest neighbour by cosine -> both right
  CHECK(knn_eval(tr, te, 1, 0.1).top1 == 1.0);
  // k = 4, T = 0.1: test 0 sees class 1 at s ~ 0.995 (weight e^9.95) against
  // three class-0 points at s ~ 0.1-0.2 (weights ~ e^1-e^2): class 1 wins
  CHECK(knn_eval(tr, te, 4, 0.1).top1 == 1.0);
  // k = 4, T = 100: weights ~ 1, three class-0 votes beat one: test 0 wrong
  CHECK(knn_eval(tr, te, 4, 100).top1 == 0.5);
}

// ---------------------------------------------------------------- fused objective (issue 18)
namespace {
struct ObjectiveData {
  int64_t n, D;
  int K;
  Tensor X;
  std::vector<int64_t> y;
  std::vector<double> p;
};
ObjectiveData objective_data(int64_t n, int64_t D, int K, uint64_t seed) {
  ObjectiveData o{n, D, K, simclr::test::rand_tensor({n, D}, seed, -2, 2, DType::f32), {}, {}};
  for (int64_t i = 0; i < n; i++) o.y.push_back(static_cast<int64_t>((static_cast<uint64_t>(i) * 2654435761u + seed) % K));
  o.p.resize(static_cast<size_t>(K * D + K));
  for (size_t i = 0; i < o.p.size(); i++) o.p[i] = 0.4 * std::sin(1.3 * static_cast<double>(i) + static_cast<double>(seed));
  return o;
}
}  // namespace

// Tolerances: worst-case forward-error bounds (Higham, gamma_m = m u / (1 - m u),
// u = 2^-24), computed in float64 from the data, so the comparison cannot flake
// yet a missing or doubled row moves the result far beyond them:
//  - each f32 logit (either form, any summation order) is within
//    e_ik = gamma_D sum_d |x_id W_kd| of the exact one; per row the loss term
//    lse(z) - z_y is 2-Lipschitz in max-norm: |dloss| <= 4 mean_i max_k e_ik
//  - softmax moves by at most ~2 |dz|_inf p_ik (slack 5 e_i p_ik), and each
//    f32 G = (p - onehot) / n is rounded once on each side (2 u |G|)
//  - gW_kd = sum_i G_ik x_id in f32 over n rows on each side:
//    |dgW| <= sum_i |dG_ik| |x_id| + 2 gamma_n sum_i |G_ik x_id|; gb sums in double.
TEST_CASE("eval: fused softmax objective equals the two-sgemm reference within f32 rounding", "[eval]") {
  struct Shape {
    int64_t n, D;
    int K;
  };
  // n not a multiple of the block (and of the 16 workers), n < block, D = 1,
  // K = 2, K = 10 (one register group), K = 23 (groups of 10, 10, 3), D % 8 != 0
  const Shape shapes[] = {{1000, 37, 10}, {50, 16, 3}, {300, 1, 2}, {2085, 64, 10}, {517, 20, 23}, {7, 9, 2}, {129, 8, 10}};
  const double u = std::ldexp(1.0, -24);
  auto gamma = [&](double m) { return m * u / (1 - m * u); };
  uint64_t seed = 11;
  for (const Shape& s : shapes) {
    ObjectiveData o = objective_data(s.n, s.D, s.K, seed++);
    const int64_t n = o.n, D = o.D;
    const int K = o.K;
    const float* x = o.X.data<float>();
    INFO("n=" << n << " D=" << D << " K=" << K);
    const double l2 = 0.01;
    std::vector<double> g_ref, g_new;
    const double f_ref = softmax_regression_objective_reference(x, o.y.data(), n, D, K, o.p, l2, &g_ref);
    const double f_new = softmax_regression_objective(x, o.y.data(), n, D, K, o.p, l2, &g_new);
    // the bounds, from float64 logits of the f32 weights
    std::vector<double> e(static_cast<size_t>(n)), P(static_cast<size_t>(n * K)), G(static_cast<size_t>(n * K));
    double loss_tol = 0;
    for (int64_t i = 0; i < n; i++) {
      std::vector<double> z(static_cast<size_t>(K));
      double emax = 0, mx = -1e300;
      for (int k = 0; k < K; k++) {
        double dot = 0, S = 0;
        for (int64_t d = 0; d < D; d++) {
          const double w = static_cast<float>(o.p[k * D + d]);
          dot += x[i * D + d] * w;
          S += std::abs(x[i * D + d] * w);
        }
        z[k] = dot + o.p[K * D + k];
        emax = std::max(emax, gamma(static_cast<double>(D)) * S);
        mx = std::max(mx, z[k]);
      }
      double sum = 0;
      for (int k = 0; k < K; k++) sum += std::exp(z[k] - mx);
      for (int k = 0; k < K; k++) {
        P[i * K + k] = std::exp(z[k] - mx) / sum;
        G[i * K + k] = (P[i * K + k] - (k == o.y[i] ? 1.0 : 0.0)) / static_cast<double>(n);
      }
      e[i] = emax;
      loss_tol += 4 * emax / static_cast<double>(n);
    }
    CHECK(std::abs(f_new - f_ref) <= loss_tol + 1e-12 * std::abs(f_ref));
    REQUIRE(g_new.size() == g_ref.size());
    for (int k = 0; k < K; k++) {
      double gb_tol = 1e-12;
      for (int64_t i = 0; i < n; i++)
        gb_tol += 5 * e[i] * P[i * K + k] / static_cast<double>(n) + 2 * u * std::abs(G[i * K + k]);
      CHECK(std::abs(g_new[K * D + k] - g_ref[K * D + k]) <= gb_tol);
      for (int64_t d = 0; d < D; d++) {
        double tol = 0;
        for (int64_t i = 0; i < n; i++) {
          const double ax = std::abs(x[i * D + d]);
          tol += (5 * e[i] * P[i * K + k] / static_cast<double>(n) + 2 * u * std::abs(G[i * K + k])) * ax +
                 2 * gamma(static_cast<double>(n)) * std::abs(G[i * K + k]) * ax;
        }
        if (std::abs(g_new[k * D + d] - g_ref[k * D + d]) > tol) {
          INFO("gW[" << k << "," << d << "] fused " << g_new[k * D + d] << " reference " << g_ref[k * D + d]
                     << " tol " << tol);
          CHECK(false);
        }
      }
    }
  }
}

TEST_CASE("eval: fused softmax gradient against float64 central differences", "[eval]") {
  // the float64 objective written out (mean cross-entropy + l2/2 |W|^2) and
  // differenced with h = 1e-5: truncation ~h^2 = 1e-10, rounding ~1e-16 / h.
  // The fused gradient carries f32 rounding (logits, G, sums over n rows):
  // ~1e-7 relative here, so 1e-5 absolute (~1e-3 of the gradient's scale)
  // still catches a wrong term or a missing block.
  for (auto [n, D, K] : {std::tuple<int64_t, int64_t, int>{300, 20, 10}, {1000, 5, 2}, {200, 3, 13}}) {
    ObjectiveData o = objective_data(n, D, K, 40 + static_cast<uint64_t>(n));
    const float* x = o.X.data<float>();
    const double l2 = 0.02;
    auto f64 = [&](const std::vector<double>& p) {
      double loss = 0, reg = 0;
      for (int64_t i = 0; i < n; i++) {
        std::vector<double> z(static_cast<size_t>(K));
        double mx = -1e300;
        for (int k = 0; k < K; k++) {
          double dot = p[K * D + k];
          for (int64_t d = 0; d < D; d++) dot += static_cast<double>(x[i * D + d]) * p[k * D + d];
          z[k] = dot;
          mx = std::max(mx, dot);
        }
        double s = 0;
        for (int k = 0; k < K; k++) s += std::exp(z[k] - mx);
        loss += mx + std::log(s) - z[o.y[i]];
      }
      for (int64_t i = 0; i < K * D; i++) reg += p[i] * p[i];
      return loss / static_cast<double>(n) + 0.5 * l2 * reg;
    };
    std::vector<double> g;
    const double f = softmax_regression_objective(x, o.y.data(), n, D, K, o.p, l2, &g);
    INFO("n=" << n << " D=" << D << " K=" << K);
    CHECK(f == Approx(f64(o.p)).epsilon(1e-6));
    for (size_t i = 0; i < o.p.size(); i++) {
      std::vector<double> a = o.p, b = o.p;
      a[i] += 1e-5, b[i] -= 1e-5;
      const double num = (f64(a) - f64(b)) / 2e-5;
      INFO("parameter " << i);
      CHECK(g[i] == Approx(num).margin(1e-5));
    }
  }
}

TEST_CASE("eval: fused softmax objective is bitwise identical for 1 and 2 threads", "[eval]") {
  ObjectiveData o = objective_data(5000, 100, 10, 77);
  const int saved = omp_get_max_threads();
  std::vector<double> g1, g2, g3;
  omp_set_num_threads(1);
  const double f1 = softmax_regression_objective(o.X.data<float>(), o.y.data(), o.n, o.D, o.K, o.p, 1e-3, &g1);
  omp_set_num_threads(2);
  const double f2 = softmax_regression_objective(o.X.data<float>(), o.y.data(), o.n, o.D, o.K, o.p, 1e-3, &g2);
  omp_set_num_threads(3);
  const double f3 = softmax_regression_objective(o.X.data<float>(), o.y.data(), o.n, o.D, o.K, o.p, 1e-3, &g3);
  omp_set_num_threads(saved);
  CHECK(f1 == f2);
  CHECK(f1 == f3);
  REQUIRE(g1.size() == g2.size());
  CHECK(std::memcmp(g1.data(), g2.data(), g1.size() * sizeof(double)) == 0);
  CHECK(std::memcmp(g1.data(), g3.data(), g1.size() * sizeof(double)) == 0);
}
