// tests/test_eval.cpp - the evaluation building blocks: L-BFGS, the softmax
// regression objective and gradient (finite differences), the linear probe
// and the kNN monitor on hand-checkable data.
#include <cmath>

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
